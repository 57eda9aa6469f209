import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../helpers/cli.js";
import { busyboxRootfs } from "../helpers/fixtures.js";

describe("image commands (import, tag, images, inspect, history, rmi, prune)", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  let rootfs: string;
  let id: string;

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    const r = await strata(root, [
      "import",
      "-c",
      'CMD ["sh"]',
      "-c",
      "ENV A=1 B=two",
      "-c",
      "EXPOSE 8080",
      "-c",
      "WORKDIR /app",
      "-c",
      "USER app",
      "-c",
      "LABEL team=core",
      "-m",
      "base image",
      rootfs,
      "base:1",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    id = r.stdout.trim();
    expect(id).toMatch(/^sha256:[a-f0-9]{64}$/);
  });
  afterAll(() => t.cleanup());

  it("import applies --change and -m to the config", async () => {
    const r = await strata(root, ["inspect", "base:1"]);
    expect(r.code).toBe(0);
    const [img] = JSON.parse(r.stdout);
    expect(img.Id).toBe(id);
    expect(img.RepoTags).toEqual(["base:1"]);
    expect(img.Config.Cmd).toEqual(["sh"]);
    expect(img.Config.Env).toEqual(["A=1", "B=two"]);
    expect(img.Config.ExposedPorts).toEqual({ "8080/tcp": {} });
    expect(img.Config.WorkingDir).toBe("/app");
    expect(img.Config.User).toBe("app");
    expect(img.Config.Labels).toEqual({ team: "core" });
    expect(img.Comment).toBe("base image");
    expect(img.RootFS.Layers).toHaveLength(1);
    // Size is the content of regular files: busybox plus /etc files, less than the tar.
    const tarSize = readFileSync(rootfs).length;
    expect(img.Size).toBeGreaterThan(1_000_000);
    expect(img.Size).toBeLessThan(tarSize);
  });

  it("tag gives the same ID under more names; images lists one row per tag", async () => {
    expect((await strata(root, ["tag", "base:1", "base:latest"])).code).toBe(0);
    expect((await strata(root, ["tag", id.slice(7, 19), "localhost:5000/team/base:v2"])).code).toBe(0);
    const r = await strata(root, ["images"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(lines).toHaveLength(4);
    expect(r.stdout).toMatch(/base\s+1\s+[a-f0-9]{12}\s+/);
    expect(r.stdout).toMatch(/localhost:5000\/team\/base\s+v2\s/);
    const q = await strata(root, ["images", "-q"]);
    expect(q.stdout).toBe(`${id.slice(7, 19)}\n`);
  });

  it("images filters: reference, dangling, label, positional name", async () => {
    const byRef = await strata(root, [
      "images",
      "--format",
      "{{.Repository}}:{{.Tag}}",
      "-f",
      "reference=base:*",
    ]);
    expect(byRef.stdout.split("\n").filter(Boolean).sort()).toEqual(["base:1", "base:latest"]);
    const pos = await strata(root, [
      "images",
      "--format",
      "{{.Repository}}:{{.Tag}}",
      "localhost:5000/team/base",
    ]);
    expect(pos.stdout).toBe("localhost:5000/team/base:v2\n");
    const dangling = await strata(root, ["images", "-q", "-f", "dangling=true"]);
    expect(dangling.stdout).toBe("");
    const label = await strata(root, ["images", "-q", "-f", "label=team=core"]);
    expect(label.stdout).toBe(`${id.slice(7, 19)}\n`);
    const nolabel = await strata(root, ["images", "-q", "-f", "label=team=other"]);
    expect(nolabel.stdout).toBe("");
    const bad = await strata(root, ["images", "-f", "bogus=1"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("invalid filter 'bogus'");
  });

  it("images --format json and --no-trunc --digests", async () => {
    const j = await strata(root, ["images", "--format", "json", "base:1"]);
    const row = JSON.parse(j.stdout.trim());
    expect(row).toMatchObject({ Repository: "base", Tag: "1", ID: id.slice(7, 19), Digest: "<none>" });
    const d = await strata(root, ["images", "--no-trunc", "--digests", "base:1"]);
    expect(d.stdout.split("\n")[0]).toMatch(/^REPOSITORY\s+TAG\s+DIGEST\s+IMAGE ID/);
    expect(d.stdout).toContain(id);
  });

  it("inspect --format runs a Go template; a missing image is an error with exit 1", async () => {
    const f = await strata(root, ["image", "inspect", "--format", "{{.Id}}", "base:1"]);
    expect(f.stdout).toBe(`${id}\n`);
    const miss = await strata(root, ["inspect", "nosuch:9"]);
    expect(miss.code).toBe(1);
    expect(miss.stderr).toBe("Error: No such image: nosuch:9\n");
    expect(miss.stdout).toBe("[]\n");
  });

  it("history shows the import entry", async () => {
    const h = await strata(root, ["history", "base:1"]);
    expect(h.code).toBe(0);
    const lines = h.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    expect(lines[1]).toContain(id.slice(7, 19));
    expect(lines[1]).toContain("base image");
    const raw = await strata(root, ["history", "-H=false", "--format", "{{.Size}}", "base:1"]);
    expect(Number(raw.stdout.trim())).toBeGreaterThan(1_000_000);
  });

  it("rmi by ID referenced in several repositories needs -f; untag by name keeps the image", async () => {
    const conflict = await strata(root, ["rmi", id.slice(7, 19)]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain(
      `conflict: unable to delete ${id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`,
    );
    const untag = await strata(root, ["rmi", "localhost:5000/team/base:v2"]);
    expect(untag.stdout).toBe("Untagged: localhost:5000/team/base:v2\n");
    const still = await strata(root, ["images", "-q"]);
    expect(still.stdout).toBe(`${id.slice(7, 19)}\n`);
  });

  it("rmi of an unknown image reports Docker's error and goes on with the others", async () => {
    const r = await strata(root, ["rmi", "nosuch", "base:latest"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: No such image: nosuch:latest\n");
    expect(r.stdout).toBe("Untagged: base:latest\n");
  });

  it("removing the last tag deletes the image and its blobs", async () => {
    const r = await strata(root, ["rmi", "base:1"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Untagged: base:1\n");
    expect(r.stdout).toContain(`Deleted: ${id}\n`);
    const idx = JSON.parse(readFileSync(path.join(root, "index.json"), "utf8"));
    expect(idx.manifests).toEqual([]);
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(path.join(root, "blobs/sha256"))).toEqual([]);
  });

  it("image prune removes dangling images only, -a every unused one", async () => {
    const a = (await strata(root, ["import", rootfs, "keep:1"])).stdout.trim();
    const b = (await strata(root, ["import", "-m", "other", rootfs, "gone:1"])).stdout.trim();
    await strata(root, ["tag", "keep:1", "gone:1"]); // b loses its tag: dangling
    expect((await strata(root, ["images", "-q", "-f", "dangling=true", "--no-trunc"])).stdout).toBe(`${b}\n`);
    const p = await strata(root, ["image", "prune", "-f"]);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain(`deleted: ${b}`);
    expect(p.stdout).toMatch(/Total reclaimed space: /);
    expect((await strata(root, ["images", "-q", "--no-trunc"])).stdout).toBe(`${a}\n`);
    const none = await strata(root, ["image", "prune", "-f"]);
    expect(none.stdout).toBe("Total reclaimed space: 0B\n");
    const all = await strata(root, ["image", "prune", "-a", "-f"]);
    expect(all.stdout).toContain(`deleted: ${a}`);
    expect((await strata(root, ["images", "-q"])).stdout).toBe("");
  });

  it("prune without -f asks, and does nothing on no", async () => {
    await strata(root, ["import", rootfs, "ask:1"]);
    const r = await strata(root, ["image", "prune", "-a"], { input: "n\n" });
    expect(r.stdout).toContain(
      "WARNING! This will remove all images without at least one container associated to them.",
    );
    expect(r.stdout).toContain("[y/N]");
    expect((await strata(root, ["images", "-q"])).stdout).not.toBe("");
  });

  it("usage errors look like docker's", async () => {
    const r = await strata(root, ["images", "--bogus"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe("unknown flag: --bogus\nSee 'strata images --help'.\n");
    const bad = await strata(root, ["tag", "ask:1", "Bad:Name"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^Error: invalid reference format/);
  });
});
