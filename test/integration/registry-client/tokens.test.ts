/**
 * Bearer tokens against Strata's registry (its own token service), through the client
 * library in this process so one Client's token cache is observed across requests; the
 * registry's access log counts the token requests it served:
 * - one token per scope set, reused: repository A, then B, then A again asks twice;
 * - a token the client holds past its lifetime is replaced before it is sent (the client's
 *   clock is moved forward: the registry, a separate process, keeps real time);
 * - a token the registry no longer accepts (its signing key changed across a restart) gets a
 *   401 with a fresh challenge: the client fetches one new token and the request succeeds.
 */
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Client, StaticCredentials } from "../../../src/registry/client/index.js";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { clientEnv, htpasswdFile, tmp } from "../../helpers/registry-client.js";
import { type RegistryProcess, startStrata } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["htpasswd"] });

describe.skipIf(!need.ok)("bearer tokens: reuse per scope, refresh on expiry and on rejection", () => {
  let reg: RegistryProcess;
  let dir: string;
  let root: string;
  let config: Record<string, unknown>;
  const tokenRequests = (from: number) =>
    reg
      .logs()
      .slice(from)
      .split("\n")
      .filter((l) => l.includes(' alice "GET /token?'));
  const client = () =>
    new Client({
      credentials: new StaticCredentials({ [reg.host]: { username: "alice", password: "alice-pw" } }),
    });

  beforeAll(async () => {
    dir = tmp("tokens");
    root = path.join(dir, "regroot");
    config = {
      auth: {
        htpasswd: { path: htpasswdFile(dir, { alice: "alice-pw" }) },
        token: { service: "strata-test" },
      },
      access: [{ repositories: ["**"], users: ["alice"], actions: ["pull", "push"] }],
    };
    reg = await startStrata({ root, config });
    const env = clientEnv();
    const store = path.join(dir, "store");
    expect((await strata(store, ["import", busyboxRootfs(), "t/app:1"])).code).toBe(0);
    for (const repo of ["one/app", "two/app"]) {
      expect((await strata(store, ["tag", "t/app:1", `${reg.host}/${repo}:1`])).code).toBe(0);
      expect(
        (
          await strata(store, ["login", reg.host, "-u", "alice", "--password-stdin"], {
            env: env.env,
            input: "alice-pw",
          })
        ).code,
      ).toBe(0);
      expect((await strata(store, ["push", `${reg.host}/${repo}:1`], { env: env.env })).code).toBe(0);
    }
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("one token per scope, reused: A, B, A asks the token service twice", async () => {
    const c = client();
    try {
      const mark = reg.logs().length;
      const r = c.registry(reg.host);
      const one = r.repository("one/app");
      const two = r.repository("two/app");
      expect((await one.headManifest("1"))?.digest).toMatch(/^sha256:/);
      expect((await two.headManifest("1"))?.digest).toMatch(/^sha256:/);
      expect((await one.manifest("1")).raw.length).toBeGreaterThan(0);
      expect((await two.headManifest("1"))?.digest).toMatch(/^sha256:/);
      const asked = tokenRequests(mark).map((l) => decodeURIComponent(l));
      expect(asked).toHaveLength(2);
      expect(asked[0]).toContain("scope=repository:one/app:pull");
      expect(asked[1]).toContain("scope=repository:two/app:pull");
    } finally {
      await c.close();
    }
  });

  it("a token past its lifetime (expires_in 300 s) is replaced before use, then reused (client clock moved forward)", async () => {
    const c = client();
    try {
      const repo = c.registry(reg.host).repository("one/app");
      const mark = reg.logs().length;
      await repo.headManifest("1");
      await repo.headManifest("1");
      expect(tokenRequests(mark)).toHaveLength(1);
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 301_000 });
      await repo.headManifest("1");
      await repo.headManifest("1");
      expect(tokenRequests(mark)).toHaveLength(2);
    } finally {
      await c.close();
    }
  });

  it("a token the registry stops accepting (new signing key after a restart) is replaced after one 401", async () => {
    const c = client();
    try {
      const repo = c.registry(reg.host).repository("one/app");
      expect((await repo.headManifest("1"))?.digest).toMatch(/^sha256:/);
      const host = reg.host;
      await reg.stop();
      const { rmSync } = await import("node:fs");
      rmSync(path.join(root, "token", "signing-key.pem"));
      reg = await startStrata({ root, config, addr: host });
      const mark = reg.logs().length;
      const m = await repo.manifest("1");
      expect(m.digest).toMatch(/^sha256:/);
      const lines = reg.logs().slice(mark).split("\n");
      expect(tokenRequests(mark)).toHaveLength(1);
      // The old token was sent once and refused before the new one was fetched.
      const first401 = lines.findIndex((l) => l.includes("GET /v2/one/app/manifests/1") && / 401 /.test(l));
      expect(first401, lines.join("\n")).toBeGreaterThanOrEqual(0);
      expect(lines.findIndex((l) => l.includes(' alice "GET /token?'))).toBeGreaterThan(first401);
    } finally {
      await c.close();
    }
  });
});
