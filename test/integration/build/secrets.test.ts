import { randomBytes } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedSteps, danglingSnapshots, mountsUnder, ranSteps, writeContext } from "../../helpers/build.js";
import { strata, tempDir } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { flatten, readDockerArchive, tarEntries } from "../../helpers/image-tree.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["runc"], root: true });

/** Files under `dir` whose bytes (or gunzipped bytes) contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(d, n);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const b = readFileSync(p);
        let found = b.includes(needle);
        if (!found && b[0] === 0x1f && b[1] === 0x8b) {
          try {
            found = gunzipSync(b).includes(needle);
          } catch {
            // not a whole gzip stream
          }
        }
        if (found) hits.push(p);
      }
    }
  };
  walk(dir);
  return hits;
}

const DOCKERFILE = `FROM base:1
RUN --mount=type=secret,id=s cat /run/secrets/s > /dev/null
RUN --mount=type=secret,id=s,target=/custom/dir/token wc -c < /custom/dir/token > /secret-size
RUN --mount=type=secret,id=e,env=TOKEN test -n "$TOKEN" && echo ok > /env-ok
RUN --mount=type=secret,id=s cp /run/secrets/s /tmp/copy && rm /tmp/copy
`;

describe.runIf(need.ok)("build secrets (RUN --mount=type=secret)", () => {
  const t = tempDir("strata-secret-");
  const root = path.join(t.dir, "store");
  const ctx = path.join(t.dir, "ctx");
  const secretFile = path.join(t.dir, "secret.txt");
  const secret = `S3CRET-${randomBytes(12).toString("hex")}`;
  const envSecret = `ENVSECRET-${randomBytes(12).toString("hex")}`;
  let output = "";

  const build = (flags: string[] = []) =>
    strata(
      root,
      [
        "build",
        "--progress",
        "plain",
        "-t",
        "sec:1",
        "--secret",
        `id=s,src=${secretFile}`,
        "--secret",
        "id=e,env=MY_SECRET",
        ...flags,
        ctx,
      ],
      { env: { MY_SECRET: envSecret } },
    );

  beforeAll(async () => {
    const r = await strata(root, ["import", busyboxRootfs(), "base:1"]);
    expect(r.code, r.stderr).toBe(0);
    writeContext(ctx, { Dockerfile: DOCKERFILE });
    writeFileSync(secretFile, secret, { mode: 0o600 });
    const b = await build();
    expect(b.code, b.stderr).toBe(0);
    output = b.stderr;
  });
  afterAll(() => t.cleanup());

  it("the RUN steps read the secret (file, custom target, env)", async () => {
    const archive = path.join(t.dir, "sec.tar");
    expect((await strata(root, ["save", "-o", archive, "sec:1"])).code).toBe(0);
    const [img] = await readDockerArchive(archive);
    const tree = await flatten(img!.layers);
    const files = new Map<string, Buffer>();
    for (const l of img!.layers)
      for (const e of await tarEntries(l)) files.set(e.name.replace(/^\.?\//, ""), e.data);
    expect(files.get("secret-size")?.toString().trim()).toBe(String(secret.length));
    expect(files.get("env-ok")?.toString()).toBe("ok\n");
    // No mount point stub of the secret is left in the image: not /run, not /custom, not the copy.
    expect(tree.has("run")).toBe(false);
    expect(tree.has("custom")).toBe(false);
    expect(tree.has("tmp/copy")).toBe(false);
  });

  it("the secret's bytes are in no layer blob, no history, no config, no saved archive", async () => {
    const archive = path.join(t.dir, "sec2.tar");
    expect((await strata(root, ["save", "-o", archive, "sec:1"])).code).toBe(0);
    const [img] = await readDockerArchive(archive);
    for (const l of img!.layers) {
      expect(l.includes(secret)).toBe(false);
      expect(l.includes(envSecret)).toBe(false);
    }
    expect(readFileSync(archive).includes(secret)).toBe(false);
    const history = await strata(root, ["history", "--no-trunc", "sec:1"]);
    expect(history.code).toBe(0);
    expect(history.stdout).toContain("cat /run/secrets/s");
    expect(history.stdout).not.toContain(secret);
    expect(history.stdout).not.toContain(envSecret);
    const inspect = await strata(root, ["inspect", "sec:1"]);
    expect(inspect.stdout).not.toContain(secret);
    expect(inspect.stdout).not.toContain(envSecret);
    expect(output).not.toContain(secret);
    expect(output).not.toContain(envSecret);
  });

  it("no file under the store root holds the secret (layers, snapshots, cache, metadata)", () => {
    expect(filesContaining(root, secret)).toEqual([]);
    expect(filesContaining(root, envSecret)).toEqual([]);
    expect(mountsUnder(root)).toEqual([]);
    expect(danglingSnapshots(root)).toEqual([]);
  });

  it("no temporary file of the build keeps the secret", () => {
    const leftovers = readdirSync(os.tmpdir())
      .filter((n) => n.startsWith("strata-run-"))
      .flatMap((n) => filesContaining(path.join(os.tmpdir(), n), secret));
    expect(leftovers).toEqual([]);
  });

  it("a new secret value does not invalidate the cache (it is not part of the key)", async () => {
    writeFileSync(secretFile, `${secret}-rotated`);
    const r = await build();
    expect(r.code, r.stderr).toBe(0);
    expect(ranSteps(r.stderr)).toEqual([]);
    expect(cachedSteps(r.stderr)).toHaveLength(4);
    writeFileSync(secretFile, secret);
  });

  it("--no-cache reruns with the secret, and still leaves nothing behind", async () => {
    const r = await build(["--no-cache"]);
    expect(r.code, r.stderr).toBe(0);
    expect(ranSteps(r.stderr)).toHaveLength(4);
    expect(filesContaining(root, secret)).toEqual([]);
  });

  it("a failing step that used the secret leaves it nowhere either", async () => {
    const df = path.join(t.dir, "fail.Dockerfile");
    writeFileSync(df, "FROM base:1\nRUN --mount=type=secret,id=s cat /run/secrets/s && exit 7\n");
    const r = await strata(root, [
      "build",
      "--progress",
      "plain",
      "-f",
      df,
      "--secret",
      `id=s,src=${secretFile}`,
      ctx,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("exit code: 7");
    // The step printed the secret itself: that is the user's doing, but only in the output.
    expect(filesContaining(root, secret)).toEqual([]);
    expect(mountsUnder(root)).toEqual([]);
    expect(danglingSnapshots(root)).toEqual([]);
  });

  it("a required secret that was not given fails the step", async () => {
    const df = path.join(t.dir, "req.Dockerfile");
    writeFileSync(df, "FROM base:1\nRUN --mount=type=secret,id=missing,required=true true\n");
    const r = await strata(root, ["build", "-f", df, ctx]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("secret missing: not found");
  });
});
