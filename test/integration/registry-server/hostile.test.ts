/**
 * Hostile input against a real server: oversized and malformed manifests, digest mismatch,
 * wrong Content-Length, names with `..`, slow headers. Every case gets a clear status and
 * leaves nothing behind in the blob store.
 */
import { readdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blob, makeImage, OCI_MANIFEST, pushBlob, pushImage, sha256 } from "../../helpers/registry-images.js";
import { errorCodes, type RegistryProcess, request, startStrata } from "../../helpers/registry-servers.js";

/** Every blob file in the store. */
function blobFiles(root: string): string[] {
  const out: string[] = [];
  const base = path.join(root, "blobs/sha256");
  let prefixes: string[] = [];
  try {
    prefixes = readdirSync(base);
  } catch {
    return out;
  }
  for (const p of prefixes) for (const f of readdirSync(path.join(base, p))) out.push(f);
  return out.sort();
}

/** Send raw bytes on a socket and collect everything until the server closes it. */
function raw(
  port: number,
  chunks: (string | Buffer)[],
  delayMs = 0,
  endAfter = false,
): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const s = net.connect(port, "127.0.0.1");
    let text = "";
    s.on("data", (d) => {
      text += d.toString();
    });
    s.on("close", () => resolve({ text, closedAfterMs: Date.now() - start }));
    s.on("error", reject);
    s.setTimeout(20_000, () => s.destroy(new Error("socket stayed open")));
    (async () => {
      for (const c of chunks) {
        if (s.destroyed) return;
        s.write(c);
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      }
      if (endAfter) s.end();
    })().catch(reject);
  });
}

