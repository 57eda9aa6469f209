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
import { mkdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Store } from "../src/store/index.js";
import { startDockerd } from "../test/helpers/dockerd.js";
import {
  BENCH_OUT,
  cell,
  ensureBuilt,
  ensureWorkload,
  median,
  STRATA,
  storeWorkloadImage,
  timeCommand,
  WORK,
} from "./lib.js";

const RUNS = Number(process.env.RUNS ?? 5);
const OUT = BENCH_OUT;
const time = timeCommand;
const fmt = (xs: number[]) => `${cell(xs)} s`;

async function main() {
  mkdirSync(OUT, { recursive: true });
  ensureWorkload();
  ensureBuilt();

  const root = path.join(OUT, "store");
  rmSync(root, { recursive: true, force: true });
  const store = await Store.open(root);
  const { bytes: imageBytes } = await storeWorkloadImage(store, "docker.io/library/bench-app:1");

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
