import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContextEntry, ContextListing, listContext, walkContext } from "../../../src/build/index.js";
import { PatternMatcher } from "../../../src/dockerfile/index.js";

const pick = (e: ContextEntry) => ({
  relPath: e.relPath,
  type: e.type,
  mode: e.mode & 0o7777,
  uid: e.uid,
  gid: e.gid,
  size: e.size,
  ino: e.ino,
  dev: e.dev,
  linkTarget: e.linkTarget,
  mtimeS: Math.floor(e.mtimeMs / 1000),
});

describe("listContext (find-based) agrees with walkContext", () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), "strata-ctx-"));
    for (const d of ["src/a/b", "node_modules/x", ".git/objects", "docs", "é dir"])
      mkdirSync(path.join(root, d), { recursive: true });
    for (const f of [
      "src/a/b/c.ts",
      "src/a/d.ts",
      "node_modules/x/i.js",
      ".git/HEAD",
      "docs/readme.md",
      "app.log",
      "é dir/ü.txt",
      "Dockerfile",
    ])
      writeFileSync(path.join(root, f), `content of ${f}`);
    symlinkSync("../../etc/passwd", path.join(root, "docs/link"));
    symlinkSync("src", path.join(root, "srclink"));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  for (const patterns of [[], ["*.log", ".git", "node_modules"], ["**/*.ts", "docs/readme.md"], ["src/a"]]) {
    it(`patterns ${JSON.stringify(patterns)}`, async () => {
      const m = patterns.length ? new PatternMatcher(patterns) : undefined;
      const walked: ContextEntry[] = [];
      for await (const e of walkContext(root, m)) walked.push(e);
      const listed = await listContext(root, m);
      expect(listed.map(pick)).toEqual(walked.map(pick));
      expect(listed.length).toBeGreaterThan(3);
    });
  }

  it("refuses exception patterns (the walker applies those)", async () => {
    await expect(listContext(root, new PatternMatcher(["src", "!src/a/d.ts"]))).rejects.toThrow(/exception/);
  });

  it("a source's signature changes with its own subtree only", async () => {
    const sig = async (sources: string[]) => (await ContextListing.list(root, undefined)).signature(sources);
    const before = {
      src: await sig(["src/"]),
      docs: await sig(["./docs"]),
      both: await sig(["src", "docs"]),
    };
    expect(before.src).toMatch(/^tops:/);
    expect(new Set(Object.values(before)).size).toBe(3);
    writeFileSync(path.join(root, "docs/readme.md"), "changed");
    expect(await sig(["src/"])).toBe(before.src);
    expect(await sig(["./docs"])).not.toBe(before.docs);
    expect(await sig(["src", "docs"])).not.toBe(before.both);
  });

  it("patterns, deeper paths, the root, symlinks and missing sources take the whole context", async () => {
    const l = await ContextListing.list(root, undefined);
    expect(l.topsFor(["src/", "Dockerfile"])).toEqual(new Set(["src", "Dockerfile"]));
    for (const s of [["*.ts"], ["src/a"], ["."], ["srclink"], ["missing"], ["src", "s?c"]]) {
      expect(l.topsFor(s)).toBeUndefined();
      expect(l.signature(s)).toMatch(/^all:/);
    }
  });

  it("parses only the subtrees asked for, filtered like the whole listing", async () => {
    const m = new PatternMatcher(["**/*.ts"]);
    const l = await ContextListing.list(root, m);
    const part = [...l.entries(new Set(["src"])).keys()];
    expect(part).toEqual(["src", "src/a", "src/a/b"]);
    expect([...l.entries().keys()].filter((p) => p === "src" || p.startsWith("src/"))).toEqual(part);
  });
});
