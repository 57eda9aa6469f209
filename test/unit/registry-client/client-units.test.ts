/**
 * The registry client's local parts: the parallel gzip (read back by zlib and by gzip(1)),
 * WWW-Authenticate parsing, insecure-registry matching, Docker's config.json with a real
 * file, Docker Hub naming, and Docker's progress rendering.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { goDurationSeconds, JsonMessageRenderer, progressString } from "../../../src/cli/jsonmessage.js";
import { loginServer, splitSearchTerm } from "../../../src/engine/index.js";
import {
  convertToHostname,
  credentialsKey,
  DeflatePool,
  DockerConfig,
  isInsecureRegistry,
  parallelGzip,
  parseChallenges,
  RegistryClient,
  resolveOptions,
  Transport,
} from "../../../src/registry/client/index.js";

async function gzipAll(
  data: Buffer,
  opts: Parameters<typeof parallelGzip>[0] = {},
  pieces = 7,
): Promise<Buffer> {
  const out: Buffer[] = [];
  const step = Math.max(1, Math.ceil(data.length / pieces));
  const chunks = Array.from({ length: Math.ceil(data.length / step) }, (_, i) =>
    data.subarray(i * step, (i + 1) * step),
  );
  await pipeline(
    Readable.from(chunks),
    parallelGzip(opts),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

const text = (n: number) => {
  const words = ["const", "layer", "digest", "manifest", "function", "return", "image", "blob", "\n"];
  let s = "";
  for (let i = 0; s.length < n; i++) s += `${words[(i * 7) % words.length]} ${i % 97} `;
  return Buffer.from(s.slice(0, n));
};

describe("ParallelGzip", () => {
  const pool = new DeflatePool(2);
  afterAll(() => pool.close());
  const cases: [string, Buffer][] = [
    ["empty", Buffer.alloc(0)],
    ["tiny", Buffer.from("hello")],
    ["text, not a whole block", text(300_000)],
    ["exactly two blocks of text", text(2 << 20)],
    ["random (stored)", randomBytes(3 << 20)],
    [
      "text and random mixed in 40 KiB runs",
      Buffer.concat(Array.from({ length: 60 }, (_, i) => (i % 2 ? randomBytes(40_000) : text(40_000)))),
    ],
  ];
  for (const [name, data] of cases) {
    for (const withPool of [false, true]) {
      it(`${name}${withPool ? " (worker pool)" : ""}: gunzip gives the input back`, async () => {
        const gz = await gzipAll(data, withPool ? { pool } : {});
        expect(gz.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
        expect(gunzipSync(gz).equals(data)).toBe(true);
      });
    }
  }

  it("is deterministic, reads back with gzip(1), stores random data and compresses text", async () => {
    const data = Buffer.concat([text(1_500_000), randomBytes(1_500_000)]);
    const a = await gzipAll(data, {}, 3);
    const b = await gzipAll(data, { pool }, 11);
    expect(a.equals(b)).toBe(true);
    const dir = mkdtempSync(path.join(os.tmpdir(), "pgz-"));
    writeFileSync(path.join(dir, "x.gz"), a);
    expect(execFileSync("gzip", ["-dc", path.join(dir, "x.gz")], { maxBuffer: 64 << 20 }).equals(data)).toBe(
      true,
    );
    rmSync(dir, { recursive: true, force: true });
    // The random half costs at most its size plus stored-block headers; the text half shrinks.
    expect(a.length).toBeLessThan(1_500_000 + 1_500_000 * 0.3);
    const randomOnly = await gzipAll(randomBytes(2 << 20));
    expect(randomOnly.length).toBeLessThan((2 << 20) + 2048);
  });
});

describe("WWW-Authenticate", () => {
  it("parses Docker Hub's bearer challenge, Basic, several in one header, quoted commas", () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/ubuntu:pull",
        },
      },
    ]);
    expect(
      parseChallenges(['Basic realm="a, \\"b\\""', 'Bearer realm="r",error="insufficient_scope"']),
    ).toEqual([
      { scheme: "basic", params: { realm: 'a, "b"' } },
      { scheme: "bearer", params: { realm: "r", error: "insufficient_scope" } },
    ]);
    expect(parseChallenges('Basic realm="x", Bearer realm="y"').map((c) => c.scheme)).toEqual([
      "basic",
      "bearer",
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });
});

describe("insecure registries and Docker Hub names", () => {
  it("loopback is always insecure; others by host, host:port or IPv4 CIDR", () => {
    expect(isInsecureRegistry("localhost:5000", [])).toBe(true);
    expect(isInsecureRegistry("127.0.0.9:443", [])).toBe(true);
    expect(isInsecureRegistry("[::1]:5000", [])).toBe(true);
    expect(isInsecureRegistry("registry.example.com", [])).toBe(false);
    expect(isInsecureRegistry("registry.example.com:5000", ["registry.example.com:5000"])).toBe(true);
    expect(isInsecureRegistry("registry.example.com:5000", ["registry.example.com"])).toBe(true);
    expect(isInsecureRegistry("10.1.2.3:5000", ["10.0.0.0/8"])).toBe(true);
    expect(isInsecureRegistry("11.1.2.3:5000", ["10.0.0.0/8"])).toBe(false);
  });

  it("docker.io is reached at registry-1.docker.io, keyed as index.docker.io/v1/, searched at index.docker.io", async () => {
    const client = new RegistryClient(new Transport(resolveOptions()), resolveOptions(), "docker.io");
    expect(client.host).toBe("registry-1.docker.io");
    expect(credentialsKey("docker.io")).toBe("https://index.docker.io/v1/");
    expect(credentialsKey("index.docker.io")).toBe("https://index.docker.io/v1/");
    expect(credentialsKey("ghcr.io")).toBe("ghcr.io");
    expect(convertToHostname("https://registry.example.com:5000/v2/")).toBe("registry.example.com:5000");
    expect(await loginServer(undefined)).toEqual({ key: "https://index.docker.io/v1/", domain: "docker.io" });
    expect(await loginServer("https://index.docker.io/v1/")).toEqual({
      key: "https://index.docker.io/v1/",
      domain: "docker.io",
    });
    expect(await loginServer("http://localhost:5000")).toEqual({
      key: "localhost:5000",
      domain: "localhost:5000",
    });
    expect(splitSearchTerm("nginx")).toEqual({ index: "docker.io", remote: "nginx" });
    expect(splitSearchTerm("user/app")).toEqual({ index: "docker.io", remote: "user/app" });
    expect(splitSearchTerm("localhost:5000/app")).toEqual({ index: "localhost:5000", remote: "app" });
    expect(splitSearchTerm("index.docker.io/library/nginx")).toEqual({
      index: "docker.io",
      remote: "library/nginx",
    });
  });

  it("resolveOptions has Docker's defaults", () => {
    const o = resolveOptions();
    expect(o.maxConcurrentDownloads).toBe(3);
    expect(o.maxConcurrentUploads).toBe(5);
    expect(o.certsDir).toBe("/etc/docker/certs.d");
    expect(() => resolveOptions({ maxConcurrentUploads: 0 })).toThrow(/positive integer/);
  });
});

describe("Docker's config.json", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "dockercfg-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("stores base64 user:password with tabs and mode 0600, keeps unknown fields, finds legacy keys", async () => {
    writeFileSync(path.join(dir, "config.json"), JSON.stringify({ psFormat: "table {{.ID}}", auths: {} }));
    const cfg = new DockerConfig(dir);
    expect(await cfg.store("registry.example.com", { username: "u", password: "p:w" })).toEqual({
      file: path.join(dir, "config.json"),
    });
    const text = readFileSync(path.join(dir, "config.json"), "utf8");
    expect(JSON.parse(text)).toEqual({
      psFormat: "table {{.ID}}",
      auths: { "registry.example.com": { auth: Buffer.from("u:p:w").toString("base64") } },
    });
    expect(text).toContain('\n\t"auths": {');
    expect(statSync(path.join(dir, "config.json")).mode & 0o777).toBe(0o600);
    expect(await cfg.get("registry.example.com")).toEqual({ username: "u", password: "p:w" });
    writeFileSync(
      path.join(dir, "config.json"),
      JSON.stringify({
        auths: {
          "https://old.example.com/v1/": {
            auth: Buffer.from("a:b").toString("base64"),
            identitytoken: "tok",
          },
        },
      }),
    );
    expect(await cfg.get("old.example.com")).toEqual({ username: "a", password: "b", identityToken: "tok" });
    expect(await cfg.erase("old.example.com")).toBe(true);
    expect(await cfg.erase("old.example.com")).toBe(false);
  });

  it("a broken file is a clear credentials error", async () => {
    writeFileSync(path.join(dir, "config.json"), "{nope");
    await expect(new DockerConfig(dir).get("x")).rejects.toThrow(/config\.json: invalid JSON/);
  });
});

describe("Docker's progress display", () => {
  const capture = (isTerminal: boolean, width = 120) => {
    let s = "";
    const out = {
      write: (c: string) => {
        s += c;
        return true;
      },
    } as unknown as NodeJS.WritableStream;
    return { r: new JsonMessageRenderer(out, { isTerminal, width }), text: () => s };
  };

  it("formats bars like JSONProgress.String()", () => {
    // 41% is 20 of the bar's 50 cells.
    expect(progressString({ current: 12_345_678, total: 30_100_000 }, 120, 0)).toBe(
      `[${"=".repeat(20)}>${" ".repeat(30)}]  12.35MB/30.1MB`,
    );
    expect(progressString({ current: 5_000, total: 10_000 }, 80, 0)).toBe("     5kB/10kB");
    expect(progressString({ current: 1_000_000 }, 120, 0)).toBe("     1MB");
    expect(progressString({}, 120)).toBe("");
    expect(progressString({ current: 1_000_000, total: 4_000_000, start: 100 }, 120, 110_000)).toBe(
      `[${"=".repeat(12)}>${" ".repeat(38)}]      1MB/4MB 30s`,
    );
    expect(goDurationSeconds(3725)).toBe("1h2m5s");
  });

  it("plain lines without a terminal: statuses shown, byte counters left out", () => {
    const { r, text } = capture(false);
    r.write({ id: "latest", status: "Pulling from library/busybox" });
    r.write({ id: "abc", status: "Pulling fs layer", progress: {} });
    r.write({ id: "abc", status: "Downloading", progress: { current: 10, total: 100 } });
    r.write({ id: "abc", status: "Pull complete", progress: {} });
    r.write({ status: "Digest: sha256:x" });
    expect(text()).toBe(
      "latest: Pulling from library/busybox\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:x\n",
    );
  });

  it("on a terminal each layer owns a line, redrawn in place", () => {
    const { r, text } = capture(true);
    r.write({ id: "a", status: "Pulling fs layer", progress: {} });
    r.write({ id: "b", status: "Pulling fs layer", progress: {} });
    r.write({ id: "a", status: "Downloading", progress: { current: 50, total: 100 } });
    expect(text()).toBe(
      "\n\x1b[1A\x1b[2K\ra: Pulling fs layer \r\x1b[1B" +
        "\n\x1b[1A\x1b[2K\rb: Pulling fs layer \r\x1b[1B" +
        "\x1b[2A\x1b[2K\ra: Downloading [=========================>                         ]      50B/100B\r\x1b[2B",
    );
  });
});
