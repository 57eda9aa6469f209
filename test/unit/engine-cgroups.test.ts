import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cgroupSupport } from "../../src/engine/index.js";

/** cgroupSupport on made-up /sys/fs/cgroup trees: what decides -m / --cpus or Docker's warning. */
describe("cgroupSupport", () => {
  const dirs: string[] = [];
  const tree = (files: Record<string, string>) => {
    const d = mkdtempSync(path.join(os.tmpdir(), "strata-cgroup-"));
    dirs.push(d);
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
      writeFileSync(path.join(d, f), text);
    }
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("v1 and hybrid: the memory hierarchy and the cpu one's CFS quota", () => {
    expect(cgroupSupport(tree({ "memory/memory.limit_in_bytes": "", "cpu/cpu.cfs_quota_us": "" }))).toEqual({
      memory: true,
      cpu: true,
    });
    expect(cgroupSupport(tree({ "cpu,cpuacct/cpu.cfs_quota_us": "" }))).toEqual({ memory: false, cpu: true });
    // A cpu hierarchy without CFS (CONFIG_CFS_BANDWIDTH off) cannot take --cpus.
    expect(cgroupSupport(tree({ "memory/memory.limit_in_bytes": "", "cpu/cpu.shares": "" }))).toEqual({
      memory: true,
      cpu: false,
    });
  });

  it("v2: the controllers the root offers", () => {
    expect(cgroupSupport(tree({ "cgroup.controllers": "cpuset cpu io memory pids\n" }))).toEqual({
      memory: true,
      cpu: true,
    });
    expect(cgroupSupport(tree({ "cgroup.controllers": "cpuset io pids\n" }))).toEqual({
      memory: false,
      cpu: false,
    });
  });

  it("no cgroup file system at all", () => {
    expect(cgroupSupport(tree({}))).toEqual({ memory: false, cpu: false });
  });
});
