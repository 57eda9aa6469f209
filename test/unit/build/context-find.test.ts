import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
    const part = [...(await l.entries(new Set(["src"]))).keys()];
    expect(part).toEqual(["src", "src/a", "src/a/b"]);
    expect([...(await l.entries()).keys()].filter((p) => p === "src" || p.startsWith("src/"))).toEqual(part);
  });
});

describe("quickListing cuts find's output into subtrees", () => {
  it("groups and digests per top-level entry exactly as splitting every record would", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "strata-quick-"));
    try {
      // Enough long names that find's output is far larger than a pipe's buffer.
      for (const top of ["alpha", "beta", "gamma"]) {
        mkdirSync(path.join(root, top, "deep/er"), { recursive: true });
        for (let i = 0; i < 1500; i++)
          writeFileSync(
            path.join(root, top, i % 2 ? "deep/er" : "", `${"n".repeat(60)}-${i}.txt`),
            "x".repeat(i % 7),
          );
      }
      writeFileSync(path.join(root, "Dockerfile"), "FROM scratch\n");
      symlinkSync("alpha", path.join(root, "link"));
      // A name that starts with the marker byte, and one inside it that does too.
      mkdirSync(path.join(root, "\x01odd/\x01inner"), { recursive: true });
      writeFileSync(path.join(root, "\x01odd/\x01inner/f"), "f");
      const { quickListing, QUICK_LISTING_ARGS } = await import("../../../src/util/index.js");
      const got = await quickListing(root);
      const whole = execFileSync("find", [...QUICK_LISTING_ARGS], { cwd: root, maxBuffer: 1 << 26 });
      expect(got.raw.equals(whole)).toBe(true);
      expect(whole.length).toBeGreaterThan(400_000);
      // The reference: every record parsed, grouped by its path's first component.
      const want = new Map<string, { type: string; start: number; end: number }>();
      let pos = 0;
      while (pos < whole.length) {
        const a = whole.indexOf(0, pos);
        const b = whole.indexOf(0, a + 1);
        const top = whole[pos] === 1 && !whole.subarray(pos + 1, a).includes(0x2f);
        const p = whole.toString("utf8", top ? pos + 1 : pos, a);
        const name = p.split("/")[0]!;
        if (top) want.set(name, { type: String.fromCharCode(whole[a + 1]!), start: pos, end: b + 1 });
        else want.get(name)!.end = b + 1;
        pos = b + 1;
      }
      expect([...got.tops.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [name, g] of want)
        expect(got.tops.get(name)).toEqual({
          type: g.type,
          bytes: g.end - g.start,
          digest: createHash("sha256").update(whole.subarray(g.start, g.end)).digest("hex"),
        });
      expect(got.tops.get("link")!.type).toBe("l");
      expect(got.tops.get("\x01odd")!.type).toBe("d");
      expect(got.tops.size).toBe(6);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("a chmod alone (ctime) changes the source's signature; the full entries show the new mode", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "strata-quick-"));
    try {
      mkdirSync(path.join(root, "src"));
      writeFileSync(path.join(root, "src/a.sh"), "echo hi\n");
      const before = (await ContextListing.list(root, undefined)).signature(["src"]);
      await new Promise((r) => setTimeout(r, 20));
      chmodSync(path.join(root, "src/a.sh"), 0o755);
      const l = await ContextListing.list(root, undefined);
      expect(l.signature(["src"])).not.toBe(before);
      expect((await l.entries(new Set(["src"]))).get("src/a.sh")!.mode & 0o777).toBe(0o755);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("subtrees", () => {
  it("cuts 200,000 top-level records in linear time (a slash search per record would not end)", async () => {
    const { subtrees } = await import("../../../src/util/index.js");
    const parts: Buffer[] = [];
    for (let i = 0; i < 200_000; i++) parts.push(Buffer.from(`\x01f${i}\0f 644 0 0 1 1.0 1.0 ${i}\0`));
    parts.push(Buffer.from("\x01dir\0d 755 0 0 0 1.0 1.0 1\0dir/x\0f 644 0 0 1 1.0 1.0 2\0"));
    const t = performance.now();
    const tops = subtrees(Buffer.concat(parts));
    expect(performance.now() - t).toBeLessThan(5000);
    expect(tops.size).toBe(200_001);
    expect(tops.get("f123")!.type).toBe("f");
    expect(tops.get("dir")!.bytes).toBe(
      Buffer.byteLength("\x01dir\0d 755 0 0 0 1.0 1.0 1\0dir/x\0f 644 0 0 1 1.0 1.0 2\0"),
    );
  });

  it("a listing that cannot run rejects and leaves no descriptor open", async () => {
    const { quickListing } = await import("../../../src/util/index.js");
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    await expect(quickListing("/nonexistent/strata-context")).rejects.toThrow();
    await expect(quickListing("/nonexistent/strata-context")).rejects.toThrow();
    expect(fds()).toBe(before);
  });
});
