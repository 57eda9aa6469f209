/**
 * bench/save-load.ts — `save` and `load` of the shared benchmark image against dockerd's
 * `docker save` / `docker load` in the same run, and `images` with 1,000 tags.
 *
 *   npx tsx bench/save-load.ts            (needs root, dockerd, the shared workload generator)
 *
 * The image: the workload's base-rootfs.tar as layer 1 and a tar of app/deps + app/src
 * (under /app) as layer 2, built through the store API (as the builder will). Both tools
 * get the identical image (dockerd loads Strata's archive). Times are wall-clock seconds
 * of the whole CLI command, median of RUNS, tools alternated, page cache warm.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseImageConfig } from "../src/oci/index.js";
import { Store } from "../src/store/index.js";
import { startDockerd } from "../test/helpers/dockerd.js";

const RUNS = Number(process.env.RUNS ?? 5);
const REPO = path.resolve(import.meta.dirname, "..");
const OUT = path.join(REPO, ".bench-out");
const WORK = path.join(OUT, "workload");
const STRATA = [process.execPath, path.join(REPO, "dist/bin/main.js")];

function time(cmd: string[], env: NodeJS.ProcessEnv = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status})`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) =>
  `${median(xs).toFixed(3)} s (${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)})`;

async function main() {
  mkdirSync(OUT, { recursive: true });
  if (!existsSync(path.join(WORK, "FINGERPRINT")))
    execFileSync("bash", [path.join(REPO, "../shared/bench/make-workload.sh"), WORK], { stdio: "inherit" });
  // Measures the CLI as built (`npm run build` first); builds only when there is none.
  if (!existsSync(path.join(REPO, "dist/bin/main.js")))
    execFileSync("npm", ["run", "build", "--silent"], { cwd: REPO, stdio: "inherit" });

  const root = path.join(OUT, "store");
  rmSync(root, { recursive: true, force: true });
  const store = await Store.open(root);
  const base = await store.ingestLayer(createReadStream(path.join(WORK, "base-rootfs.tar")));
  const appTar = path.join(OUT, "app-layer.tar");
  execFileSync("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
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
  await store.putImage({ config, layers: [base, app], tags: ["docker.io/library/bench-app:1"] });
  const imageBytes = base.size + app.size;

  const d = await startDockerd();
  const dockerEnv = { DOCKER_HOST: d.host };
  const docker = (a: string[]) => ["/usr/bin/docker", ...a];
  const strata = (a: string[]) => [...STRATA, "--root", root, ...a];
  try {
    const seed = path.join(OUT, "seed.tar");
    time(strata(["save", "-o", seed, "bench-app:1"]));
    time(docker(["load", "-i", seed]), dockerEnv);

    const res: Record<string, number[]> = {
      strataSave: [],
      dockerSave: [],
      strataLoad: [],
      dockerLoad: [],
      strataLoadCold: [],
      dockerLoadCold: [],
    };
    const sOut = path.join(OUT, "s.tar");
    const dOut = path.join(OUT, "d.tar");
    for (let i = 0; i < RUNS; i++) {
      res.dockerSave!.push(time(docker(["save", "-o", dOut, "bench-app:1"]), dockerEnv));
      res.strataSave!.push(time(strata(["save", "-o", sOut, "bench-app:1"])));
    }
    // P2 as the workload defines it: the image removed, base layer still present (another image uses it).
    time(strata(["import", path.join(WORK, "base-rootfs.tar"), "bench-base:1"]));
    time(docker(["import", path.join(WORK, "base-rootfs.tar"), "bench-base:1"]), dockerEnv);
    for (let i = 0; i < RUNS; i++) {
      time(docker(["rmi", "bench-app:1"]), dockerEnv);
      res.dockerLoad!.push(time(docker(["load", "-q", "-i", dOut]), dockerEnv));
      time(strata(["rmi", "bench-app:1"]));
      res.strataLoad!.push(time(strata(["load", "-q", "-i", sOut])));
    }
    // P2 with nothing present.
    for (let i = 0; i < RUNS; i++) {
      time(docker(["rmi", "-f", "bench-app:1", "bench-base:1"]), dockerEnv);
      res.dockerLoadCold!.push(time(docker(["load", "-q", "-i", dOut]), dockerEnv));
      time(docker(["import", path.join(WORK, "base-rootfs.tar"), "bench-base:1"]), dockerEnv);
      time(strata(["rmi", "-f", "bench-app:1", "bench-base:1"]));
      res.strataLoadCold!.push(time(strata(["load", "-q", "-i", sOut])));
      time(strata(["import", path.join(WORK, "base-rootfs.tar"), "bench-base:1"]));
    }

    // `images` with 1,000 tags.
    await store.meta.update((doc) => {
      const id = Object.keys(doc.images)[0]!;
      for (let i = 0; i < 1000; i++) doc.tags[`docker.io/library/many${i % 50}:t${i}`] = id as never;
    });
    const images: number[] = [];
    for (let i = 0; i < RUNS; i++) images.push(time(strata(["images"])));

    const mb = (imageBytes / 1e6).toFixed(0);
    console.log(
      `\nImage: 2 layers, ${mb} MB uncompressed; archive ${(statSync(sOut).size / 1e6).toFixed(0)} MB (strata), ${(statSync(dOut).size / 1e6).toFixed(0)} MB (docker). ${os.cpus().length} cores. Median of ${RUNS}.`,
    );
    console.log("| scenario | strata | docker | ratio |");
    console.log("|---|---|---|---|");
    const row = (name: string, s: number[], dk: number[]) =>
      console.log(`| ${name} | ${fmt(s)} | ${fmt(dk)} | ${(median(s) / median(dk)).toFixed(2)} |`);
    row("P1 save", res.strataSave!, res.dockerSave!);
    row("P2 load (base present)", res.strataLoad!, res.dockerLoad!);
    row("P2 load (nothing present)", res.strataLoadCold!, res.dockerLoadCold!);
    console.log(`| images, 1,000 tags | ${fmt(images)} | | target < 0.300 s |`);
  } finally {
    await d.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
