/**
 * The entry point starts find on a build's context before the CLI loads. find writes into
 * a temporary file, so nothing stops it when the CLI ends early: the CLI must, or it waits
 * for its child (a large context, a Dockerfile that fails at once).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUICK_LISTING_ARGS } from "../../../src/util/index.js";
import { strata, tempDir } from "../../helpers/cli.js";

/** Processes whose working directory is `dir`. */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) === dir) out.push(Number(pid));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

describe("the early context listing", () => {
  const t = tempDir("strata-listing-");
  const ctx = path.join(t.dir, "ctx");
  beforeAll(() => {
    // 200,000 entries: find needs several times longer than the CLI takes to fail.
    for (let d = 0; d < 100; d++) mkdirSync(path.join(ctx, `d${d}`), { recursive: true });
    execFileSync("sh", ["-c", "for d in d*; do (cd $d && seq 1 2000 | xargs touch); done"], { cwd: ctx });
    writeFileSync(path.join(ctx, "Dockerfile"), "FROM\n");
  }, 120_000);
  afterAll(() => t.cleanup());

  it("is stopped when the build fails before it is used", async () => {
    let t0 = performance.now();
    execFileSync("find", [...QUICK_LISTING_ARGS], { cwd: ctx, stdio: "ignore" });
    const walk = performance.now() - t0;
    t0 = performance.now();
    const r = await strata(path.join(t.dir, "root"), ["build", ctx]);
    const failed = performance.now() - t0;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FROM requires/i);
    // The CLI did not wait for the walk, and its find does not walk on.
    expect(failed).toBeLessThan(walk);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(processesIn(ctx)).toEqual([]);
  }, 60_000);

  it("a build that uses it still gets every entry", async () => {
    writeFileSync(path.join(ctx, "Dockerfile"), "FROM scratch\nCOPY d7/ /d7/\n");
    const out = path.join(t.dir, "out");
    const r = await strata(path.join(t.dir, "root"), ["build", "-q", "-o", `type=local,dest=${out}`, ctx]);
    expect(r.stderr).toBe("");
    expect(readdirSync(path.join(out, "d7"))).toHaveLength(2000);
    rmSync(out, { recursive: true, force: true });
  }, 60_000);
});
