import { createHash } from "node:crypto";
import { chmodSync, existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedSteps, ranSteps, writeContext } from "../../helpers/build.js";
import { strata, tempDir } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { flatten, readDockerArchive } from "../../helpers/image-tree.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["runc"], root: true });
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

// The seeds' cache lesson (000 §9): dependencies first, then the sources.
const DOCKERFILE = `FROM base:1
WORKDIR /app
COPY requirements.txt .
RUN cp requirements.txt /installed.txt && echo installing
WORKDIR /tmp
ARG VERSION=1
COPY src/ ./src/
RUN echo "v$VERSION" > /version.txt
LABEL version=$VERSION
`;
const ALL = [
  "WORKDIR /app",
  "COPY requirements.txt .",
  "RUN cp requirements.txt /installed.txt && echo installing",
  "WORKDIR /tmp",
  "COPY src/ ./src/",
  'RUN echo "v$VERSION" > /version.txt',
];

describe.runIf(need.ok)("build cache", () => {
  const t = tempDir("strata-cache-");
  const root = path.join(t.dir, "store");
  const ctx = path.join(t.dir, "ctx");

  const build = async (...flags: string[]) => {
    const r = await strata(root, ["build", "--progress", "plain", "-t", "cached:1", ...flags, ctx]);
    expect(r.code, r.stderr).toBe(0);
    return r.stderr;
  };
  /** Digest of a file in the image cached:1. */
  const fileDigest = async (p: string) => {
    const archive = path.join(t.dir, "img.tar");
    expect((await strata(root, ["save", "-o", archive, "cached:1"])).code).toBe(0);
    const [img] = await readDockerArchive(archive);
    return (await flatten(img!.layers)).get(p.replace(/^\//, ""))?.digest;
  };

  beforeAll(async () => {
    const r = await strata(root, ["import", busyboxRootfs(), "base:1"]);
    expect(r.code, r.stderr).toBe(0);
    writeContext(ctx, {
      Dockerfile: DOCKERFILE,
      "requirements.txt": "flask==3.0\n",
      "src/main.py": "print('hello')\n",
      "src/util.py": "X = 1\n",
    });
  });
  afterAll(() => t.cleanup());

  it("a first build runs every step; a second is all CACHED", async () => {
    expect(ranSteps(await build())).toEqual(ALL);
    const again = await build();
    expect(cachedSteps(again)).toEqual(ALL);
    expect(ranSteps(again)).toEqual([]);
  });

  it("changing one source file re-runs exactly the steps from its COPY on", async () => {
    writeFileSync(path.join(ctx, "src/main.py"), "print('changed')\n");
    const out = await build();
    expect(ranSteps(out)).toEqual(["COPY src/ ./src/", 'RUN echo "v$VERSION" > /version.txt']);
    expect(cachedSteps(out)).toEqual(ALL.slice(0, 4));
    expect(await fileDigest("/tmp/src/main.py")).toBe(sha("print('changed')\n"));
  });

  it("changing the dependency file re-runs its COPY and everything after it", async () => {
    writeFileSync(path.join(ctx, "requirements.txt"), "flask==3.1\n");
    const out = await build();
    expect(ranSteps(out)).toEqual(ALL.slice(1));
    expect(await fileDigest("/installed.txt")).toBe(sha("flask==3.1\n"));
  });

  it("changing a build arg re-runs exactly the steps that use it", async () => {
    const out = await build("--build-arg", "VERSION=2");
    // RUN sees every ARG in scope in its environment; COPY does not use VERSION.
    expect(ranSteps(out)).toEqual(['RUN echo "v$VERSION" > /version.txt']);
    expect(cachedSteps(out)).toEqual(ALL.slice(0, 5));
    expect(await fileDigest("/version.txt")).toBe(sha("v2\n"));
    const cfg = JSON.parse((await strata(root, ["inspect", "cached:1"])).stdout)[0].Config;
    expect(cfg.Labels).toEqual({ version: "2" });
    // Back to the default: the first result is still in the cache.
    expect(ranSteps(await build())).toEqual([]);
  });

  it("touching a file, or rewriting it with the same bytes, re-runs nothing", async () => {
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(path.join(ctx, "src/main.py"), future, future);
    utimesSync(path.join(ctx, "requirements.txt"), future, future);
    expect(ranSteps(await build())).toEqual([]);
    writeFileSync(path.join(ctx, "src/util.py"), "X = 1\n");
    const out = await build();
    expect(ranSteps(out)).toEqual([]);
    expect(cachedSteps(out)).toEqual(ALL);
  });

  it("a mode change is a change (a COPY keeps modes)", async () => {
    chmodSync(path.join(ctx, "src/util.py"), 0o755);
    expect(ranSteps(await build())).toEqual(["COPY src/ ./src/", 'RUN echo "v$VERSION" > /version.txt']);
    chmodSync(path.join(ctx, "src/util.py"), 0o644);
    expect(ranSteps(await build())).toEqual([]);
  });

  it("--no-cache re-runs every step", async () => {
    const out = await build("--no-cache");
    expect(ranSteps(out)).toEqual(ALL);
    expect(cachedSteps(out)).toEqual([]);
  });

  it("the cache survives rmi of the image", async () => {
    const before = JSON.parse((await strata(root, ["inspect", "cached:1"])).stdout)[0];
    const rmi = await strata(root, ["rmi", "cached:1"]);
    expect(rmi.code, rmi.stderr).toBe(0);
    expect((await strata(root, ["inspect", "cached:1"])).code).toBe(1);
    const out = await build();
    expect(cachedSteps(out)).toEqual(ALL);
    const after = JSON.parse((await strata(root, ["inspect", "cached:1"])).stdout)[0];
    expect(after.RootFS.Layers).toEqual(before.RootFS.Layers);
  });

  it("builder prune -a -f empties the cache: the next build re-runs every step", async () => {
    const pr = await strata(root, ["builder", "prune", "-a", "-f"]);
    expect(pr.code, pr.stderr).toBe(0);
    expect(pr.stdout).toMatch(/^Total:\s+\S+/m);
    // The build's own shortcuts go with it: no memo, no layout of a layer that is gone.
    expect(existsSync(path.join(root, "meta/copymemo.json"))).toBe(false);
    for (const n of readdirSync(path.join(root, "meta/layouts"))) {
      const { diffId } = JSON.parse(readFileSync(path.join(root, "meta/layouts", n), "utf8"));
      expect(existsSync(path.join(root, "blobs/sha256", diffId.slice(7)))).toBe(true);
    }
    const out = await build();
    expect(ranSteps(out)).toEqual(ALL);
    expect(ranSteps(await build())).toEqual([]);
  });

  it("an unrelated stage and a target: only what the target needs runs", async () => {
    const df = path.join(t.dir, "Dockerfile.multi");
    writeFileSync(
      df,
      `FROM base:1 AS deps
RUN echo deps > /deps
FROM base:1 AS unused
RUN echo unused > /unused
FROM base:1 AS app
COPY --from=deps /deps /deps
ARG VERSION=1
RUN echo "v$VERSION" > /v
`,
    );
    const first = await strata(root, ["build", "--progress", "plain", "-f", df, "-t", "multi:1", ctx]);
    expect(first.code, first.stderr).toBe(0);
    expect(ranSteps(first.stderr)).toEqual([
      "RUN echo deps > /deps",
      "COPY --from=deps /deps /deps",
      'RUN echo "v$VERSION" > /v',
    ]);
    const arg = await strata(root, [
      "build",
      "--progress",
      "plain",
      "-f",
      df,
      "--build-arg",
      "VERSION=3",
      "-t",
      "multi:1",
      ctx,
    ]);
    expect(ranSteps(arg.stderr)).toEqual(['RUN echo "v$VERSION" > /v']);
    expect(cachedSteps(arg.stderr)).toEqual(["RUN echo deps > /deps", "COPY --from=deps /deps /deps"]);
  });
});
