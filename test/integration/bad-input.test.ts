import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pack as tarPack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../helpers/cli.js";
import { busyboxRootfs } from "../helpers/fixtures.js";
import { hashTree } from "../helpers/store-hash.js";

interface Entry {
  name: string;
  data?: Buffer | string;
  type?: "file" | "symlink" | "link" | "directory";
  linkname?: string;
}

async function makeTar(entries: Entry[]): Promise<Buffer> {
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => p.on("end", r));
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      if (e.type === "symlink" || e.type === "link" || e.type === "directory")
        p.entry({ name: e.name, type: e.type, linkname: e.linkname }, (err) =>
          err ? reject(err) : resolve(),
        );
      else p.entry({ name: e.name }, e.data ?? "", (err) => (err ? reject(err) : resolve()));
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/** A docker-archive (legacy manifest.json layout) holding one image with the given layer tar. */
async function dockerArchive(
  layer: Buffer,
  opts: { diffId?: string; manifest?: unknown } = {},
): Promise<Buffer> {
  const config = JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: [`sha256:${opts.diffId ?? sha(layer)}`] },
  });
  const cfgName = `${sha(config)}.json`;
  return makeTar([
    { name: cfgName, data: config },
    { name: "l1/layer.tar", data: layer },
    {
      name: "manifest.json",
      data: JSON.stringify(
        opts.manifest ?? [{ Config: cfgName, RepoTags: ["evil:1"], Layers: ["l1/layer.tar"] }],
      ),
    },
  ]);
}

describe("bad input: clear error, exit 1, store unchanged", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  const file = (name: string, data: Buffer) => {
    const p = path.join(t.dir, name);
    writeFileSync(p, data);
    return p;
  };
  let good: Buffer;

  beforeAll(async () => {
    expect((await strata(root, ["import", busyboxRootfs(), "base:1"])).code).toBe(0);
    const s = await strata(root, ["save", "-o", path.join(t.dir, "good.tar"), "base:1"]);
    expect(s.code).toBe(0);
    good = readFileSync(path.join(t.dir, "good.tar"));
  });
  afterAll(() => t.cleanup());

  async function expectRejected(args: string[], message: RegExp, input?: Buffer) {
    const before = hashTree(root);
    const r = await strata(root, args, input ? { input } : {});
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^Error: /);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(hashTree(root), "store changed").toBe(before);
  }

  it("a truncated archive", async () => {
    await expectRejected(
      ["load", "-i", file("trunc.tar", good.subarray(0, Math.floor(good.length / 2)))],
      /invalid tar archive|Unexpected end/i,
    );
  });

  it("bytes that are not a tar", async () => {
    await expectRejected(
      ["load", "-i", file("junk.tar", Buffer.alloc(10_000, 7))],
      /invalid tar archive|not a docker or OCI/i,
    );
  });

  it("a corrupt gzip stream", async () => {
    const { gzipSync } = await import("node:zlib");
    const gz = gzipSync(good);
    gz[Math.floor(gz.length / 2)]! ^= 0xff;
    await expectRejected(
      ["load", "-i", file("corrupt.tar.gz", gz)],
      /invalid tar archive|incorrect|invalid/i,
    );
  });

  it("an archive member with ../ in its name", async () => {
    const tar = await makeTar([
      { name: "../escape", data: "x" },
      { name: "manifest.json", data: "[]" },
    ]);
    await expectRejected(["load", "-i", file("dotdot.tar", tar)], /path escapes the archive/);
  });

  it("an archive member that is an absolute symlink", async () => {
    const tar = await makeTar([{ name: "l1/layer.tar", type: "symlink", linkname: "/etc/passwd" }]);
    await expectRejected(["load", "-i", file("abs.tar", tar)], /absolute link target/);
  });

  it("a layer whose tar climbs out with ../", async () => {
    const layer = await makeTar([
      { name: "ok", data: "fine" },
      { name: "../../etc/evil", data: "x" },
    ]);
    await expectRejected(
      ["load", "-i", file("evil-layer.tar", await dockerArchive(layer))],
      /path contains "\.\."/,
    );
    await expectRejected(["import", file("evil-rootfs.tar", layer), "evil:2"], /path contains "\.\."/);
  });

  it("a layer with a hard link to an absolute path", async () => {
    const layer = await makeTar([
      { name: "a", data: "x" },
      { name: "b", type: "link", linkname: "/etc/shadow" },
    ]);
    await expectRejected(
      ["load", "-i", file("hardlink.tar", await dockerArchive(layer))],
      /invalid hard link/,
    );
  });

  it("a layer whose digest does not match the config's diff_id", async () => {
    const layer = await makeTar([{ name: "a", data: "x" }]);
    await expectRejected(
      ["load", "-i", file("mismatch.tar", await dockerArchive(layer, { diffId: "0".repeat(64) }))],
      /diff ID|digest mismatch/,
    );
  });

  it("manifest.json with fields of the wrong type", async () => {
    const layer = await makeTar([{ name: "a", data: "x" }]);
    const tar = await dockerArchive(layer, { manifest: [{ Config: 5, Layers: "nope" }] });
    await expectRejected(["load", "-i", file("types.tar", tar)], /invalid manifest.json: 0\.Config/);
  });

  it("an OCI layout blob whose bytes don't hash to its name", async () => {
    const tampered = await makeTar([
      { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
      { name: `blobs/sha256/${"a".repeat(64)}`, data: "{}" },
      {
        name: "index.json",
        data: JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              digest: `sha256:${"a".repeat(64)}`,
              size: 2,
            },
          ],
        }),
      },
    ]);
    await expectRejected(["load", "-i", file("tampered.tar", tampered)], /has digest sha256:/);
  });

  it("invalid references and unknown images", async () => {
    await expectRejected(
      ["tag", "base:1", "team/Case"],
      /invalid reference format: repository name \(team\/Case\) must be lowercase/,
    );
    await expectRejected(["import", busyboxRootfs(), "bad//name"], /invalid reference format/);
    await expectRejected(["rmi", "nosuch:1"], /No such image: nosuch:1/);
    await expectRejected(["inspect", "nosuch"], /No such image: nosuch/);
    await expectRejected(["history", "nosuch"], /No such image: nosuch:latest/);
    await expectRejected(
      ["save", "-o", path.join(t.dir, "never.tar"), "base:1", "nosuch"],
      /No such image: nosuch:latest/,
    );
    expect(() => readFileSync(path.join(t.dir, "never.tar"))).toThrow();
  });

  it("a missing input file", async () => {
    await expectRejected(["load", "-i", path.join(t.dir, "absent.tar")], /no such file or directory/);
  });
});
