import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, strataBytes, tempDir } from "../helpers/cli.js";
import { busyboxRootfs } from "../helpers/fixtures.js";

describe("save/load streams and import sources", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  let id: string;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    const r = await strata(root, ["import", "-c", 'CMD ["sh"]', busyboxRootfs(), "rt/base:1"]);
    expect(r.code, r.stderr).toBe(0);
    id = r.stdout.trim();
    server = createServer((req, res) => {
      if (req.url === "/rootfs.tar.gz") {
        res.writeHead(200);
        res.end(gzipSync(readFileSync(busyboxRootfs())));
      } else if (req.url === "/redirect") {
        res.writeHead(302, { location: "/rootfs.tar.gz" });
        res.end();
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const addr = server.address() as { port: number };
    url = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    t.cleanup();
  });

  it("save to stdout and load from stdin (plain and gzip) keep the image ID and tags", async () => {
    const saved = await strataBytes(root, ["save", "rt/base:1"]);
    expect(saved.code, saved.stderr).toBe(0);
    expect(saved.stdout.length).toBeGreaterThan(1_000_000);
    for (const input of [saved.stdout, gzipSync(saved.stdout)]) {
      const other = path.join(t.dir, `s-${input.length}`);
      const r = await strata(other, ["load"], { input });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe("Loaded image: rt/base:1\n");
      expect((await strata(other, ["images", "-q", "--no-trunc"])).stdout).toBe(`${id}\n`);
    }
  });

  it("save of several images writes shared layers once; load -q still names what it loaded", async () => {
    expect((await strata(root, ["tag", "rt/base:1", "rt/other:2"])).code).toBe(0);
    const saved = await strataBytes(root, ["save", "rt/base:1", "rt/other:2", id.slice(7, 19)]);
    expect(saved.code).toBe(0);
    const single = await strataBytes(root, ["save", "rt/base:1"]);
    // The second name adds only index entries, not another copy of the layer.
    expect(saved.stdout.length - single.stdout.length).toBeLessThan(10_000);
    const other = path.join(t.dir, "multi");
    const r = await strata(other, ["load", "-q"], { input: saved.stdout });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean).sort()).toEqual([
      "Loaded image: rt/base:1",
      "Loaded image: rt/other:2",
    ]);
    const names = (await strata(other, ["images", "--format", "{{.Repository}}:{{.Tag}}"])).stdout
      .split("\n")
      .filter(Boolean)
      .sort();
    expect(names).toEqual(["rt/base:1", "rt/other:2"]);
  });

  it("save -o writes a file that loads back", async () => {
    const out = path.join(t.dir, "o.tar");
    expect((await strata(root, ["save", "-o", out, "rt/base:1"])).code).toBe(0);
    const again = await strata(path.join(t.dir, "fromfile"), ["load", "-i", out]);
    expect(again.stdout).toBe("Loaded image: rt/base:1\n");
  });

  it("import from stdin and from a URL (gzip, redirect) gives the same layer as the file", async () => {
    const fromFile = JSON.parse((await strata(root, ["inspect", "rt/base:1"])).stdout)[0].RootFS.Layers;
    const stdin = await strata(root, ["import", "-", "rt/stdin:1"], { input: readFileSync(busyboxRootfs()) });
    expect(stdin.code, stdin.stderr).toBe(0);
    const viaUrl = await strata(root, ["import", `${url}/redirect`, "rt/url:1"]);
    expect(viaUrl.code, viaUrl.stderr).toBe(0);
    for (const name of ["rt/stdin:1", "rt/url:1"]) {
      const img = JSON.parse((await strata(root, ["inspect", name])).stdout)[0];
      expect(img.RootFS.Layers).toEqual(fromFile);
    }
    const urlImg = JSON.parse((await strata(root, ["inspect", "rt/url:1"])).stdout)[0];
    expect(urlImg.Comment).toBe(`Imported from ${url}/redirect`);
    const missing = await strata(root, ["import", `${url}/nope`, "rt/nope:1"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/unexpected status 404/);
  });

  it("a load moves a tag from an older image and says so", async () => {
    const other = path.join(t.dir, "retag");
    expect((await strata(other, ["import", "-m", "older", busyboxRootfs(), "rt/base:1"])).code).toBe(0);
    const saved = await strataBytes(root, ["save", "rt/base:1"]);
    const r = await strata(other, ["load"], { input: saved.stdout });
    expect(r.stdout).toMatch(
      /^The image rt\/base:1 already exists, renaming the old one with ID sha256:[a-f0-9]{64} to empty string\nLoaded image: rt\/base:1\n$/,
    );
    expect((await strata(other, ["images", "-q", "-f", "dangling=true"])).stdout).not.toBe("");
  });
});
