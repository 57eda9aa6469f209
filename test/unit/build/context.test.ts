import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ContextEntry, compareUtf8, walkContext } from "../../../src/build/index.js";
import {
  chooseDockerignore,
  type DockerignoreSource,
  PatternMatcher,
  readDockerignore,
} from "../../../src/dockerfile/index.js";
import { isStrataError } from "../../../src/util/index.js";
import { TESTDATA } from "../../helpers/testdata.js";

interface ContextCase {
  description?: string;
  contextFiles: string[];
  dockerignore?: string | null;
  ignoreFiles?: Record<string, string>;
  present?: string[];
  absent?: string[];
  remainingFiles?: string[];
  expectError?: boolean;
  builds?: { dockerfile: string; present: string[]; absent: string[] }[];
}
const contextCases = (
  JSON.parse(fs.readFileSync(path.join(TESTDATA, "dockerignore/context-cases.json"), "utf8")) as {
    cases: ContextCase[];
  }
).cases;

let root: string;
let outside: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "strata-context-"));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), "strata-outside-"));
  fs.writeFileSync(path.join(outside, "secret"), "s");
  fs.mkdirSync(path.join(outside, "dir"));
  fs.writeFileSync(path.join(outside, "dir", "secret2"), "s");
});

afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

/** Creates files (and their directories) under root; a name ending in / is a directory. */
function populate(files: string[], content = "x"): void {
  for (const f of files) {
    const p = path.join(root, f);
    if (f.endsWith("/")) fs.mkdirSync(p, { recursive: true });
    else {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
    }
  }
}

async function walk(matcher?: PatternMatcher, dir = root): Promise<ContextEntry[]> {
  const out: ContextEntry[] = [];
  for await (const e of walkContext(dir, matcher)) out.push(e);
  return out;
}

const paths = (entries: ContextEntry[]) => entries.map((e) => e.relPath);

function openFds(): number {
  return fs.readdirSync("/proc/self/fd").length;
}

