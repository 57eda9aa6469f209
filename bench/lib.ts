/**
 * What the benchmarks share: where things are, the shared workload and the image made from
 * it, timing a whole client command, and how figures are summarised (median, min–max).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import path from "node:path";
import { parseImageConfig } from "../src/oci/index.js";
import type { LayerRecord, Store } from "../src/store/index.js";

export const REPO = path.resolve(import.meta.dirname, "..");
export const BENCH_OUT = path.join(REPO, ".bench-out");
/** The shared workload (../shared/bench), generated once. */
export const WORK = path.join(BENCH_OUT, "workload");
/**
 * The CLI as users run it: the `strata` launcher (bin/strata, what `npm link` installs) in
 * front of the bundle `npm run build` writes. STRATA_VIA=node runs `node dist/bin/main.js`
 * instead: then node reads NODE_EXTRA_CA_CERTS at every start-up (see bin/strata).
 */
export const STRATA =
  process.env.STRATA_VIA === "node"
    ? [process.execPath, path.join(REPO, "dist/bin/main.js")]
    : [path.join(REPO, "bin/strata")];

/** Build the CLI only when there is none: a benchmark measures what was built. */
export function ensureBuilt(): void {
  if (!existsSync(path.join(REPO, "dist/bin/main.js")))
    execFileSync("npm", ["run", "build", "--silent"], { cwd: REPO, stdio: "inherit" });
}

export function ensureWorkload(): void {
  if (!existsSync(path.join(WORK, "FINGERPRINT")))
    execFileSync("bash", [path.join(REPO, "../shared/bench/make-workload.sh"), WORK], { stdio: "inherit" });
}

/** Wall-clock seconds of a whole command (process start included); throws when it fails. */
export function timeCommand(cmd: string[], env: NodeJS.ProcessEnv = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}): ${r.stderr}`);
  return secs;
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `median (min–max)` in seconds. */
export function cell(xs: number[], digits = 3): string {
  return `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

/**
 * The benchmark image, through the store API as the builder makes images: the workload's
 * base-rootfs.tar as layer 1 and a deterministic tar of app/deps + app/src (under /app) as
 * layer 2. Returns its layers and their uncompressed bytes.
 */
export async function storeWorkloadImage(
  store: Store,
  tag: string,
): Promise<{ layers: LayerRecord[]; bytes: number }> {
  const base = await store.ingestLayer(createReadStream(path.join(WORK, "base-rootfs.tar")));
  const appTar = path.join(BENCH_OUT, "app-layer.tar");
  execFileSync("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@1704067200",
    "--transform",
    "s,^,app/,",
    "-C",
    path.join(WORK, "app"),
    "-cf",
    appTar,
    "deps",
    "src",
  ]);
  const app = await store.ingestLayer(createReadStream(appTar));
  const now = "2024-01-01T00:00:00Z";
  const config = parseImageConfig(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: now,
      config: {
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Cmd: ["sh"],
        WorkingDir: "/app",
      },
      rootfs: { type: "layers", diff_ids: [base.diffId, app.diffId] },
      history: [
        { created: now, created_by: "import base-rootfs.tar" },
        { created: now, created_by: "COPY deps/ src/ /app/" },
      ],
    }),
  );
  await store.putImage({ config, layers: [base, app], tags: [tag] });
  return { layers: [base, app], bytes: base.size + app.size };
}
