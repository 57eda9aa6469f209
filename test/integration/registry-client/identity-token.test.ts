/**
 * Identity tokens (OAuth2 refresh tokens) with Strata's registry and its token service, as
 * docker's login uses them: `login` asks for an offline token and keeps it in config.json
 * (`identitytoken`) instead of the password; push and pull trade it at the token endpoint
 * (`grant_type=refresh_token`) for access tokens. The registry's access log shows which
 * grant was used.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { clientEnv, htpasswdFile, tmp } from "../../helpers/registry-client.js";
import { type RegistryProcess, startStrata } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["htpasswd"] });

function get(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on("error", reject);
  });
}

describe.skipIf(!need.ok)("identity tokens: login keeps a refresh token, push and pull use it", () => {
  let reg: RegistryProcess;
  let dir: string;
  let htpasswd: string;
  const env = clientEnv();
  const store = () => path.join(dir, "store");
  const auths = () =>
    JSON.parse(readFileSync(path.join(env.dockerConfig, "config.json"), "utf8")).auths as Record<
      string,
      { auth?: string; identitytoken?: string }
    >;

  beforeAll(async () => {
    dir = tmp("idtoken");
    htpasswd = htpasswdFile(dir, { alice: "alice-pw", bob: "bob-pw" });
    reg = await startStrata({
      root: path.join(dir, "regroot"),
      config: {
        auth: { htpasswd: { path: htpasswd }, token: { service: "strata-test" } },
        access: [{ repositories: ["**"], users: ["alice", "bob"], actions: ["pull", "push"] }],
      },
    });
    expect((await strata(store(), ["import", busyboxRootfs(), `${reg.host}/id/app:1`])).code).toBe(0);
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("login stores an identitytoken and no password", async () => {
    const r = await strata(store(), ["login", reg.host, "-u", "alice", "--password-stdin"], {
      env: env.env,
      input: "alice-pw",
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("Login Succeeded");
    const entry = auths()[reg.host]!;
    expect(entry.identitytoken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(Buffer.from(entry.auth ?? "", "base64").toString()).toBe("alice:");
    expect(readFileSync(path.join(env.dockerConfig, "config.json"), "utf8")).not.toContain("alice-pw");
  });

  it("push and pull trade the identity token for access tokens (grant_type=refresh_token)", async () => {
    const mark = reg.logs().length;
    const push = await strata(store(), ["push", `${reg.host}/id/app:1`], { env: env.env });
    expect(push.code, push.stderr).toBe(0);
    const pulled = path.join(dir, "pulled");
    const pull = await strata(pulled, ["pull", `${reg.host}/id/app:1`], { env: env.env });
    expect(pull.code, pull.stderr).toBe(0);
    const log = reg.logs().slice(mark);
    expect(log).toMatch(/"POST \/token/);
    expect(log).not.toMatch(/"GET \/token/);
  });

  it("the identity token is no access token: the registry refuses it as a bearer", async () => {
    const token = auths()[reg.host]!.identitytoken!;
    expect(await get(`http://${reg.host}/v2/id/app/manifests/1`, { Authorization: `Bearer ${token}` })).toBe(
      401,
    );
  });

  it("a user removed from htpasswd can no longer use the token: a clear one-line error", async () => {
    execFileSync("htpasswd", ["-D", htpasswd, "alice"], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 1100)); // the registry re-reads htpasswd at most once a second
    const r = await strata(path.join(dir, "again"), ["pull", `${reg.host}/id/app:1`], { env: env.env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^Error.*unknown user/);
  });
});
