/**
 * bench/registry-client.ts — push and pull of the shared benchmark image to Debian's CNCF
 * distribution registry on loopback, Strata against `docker push/pull` (dockerd) and
 * `skopeo copy` in the same run:
 *
 *   npx tsx bench/registry-client.ts          (root; dockerd, docker-registry, skopeo; RUNS=3)
 *
 * The image: the workload's base-rootfs.tar as layer 1, a tar of app/deps + app/src (under
 * /app) as layer 2, built through the store API; dockerd loads the same image from
 * Strata's archive and skopeo reads it from Strata's store (an OCI layout), so the three
 * tools move identical layers.
 *
 *   cold push   to a registry that has nothing (a fresh registry each run); Strata's store
 *               knows no compressed form of the layers, dockerd has never pushed to it
 *   exist push  the same push again: every blob is there
 *   cold pull   into empty local storage (Strata: a fresh store; dockerd: every image removed;
 *               skopeo: a fresh OCI layout directory)
 *
 * Times are wall-clock seconds of the whole client command (process start included), median
 * of RUNS with min–max, tools alternated within a run.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { Store } from "../src/store/index.js";
import { startDockerd } from "../test/helpers/dockerd.js";
import { type Distribution, startDistribution } from "../test/helpers/registry-client.js";
import {
  BENCH_OUT,
  cell,
  ensureBuilt,
  ensureWorkload,
  median,
  STRATA,
  storeWorkloadImage,
  timeCommand,
} from "./lib.js";

const RUNS = Number(process.env.RUNS ?? 3);
const OUT = path.join(BENCH_OUT, "registry-client");
const time = timeCommand;

async function main() {
  mkdirSync(OUT, { recursive: true });
  ensureWorkload();
  ensureBuilt();

  // The image, through the store API.
  const root = path.join(OUT, "store");
  rmSync(root, { recursive: true, force: true });
  const store = await Store.open(root);
  const LOCAL = "docker.io/library/bench-app:1";
  const { bytes } = await storeWorkloadImage(store, LOCAL);
  // Strata's metadata before any push: restored before each cold push so no compressed form is known.
  const pristine = path.join(OUT, "images.json.pristine");
  copyFileSync(path.join(root, "meta/images.json"), pristine);
  const mb = bytes / 1e6;

  const d = await startDockerd();
  const dockerEnv = { DOCKER_HOST: d.host };
  const docker = (a: string[]) => ["/usr/bin/docker", ...a];
  const strata = (a: string[], r = root) => [...STRATA, "--root", r, ...a];
  const skopeo = (a: string[]) => ["skopeo", ...a];
  const registries: Distribution[] = [];
  const freshRegistry = async () => {
    const r = await startDistribution();
    registries.push(r);
    return r;
  };
  const res: Record<string, number[]> = {};
  const add = (k: string, v: number) => {
    res[k] ??= [];
    res[k]!.push(v);
  };
  try {
    const seed = path.join(OUT, "seed.tar");
    time(strata(["save", "-o", seed, "bench-app:1"]));
    time(docker(["load", "-i", seed]), dockerEnv);
    rmSync(seed, { force: true });

    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`run ${i + 1}/${RUNS}\n`);
      // cold push, then exist push, per tool, each to its own fresh registry
      {
        const reg = await freshRegistry();
        copyFileSync(pristine, path.join(root, "meta/images.json"));
        const ref = `${reg.host}/bench/app:1`;
        time(strata(["tag", "bench-app:1", ref]));
        add("strata cold push", time(strata(["push", ref])));
        add("strata exist push", time(strata(["push", ref])));
      }
      {
        const reg = await freshRegistry();
        const ref = `${reg.host}/bench/app:1`;
        time(docker(["tag", "bench-app:1", ref]), dockerEnv);
        add("docker cold push", time(docker(["push", ref]), dockerEnv));
        add("docker exist push", time(docker(["push", ref]), dockerEnv));
        time(docker(["rmi", ref]), dockerEnv);
      }
      {
        const reg = await freshRegistry();
        const ref = `docker://${reg.host}/bench/app:1`;
        add(
          "skopeo cold push",
          time(skopeo(["copy", "--dest-tls-verify=false", `oci:${root}:${LOCAL}`, ref])),
        );
        add(
          "skopeo exist push",
          time(skopeo(["copy", "--dest-tls-verify=false", `oci:${root}:${LOCAL}`, ref])),
        );
      }
      // cold pull of what Strata pushed, from one registry
      {
        const reg = registries[registries.length - 3]!;
        const ref = `${reg.host}/bench/app:1`;
        const fresh = path.join(OUT, `pull-${i}`);
        rmSync(fresh, { recursive: true, force: true });
        add("strata cold pull", time(strata(["pull", ref], fresh)));
        rmSync(fresh, { recursive: true, force: true });
        const ids = spawnSync("/usr/bin/docker", ["images", "-aq"], { env: { ...process.env, ...dockerEnv } })
          .stdout.toString()
          .trim();
        if (ids) time(docker(["rmi", "-f", ...new Set(ids.split("\n"))]), dockerEnv);
        add("docker cold pull", time(docker(["pull", ref]), dockerEnv));
        const layout = path.join(OUT, `skopeo-${i}`);
        rmSync(layout, { recursive: true, force: true });
        add(
          "skopeo cold pull",
          time(skopeo(["copy", "--src-tls-verify=false", `docker://${ref}`, `oci:${layout}:app`])),
        );
        rmSync(layout, { recursive: true, force: true });
        time(docker(["tag", ref, "bench-app:1"]), dockerEnv);
      }
      for (const r of registries.splice(0)) await r.stop();
    }
  } finally {
    for (const r of registries) await r.stop();
    await d.stop();
  }

  const targets: Record<string, number> = { "cold push": 0.6, "cold pull": 0.6, "exist push": 0.3 };
  const rows = ["cold push", "cold pull", "exist push"].map((op) => {
    const s = median(res[`strata ${op}`]!);
    const dk = median(res[`docker ${op}`]!);
    const sk = median(res[`skopeo ${op}`]!);
    const ratio = s / Math.min(dk, sk);
    return [
      op,
      cell(res[`strata ${op}`]!),
      cell(res[`docker ${op}`]!),
      cell(res[`skopeo ${op}`]!),
      (s / dk).toFixed(2),
      (s / sk).toFixed(2),
      ratio.toFixed(2),
      `≤ ${targets[op]}`,
      ratio <= targets[op]! ? "met" : "not met",
    ];
  });
  const header = [
    "operation",
    "strata s",
    "docker s",
    "skopeo s",
    "÷ docker",
    "÷ skopeo",
    "÷ faster",
    "target",
    "",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(
    `\nimage: 2 layers, ${mb.toFixed(0)} MB uncompressed; ${RUNS} runs; median (min–max) seconds\n`,
  );
  console.log(line(header));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
