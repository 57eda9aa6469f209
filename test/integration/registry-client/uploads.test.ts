/**
 * How layers go up, watched through a FAULT-INJECTING TEST PROXY (it only records and, in
 * one test, cuts a connection) in front of real registries: chunked PATCHes with
 * Content-Range that follow each Location, the registry's OCI-Chunk-Min-Length, a
 * monolithic PUT for bytes already compressed, a dropped PATCH resumed from the session's
 * offset, and the download/upload concurrency limits.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import {
  type ClientEnv,
  clientEnv,
  type Distribution,
  dockerArchive,
  type FaultProxy,
  type RecordedRequest,
  startDistribution,
  startFaultProxy,
  tarOf,
  tmp,
} from "../../helpers/registry-client.js";
import { type RegistryProcess, startStrata } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["docker-registry"] });
const MiB = 1024 * 1024;

function patches(reqs: RecordedRequest[], repo: string): RecordedRequest[] {
  return reqs.filter((r) => r.method === "PATCH" && r.url.startsWith(`/v2/${repo}/blobs/uploads/`));
}

function pathOf(location: string, base: string): string {
  const u = new URL(location, base);
  return u.pathname + u.search;
}

describe.skipIf(!need.ok)("uploads", () => {
  let dist: Distribution;
  let distProxy: FaultProxy;
  let strataReg: RegistryProcess;
  let strataProxy: FaultProxy;
  let env: ClientEnv;
  let dir: string;
  let root: string;
  const run = (args: string[], r = root) => strata(r, args, { env: env.env });

  beforeAll(async () => {
    dir = tmp("uploads");
    dist = await startDistribution();
    distProxy = await startFaultProxy(dist.url);
    strataReg = await startStrata({ config: { limits: { chunkMinLength: 12 * MiB } } });
    strataProxy = await startFaultProxy(strataReg.url);
    env = clientEnv();
    root = path.join(dir, "store");
    // 20 MiB that gzip cannot shrink: three chunks of 8 MiB, or two of 12 MiB.
    const big = path.join(dir, "big.tar");
    writeFileSync(big, await tarOf({ "big.bin": randomBytes(20 * MiB) }));
    expect((await run(["import", big, "big:1"])).code).toBe(0);
  });
  afterAll(async () => {
    await distProxy?.close();
    await strataProxy?.close();
    await dist?.stop();
    await strataReg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("a layer compressed on the fly goes up in 8 MiB PATCHes with Content-Range, each to the last Location", async () => {
    expect((await run(["tag", "big:1", `${distProxy.host}/up/big:1`])).code).toBe(0);
    const r = await run(["push", `${distProxy.host}/up/big:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const ps = patches(distProxy.requests, "up/big");
    expect(ps.length).toBe(3);
    let offset = 0;
    for (const p of ps) {
      const m = /^(\d+)-(\d+)$/.exec(p.headers["content-range"] as string)!;
      expect(Number(m[1])).toBe(offset);
      expect(Number(p.headers["content-length"])).toBe(Number(m[2]) - Number(m[1]) + 1);
      offset = Number(m[2]) + 1;
    }
    expect(Number(ps[0]!.headers["content-length"])).toBe(8 * MiB);
    // Every PATCH and the closing PUT go where the previous answer's Location said.
    const session = distProxy.requests.filter(
      (q) => q.url.startsWith("/v2/up/big/blobs/uploads/") && q.method !== "GET" && q.status === 202,
    );
    const chain = distProxy.requests.filter((q) => q.url.startsWith("/v2/up/big/blobs/uploads/"));
    for (let i = 1; i < chain.length; i++) {
      const prev = chain[i - 1]!;
      // A PUT ends a session; its Location names the blob, and a POST starts the next one.
      if (prev.method === "PUT" || chain[i]!.method === "POST") continue;
      expect(chain[i]!.url.split("?")[0]).toBe(
        pathOf(prev.responseHeaders!.location as string, distProxy.url).split("?")[0],
      );
      expect(chain[i]!.url).toContain(
        pathOf(prev.responseHeaders!.location as string, distProxy.url)
          .split("?")[1]!
          .split("&")[0]!,
      );
    }
    expect(session.length).toBeGreaterThanOrEqual(4);
    const put = chain[chain.length - 1]!;
    expect(put.method).toBe("PUT");
    expect(put.url).toMatch(/[?&]digest=sha256%3A[0-9a-f]{64}|[?&]digest=sha256:[0-9a-f]{64}/);
    expect(put.status).toBe(201);
  });

  it("the registry's OCI-Chunk-Min-Length raises the chunk size", async () => {
    expect((await run(["tag", "big:1", `${strataProxy.host}/up/big:1`])).code).toBe(0);
    const r = await run(["push", `${strataProxy.host}/up/big:1`]);
    expect(r.stderr).toBe("");
    const ps = patches(strataProxy.requests, "up/big");
    expect(ps.length).toBe(2);
    expect(Number(ps[0]!.headers["content-length"])).toBe(12 * MiB);
  });

  it("a dropped PATCH is resumed from the offset the session reports", async () => {
    let n = 0;
    distProxy.requests.length = 0;
    distProxy.rule = (q) =>
      q.method === "PATCH" && ++n === 2 ? { kind: "drop", afterBytes: 1 * MiB } : { kind: "pass" };
    expect((await run(["tag", "big:1", `${distProxy.host}/up/dropped:1`])).code).toBe(0);
    // A fresh store: the compressed form is not known yet, so it is compressed and chunked again.
    const fresh = path.join(dir, "fresh");
    const src = path.join(dir, "src.tar");
    writeFileSync(src, await tarOf({ "other.bin": randomBytes(18 * MiB) }));
    expect((await run(["import", src, `${distProxy.host}/up/dropped:1`], fresh)).code).toBe(0);
    const r = await run(["push", `${distProxy.host}/up/dropped:1`], fresh);
    distProxy.rule = () => ({ kind: "pass" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const ps = patches(distProxy.requests, "up/dropped");
    const ranges = ps.map((p) => p.headers["content-range"]);
    // The second chunk was cut, asked about, and sent again.
    expect(ranges[1]).toBe(ranges[2]);
    const status = distProxy.requests.filter(
      (q) => q.method === "GET" && q.url.startsWith("/v2/up/dropped/blobs/uploads/"),
    );
    expect(status.length).toBe(1);
  });

  it("stored compressed bytes go up in one monolithic PUT (no PATCH, no recompression)", async () => {
    // Pull from distribution keeping the compressed blob (Strata's config), push to Strata's registry.
    const keep = clientEnv({ "keep-compressed-layers": true });
    const other = path.join(dir, "other");
    const inOther = (args: string[]) => strata(other, args, { env: keep.env });
    expect((await inOther(["pull", `${dist.host}/up/big:1`])).code).toBe(0);
    expect((await inOther(["tag", `${dist.host}/up/big:1`, `${strataProxy.host}/mono/big:1`])).code).toBe(0);
    strataProxy.requests.length = 0;
    const r = await inOther(["push", `${strataProxy.host}/mono/big:1`]);
    rmSync(keep.dir, { recursive: true, force: true });
    expect(r.stderr).toBe("");
    expect(patches(strataProxy.requests, "mono/big")).toEqual([]);
    const puts = strataProxy.requests.filter(
      (q) => q.method === "PUT" && q.url.startsWith("/v2/mono/big/blobs/uploads/"),
    );
    expect(puts.map((p) => Number(p.headers["content-length"])).sort((a, b) => b - a)[0]).toBeGreaterThan(
      20 * MiB,
    );
  });

  it("concurrency: with one slot the other layers wait (flag and Strata's config)", async () => {
    const layers = await Promise.all(
      [1, 2, 3].map((i) => tarOf({ [`l${i}.txt`]: `layer ${i} ${randomBytes(8).toString("hex")}` })),
    );
    const base = readFileSync(busyboxRootfs());
    const { archive } = await dockerArchive([base, ...layers], { tag: `${dist.host}/up/many:1` });
    const file = path.join(dir, "many.tar");
    writeFileSync(file, archive);
    const src = path.join(dir, "many");
    expect((await run(["load", "-i", file], src)).code).toBe(0);
    const push = await run(["push", "--max-concurrent-uploads", "1", `${dist.host}/up/many:1`], src);
    expect(push.stderr).toBe("");
    expect(push.stdout.split("\n").filter((l) => l.endsWith(": Waiting"))).toHaveLength(3);
    const cfgEnv = clientEnv({ "max-concurrent-downloads": 1 });
    const pull = await strata(path.join(dir, "many-pull"), ["pull", `${dist.host}/up/many:1`], {
      env: cfgEnv.env,
    });
    expect(pull.stderr).toBe("");
    expect(pull.stdout.split("\n").filter((l) => l.endsWith(": Waiting"))).toHaveLength(3);
    // Docker's default: three downloads at once, so the fourth layer waits.
    const dflt = await run(["pull", `${dist.host}/up/many:1`], path.join(dir, "many-default"));
    expect(dflt.stdout.split("\n").filter((l) => l.endsWith(": Waiting"))).toHaveLength(1);
    const wide = await run(
      ["pull", "--max-concurrent-downloads", "4", `${dist.host}/up/many:1`],
      path.join(dir, "many-wide"),
    );
    expect(wide.stdout).not.toContain("Waiting");
    rmSync(cfgEnv.dir, { recursive: true, force: true });
  });
});
