/**
 * `run --rm IMAGE true` from a warm store: median wall time of Strata (the built CLI through
 * bin/strata, or `node dist/bin/main.js` with STRATA_VIA=node; see bench/lib.ts) against `docker run --rm` on a private dockerd, interleaved in the
 * same run so machine load hits both alike. Both with their default network and with
 * `--network none` (the private dockerd runs with --bridge=none).
 *
 *   npm run build && npx tsx bench/run.ts [runs]
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startDockerd } from "../test/helpers/dockerd.js";
import { busyboxRootfs } from "../test/helpers/fixtures.js";
import { STRATA } from "./lib.js";

const RUNS = Number(process.argv[2] ?? 15);

function timeIt(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const root = mkdtempSync(path.join(os.tmpdir(), "strata-bench-run-"));
const rootfs = busyboxRootfs();
execFileSync(STRATA[0]!, [...STRATA.slice(1), "--root", root, "import", rootfs, "bb:1"]);
const d = await startDockerd();
try {
  await d.docker(["import", rootfs, "bb:1"]);
  const docker = (extra: string[]) => () =>
    timeIt("docker", ["-H", d.host, "run", "--rm", ...extra, "bb:1", "true"]);
  const strata = (extra: string[]) => () =>
    timeIt(STRATA[0]!, [...STRATA.slice(1), "--root", root, "run", "--rm", ...extra, "bb:1", "true"]);
  const cases: [string, () => number][] = [
    ["strata run --rm (default: bridge via slirp4netns)", strata([])],
    ["docker run --rm (default network)", docker([])],
    ["strata run --rm --network none", strata(["--network", "none"])],
    ["docker run --rm --network none", docker(["--network", "none"])],
  ];
  for (const [, f] of cases) f(); // warm up: layers unpacked, page cache
  const times = new Map<string, number[]>(cases.map(([n]) => [n, []]));
  for (let i = 0; i < RUNS; i++) for (const [n, f] of cases) times.get(n)!.push(f());
  const med = new Map([...times].map(([n, xs]) => [n, median(xs)]));
  console.log(
    `run --rm IMAGE true, ${RUNS} runs each, interleaved; load average ${os.loadavg()[0]!.toFixed(2)}`,
  );
  for (const [n, m] of med) console.log(`  ${n.padEnd(52)} median ${m.toFixed(0)} ms`);
  const ratio = (a: string, b: string) => (med.get(a)! / med.get(b)!).toFixed(2);
  console.log(
    `  ratio default: ${ratio(cases[0]![0], cases[1]![0])}   ratio --network none: ${ratio(cases[2]![0], cases[3]![0])}   (target <= 0.5)`,
  );
} finally {
  await d.stop();
  rmSync(root, { recursive: true, force: true });
}
