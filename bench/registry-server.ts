/**
 * Registry server benchmark: Strata vs Debian's CNCF distribution 2.8, same machine, same run.
 *
 *   npx tsx bench/registry-server.ts [--duration 10]
 *
 * - manifest GET requests/s under `wrk -t2 -c32 -d10s`
 * - blob GET throughput (an 8 MiB blob) under the same wrk settings
 * - wall time of skopeo pushing 20 images concurrently
 * - peak RSS of each server process (VmHWM)
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import {
  blob,
  makeImage,
  OCI_MANIFEST,
  pushBlob,
  pushImage,
  writeOciLayout,
} from "../test/helpers/registry-images.js";
import {
  type RegistryProcess,
  startDistribution,
  startStrata,
  tempDir,
} from "../test/helpers/registry-servers.js";
import { ensureBuilt } from "./lib.js";

const run = promisify(execFile);
const durationArg = process.argv.indexOf("--duration");
const DURATION = durationArg > 0 ? Number(process.argv[durationArg + 1]) : 10;

interface WrkResult {
  rps: number;
  bytesPerSec: number;
  non2xx: number;
}

function parseSize(v: string, unit: string): number {
  const mult: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
  return Number(v) * (mult[unit] ?? 1);
}

async function wrk(url: string, headers: string[] = []): Promise<WrkResult> {
  const args = ["-t2", "-c32", `-d${DURATION}s`, ...headers.flatMap((h) => ["-H", h]), url];
  const { stdout } = await run("wrk", args, { timeout: (DURATION + 30) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const t = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  return { rps, bytesPerSec: t ? parseSize(t[1]!, t[2]!) : 0, non2xx };
}

function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

async function prepare(reg: RegistryProcess): Promise<{ manifestUrl: string; blobUrl: string }> {
  const img = await makeImage({ layers: 3, seed: "bench" });
  await pushImage(reg.url, "bench/app", "latest", img);
  const big = blob(Buffer.alloc(8 * 1024 * 1024, 0x5a));
  await pushBlob(reg.url, "bench/app", big);
  return {
    manifestUrl: `${reg.url}/v2/bench/app/manifests/latest`,
    blobUrl: `${reg.url}/v2/bench/app/blobs/${big.digest}`,
  };
}

async function skopeoPush20(reg: RegistryProcess, layouts: string[]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    layouts.map((dir, i) =>
      run(
        "skopeo",
        [
          "--insecure-policy",
          "copy",
          "--dest-tls-verify=false",
          `oci:${dir}:v1`,
          `docker://${reg.host}/bench/push${i}:v1`,
        ],
        { timeout: 300_000 },
      ),
    ),
  );
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  ensureBuilt();
  const layouts: string[] = [];
  for (let i = 0; i < 20; i++) {
    const dir = path.join(tempDir("bench-layout"), "l");
    const files: Record<string, string> = {};
    for (let f = 0; f < 20; f++) files[`data/${f}.txt`] = `${i}-${f}-${"x".repeat(50_000)}${Math.random()}`;
    await writeOciLayout(dir, { tag: "v1", files });
    layouts.push(dir);
  }
  const results: Record<string, { manifest: WrkResult; blob: WrkResult; push: number; rss: number }> = {};
  for (const [name, start] of [
    ["strata", () => startStrata({ config: { log: { requests: false } } })],
    ["distribution", () => startDistribution()],
  ] as const) {
    const reg = await start();
    try {
      const { manifestUrl, blobUrl } = await prepare(reg);
      const accept = [`Accept: ${OCI_MANIFEST}`];
      await wrk(manifestUrl, accept).catch(() => undefined); // warm-up is the first run's first seconds
      const manifest = await wrk(manifestUrl, accept);
      const b = await wrk(blobUrl);
      const push = await skopeoPush20(reg, layouts);
      results[name] = { manifest, blob: b, push, rss: peakRss(reg.proc.pid!) };
      process.stderr.write(`${name}: done\n`);
    } finally {
      await reg.stop();
    }
  }
  const s = results.strata!;
  const d = results.distribution!;
  const mb = (x: number) => `${(x / 1024 / 1024).toFixed(0)} MiB/s`;
  const rows: [string, string, string, string][] = [
    ["metric", "strata", "distribution", "ratio (strata/dist)"],
    [
      "manifest GET req/s",
      s.manifest.rps.toFixed(0),
      d.manifest.rps.toFixed(0),
      (s.manifest.rps / d.manifest.rps).toFixed(2),
    ],
    [
      "blob GET throughput",
      mb(s.blob.bytesPerSec),
      mb(d.blob.bytesPerSec),
      (s.blob.bytesPerSec / d.blob.bytesPerSec).toFixed(2),
    ],
    [
      "skopeo 20 concurrent pushes",
      `${s.push.toFixed(2)} s`,
      `${d.push.toFixed(2)} s`,
      (s.push / d.push).toFixed(2),
    ],
    [
      "peak RSS",
      `${(s.rss / 1024 / 1024).toFixed(0)} MB`,
      `${(d.rss / 1024 / 1024).toFixed(0)} MB`,
      (s.rss / d.rss).toFixed(2),
    ],
    [
      "non-2xx responses",
      String(s.manifest.non2xx + s.blob.non2xx),
      String(d.manifest.non2xx + d.blob.non2xx),
      "",
    ],
  ];
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join("  ")}\n`);
  process.stdout.write(`\nwrk -t2 -c32 -d${DURATION}s; ${new Date().toISOString()}\n`);
}

main().catch((e) => {
  process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