describe("walkContext", () => {
  it("yields every entry depth first, names in byte order, with lstat data", async () => {
    populate(["b", "a.txt", "a/", "a/z", "a/b/c", "B", "ä", "😀", "\uE000", "a-b", "a b"]);
    const entries = await walk();
    // Go's WalkDir order: a directory's contents come right after it; names compare as UTF-8.
    expect(paths(entries)).toEqual([
      "B",
      "a",
      "a/b",
      "a/b/c",
      "a/z",
      "a b",
      "a-b",
      "a.txt",
      "b",
      "ä",
      "\uE000",
      "😀",
    ]);
    const file = entries.find((e) => e.relPath === "a/b/c")!;
    const st = fs.lstatSync(path.join(root, "a/b/c"));
    expect(file).toEqual({
      relPath: "a/b/c",
      type: "file",
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      size: 1,
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
      dev: st.dev,
      ino: st.ino,
      nlink: 1,
      rdev: 0,
    });
    expect(entries.find((e) => e.relPath === "a")!.type).toBe("dir");
  });

  it("compareUtf8 orders by code point", () => {
    const names = ["\uE000", "😀", "z", "a", "ä", "\uFFFF"];
    expect([...names].sort(compareUtf8)).toEqual(["a", "z", "ä", "\uE000", "\uFFFF", "😀"]);
    expect([...names].sort(compareUtf8)).toEqual(
      [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    );
  });

  it("excludes what the patterns exclude and prunes excluded directories without reading them", async () => {
    populate([
      "src/a.ts",
      "src/a.log",
      "x.log",
      ".git/HEAD",
      ".git/objects/aa/1",
      "node_modules/m/i.js",
      "keep",
    ]);
    const opened: string[] = [];
    const realOpenSync = fs.openSync;
    vi.spyOn(fs, "openSync").mockImplementation(((p: fs.PathLike, ...rest: unknown[]) => {
      opened.push(String(p));
      return (realOpenSync as (...a: unknown[]) => number)(p, ...rest);
    }) as typeof fs.openSync);
    const pm = new PatternMatcher(readDockerignore("**/*.log\n.git\nnode_modules\n"));
    expect(paths(await walk(pm))).toEqual(["keep", "src", "src/a.ts"]);
    expect(opened.some((p) => p.endsWith("/src"))).toBe(true);
    expect(opened.some((p) => p.endsWith("/.git") || p.endsWith("/node_modules"))).toBe(false);
  });

  it("exceptions re-include inside excluded directories, and the directories come first", async () => {
    populate([
      "node_modules/a/x.js",
      "node_modules/keep/k.js",
      "node_modules/keep/sub/s.js",
      "node_modules/z.js",
      "f",
    ]);
    const pm = new PatternMatcher(["node_modules", "!node_modules/keep"]);
    expect(paths(await walk(pm))).toEqual([
      "f",
      "node_modules",
      "node_modules/keep",
      "node_modules/keep/k.js",
      "node_modules/keep/sub",
      "node_modules/keep/sub/s.js",
    ]);
    const entries = await walk(pm);
    expect(entries.find((e) => e.relPath === "node_modules")!.type).toBe("dir");
  });

  it("wildcard exceptions disable pruning and find files deep inside excluded directories", async () => {
    populate(["a/b/c/one.keep", "a/b/c/two.txt", "a/d/three.txt", "top.keep", "other"]);
    const pm = new PatternMatcher(["a", "*.keep", "!**/*.keep"]);
    expect(paths(await walk(pm))).toEqual(["a", "a/b", "a/b/c", "a/b/c/one.keep", "other", "top.keep"]);
  });

  it("an excluded directory with nothing re-included is not yielded", async () => {
    populate(["a/b/x", "a/c/y", "z"]);
    const pm = new PatternMatcher(["a", "!a/b/nothere"]);
    expect(paths(await walk(pm))).toEqual(["z"]);
  });

  it("uses BuildKit's incremental matching (parent results)", async () => {
    // `!a` is not evaluated for `a` (nothing was excluded yet); for `a/c` it is tried against
    // `a/c` only, so `a/c` stays excluded as in fsutil.
    populate(["a/c", "a/d"]);
    expect(paths(await walk(new PatternMatcher(["a/c", "!a"])))).toEqual(["a", "a/d"]);
  });

  it("never follows symlinks: they are yielded with their target", async () => {
    populate(["sub/f"]);
    fs.symlinkSync(outside, path.join(root, "out"));
    fs.symlinkSync(path.join(outside, "secret"), path.join(root, "outfile"));
    fs.symlinkSync("sub", path.join(root, "in"));
    fs.symlinkSync("missing", path.join(root, "dangling"));
    const entries = await walk();
    expect(paths(entries)).toEqual(["dangling", "in", "out", "outfile", "sub", "sub/f"]);
    const byPath = new Map(entries.map((e) => [e.relPath, e]));
    expect(byPath.get("out")).toMatchObject({ type: "symlink", linkTarget: outside });
    expect(byPath.get("in")).toMatchObject({ type: "symlink", linkTarget: "sub" });
    expect(byPath.get("dangling")).toMatchObject({ type: "symlink", linkTarget: "missing" });
    expect(byPath.get("sub")!.linkTarget).toBeUndefined();
  });

  it("a directory replaced by a symlink during the walk is not entered", async () => {
    populate(["d/inner", "e"]);
    const it = walkContext(root, undefined);
    const first = await it.next();
    expect(first.value?.relPath).toBe("d");
    // d was listed and yielded; swap it for a symlink to the outside before it is opened.
    fs.renameSync(path.join(root, "d"), path.join(root, "d.old"));
    fs.symlinkSync(path.join(outside, "dir"), path.join(root, "d"));
    const e = await it.next().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isStrataError(e, "IO_ERROR")).toBe(true);
    expect((e as Error).message).toContain("no longer a directory");
  });

  it("a directory renamed during the walk is still read from the one that was listed", async () => {
    populate(["d/x/y", "z"]);
    const seen: string[] = [];
    for await (const e of walkContext(root, undefined)) {
      seen.push(e.relPath);
      if (e.relPath === "d/x") {
        // d is open; move it away and put an outside directory in its place.
        fs.renameSync(path.join(root, "d"), path.join(root, "moved"));
        fs.symlinkSync(outside, path.join(root, "d"));
      }
    }
    expect(seen).toEqual(["d", "d/x", "d/x/y", "z"]);
  });

  it("reports other file types and hard links", async () => {
    populate(["f"]);
    fs.linkSync(path.join(root, "f"), path.join(root, "g"));
    execFileSync("mkfifo", [path.join(root, "p")]);
    const entries = await walk();
    const byPath = new Map(entries.map((e) => [e.relPath, e]));
    expect(byPath.get("p")!.type).toBe("fifo");
    expect(byPath.get("f")!.nlink).toBe(2);
    expect(byPath.get("g")!.ino).toBe(byPath.get("f")!.ino);
    expect(byPath.get("g")!.dev).toBe(byPath.get("f")!.dev);
  });

  it("walks a symlinked root (the root itself is resolved)", async () => {
    populate(["a"]);
    const link = `${root}-link`;
    fs.symlinkSync(root, link);
    try {
      expect(paths(await walk(undefined, link))).toEqual(["a"]);
    } finally {
      fs.unlinkSync(link);
    }
  });

  it("fails cleanly for a missing root", async () => {
    const e = await walk(undefined, path.join(root, "nope")).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isStrataError(e, "IO_ERROR")).toBe(true);
  });

  it("honours an abort signal and closes its descriptors when stopped early", async () => {
    populate(Array.from({ length: 3000 }, (_, i) => `d${i % 3}/f${i}`));
    const before = openFds();
    for await (const e of walkContext(root, undefined)) {
      if (e.relPath.startsWith("d1/")) break;
    }
    expect(openFds()).toBe(before);

    const ac = new AbortController();
    let n = 0;
    const err = await (async () => {
      for await (const _ of walkContext(root, undefined, { signal: ac.signal })) {
        if (++n === 10) ac.abort();
      }
    })().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((err as Error).name).toBe("AbortError");
    expect(n).toBeLessThan(3003);
    expect(openFds()).toBe(before);

    const aborted = AbortSignal.abort();
    await expect(walkContext(root, undefined, { signal: aborted }).next()).rejects.toThrow();
  });

  it("lets the event loop run during a long walk", async () => {
    populate(Array.from({ length: 3000 }, (_, i) => `d${i % 3}/f${i}`));
    let turns = 0;
    let handle: NodeJS.Immediate | undefined;
    const tick = () => {
      turns++;
      handle = setImmediate(tick);
    };
    handle = setImmediate(tick);
    let n = 0;
    for await (const _ of walkContext(root, undefined)) n++;
    clearImmediate(handle);
    expect(n).toBe(3003);
    expect(turns).toBeGreaterThanOrEqual(3);
  });

  it("skips entries that vanish while the directory is read", async () => {
    populate(["a/1", "a/2", "b"]);
    const seen: string[] = [];
    for await (const e of walkContext(root, undefined)) {
      seen.push(e.relPath);
      if (e.relPath === "a") fs.rmSync(path.join(root, "b"));
    }
    // b was listed and lstat'ed with the root; it is yielded from that listing.
    expect(seen).toEqual(["a", "a/1", "a/2", "b"]);
    fs.mkdirSync(path.join(root, "c"));
    populate(["c/x"]);
    const seen2: string[] = [];
    for await (const e of walkContext(root, undefined)) {
      seen2.push(e.relPath);
      if (e.relPath === "a/2") fs.rmSync(path.join(root, "c"), { recursive: true });
    }
    expect(seen2).toEqual(["a", "a/1", "a/2", "c"]);
  });
});

