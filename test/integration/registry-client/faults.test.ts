/**
 * Faults with real servers. A FAULT-INJECTING TEST PROXY (test/helpers/registry-client.ts)
 * sits in front of a real CNCF distribution registry and throttles, corrupts, fails or
 * redirects chosen responses; the registry itself is killed and restarted; Strata's registry
 * serves an oversized manifest. Every failure must leave the store as it was.
 */
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import {
  type ClientEnv,
  clientEnv,
  type Distribution,
  type FaultProxy,
  htpasswdFile,
  ingestFiles,
  startDistribution,
  startFaultProxy,
  startHeaderRecorder,
  storeBlobs,
  tarOf,
  tmp,
} from "../../helpers/registry-client.js";
import { makeImage, pushImage } from "../../helpers/registry-images.js";
import { basic, request } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["docker-registry", "htpasswd"] });

interface Manifest {
  config: { digest: string };
  layers: { digest: string; size: number }[];
}

async function manifestOf(
  url: string,
  repo: string,
  tag: string,
  headers: Record<string, string> = {},
): Promise<Manifest> {
  const r = await request("GET", `${url}/v2/${repo}/manifests/${tag}`, {
    headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json", ...headers },
  });
  return r.json<Manifest>();
}

describe.skipIf(!need.ok)("faults during pull (CNCF distribution behind a fault-injecting proxy)", () => {
  let reg: Distribution;
  let proxy: FaultProxy;
  let env: ClientEnv;
  let dir: string;
  let bigId: string;
  let bigLayer: { digest: string; size: number };
  let smallLayer: { digest: string; size: number };
  const blobPath = (repo: string, d: string) => `/v2/${repo}/blobs/${d}`;

  beforeAll(async () => {
    dir = tmp("faults");
    reg = await startDistribution();
    proxy = await startFaultProxy(reg.url);
    env = clientEnv();
    const src = path.join(dir, "src");
    // 6 MiB of random bytes: gzip cannot shrink them, so a throttled download takes seconds.
    const bigTar = path.join(dir, "big.tar");
    writeFileSync(bigTar, await tarOf({ "big.bin": randomBytes(6 * 1024 * 1024) }));
    const big = await strata(src, ["import", bigTar, `${reg.host}/f/big:1`], { env: env.env });
    bigId = big.stdout.trim();
    expect((await strata(src, ["push", `${reg.host}/f/big:1`], { env: env.env })).code).toBe(0);
    expect(
      (await strata(src, ["import", busyboxRootfs(), `${reg.host}/f/small:1`], { env: env.env })).code,
    ).toBe(0);
    expect((await strata(src, ["push", `${reg.host}/f/small:1`], { env: env.env })).code).toBe(0);
    bigLayer = (await manifestOf(reg.url, "f/big", "1")).layers[0]!;
    smallLayer = (await manifestOf(reg.url, "f/small", "1")).layers[0]!;
  });
  afterAll(async () => {
    await proxy?.close();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  async function waitForBytes(p: string, n: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    while ((proxy.sent.get(p) ?? 0) < n) {
      if (Date.now() > deadline) throw new Error(`proxy sent only ${proxy.sent.get(p) ?? 0} bytes of ${p}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("a registry killed mid-pull and restarted: the download resumes with Range and the image verifies", async () => {
    const p = blobPath("f/big", bigLayer.digest);
    proxy.sent.clear();
    proxy.rule = (r) =>
      r.url.startsWith(p) ? { kind: "pass", throttleBytesPerSec: 2 * 1024 * 1024 } : { kind: "pass" };
    const root = path.join(dir, "resume");
    const pull = strata(root, ["pull", `${proxy.host}/f/big:1`], { env: env.env });
    await waitForBytes(p, 1024 * 1024);
    await reg.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await reg.restart();
    const r = await pull;
    proxy.rule = () => ({ kind: "pass" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${bigLayer.digest.slice(7, 19)}: Retrying in \\d+ seconds?`));
    const ranged = proxy.requests.filter((q) => q.url.startsWith(p) && q.headers.range);
    expect(ranged.length).toBeGreaterThan(0);
    expect(Number(/^bytes=(\d+)-$/.exec(ranged[0]!.headers.range as string)![1])).toBeGreaterThan(0);
    const id = (
      await strata(root, ["inspect", "--format", "{{.Id}}", `${proxy.host}/f/big:1`])
    ).stdout.trim();
    expect(id).toBe(bigId);
  });

  it("a registry killed for good mid-pull: a clear error after bounded retries, the store as it was", async () => {
    const p = blobPath("f/big", bigLayer.digest);
    proxy.sent.clear();
    proxy.rule = (r) =>
      r.url.startsWith(p) ? { kind: "pass", throttleBytesPerSec: 2 * 1024 * 1024 } : { kind: "pass" };
    const root = path.join(dir, "dead");
    const started = Date.now();
    const pull = strata(root, ["pull", `${proxy.host}/f/big:1`], { env: env.env });
    await waitForBytes(p, 512 * 1024);
    await reg.kill();
    const r = await pull;
    const took = Date.now() - started;
    await reg.restart();
    proxy.rule = () => ({ kind: "pass" });
    expect(r.code).toBe(1);
    // The proxy answers 502 once the registry is gone: retried, then reported.
    expect(r.stderr).toMatch(
      /^Error: (Get|GET) "http:\/\/127\.0\.0\.1:\d+\/v2\/f\/big\/blobs\/sha256:[0-9a-f]{64}": /,
    );
    expect(took).toBeLessThan(45_000);
    expect(await storeBlobs(root)).toEqual([]);
    expect(await ingestFiles(root)).toEqual([]);
    expect((await strata(root, ["images", "-q"], { env: env.env })).stdout).toBe("");
  });

  it("a blob served with wrong content: digest mismatch, nothing stored", async () => {
    const p = blobPath("f/small", smallLayer.digest);
    proxy.rule = (r) =>
      r.url.startsWith(p) && r.method === "GET" ? { kind: "pass", corrupt: true } : { kind: "pass" };
    const root = path.join(dir, "corrupt");
    const r = await strata(root, ["pull", `${proxy.host}/f/small:1`], { env: env.env });
    proxy.rule = () => ({ kind: "pass" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^Error: blob ${smallLayer.digest}: digest mismatch: got sha256:[0-9a-f]{64}\\n$`),
    );
    expect(await storeBlobs(root)).toEqual([]);
    expect(await ingestFiles(root)).toEqual([]);
  });

  it("503 and 429 answers are retried with backoff, honouring Retry-After", async () => {
    const p = blobPath("f/small", smallLayer.digest);
    let blobGets = 0;
    let manifestGets = 0;
    proxy.rule = (r) => {
      if (r.url.startsWith(p) && r.method === "GET" && ++blobGets <= 2)
        return { kind: "respond", status: 503, headers: { "Retry-After": "1" }, body: "try later" };
      if (r.url.startsWith("/v2/f/small/manifests/") && r.method === "GET" && ++manifestGets === 1)
        return {
          kind: "respond",
          status: 429,
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "slow down" }] }),
        };
      return { kind: "pass" };
    };
    const started = Date.now();
    const r = await strata(path.join(dir, "retry"), ["pull", `${proxy.host}/f/small:1`], { env: env.env });
    proxy.rule = () => ({ kind: "pass" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(blobGets).toBe(3);
    expect(r.stdout).toMatch(/Retrying .* in 1 second: .*503/);
    expect(r.stdout).toMatch(/Retrying .* toomanyrequests: slow down/);
    expect(Date.now() - started).toBeGreaterThan(2000);
  });

  it("a registry that keeps failing is given up on after a bounded number of tries", async () => {
    let gets = 0;
    proxy.rule = (r) => {
      if (r.url.startsWith("/v2/f/small/manifests/")) {
        gets++;
        return { kind: "respond", status: 500, body: "broken" };
      }
      return { kind: "pass" };
    };
    const r = await strata(path.join(dir, "broken"), ["pull", `${proxy.host}/f/small:1`], { env: env.env });
    proxy.rule = () => ({ kind: "pass" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/500/);
    expect(gets).toBe(6);
  });
});

describe.skipIf(!need.ok)("a redirect to another host (storage backend) gets no credentials", () => {
  let reg: Distribution;
  let proxy: FaultProxy;
  let recorder: Awaited<ReturnType<typeof startHeaderRecorder>>;
  let env: ClientEnv;
  let dir: string;

  beforeAll(async () => {
    dir = tmp("redirect");
    reg = await startDistribution({ htpasswd: htpasswdFile(dir, { dave: "dave-pw" }) });
    proxy = await startFaultProxy(reg.url);
    env = clientEnv();
    const root = path.join(dir, "src");
    expect(
      (await strata(root, ["import", busyboxRootfs(), `${reg.host}/r/busybox:1`], { env: env.env })).code,
    ).toBe(0);
    for (const host of [reg.host, proxy.host])
      expect(
        (
          await strata(root, ["login", host, "-u", "dave", "--password-stdin"], {
            env: env.env,
            input: "dave-pw",
          })
        ).code,
      ).toBe(0);
    expect((await strata(root, ["push", `${reg.host}/r/busybox:1`], { env: env.env })).code).toBe(0);
    const auth = { Authorization: basic("dave", "dave-pw") };
    const m = await manifestOf(reg.url, "r/busybox", "1", auth);
    const blobs = new Map<string, Buffer>();
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)])
      blobs.set(d, (await request("GET", `${reg.url}/v2/r/busybox/blobs/${d}`, { headers: auth })).body);
    recorder = await startHeaderRecorder(blobs);
  });
  afterAll(async () => {
    await recorder?.close();
    await proxy?.close();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("blob GETs redirected to 127.0.0.2 carry no Authorization there; the pull verifies", async () => {
    proxy.rule = (r) => {
      const m = /^\/v2\/r\/busybox\/blobs\/(sha256:[0-9a-f]{64})$/.exec(r.url);
      return m && r.method === "GET"
        ? { kind: "redirect", location: `${recorder.url}/storage/${m[1]}?sig=abc` }
        : { kind: "pass" };
    };
    const root = path.join(dir, "dst");
    const r = await strata(root, ["pull", `${proxy.host}/r/busybox:1`], { env: env.env });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(recorder.requests.length).toBeGreaterThanOrEqual(2);
    for (const q of recorder.requests) {
      expect(q.headers.authorization).toBeUndefined();
      expect(q.url).toMatch(/\?sig=abc$/);
    }
    const toRegistry = proxy.requests.filter((q) => q.url.startsWith("/v2/r/busybox/blobs/"));
    expect(toRegistry.length).toBeGreaterThan(0);
    for (const q of toRegistry) expect(q.headers.authorization).toBe(basic("dave", "dave-pw"));
  });
});

describe.skipIf(!need.ok)("a manifest over the size limit (served by the fault-injecting proxy)", () => {
  let reg: Distribution;
  let proxy: FaultProxy;
  let env: ClientEnv;
  let dir: string;

  beforeAll(async () => {
    dir = tmp("big-manifest");
    reg = await startDistribution();
    proxy = await startFaultProxy(reg.url);
    env = clientEnv();
    // A real image first, so the registry knows the repository.
    await pushImage(reg.url, "huge/manifest", "1", await makeImage());
  });
  afterAll(async () => {
    await proxy?.close();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  for (const chunked of [false, true]) {
    it(`a 5 MiB manifest ${chunked ? "without Content-Length" : "with its Content-Length"} is refused; nothing is stored`, async () => {
      const img = await makeImage({ annotations: { padding: "x".repeat(5 * 1024 * 1024) } });
      proxy.rule = (r) =>
        r.url === "/v2/huge/manifest/manifests/1"
          ? {
              kind: "respond",
              status: 200,
              chunked,
              headers: { "Content-Type": img.mediaType, "Docker-Content-Digest": img.digest },
              body: img.manifest,
            }
          : { kind: "pass" };
      const root = path.join(dir, chunked ? "chunked" : "sized");
      const r = await strata(root, ["pull", `${proxy.host}/huge/manifest:1`], { env: env.env });
      proxy.rule = () => ({ kind: "pass" });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        chunked
          ? /^Error: manifest huge\/manifest:1: larger than the limit of 4194304 bytes\n$/
          : /^Error: manifest huge\/manifest:1 is \d+ bytes, over the limit of 4194304\n$/,
      );
      expect(await storeBlobs(root)).toEqual([]);
    });
  }
});
