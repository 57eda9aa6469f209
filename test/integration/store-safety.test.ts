import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STRATA_BIN, strata, tempDir } from "../helpers/cli.js";
import { busyboxRootfs } from "../helpers/fixtures.js";

describe("store safety: kill -9, racing writers", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  let bigArchive: string;

  beforeAll(async () => {
    // An archive large enough that a load is still streaming when it is killed.
    const src = path.join(t.dir, "src");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(src);
    const { randomBytes } = await import("node:crypto");
    for (let i = 0; i < 8; i++) writeFileSync(path.join(src, `f${i}`), randomBytes(16 * 1024 * 1024));
    const { execFileSync } = await import("node:child_process");
    execFileSync("tar", ["-C", src, "-cf", path.join(t.dir, "big-rootfs.tar"), "."]);
    const other = path.join(t.dir, "other");
    expect((await strata(other, ["import", path.join(t.dir, "big-rootfs.tar"), "big:1"])).code).toBe(0);
    bigArchive = path.join(t.dir, "big.tar");
    expect((await strata(other, ["save", "-o", bigArchive, "big:1"])).code).toBe(0);
    expect((await strata(root, ["import", busyboxRootfs(), "base:1"])).code).toBe(0);
  });
  afterAll(() => t.cleanup());

  it("a load killed with SIGKILL leaves a consistent store and the next command works", async () => {
    const before = readFileSync(path.join(root, "meta/images.json"), "utf8");
    const p = spawn(process.execPath, [STRATA_BIN, "--root", root, "load", "-i", bigArchive], {
      stdio: "ignore",
    });
    // Wait until the load has started writing into ingest/, then kill it mid-stream.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && readdirSync(path.join(root, "ingest")).length === 0)
      await new Promise((r) => setTimeout(r, 5));
    expect(readdirSync(path.join(root, "ingest")).length, "load never started writing").toBeGreaterThan(0);
    p.kill("SIGKILL");
    await new Promise((r) => p.on("exit", r));
    expect(readFileSync(path.join(root, "meta/images.json"), "utf8")).toBe(before);
    // The next command cleans the dead writer's ingest files and sees the same images.
    const r = await strata(root, ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("base:1\n");
    expect(readdirSync(path.join(root, "ingest"))).toEqual([]);
    // Every blob that is visible verifies.
    const { createHash } = await import("node:crypto");
    for (const hex of readdirSync(path.join(root, "blobs/sha256")))
      expect(
        createHash("sha256")
          .update(readFileSync(path.join(root, "blobs/sha256", hex)))
          .digest("hex"),
      ).toBe(hex);
    const again = await strata(root, ["load", "-i", bigArchive]);
    expect(again.stdout).toBe("Loaded image: big:1\n");
  });

  it("twenty racing `tag` processes lose no tag", async () => {
    const runs = Array.from({ length: 20 }, (_, i) => strata(root, ["tag", "base:1", `race:${i}`]));
    const results = await Promise.all(runs);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const tags = (await strata(root, ["images", "--format", "{{.Tag}}", "race"])).stdout
      .split("\n")
      .filter(Boolean);
    expect(tags.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `race:${i}`.slice(5)).sort());
    const idx = JSON.parse(readFileSync(path.join(root, "index.json"), "utf8"));
    expect(
      idx.manifests.filter((m: { annotations: Record<string, string> }) =>
        m.annotations["org.opencontainers.image.ref.name"].includes("/race:"),
      ),
    ).toHaveLength(20);
  });

  it("two processes loading the same archive at once both succeed with one good copy", async () => {
    const fresh = path.join(t.dir, "fresh");
    const [a, b] = await Promise.all([
      strata(fresh, ["load", "-i", bigArchive]),
      strata(fresh, ["load", "-i", bigArchive]),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const ids = (await strata(fresh, ["images", "-q", "--no-trunc"])).stdout.trim().split("\n");
    expect(ids).toHaveLength(1);
    expect(readdirSync(path.join(fresh, "ingest"))).toEqual([]);
  });
});
