/**
 * bench/build.ts — the shared workload's build scenarios (../shared/bench/README.md) for
 * Strata, dockerd's classic builder and dockerd's BuildKit, in one run on this machine.
 *
 *   npx tsx bench/build.ts              (root; dockerd from Debian's docker.io)
 *   RUNS=5 npx tsx bench/build.ts
 *
 * Every tool builds with --network none (dockerd runs here with --bridge=none).
 * S1 cold build (page cache dropped, no build cache, base image present), S2 no-change
 * rebuild, S3 one source file changed, S4 one dependency file changed. Tools alternate
 * within each round so drift hits them alike. Wall-clock seconds of the whole client
 * command; median and min–max of RUNS. Peak RSS of Strata's build process is reported.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startDockerd } from "../test/helpers/dockerd.js";
import { BENCH_OUT, cell, ensureBuilt, ensureWorkload, median, STRATA, WORK } from "./lib.js";

const RUNS = Number(process.env.RUNS ?? 3);
const OUT = BENCH_OUT;
const APP = path.join(WORK, "app");

interface Timed {
  secs: number;
  rssKb?: number;
}

function run(cmd: string[], env: NodeJS.ProcessEnv = {}): Timed {
  const t0 = process.hrtime.bigint();
  const r = spawnSync("/usr/bin/time", ["-f", "%M", ...cmd], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const err = r.stderr.toString();
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}):\n${err.slice(-2000)}`);
  const rss = Number(err.trim().split("\n").at(-1));
  return { secs, rssKb: Number.isFinite(rss) ? rss : undefined };
}

function dropCaches() {
  spawnSync("sync");
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3");
  } catch {
    console.error("warning: cannot drop the page cache (not root?): S1 is warm");
  }
}

const fmt = (xs: number[]) => cell(xs, 2);

async function main() {
  mkdirSync(OUT, { recursive: true });
  ensureWorkload();
  ensureBuilt();
  const root = path.join(OUT, "build-store");
  const strataBin = [...STRATA, "--root", root];
  const base = path.join(WORK, "base-rootfs.tar");

  const d = await startDockerd();
  const denv = { DOCKER_HOST: d.host };
  const docker = "/usr/bin/docker";
  type Tool = { name: string; reset: () => void; build: () => Timed; rss: number[] };
  const tools: Tool[] = [
    {
      name: "strata",
      rss: [],
      reset: () => {
        rmSync(root, { recursive: true, force: true });
        run([...strataBin, "import", base, "bench-base:1"]);
      },
      build: () => run([...strataBin, "build", "-q", "--network", "none", "-t", "app:bench", APP]),
    },
    {
      name: "docker classic",
      rss: [],
      reset: () => {
        spawnSync(docker, ["rmi", "-f", "app:classic"], { env: { ...process.env, ...denv } });
        run([docker, "builder", "prune", "-a", "-f"], denv);
        run([docker, "image", "prune", "-f"], denv);
      },
      build: () =>
        run([docker, "build", "-q", "--network", "none", "-t", "app:classic", APP], {
          ...denv,
          DOCKER_BUILDKIT: "0",
        }),
    },
    {
      name: "docker buildkit",
      rss: [],
      reset: () => {
        spawnSync(docker, ["rmi", "-f", "app:buildkit"], { env: { ...process.env, ...denv } });
        run([docker, "builder", "prune", "-a", "-f"], denv);
      },
      build: () =>
        run([docker, "build", "-q", "--network", "none", "-t", "app:buildkit", APP], {
          ...denv,
          DOCKER_BUILDKIT: "1",
        }),
    },
  ];
  try {
    run([docker, "import", base, "bench-base:1"], denv);
    const res: Record<string, Record<string, number[]>> = {};
    for (const t of tools) res[t.name] = { S1: [], S2: [], S3: [], S4: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const t of tools) {
        t.reset();
        dropCaches();
        const s1 = t.build();
        res[t.name]!.S1!.push(s1.secs);
        if (s1.rssKb) t.rss.push(s1.rssKb);
        const s2 = t.build();
        res[t.name]!.S2!.push(s2.secs);
        execFileSync(path.join(WORK, "touch-src.sh"));
        res[t.name]!.S3!.push(t.build().secs);
        execFileSync(path.join(WORK, "touch-deps.sh"));
        res[t.name]!.S4!.push(t.build().secs);
      }
    }
    // The image must print 10000 (the workload's correctness check).
    const check = spawnSync(docker, ["run", "--rm", "--network", "none", "app:buildkit"], {
      env: { ...process.env, ...denv },
    });
    const strataSave = path.join(OUT, "strata-app.tar");
    run([...strataBin, "save", "-o", strataSave, "app:bench"]);
    run([docker, "load", "-i", strataSave], denv);
    const ours = spawnSync(docker, ["run", "--rm", "--network", "none", "app:bench"], {
      env: { ...process.env, ...denv },
    });
    console.log(
      `\ncorrectness: buildkit image prints ${check.stdout.toString().trim()}, strata image prints ${ours.stdout.toString().trim()}`,
    );
    console.log(`\nWall seconds, median (min–max) of ${RUNS}; ratio = strata / buildkit\n`);
    console.log("| scenario | strata | docker classic | docker buildkit | ratio |");
    console.log("|---|---|---|---|---|");
    for (const s of ["S1", "S2", "S3", "S4"]) {
      const st = res.strata![s]!;
      const bk = res["docker buildkit"]![s]!;
      console.log(
        `| ${s} | ${fmt(st)} | ${fmt(res["docker classic"]![s]!)} | ${fmt(bk)} | ${(median(st) / median(bk)).toFixed(2)} |`,
      );
    }
    console.log(`\nstrata peak RSS in S1: ${(Math.max(...tools[0]!.rss) / 1024).toFixed(0)} MB`);
  } finally {
    await d.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