describe("hostile input", () => {
  let reg: RegistryProcess;
  let port: number;
  const repo = "hostile/app";

  beforeAll(async () => {
    reg = await startStrata({
      config: { limits: { maxManifestSize: 64 * 1024, headersTimeoutMs: 1000 } },
    });
    port = Number(new URL(reg.url).port);
    await pushImage(reg.url, repo, "base", await makeImage());
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("an oversized manifest is 413 by its Content-Length and stores nothing", async () => {
    const before = blobFiles(reg.root);
    const big = Buffer.alloc(65 * 1024, 0x20);
    const r = await request("PUT", `${reg.url}/v2/${repo}/manifests/big`, {
      headers: { "Content-Type": OCI_MANIFEST },
      body: big,
    });
    expect(r.status).toBe(413);
    expect(errorCodes(r)).toEqual(["SIZE_INVALID"]);
    expect(blobFiles(reg.root)).toEqual(before);
  });

  it("an oversized manifest sent chunked (no Content-Length) is 413 too", async () => {
    const body = Buffer.alloc(70 * 1024, 0x20).toString();
    const res = await raw(port, [
      `PUT /v2/${repo}/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Type: ${OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
      `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    ]);
    expect(res.text).toMatch(/^HTTP\/1\.1 413/);
    expect((await request("GET", `${reg.url}/v2/${repo}/manifests/big`)).status).toBe(404);
  });

  it.each([
    ["schemaVersion 1", { schemaVersion: 1, name: "x", tag: "y", fsLayers: [] }],
    ["layers not a list", { schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: "no" }],
    [
      "a descriptor with a bad digest",
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: "application/vnd.oci.image.config.v1+json",
          digest: "sha256:../../etc",
          size: 1,
        },
        layers: [],
      },
    ],
    ["a JSON array", []],
    [
      "a negative size",
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "a/b", digest: sha256("x"), size: -1 },
        layers: [],
      },
    ],
  ])("a malformed manifest (%s) is 400 MANIFEST_INVALID", async (_what, doc) => {
    const r = await request("PUT", `${reg.url}/v2/${repo}/manifests/bad`, {
      headers: { "Content-Type": OCI_MANIFEST },
      body: JSON.stringify(doc),
    });
    expect(r.status).toBe(400);
    expect(errorCodes(r)).toEqual(["MANIFEST_INVALID"]);
  });

  it("a descriptor whose size lies about the blob is rejected", async () => {
    const im = await makeImage();
    for (const b of [im.config, ...im.layers]) await pushBlob(reg.url, repo, b);
    const doc = JSON.parse(im.manifest.toString()) as { layers: { size: number }[] };
    doc.layers[0]!.size += 1;
    const r = await request("PUT", `${reg.url}/v2/${repo}/manifests/liar`, {
      headers: { "Content-Type": OCI_MANIFEST },
      body: JSON.stringify(doc),
    });
    expect(r.status).toBe(400);
  });

  it("a body shorter than its Content-Length leaves the session where it was", async () => {
    const post = await request("POST", `${reg.url}/v2/${repo}/blobs/uploads/`);
    const loc = new URL(post.header("location")!, reg.url);
    await raw(
      port,
      [
        `PATCH ${loc.pathname} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n`,
        "only-twenty-bytes...",
      ],
      0,
      true,
    ).catch(() => undefined);
    // The client closed its side after sending half; wait for the server to notice.
    await new Promise((r) => setTimeout(r, 300));
    const st = await request("GET", loc.toString());
    expect(st.status).toBe(204);
    expect(st.header("range")).toBe("0-0");
  }, 30_000);

  it("a Content-Length larger than Content-Range's span is 416 and stores nothing", async () => {
    const before = blobFiles(reg.root);
    const post = await request("POST", `${reg.url}/v2/${repo}/blobs/uploads/`);
    const loc = new URL(post.header("location")!, reg.url).toString();
    const r = await request("PATCH", loc, { headers: { "Content-Range": "0-3" }, body: "0123456789" });
    expect(r.status).toBe(416);
    expect(blobFiles(reg.root)).toEqual(before);
  });

  it("a PUT whose digest does not match stores nothing and cancels the session", async () => {
    const before = blobFiles(reg.root);
    const post = await request("POST", `${reg.url}/v2/${repo}/blobs/uploads/`);
    const loc = new URL(post.header("location")!, reg.url);
    loc.searchParams.set("digest", sha256("something else"));
    const r = await request("PUT", loc.toString(), { body: "payload" });
    expect(r.status).toBe(400);
    expect(blobFiles(reg.root)).toEqual(before);
    loc.search = "";
    expect((await request("GET", loc.toString())).status).toBe(404);
  });

  it.each([
    ["..", `/v2/hostile/../../../etc/tags/list`],
    ["%2e%2e", `/v2/hostile/%2e%2e/%2e%2e/etc/tags/list`],
    ["a leading slash", `/v2//etc/tags/list`],
    ["upper case", `/v2/Hostile/App/tags/list`],
    ["a 300-character name", `/v2/${"a".repeat(300)}/tags/list`],
  ])("a repository name with %s is 400 NAME_INVALID", async (_what, p) => {
    const res = await raw(port, [`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    expect(res.text).toMatch(/^HTTP\/1\.1 400/);
    expect(res.text).toContain("NAME_INVALID");
  });

  it("a tag with path characters cannot be written", async () => {
    const res = await raw(port, [
      `PUT /v2/${repo}/manifests/..%2f..%2fx HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    ]);
    expect(res.text).toMatch(/^HTTP\/1\.1 400/);
    expect(res.text).toContain("TAG_INVALID");
  });

  it("a client that sends headers slowly is cut off after the headers timeout", async () => {
    const lines = [
      "GET /v2/ HTTP/1.1\r\n",
      "Host: x\r\n",
      ...Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: y\r\n`),
    ];
    const res = await raw(port, lines, 200);
    // 42 lines at 200 ms would take 8 s; the server closes after ~1 s (+ its check interval).
    expect(res.closedAfterMs).toBeLessThan(4000);
    expect(res.text).toMatch(/^(HTTP\/1\.1 408|)/);
  }, 30_000);

  it("a huge request header is refused (431) without killing the server", async () => {
    const res = await raw(port, [
      `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\nConnection: close\r\n\r\n`,
    ]);
    expect(res.text).toMatch(/^HTTP\/1\.1 (431|400)/);
    expect((await request("GET", `${reg.url}/v2/`)).status).toBe(200);
  });

  it("a blob pushed to one repository cannot be read from another, even by digest", async () => {
    const b = blob("confined blob");
    await pushBlob(reg.url, repo, b);
    expect((await request("GET", `${reg.url}/v2/hostile/other/blobs/${b.digest}`)).status).toBe(404);
  });
});
