import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { type RunResult, strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";

/** A store with the busybox base image imported as `bb:1` (CMD sh). */
export async function storeWithBase(root: string): Promise<string> {
  const r = await strata(root, ["import", "-c", 'CMD ["sh"]', busyboxRootfs(), "bb:1"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

/** Build an image from a Dockerfile text (and optional files) with `strata build`. */
export async function buildImage(
  root: string,
  tag: string,
  dockerfile: string,
  files: Record<string, string> = {},
) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "strata-ctx-"));
  writeFileSync(path.join(dir, "Dockerfile"), dockerfile);
  for (const [name, text] of Object.entries(files)) {
    execFileSync("mkdir", ["-p", path.dirname(path.join(dir, name))]);
    writeFileSync(path.join(dir, name), text);
  }
  const r = await strata(root, ["build", "-q", "-t", tag, dir]);
  if (r.code !== 0) throw new Error(`build ${tag} failed: ${r.stderr}`);
  execFileSync("rm", ["-rf", dir]);
}

export function ok(r: RunResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** Mounts under a store root still in the mount table (there must be none after the tests). */
export function mountsUnder(root: string): string[] {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[1]?.startsWith(root));
}

/** Network namespaces of the given containers still present. */
export function netnsOf(ids: string[]): string[] {
  const list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  return ids.map((id) => `strata-${id.slice(0, 12)}`).filter((n) => list.includes(n));
}

export async function waitFor<T>(fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}
