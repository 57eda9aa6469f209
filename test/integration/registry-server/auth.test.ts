/**
 * Auth and access against a real server process: htpasswd Basic auth, the built-in token
 * service, trust of an external token service, access rules (users, groups, patterns,
 * anonymous pull), 401 vs 403, catalog filtering and failed-login rate limiting.
 */
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { decodeJwt, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blob, makeImage, pushBlob, pushImage } from "../../helpers/registry-images.js";
import {
  basic,
  errorCodes,
  haveTool,
  type RegistryProcess,
  request,
  startStrata,
  tempDir,
  writeHtpasswd,
} from "../../helpers/registry-servers.js";

const hasHtpasswd = haveTool("htpasswd");

const rules = {
  groups: { devs: ["bob"] },
  access: [
    { repositories: ["**"], users: ["alice"], actions: ["pull", "push", "delete"] },
    { repositories: ["team/**"], groups: ["devs"], actions: ["pull"] },
    { repositories: ["team/bob/**"], users: ["bob"], actions: ["pull", "push"] },
  ],
  anonymous: { pull: ["public/**"] },
};

describe.skipIf(!hasHtpasswd)("htpasswd Basic auth and access rules", () => {
  let reg: RegistryProcess;
  const alice = { Authorization: basic("alice", "alice-secret") };
  const bob = { Authorization: basic("bob", "bob-secret") };

  beforeAll(async () => {
    const dir = tempDir("auth");
    const file = path.join(dir, "htpasswd");
    writeHtpasswd(file, { alice: "alice-secret", bob: "bob-secret" });
    reg = await startStrata({
      config: { auth: { htpasswd: { path: file, realm: "test-realm" } }, ...rules },
    });
    await pushImage(reg.url, "team/app", "v1", await makeImage(), alice);
    await pushImage(reg.url, "public/tool", "latest", await makeImage(), alice);
    await pushImage(reg.url, "private/secret", "v1", await makeImage(), alice);
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("/v2/ without credentials is 401 with a Basic challenge; with them 200", async () => {
    const anon = await request("GET", `${reg.url}/v2/`);
    expect(anon.status).toBe(401);
    expect(anon.header("www-authenticate")).toBe('Basic realm="test-realm"');
    expect(errorCodes(anon)).toEqual(["UNAUTHORIZED"]);
    expect((await request("GET", `${reg.url}/v2/`, { headers: alice })).status).toBe(200);
  });

  it("a wrong password is 401", async () => {
    const r = await request("GET", `${reg.url}/v2/`, { headers: { Authorization: basic("alice", "nope") } });
    expect(r.status).toBe(401);
  });

  it("a group member may pull but not push: push is 403 DENIED", async () => {
    expect((await request("GET", `${reg.url}/v2/team/app/manifests/v1`, { headers: bob })).status).toBe(200);
    const r = await request("POST", `${reg.url}/v2/team/app/blobs/uploads/`, { headers: bob });
    expect(r.status).toBe(403);
    expect(errorCodes(r)).toEqual(["DENIED"]);
  });

  it("a user rule on a sub-pattern grants push there", async () => {
    await pushImage(reg.url, "team/bob/tool", "v1", await makeImage(), bob);
    expect((await request("GET", `${reg.url}/v2/team/bob/tool/tags/list`, { headers: bob })).json()).toEqual({
      name: "team/bob/tool",
      tags: ["v1"],
    });
  });

  it("a user with no rule for a repository gets 403 on pull", async () => {
    const r = await request("GET", `${reg.url}/v2/private/secret/manifests/v1`, { headers: bob });
    expect(r.status).toBe(403);
  });

  it("anonymous pull works on public patterns only; elsewhere it is 401 with a challenge", async () => {
    expect((await request("GET", `${reg.url}/v2/public/tool/manifests/latest`)).status).toBe(200);
    const r = await request("GET", `${reg.url}/v2/team/app/manifests/v1`);
    expect(r.status).toBe(401);
    expect(r.header("www-authenticate")).toContain("Basic");
  });

  it("unauthenticated push is 401 and stores nothing", async () => {
    const b = blob("anonymous push attempt");
    const r = await request("POST", `${reg.url}/v2/public/tool/blobs/uploads/?digest=${b.digest}`, {
      body: b.data,
    });
    expect(r.status).toBe(401);
    expect(
      (await request("HEAD", `${reg.url}/v2/public/tool/blobs/${b.digest}`, { headers: alice })).status,
    ).toBe(404);
  });

  it("a mount from a repository the caller cannot read falls back to an upload and links nothing", async () => {
    const b = blob("alice's private layer");
    await pushBlob(reg.url, "private/secret", b, alice);
    const r = await request(
      "POST",
      `${reg.url}/v2/team/bob/tool/blobs/uploads/?mount=${b.digest}&from=private/secret`,
      { headers: bob },
    );
    expect(r.status).toBe(202);
    expect(
      (await request("HEAD", `${reg.url}/v2/team/bob/tool/blobs/${b.digest}`, { headers: bob })).status,
    ).toBe(404);
  });

  it("the catalog lists only repositories the caller may pull", async () => {
    const all = (await request("GET", `${reg.url}/v2/_catalog`, { headers: alice })).json<{
      repositories: string[];
    }>();
    expect(all.repositories).toEqual(expect.arrayContaining(["private/secret", "public/tool", "team/app"]));
    const bobs = (await request("GET", `${reg.url}/v2/_catalog`, { headers: bob })).json<{
      repositories: string[];
    }>();
    expect(bobs.repositories).not.toContain("private/secret");
    expect(bobs.repositories).toContain("team/app");
    const anon = (await request("GET", `${reg.url}/v2/_catalog`)).json<{ repositories: string[] }>();
    expect(anon.repositories).toEqual(["public/tool"]);
  });

  it("search shows only repositories the caller may pull", async () => {
    const anon = (await request("GET", `${reg.url}/v1/search?q=`)).json<{ results: { name: string }[] }>();
    expect(anon.results.map((r) => r.name)).toEqual(["public/tool"]);
    const a = (await request("GET", `${reg.url}/v1/search?q=secret`, { headers: alice })).json<{
      results: { name: string }[];
    }>();
    expect(a.results.map((r) => r.name)).toEqual(["private/secret"]);
  });

  it("logs one line per request with the user", () => {
    expect(reg.logs()).toMatch(/alice "GET \/v2\/_catalog" 200 \d+ [\d.]+ms/);
  });
});

describe.skipIf(!hasHtpasswd)("failed-login rate limiting", () => {
  let reg: RegistryProcess;
  beforeAll(async () => {
    const file = path.join(tempDir("ratelimit"), "htpasswd");
    writeHtpasswd(file, { carol: "right" });
    reg = await startStrata({
      config: { auth: { htpasswd: { path: file } }, limits: { failedLogins: { max: 3, windowSeconds: 60 } } },
    });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("after 3 failures even the right password gets 429 TOOMANYREQUESTS with Retry-After", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request("GET", `${reg.url}/v2/`, {
        headers: { Authorization: basic("carol", `wrong${i}`) },
      });
      expect(r.status).toBe(401);
    }
    const r = await request("GET", `${reg.url}/v2/`, { headers: { Authorization: basic("carol", "right") } });
    expect(r.status).toBe(429);
    expect(errorCodes(r)).toEqual(["TOOMANYREQUESTS"]);
    expect(Number(r.header("retry-after"))).toBeGreaterThan(0);
  });
});

describe.skipIf(!hasHtpasswd)("token auth: Strata as its own token service", () => {
  let reg: RegistryProcess;
  const token = async (user: string | undefined, scope: string[]) => {
    const q = new URLSearchParams({ service: "strata-test" });
    for (const s of scope) q.append("scope", s);
    const r = await request("GET", `${reg.url}/token?${q}`, {
      headers: user ? { Authorization: basic(user, `${user}-secret`) } : {},
    });
    expect(r.status).toBe(200);
    return r.json<{ token: string; access_token: string; expires_in: number }>();
  };

  beforeAll(async () => {
    const file = path.join(tempDir("token"), "htpasswd");
    writeHtpasswd(file, { alice: "alice-secret", bob: "bob-secret" });
    reg = await startStrata({
      config: {
        auth: { htpasswd: { path: file }, token: { service: "strata-test", issuer: "strata-test-issuer" } },
        ...rules,
      },
    });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("/v2/ without a token is 401 with a Bearer challenge naming our /token", async () => {
    const r = await request("GET", `${reg.url}/v2/`);
    expect(r.status).toBe(401);
    expect(r.header("www-authenticate")).toBe(`Bearer realm="${reg.url}/token",service="strata-test"`);
  });

  it("issues JWTs whose access claim is the granted intersection", async () => {
    const t = await token("alice", ["repository:team/app:pull,push"]);
    expect(t.token).toBe(t.access_token);
    expect(t.expires_in).toBe(300);
    const claims = decodeJwt(t.token);
    expect(claims.iss).toBe("strata-test-issuer");
    expect(claims.aud).toBe("strata-test");
    expect(claims.sub).toBe("alice");
    expect(claims.access).toEqual([{ type: "repository", name: "team/app", actions: ["pull", "push"] }]);
    const b = await token("bob", ["repository:team/app:pull,push"]);
    expect(decodeJwt(b.token).access).toEqual([{ type: "repository", name: "team/app", actions: ["pull"] }]);
  });

  it("a token grants exactly its scope: push with alice's token works, bob's push is 403", async () => {
    const a = await token("alice", ["repository:team/app:pull,push"]);
    await pushImage(reg.url, "team/app", "v1", await makeImage(), { Authorization: `Bearer ${a.token}` });
    const b = await token("bob", ["repository:team/app:pull,push"]);
    const r = await request("POST", `${reg.url}/v2/team/app/blobs/uploads/`, {
      headers: { Authorization: `Bearer ${b.token}` },
    });
    expect(r.status).toBe(403);
    expect(errorCodes(r)).toEqual(["DENIED"]);
    const pull = await request("GET", `${reg.url}/v2/team/app/manifests/v1`, {
      headers: { Authorization: `Bearer ${b.token}` },
    });
    expect(pull.status).toBe(200);
  });

  it("a token without the needed scope is 401 insufficient_scope with the scope to ask for", async () => {
    const a = await token("alice", ["repository:team/app:pull"]);
    const r = await request("GET", `${reg.url}/v2/other/repo/tags/list`, {
      headers: { Authorization: `Bearer ${a.token}` },
    });
    expect(r.status).toBe(401);
    expect(r.header("www-authenticate")).toContain('scope="repository:other/repo:pull"');
    expect(r.header("www-authenticate")).toContain('error="insufficient_scope"');
  });

  it("anonymous tokens carry anonymous pull rights only", async () => {
    await pushImage(reg.url, "public/tool", "latest", await makeImage(), {
      Authorization: `Bearer ${(await token("alice", ["repository:public/tool:pull,push"])).token}`,
    });
    const t = await token(undefined, ["repository:public/tool:pull,push", "repository:team/app:pull"]);
    expect(decodeJwt(t.token).access).toEqual([
      { type: "repository", name: "public/tool", actions: ["pull"] },
      { type: "repository", name: "team/app", actions: [] },
    ]);
    const r = await request("GET", `${reg.url}/v2/public/tool/manifests/latest`, {
      headers: { Authorization: `Bearer ${t.token}` },
    });
    expect(r.status).toBe(200);
  });

  it("the catalog needs registry:catalog:*", async () => {
    const t = await token("alice", ["registry:catalog:*"]);
    const r = await request("GET", `${reg.url}/v2/_catalog`, {
      headers: { Authorization: `Bearer ${t.token}` },
    });
    expect(r.status).toBe(200);
    expect(r.json<{ repositories: string[] }>().repositories).toContain("team/app");
  });

  it("a bad password at /token is 401; a forged token is 401", async () => {
    const r = await request("GET", `${reg.url}/token?service=strata-test`, {
      headers: { Authorization: basic("alice", "x") },
    });
    expect(r.status).toBe(401);
    const forged = await new SignJWT({
      access: [{ type: "repository", name: "team/app", actions: ["push"] }],
    })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("strata-test-issuer")
      .setAudience("strata-test")
      .setExpirationTime("5m")
      .sign(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey);
    const f = await request("POST", `${reg.url}/v2/team/app/blobs/uploads/`, {
      headers: { Authorization: `Bearer ${forged}` },
    });
    expect(f.status).toBe(401);
    expect(f.header("www-authenticate")).toContain('error="invalid_token"');
  });

  it("the OAuth2 password grant (POST /token) works too", async () => {
    const r = await request("POST", `${reg.url}/token`, {
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "grant_type=password&username=alice&password=alice-secret&service=strata-test&scope=repository:team/app:pull",
    });
    expect(r.status).toBe(200);
    expect(decodeJwt(r.json<{ access_token: string }>().access_token).sub).toBe("alice");
  });
});

describe("token auth: trusting an external token service", () => {
  let reg: RegistryProcess;
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const sign = (payload: Record<string, unknown>, opts: { aud?: string; key?: typeof privateKey } = {}) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("external-issuer")
      .setAudience(opts.aud ?? "ext-service")
      .setSubject("dave")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(opts.key ?? privateKey);

  beforeAll(async () => {
    const pem = path.join(tempDir("ext"), "auth.pem");
    writeFileSync(pem, publicKey.export({ type: "spki", format: "pem" }));
    reg = await startStrata({
      config: {
        auth: {
          token: {
            realm: "https://auth.example.com/token",
            service: "ext-service",
            issuer: "external-issuer",
            publicKey: pem,
          },
        },
      },
    });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("challenges with the external realm and has no /token of its own", async () => {
    const r = await request("GET", `${reg.url}/v2/x/y/tags/list`);
    expect(r.status).toBe(401);
    expect(r.header("www-authenticate")).toBe(
      'Bearer realm="https://auth.example.com/token",service="ext-service",scope="repository:x/y:pull"',
    );
    expect((await request("GET", `${reg.url}/token`)).status).toBe(404);
  });

  it("accepts the external service's tokens for their scopes", async () => {
    const t = await sign({ access: [{ type: "repository", name: "ext/app", actions: ["pull", "push"] }] });
    await pushImage(reg.url, "ext/app", "v1", await makeImage(), { Authorization: `Bearer ${t}` });
    const r = await request("GET", `${reg.url}/v2/ext/app/tags/list`, {
      headers: { Authorization: `Bearer ${t}` },
    });
    expect(r.json()).toEqual({ name: "ext/app", tags: ["v1"] });
    const other = await request("GET", `${reg.url}/v2/ext/other/tags/list`, {
      headers: { Authorization: `Bearer ${t}` },
    });
    expect(other.status).toBe(401);
  });

  it("refuses tokens for another audience or signed by another key", async () => {
    const access = [{ type: "repository", name: "ext/app", actions: ["pull"] }];
    const wrongAud = await sign({ access }, { aud: "someone-else" });
    expect(
      (
        await request("GET", `${reg.url}/v2/ext/app/tags/list`, {
          headers: { Authorization: `Bearer ${wrongAud}` },
        })
      ).status,
    ).toBe(401);
    const otherKey = await sign(
      { access },
      { key: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey },
    );
    expect(
      (
        await request("GET", `${reg.url}/v2/ext/app/tags/list`, {
          headers: { Authorization: `Bearer ${otherKey}` },
        })
      ).status,
    ).toBe(401);
  });
});

describe("serving without auth", () => {
  it("refuses a non-loopback address without auth, and starts with --insecure-open", async () => {
    await expect(startStrata({ addr: "0.0.0.0:0" })).rejects.toThrow(
      /without authentication.*--insecure-open/s,
    );
    const reg = await startStrata({ addr: "0.0.0.0:0", args: ["--insecure-open"] });
    try {
      expect((await request("GET", `${reg.url}/v2/`)).status).toBe(200);
    } finally {
      await reg.stop();
    }
  });
});
