import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedSteps, ranSteps, writeContext } from "../../helpers/build.js";
import { strata, tempDir } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { flatten, readDockerArchive } from "../../helpers/image-tree.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["runc"], root: true });
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

// COPY steps whose sources' listing is unchanged reuse the earlier build's cache key without
// resolving or hashing anything (meta/copymemo.json): these cases must still see every change.
const DOCKERFILE = `FROM base:1
COPY deps/ /deps/
COPY link/ /via-link/
COPY src/ /src/
`;
const ALL = ["COPY deps/ /deps/", "COPY link/ /via-link/", "COPY src/ /src/"];

describe("build cache: unchanged COPY sources skip the work, changed ones never do", () => {
  const t = tempDir("strata-memo-");
  const root = path.join(t.dir, "store");
  const ctx = path.join(t.dir, "ctx");

  const build = async () => {
    const r = await strata(root, [
      "build",
      "--progress",
      "plain",
      "--iidfile",
      path.join(t.dir, "iid"),
      "-t",
      "memo:1",
      ctx,
    ]);
    expect(r.code, r.stderr).toBe(0);
    return r.stderr;
  };
  const files = async () => {
    const archive = path.join(t.dir, "img.tar");
    expect((await strata(root, ["save", "-o", archive, "memo:1"])).code).toBe(0);
    const [img] = await readDockerArchive(archive);
    return flatten(img!.layers);
  };
  const imageId = async () => (await strata(root, ["images", "-q", "--no-trunc", "memo:1"])).stdout.trim();

  beforeAll(async () => {
    const r = await strata(root, ["import", busyboxRootfs(), "base:1"]);
    expect(r.code, r.stderr).toBe(0);
    writeContext(ctx, {
      Dockerfile: DOCKERFILE,
      "deps/lib.js": "module.exports = 1;\n",
      "src/main.py": "print('hello')\n",
      "src/skip.txt": "not wanted later\n",
      "other/x.txt": "unrelated\n",
      ...Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`many/f${i}.txt`, `file ${i}\n`])),
    });
    symlinkSync("src", path.join(ctx, "link"));
  });
  afterAll(() => t.cleanup());

  it("a rebuild is all CACHED and gives the same image ID", async () => {
    expect(ranSteps(await build())).toEqual(ALL);
    const id = await imageId();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const again = await build();
    expect(cachedSteps(again)).toEqual(ALL);
    expect(await imageId()).toBe(id);
  });

  it("a new file outside every source re-runs nothing", async () => {
    writeFileSync(path.join(ctx, "other/y.txt"), "also unrelated\n");
    expect(ranSteps(await build())).toEqual([]);
  });

  it("a same-size rewrite with the mtime put back is seen (through the symlink too)", async () => {
    const f = path.join(ctx, "src/main.py");
    const ref = path.join(t.dir, "mtime-ref");
    writeFileSync(ref, "");
    execFileSync("touch", ["-r", f, ref]); // the nanosecond mtime, kept aside
    const before = statSync(f, { bigint: true });
    writeFileSync(f, "print('HELLO')\n");
    execFileSync("touch", ["-r", ref, f]);
    const after = statSync(f, { bigint: true });
    expect(after.mtimeNs).toBe(before.mtimeNs);
    expect(after.size).toBe(before.size);
    expect(ranSteps(await build())).toEqual(["COPY link/ /via-link/", "COPY src/ /src/"]);
    const tree = await files();
    expect(tree.get("src/main.py")?.digest).toBe(sha("print('HELLO')\n"));
    expect(tree.get("via-link/main.py")?.digest).toBe(sha("print('HELLO')\n"));
  });

  it("a .dockerignore change re-runs the COPY it affects, and the file is gone", async () => {
    writeFileSync(path.join(ctx, ".dockerignore"), "src/skip.txt\n");
    const out = await build();
    expect(ranSteps(out)).toContain("COPY src/ /src/");
    const tree = await files();
    expect(tree.has("src/skip.txt")).toBe(false);
    expect(tree.has("src/main.py")).toBe(true);
    expect(ranSteps(await build())).toEqual([]);
  });

  it.runIf(need.ok)(
    "many changed files are hashed while the layer is packed; touched-only ones leave nothing staged",
    async () => {
      const df = path.join(t.dir, "many.Dockerfile");
      writeFileSync(df, "FROM base:1\nCOPY many/ /many/\nRUN cat /many/f7.txt /many/f79.txt > /both\n");
      const b = async () => {
        const r = await strata(root, ["build", "--progress", "plain", "-f", df, "-t", "many:1", ctx]);
        expect(r.code, r.stderr).toBe(0);
        return r.stderr;
      };
      const leftovers = () => [
        ...readdirSync(path.join(root, "ingest")),
        ...readdirSync(path.join(root, "snapshots")).filter((n) => /^(tmp|active)-/.test(n)),
      ];
      expect(ranSteps(await b())).toEqual([
        "COPY many/ /many/",
        "RUN cat /many/f7.txt /many/f79.txt > /both",
      ]);
      // Every file touched: all miss the stat cache, are packed and hashed again, and the
      // key is the same: the staged layer and its unpacked snapshot are thrown away.
      const later = new Date(Date.now() + 120_000);
      for (let i = 0; i < 80; i++) utimesSync(path.join(ctx, `many/f${i}.txt`), later, later);
      expect(ranSteps(await b())).toEqual([]);
      expect(leftovers()).toEqual([]);
      // A real change among them re-runs both steps with the new bytes.
      writeFileSync(path.join(ctx, "many/f79.txt"), "changed 79\n");
      for (let i = 0; i < 79; i++)
        utimesSync(path.join(ctx, `many/f${i}.txt`), later, new Date(Date.now() + 240_000));
      expect(ranSteps(await b())).toEqual([
        "COPY many/ /many/",
        "RUN cat /many/f7.txt /many/f79.txt > /both",
      ]);
      const archive = path.join(t.dir, "many.tar");
      expect((await strata(root, ["save", "-o", archive, "many:1"])).code).toBe(0);
      const [img] = await readDockerArchive(archive);
      const tree = await flatten(img!.layers);
      expect(tree.get("many/f79.txt")?.digest).toBe(sha("changed 79\n"));
      expect(tree.get("both")?.digest).toBe(sha("file 7\nchanged 79\n"));
      expect(leftovers()).toEqual([]);
    },
  );

  it("a COPY re-run under a new parent reuses the same layer, and a changed one does not", async () => {
    const layers = async () => {
      const archive = path.join(t.dir, "layers.tar");
      expect((await strata(root, ["save", "-o", archive, "memo:1"])).code).toBe(0);
      const [img] = await readDockerArchive(archive);
      return (img!.config.rootfs as { diff_ids: string[] }).diff_ids;
    };
    const before = await layers();
    // deps/ changes: the two COPYs after it run again under a new parent.
    writeFileSync(path.join(ctx, "deps/lib.js"), "module.exports = 2;\n");
    expect(ranSteps(await build())).toEqual(ALL);
    const after = await layers();
    expect(after[after.length - 3]).not.toBe(before[before.length - 3]);
    expect(after.slice(-2)).toEqual(before.slice(-2));
    // ...and a change of mode in src/ under the new parent is a new layer with the new mode.
    chmodSync(path.join(ctx, "src/main.py"), 0o600);
    writeFileSync(path.join(ctx, "deps/lib.js"), "module.exports = 3;\n");
    expect(ranSteps(await build())).toEqual(ALL);
    const third = await layers();
    expect(third.slice(-1)).not.toEqual(after.slice(-1));
    expect(((await files()).get("src/main.py")?.mode ?? 0) & 0o777).toBe(0o600);
    chmodSync(path.join(ctx, "src/main.py"), 0o644);
    await build();
  });

  it.runIf(need.ok)(
    "a COPY re-run copies unchanged entries from its last layer and derives its snapshot: RUN sees every change, the old image keeps its files",
    async () => {
      const df = path.join(t.dir, "tree.Dockerfile");
      writeFileSync(
        df,
        "FROM base:1\nCOPY tree/ /tree/\nRUN find /tree | sort > /listing && cat /tree/a/f1.txt > /f1 && stat -c %a /tree/b/keep.txt > /mode\n",
      );
      writeContext(path.join(ctx, "tree"), {
        "a/f1.txt": "one\n",
        "a/f2.txt": "two\n",
        "b/keep.txt": "keep\n",
        "b/gone.txt": "gone\n",
        ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`d/x${i}.txt`, `x${i}\n`])),
      });
      const b = async (tag: string) => {
        const r = await strata(root, ["build", "--progress", "plain", "-f", df, "-t", tag, ctx]);
        expect(r.code, r.stderr).toBe(0);
        return r.stderr;
      };
      const fileOf = async (tag: string, p: string) => {
        const archive = path.join(t.dir, "tree-img.tar");
        expect((await strata(root, ["save", "-o", archive, tag])).code).toBe(0);
        const [img] = await readDockerArchive(archive);
        return (await flatten(img!.layers)).get(p);
      };
      await b("tree:1");
      expect(readdirSync(path.join(root, "meta/layouts")).length).toBeGreaterThan(0);
      writeFileSync(path.join(ctx, "tree/a/f1.txt"), "ONE changed\n");
      rmSync(path.join(ctx, "tree/b/gone.txt"));
      writeFileSync(path.join(ctx, "tree/c-new.txt"), "new\n");
      chmodSync(path.join(ctx, "tree/b/keep.txt"), 0o600);
      expect(ranSteps(await b("tree:2"))).toHaveLength(2);
      const listing = (await fileOf("tree:2", "listing"))!;
      expect(listing.digest).toBe(
        sha(
          `${[
            "/tree",
            "/tree/a",
            "/tree/a/f1.txt",
            "/tree/a/f2.txt",
            "/tree/b",
            "/tree/b/keep.txt",
            "/tree/c-new.txt",
            "/tree/d",
            ...Array.from({ length: 20 }, (_, i) => `/tree/d/x${i}.txt`).sort(),
          ]
            .sort()
            .join("\n")}\n`,
        ),
      );
      expect((await fileOf("tree:2", "f1"))?.digest).toBe(sha("ONE changed\n"));
      expect((await fileOf("tree:2", "mode"))?.digest).toBe(sha("600\n"));
      // The first image's snapshot was hard-linked, never written: a container of it sees the old files.
      const old = await strata(root, [
        "run",
        "--rm",
        "--network",
        "none",
        "tree:1",
        "cat",
        "/tree/a/f1.txt",
        "/tree/b/gone.txt",
      ]);
      expect(old.stdout).toBe("one\ngone\n");
      const mode = await strata(root, [
        "run",
        "--rm",
        "--network",
        "none",
        "tree:1",
        "stat",
        "-c",
        "%a",
        "/tree/b/keep.txt",
      ]);
      expect(mode.stdout.trim()).toBe("644");
    },
  );

  it("an unreadable memo file is only a slower build", async () => {
    const id = await imageId();
    writeFileSync(path.join(root, "meta/copymemo.json"), "{not json");
    const out = await build();
    expect(cachedSteps(out)).toEqual(ALL);
    expect(await imageId()).toBe(id);
  });
});
