/**
 * bench/context-walk.ts — the build-context walker over 100,000 files.
 *
 *   npx tsx bench/context-walk.ts          (RUNS=5 by default; BENCH_DIR to place the tree)
 *
 * Generates, once, a tree shaped like a project with dependencies under
 * /tmp/strata-bench-context-walk: 100 packages × 10 directories × 100 files (100,000 empty files in
 * 1,101 directories), plus 1,000 `*.log` files and a `.git/` of 1,000 files that the ignore list
 * removes. Then walks it RUNS times per scenario, page cache warm, and prints the median
 * (and min–max) wall-clock time of consuming the whole async generator, and the process CPU time:
 *   - no .dockerignore: every entry;
 *   - the ignore list `*.log`, `**` + `/*.log`, `.git`, `!deps/p000/d0`: what the shared workload's
 *     .dockerignore does, plus an exception, so matching runs on every entry and `.git` is pruned.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { walkContext } from "../src/build/index.js";
import { PatternMatcher, readDockerignore } from "../src/dockerfile/index.js";
import { median } from "./lib.js";

const RUNS = Number(process.env.RUNS ?? 5);
const ROOT = process.env.BENCH_DIR ?? path.join(os.tmpdir(), "strata-bench-context-walk");
const VERSION = "v1 100x10x100 + 1000 logs + 1000 .git";

function generate(): void {
  const marker = path.join(ROOT, ".generated");
  if (existsSync(marker) && readFileSync(marker, "utf8") === VERSION) return;
  rmSync(ROOT, { recursive: true, force: true });
  const t0 = performance.now();
  for (let p = 0; p < 100; p++) {
    for (let d = 0; d < 10; d++) {
      const dir = path.join(ROOT, "deps", `p${String(p).padStart(3, "0")}`, `d${d}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(path.join(dir, `f${String(f).padStart(2, "0")}.js`), "");
    }
  }
  for (let i = 0; i < 1000; i++) writeFileSync(path.join(ROOT, `build-${i}.log`), "");
  for (let o = 0; o < 10; o++) {
    const dir = path.join(ROOT, ".git", "objects", String(o).padStart(2, "0"));
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(path.join(dir, `obj${f}`), "");
  }
  writeFileSync(marker, VERSION);
  console.log(`generated ${ROOT} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

interface Run {
  ms: number;
  /** CPU time of the whole process (main thread and libuv's file-system threads). */
  cpuMs: number;
  entries: number;
  files: number;
}

async function walkOnce(matcher: PatternMatcher | undefined): Promise<Run> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let entries = 0;
  let files = 0;
  for await (const e of walkContext(ROOT, matcher)) {
    entries++;
    if (e.type === "file") files++;
  }
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, entries, files };
}

async function scenario(name: string, matcher: PatternMatcher | undefined): Promise<number> {
  await walkOnce(matcher); // warm the page cache and the JIT
  const times: number[] = [];
  const cpu: number[] = [];
  let last = { entries: 0, files: 0 };
  for (let r = 0; r < RUNS; r++) {
    const res = await walkOnce(matcher);
    times.push(res.ms);
    cpu.push(res.cpuMs);
    last = res;
  }
  const m = median(times);
  console.log(
    `${name}: median ${m.toFixed(0)} ms (${Math.min(...times).toFixed(0)}–${Math.max(...times).toFixed(0)}) ` +
      `over ${RUNS} runs, CPU ${median(cpu).toFixed(0)} ms; ${last.entries} entries, ${last.files} files`,
  );
  return m;
}

async function main(): Promise<void> {
  mkdirSync(ROOT, { recursive: true });
  generate();
  // Wall-clock figures only mean something on an otherwise idle machine: print the load too.
  const load = os.loadavg().map((l) => l.toFixed(2));
  console.log(`node ${process.version}, ${os.cpus().length} CPUs, load ${load.join(" ")}, tree at ${ROOT}`);
  await scenario("no .dockerignore", undefined);
  const ignore = readDockerignore("*.log\n**/*.log\n.git\n!deps/p000/d0\n");
  await scenario(".dockerignore (*.log, **/*.log, .git, !deps/p000/d0)", new PatternMatcher(ignore));
}

await main();
