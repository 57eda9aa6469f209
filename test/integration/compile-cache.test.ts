/**
 * The entry point's code cache (src/main.ts): written once per command at a successful
 * exit, used as it is afterwards, and never trusted when damaged (V8 itself does not check:
 * a flipped byte crashes node). Runs a copy of the built dist/bin so the repository's own
 * cache is left alone.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO } from "../helpers/cli.js";

let dir: string;
let cacheDir: string;

function strata(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [path.join(dir, "main.js"), ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
}

/** The cache file of one command (the single one whose name says so). */
function cacheOf(key: string): string | undefined {
  const f = readdirSync(cacheDir, { withFileTypes: true }).find(
    (e) => e.isFile() && e.name.includes(`.${key}.`) && e.name.endsWith(".bin"),
  );
  return f && path.join(cacheDir, f.name);
}

function wellFormed(file: string): boolean {
  const b = readFileSync(file);
  const data = b.subarray(24);
  const sha1 = createHash("sha1").update(data).digest();
  return b.readUInt32LE(0) === data.length && sha1.equals(b.subarray(4, 24)) && data.length > 10_000;
}

describe("the CLI's code cache", () => {
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "strata-cc-"));
    cpSync(path.join(REPO, "dist/bin"), dir, { recursive: true });
    rmSync(path.join(dir, ".cache"), { recursive: true, force: true });
    cacheDir = path.join(dir, ".cache");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is written at the first successful run of a command, then used as it is", () => {
    const version = execFileSync(process.execPath, [path.join(REPO, "dist/bin/main.js"), "--version"], {
      encoding: "utf8",
    });
    const first = strata(["--version"]);
    expect(first.status).toBe(0);
    expect(first.stdout).toBe(version);
    const file = cacheOf("none")!;
    expect(file).toBeDefined();
    expect(wellFormed(file)).toBe(true);
    const before = { bytes: readFileSync(file), mtime: statSync(file).mtimeMs };
    const again = strata(["--version"]);
    expect(again.status).toBe(0);
    expect(again.stdout).toBe(version);
    expect(readFileSync(file).equals(before.bytes)).toBe(true);
    expect(statSync(file).mtimeMs).toBe(before.mtime);
    // A command of its own gets a cache of its own.
    expect(strata(["images", "--help"]).status).toBe(0);
    expect(cacheOf("images")).toBeDefined();
  });

  it("a damaged cache is ignored (no crash) and written again", () => {
    const file = cacheOf("none")!;
    const b = readFileSync(file);
    for (let i = 1000; i < b.length; i += 997) b[i]! ^= 0x5a;
    writeFileSync(file, b);
    const r = strata(["--version"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(wellFormed(file)).toBe(true);
    // Truncated, and garbage shorter than the header.
    for (const bad of [readFileSync(file).subarray(0, 5000), Buffer.from("xyz")]) {
      writeFileSync(file, bad);
      expect(strata(["--version"]).status).toBe(0);
      expect(wellFormed(file)).toBe(true);
    }
  });

  it("a failed command writes none; STRATA_NO_COMPILE_CACHE=1 neither reads nor writes", () => {
    const bad = strata(["pull", "--no-such-flag"]);
    expect(bad.status).not.toBe(0);
    expect(cacheOf("pull")).toBeUndefined();
    const off = strata(["tag", "--help"], { STRATA_NO_COMPILE_CACHE: "1" });
    expect(off.status).toBe(0);
    expect(off.stdout).toContain("Usage:");
    expect(cacheOf("tag")).toBeUndefined();
  });

  it("a cache directory others may write to is neither read nor written", () => {
    rmSync(cacheOf("none")!);
    chmodSync(cacheDir, 0o777);
    expect(strata(["--version"]).status).toBe(0);
    expect(cacheOf("none")).toBeUndefined();
    chmodSync(cacheDir, 0o755);
    expect(strata(["--version"]).status).toBe(0);
    expect(wellFormed(cacheOf("none")!)).toBe(true);
    // A cache file others may write to is not used either: it is made again.
    const file = cacheOf("none")!;
    const before = readFileSync(file);
    chmodSync(file, 0o666);
    writeFileSync(file, Buffer.concat([before.subarray(0, 24), Buffer.alloc(before.length - 24)]));
    expect(strata(["--version"]).status).toBe(0);
    expect(wellFormed(file)).toBe(true);
  });

  it("without a writable cache directory the command still works", () => {
    rmSync(cacheDir, { recursive: true, force: true });
    writeFileSync(cacheDir, "not a directory");
    const r = strata(["--version"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(statSync(cacheDir).isFile()).toBe(true);
  });
});
