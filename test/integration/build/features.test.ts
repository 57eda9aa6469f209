import { createHash } from "node:crypto";
import { readFileSync, utimesSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedSteps, danglingSnapshots, mountsUnder, ranSteps, writeContext } from "../../helpers/build.js";
import { strata, tempDir } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { flatten, readDockerArchive, type Tree, tarEntries } from "../../helpers/image-tree.js";
import { requires } from "../../helpers/tools.js";

/**
 * Build features dockerd 20.10's BuildKit predates, so the equivalence suite cannot cover
 * them: ADD --checksum, COPY --exclude and --parents, RUN --mount=type=bind,from=…, and the
 * bind mount's place in the cache key.
 */
const need = requires({ tools: ["runc"], root: true });
const sha = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");

describe.runIf(need.ok)("build features: ADD --checksum, COPY --exclude/--parents, bind mounts", () => {
  const t = tempDir("strata-features-");
  const root = path.join(t.dir, "store");
  const ctx = path.join(t.dir, "ctx");
  let server: http.Server;
  let base = "";
  const DATA = "payload from the server\n";

  /** Build a Dockerfile; returns the progress and, on success, the flattened image and its files. */
  const build = async (name: string, dockerfile: string, flags: string[] = []) => {
    const df = path.join(t.dir, `${name}.Dockerfile`);
    writeFileSync(df, dockerfile);
    const r = await strata(root, [
      "build",
      "--progress",
      "plain",
      "-f",
      df,
      "-t",
      `${name}:1`,
      ...flags,
      ctx,
    ]);
    return r;
  };
  const image = async (tag: string): Promise<{ tree: Tree; files: Map<string, string> }> => {
    const archive = path.join(t.dir, "img.tar");
    expect((await strata(root, ["save", "-o", archive, tag])).code).toBe(0);
    const [img] = await readDockerArchive(archive);
    const files = new Map<string, string>();
    for (const l of img!.layers)
      for (const e of await tarEntries(l)) files.set(e.name.replace(/^\.?\//, ""), e.data.toString());
    return { tree: await flatten(img!.layers), files };
  };

  beforeAll(async () => {
    const r = await strata(root, ["import", busyboxRootfs(), "base:1"]);
    expect(r.code, r.stderr).toBe(0);
    writeContext(ctx, {
      "app/main.py": "main\n",
      "app/test_main.py": "test\n",
      "app/README.md": "readme\n",
      "app/lib/util.py": "util\n",
      "app/lib/notes.md": "notes\n",
      "web/package.json": "{}\n",
      "web/src/index.js": "index\n",
      "api/package.json": "{}\n",
      "mounted/config.txt": "v1\n",
      escape: { symlink: "/etc/shadow" },
    });
    server = http.createServer((req, res) => {
      if (req.url === "/data.txt")
        res.writeHead(200, { "Content-Length": Buffer.byteLength(DATA) }).end(DATA);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server?.close();
    t.cleanup();
  });

  it("ADD --checksum: a matching digest downloads, a wrong one fails the build", async () => {
    const ok = await build(
      "sum",
      `FROM base:1\nADD --checksum=sha256:${sha(DATA)} ${base}/data.txt /data/\n`,
    );
    expect(ok.code, ok.stderr).toBe(0);
    const { tree, files } = await image("sum:1");
    expect(tree.get("data/data.txt")).toMatchObject({ type: "file", mode: 0o600 });
    expect(files.get("data/data.txt")).toBe(DATA);
    const bad = await build(
      "badsum",
      `FROM base:1\nADD --checksum=sha256:${"0".repeat(64)} ${base}/data.txt /data/\n`,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`digest mismatch sha256:${"0".repeat(64)}: sha256:${sha(DATA)}`);
    const local = await build("localsum", `FROM base:1\nADD --checksum=sha256:${sha(DATA)} app/main.py /x\n`);
    expect(local.code).toBe(1);
    expect(local.stderr).toContain("checksum can't be specified for non-HTTP(S) sources");
    const missing = await build("missingurl", `FROM base:1\nADD ${base}/nothere.txt /x\n`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("invalid response status 404");
    const copyUrl = await build("copyurl", `FROM base:1\nCOPY ${base}/data.txt /x\n`);
    expect(copyUrl.code).toBe(1);
    expect(copyUrl.stderr).toContain("source can't be a URL for COPY");
    expect(mountsUnder(root)).toEqual([]);
    expect(danglingSnapshots(root)).toEqual([]);
  });

  it("COPY --exclude leaves out matching paths inside directories and matching file sources", async () => {
    const r = await build(
      "exclude",
      "FROM base:1\nCOPY --exclude=*.md --exclude=test_* app /app\nCOPY --exclude=main.py app/*.py /py/\n",
    );
    expect(r.code, r.stderr).toBe(0);
    const { tree } = await image("exclude:1");
    const under = (p: string) => [...tree.keys()].filter((k) => k.startsWith(p)).sort();
    expect(under("app/")).toEqual(["app/lib", "app/lib/notes.md", "app/lib/util.py", "app/main.py"]);
    expect(under("py/")).toEqual(["py/test_main.py"]);
  });

  it("COPY --parents keeps the source paths, from the context root or from a /./ pivot", async () => {
    const r = await build(
      "parents",
      "FROM base:1\nCOPY --parents */package.json /srv/\nCOPY --parents ./web/./src/index.js /pivot/\nCOPY --parents app/lib /keep/\n",
    );
    expect(r.code, r.stderr).toBe(0);
    const { tree } = await image("parents:1");
    expect(tree.get("srv/web/package.json")?.type).toBe("file");
    expect(tree.get("srv/api/package.json")?.type).toBe("file");
    expect(tree.get("pivot/src/index.js")?.type).toBe("file");
    expect(tree.has("pivot/web")).toBe(false);
    expect(tree.get("keep/app/lib/util.py")?.type).toBe("file");
  });

  it("RUN --mount=type=bind,from=stage reads another stage's files, and nothing of it lands in the layer", async () => {
    const r = await build(
      "bindfrom",
      `FROM base:1 AS tools
RUN mkdir /out && echo tool > /out/t && ln -s /etc/hostname /out/h
FROM base:1
RUN --mount=type=bind,from=tools,source=/out,target=/mnt cat /mnt/t /mnt/h > /res
RUN --mount=type=bind,from=base:1,source=/etc/passwd,target=/p grep -c : /p > /count
`,
    );
    expect(r.code, r.stderr).toBe(0);
    const { tree, files } = await image("bindfrom:1");
    // /out/h -> /etc/hostname is followed inside the tools stage: its hostname, not the host's.
    expect(files.get("res")).toBe("tool\nstrata\n");
    expect(files.get("count")).toBe("3\n");
    expect(tree.has("mnt")).toBe(false);
    expect(tree.has("p")).toBe(false);
    // Changing the source stage re-runs the step that mounts it.
    const again = await build(
      "bindfrom",
      readFileSync(path.join(t.dir, "bindfrom.Dockerfile"), "utf8").replace("echo tool", "echo tool2"),
    );
    expect(ranSteps(again.stderr)).toEqual([
      "RUN mkdir /out && echo tool2 > /out/t && ln -s /etc/hostname /out/h",
      "RUN --mount=type=bind,from=tools,source=/out,target=/mnt cat /mnt/t /mnt/h > /res",
      // …and what follows it (its parent changed).
      "RUN --mount=type=bind,from=base:1,source=/etc/passwd,target=/p grep -c : /p > /count",
    ]);
    expect((await image("bindfrom:1")).files.get("res")).toBe("tool2\nstrata\n");
    expect(mountsUnder(root)).toEqual([]);
    expect(danglingSnapshots(root)).toEqual([]);
  });

  it("a bind mount of the context is part of the cache key: content changes re-run, touches do not", async () => {
    const df = "FROM base:1\nRUN --mount=type=bind,source=mounted,target=/m cat /m/config.txt > /config\n";
    expect((await build("bindctx", df)).code).toBe(0);
    expect(cachedSteps((await build("bindctx", df)).stderr)).toHaveLength(1);
    writeFileSync(path.join(ctx, "mounted/config.txt"), "v2\n");
    const changed = await build("bindctx", df);
    expect(ranSteps(changed.stderr)).toHaveLength(1);
    expect((await image("bindctx:1")).files.get("config")).toBe("v2\n");
    utimesSync(path.join(ctx, "mounted/config.txt"), new Date(), new Date(Date.now() + 60_000));
    expect(ranSteps((await build("bindctx", df)).stderr)).toEqual([]);
    // An unrelated file of the context does not matter to a mount of `mounted`.
    writeFileSync(path.join(ctx, "app/main.py"), "main changed\n");
    expect(ranSteps((await build("bindctx", df)).stderr)).toEqual([]);
  });

  it("a bind mount of the context shows it with .dockerignore applied, the context untouched", async () => {
    const c2 = path.join(t.dir, "ctx-ignore");
    writeContext(c2, {
      ".dockerignore": "secret.txt\nlogs\n**/*.tmp\n!keep/*.tmp\n",
      "kept.txt": "kept\n",
      "secret.txt": "do not show\n",
      "logs/a.log": "log\n",
      "sub/x.tmp": "scratch\n",
      "sub/y.txt": "y\n",
      "keep/z.tmp": "re-included\n",
    });
    const df = path.join(t.dir, "ignorebind.Dockerfile");
    writeFileSync(
      df,
      "FROM base:1\nRUN --mount=type=bind,target=/c find /c | sort > /listing && cat /c/kept.txt /c/keep/z.tmp > /read\n" +
        "RUN --mount=type=bind,source=sub,target=/s ls -A /s > /sub\n",
    );
    const r = await strata(root, ["build", "--progress", "plain", "-f", df, "-t", "ignorebind:1", c2]);
    expect(r.code, r.stderr).toBe(0);
    const { files } = await image("ignorebind:1");
    expect(files.get("listing")!.split("\n").filter(Boolean)).toEqual([
      "/c",
      "/c/.dockerignore",
      "/c/keep",
      "/c/keep/z.tmp",
      "/c/kept.txt",
      "/c/sub",
      "/c/sub/y.txt",
    ]);
    expect(files.get("read")).toBe("kept\nre-included\n");
    expect(files.get("sub")).toBe("y.txt\n");
    // Nothing was written into the context, and no view is left mounted.
    expect(readFileSync(path.join(c2, "secret.txt"), "utf8")).toBe("do not show\n");
    expect(readFileSync("/proc/mounts", "utf8")).not.toContain(root);
    expect(danglingSnapshots(root)).toEqual([]);
  });

  it("COPY --link gives the same files as COPY", async () => {
    const r = await build(
      "link",
      "FROM base:1\nCOPY --link app /app\nCOPY --link --chmod=700 web/package.json /w/\n",
    );
    expect(r.code, r.stderr).toBe(0);
    const plain = await build(
      "nolink",
      "FROM base:1\nCOPY app /app\nCOPY --chmod=700 web/package.json /w/\n",
    );
    expect(plain.code, plain.stderr).toBe(0);
    const a = (await image("link:1")).tree;
    const b = (await image("nolink:1")).tree;
    expect([...a.entries()].sort()).toEqual([...b.entries()].sort());
    expect(a.get("w/package.json")?.mode).toBe(0o700);
  });

  it("outputs: -q and --iidfile give the image ID; -o type=docker and type=oci write loadable archives", async () => {
    const df = path.join(t.dir, "out.Dockerfile");
    writeFileSync(df, 'FROM base:1\nCOPY app /app\nCMD ["sh"]\n');
    const iid = path.join(t.dir, "iid");
    const q = await strata(root, ["build", "-q", "--iidfile", iid, "-f", df, "-t", "out:1", ctx]);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stderr).toBe("");
    expect(q.stdout).toMatch(/^sha256:[a-f0-9]{64}\n$/);
    expect(readFileSync(iid, "utf8")).toBe(q.stdout.trim());
    const docker = path.join(t.dir, "out-docker.tar");
    const d = await strata(root, [
      "build",
      "-q",
      "-f",
      df,
      "-t",
      "out:2",
      "-o",
      `type=docker,dest=${docker}`,
      ctx,
    ]);
    expect(d.code, d.stderr).toBe(0);
    const [img] = await readDockerArchive(docker);
    expect(img!.repoTags).toEqual(["out:2"]);
    expect(img!.config.config?.Cmd).toEqual(["sh"]);
    expect((await flatten(img!.layers)).get("app/main.py")?.type).toBe("file");
    const oci = path.join(t.dir, "out-oci.tar");
    const o = await strata(root, ["build", "-q", "-f", df, "-o", `type=oci,dest=${oci}`, ctx]);
    expect(o.code, o.stderr).toBe(0);
    const names = (await tarEntries(readFileSync(oci))).map((e) => e.name);
    expect(names).toContain("oci-layout");
    expect(names).toContain("index.json");
    // The archive loads back into a fresh store with the same image ID.
    const other = path.join(t.dir, "store2");
    const l = await strata(other, ["load", "-i", docker]);
    expect(l.code, l.stderr).toBe(0);
    const id = JSON.parse((await strata(other, ["inspect", "out:2"])).stdout)[0].Id;
    expect(id).toBe(JSON.parse((await strata(root, ["inspect", "out:2"])).stdout)[0].Id);
  });

  it("a bind source that is a symlink out of the context is refused, never mounted from the host", async () => {
    const r = await build("escape", "FROM base:1\nRUN --mount=type=bind,source=escape,target=/s cat /s\n");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('"/escape": not found');
    expect(r.stderr).not.toMatch(/root:[*!x]?:/);
  });
});