describe("context-cases.json", () => {
  async function contextAfterIgnore(ignoreText: string | null | undefined): Promise<string[]> {
    const patterns = readDockerignore(ignoreText);
    const pm = patterns.length > 0 ? new PatternMatcher(patterns) : undefined;
    return paths(await walk(pm)).filter((p) => fs.lstatSync(path.join(root, p)).isFile());
  }

  it.each(contextCases.map((c, i) => [i, c.description ?? c.contextFiles.join(","), c] as const))(
    "#%i %s",
    async (_i, _d, c) => {
      populate(c.contextFiles);
      if (c.expectError) {
        expect(
          isStrataError(
            errorOf(() => new PatternMatcher(readDockerignore(c.dockerignore))),
            "INVALID_ARGUMENT",
          ),
        ).toBe(true);
        return;
      }
      if (c.builds !== undefined) {
        for (const [name, text] of Object.entries(c.ignoreFiles ?? {}))
          fs.writeFileSync(path.join(root, name), text);
        for (const b of c.builds) {
          const exists = (s: DockerignoreSource) => fs.existsSync(path.join(root, s.path));
          const chosen = chooseDockerignore(b.dockerfile, exists);
          expect(chosen?.path).toBe(`${b.dockerfile}.dockerignore`);
          const files = await contextAfterIgnore(fs.readFileSync(path.join(root, chosen!.path), "utf8"));
          for (const p of b.present) expect(files).toContain(p);
          for (const a of b.absent) expect(files).not.toContain(a);
        }
        return;
      }
      if (typeof c.dockerignore === "string" && c.contextFiles.includes(".dockerignore")) {
        fs.writeFileSync(path.join(root, ".dockerignore"), c.dockerignore);
      }
      const files = await contextAfterIgnore(c.dockerignore);
      for (const p of c.present ?? []) expect(files).toContain(p);
      for (const a of c.absent ?? []) expect(files).not.toContain(a);
      if (c.remainingFiles !== undefined) expect([...files].sort()).toEqual([...c.remainingFiles].sort());
    },
  );
});

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}
