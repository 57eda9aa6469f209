/**
 * login, logout and authenticated push/pull: CNCF distribution with htpasswd Basic auth,
 * Strata's registry with its token service (tokens per scope reused, anonymous tokens), and
 * Docker's credential helper protocol (credsStore, credHelpers) through a helper program.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import {
  type ClientEnv,
  clientEnv,
  type Distribution,
  htpasswdFile,
  startDistribution,
  storeBlobs,
  tmp,
} from "../../helpers/registry-client.js";
import { type RegistryProcess, startStrata } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["docker-registry", "htpasswd"] });

describe.skipIf(!need.ok)("Basic auth with CNCF distribution (htpasswd)", () => {
  let reg: Distribution;
  let env: ClientEnv;
  let dir: string;
  let root: string;
  const run = (args: string[], opts: { input?: string; root?: string; env?: NodeJS.ProcessEnv } = {}) =>
    strata(opts.root ?? root, args, { env: { ...env.env, ...opts.env }, input: opts.input });

  beforeAll(async () => {
    dir = tmp("basic");
    reg = await startDistribution({ htpasswd: htpasswdFile(dir, { alice: "alice-pw" }) });
    env = clientEnv();
    root = path.join(dir, "store");
    expect((await run(["import", busyboxRootfs(), `${reg.host}/team/busybox:1`])).code).toBe(0);
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("without credentials a push is refused: no basic auth credentials", async () => {
    const r = await run(["push", `${reg.host}/team/busybox:1`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^Error: \w+ "http:\/\/127\.0\.0\.1:\d+\/v2\/[^"]*": no basic auth credentials\n$/,
    );
  });

  it("a wrong password is a clear unauthorized error and stores nothing", async () => {
    const r = await run(["login", reg.host, "-u", "alice", "--password-stdin"], { input: "wrong\n" });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`Error: login attempt to ${reg.url}/v2/ failed with status: 401 Unauthorized\n`);
    expect(() => readFileSync(path.join(env.dockerConfig, "config.json"))).toThrow();
  });

  it("login stores the credentials as docker does and warns that they are unencrypted", async () => {
    const r = await run(["login", reg.host, "-u", "alice", "--password-stdin"], { input: "alice-pw\n" });
    expect(r.stdout).toBe("Login Succeeded\n");
    const file = path.join(env.dockerConfig, "config.json");
    expect(r.stderr).toContain(`WARNING! Your password will be stored unencrypted in ${file}.`);
    const doc = JSON.parse(readFileSync(file, "utf8"));
    expect(doc.auths[reg.host].auth).toBe(Buffer.from("alice:alice-pw").toString("base64"));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toContain('\n\t"auths"');
  });

  it("push and pull use the stored credentials; login without flags re-checks them", async () => {
    const push = await run(["push", `${reg.host}/team/busybox:1`]);
    expect(push.stderr).toBe("");
    expect(push.stdout).toMatch(/1: digest: sha256:[0-9a-f]{64} size: \d+/);
    const pull = await run(["pull", `${reg.host}/team/busybox:1`], { root: path.join(dir, "fresh") });
    expect(pull.stderr).toBe("");
    expect(pull.stdout).toContain("Pull complete");
    const again = await run(["login", reg.host]);
    expect(again.stdout).toBe("Authenticating with existing credentials...\nLogin Succeeded\n");
  });

  it("--password warns; --password-stdin needs --username; no TTY cannot prompt", async () => {
    const p = await run(["login", reg.host, "-u", "alice", "-p", "alice-pw"]);
    expect(p.code).toBe(0);
    expect(p.stderr).toContain("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    const noUser = await run(["login", reg.host, "--password-stdin"], { input: "x" });
    expect(noUser.stderr).toBe("Error: Must provide --username with --password-stdin\n");
    const other = clientEnv();
    const noTty = await run(["login", reg.host], { env: other.env });
    expect(noTty.stderr).toBe("Error: Cannot perform an interactive login from a non TTY device\n");
    rmSync(other.dir, { recursive: true, force: true });
  });

  it("logout removes the credentials; a pull is refused again and leaves the store as it was", async () => {
    const out = await run(["logout", reg.host]);
    expect(out.stdout).toBe(`Removing login credentials for ${reg.host}\n`);
    expect(JSON.parse(readFileSync(path.join(env.dockerConfig, "config.json"), "utf8")).auths).toEqual({});
    expect((await run(["logout", reg.host])).stdout).toBe(`Not logged in to ${reg.host}\n`);
    const fresh = path.join(dir, "refused");
    const pull = await run(["pull", `${reg.host}/team/busybox:1`], { root: fresh });
    expect(pull.code).toBe(1);
    expect(pull.stderr).toMatch(/no basic auth credentials/);
    expect(await storeBlobs(fresh)).toEqual([]);
  });
});

describe.skipIf(!need.ok)("token auth with Strata's registry", () => {
  let reg: RegistryProcess;
  let env: ClientEnv;
  let dir: string;
  const run = (root: string, args: string[], input?: string) => strata(root, args, { env: env.env, input });
  const tokenRequests = (from: number, user: string) =>
    reg
      .logs()
      .slice(from)
      .split("\n")
      .filter((l) => l.includes(` ${user} "GET /token?`) || l.includes(` ${user} "POST /token`));

  beforeAll(async () => {
    dir = tmp("token");
    const file = htpasswdFile(dir, { alice: "alice-pw", bob: "bob-pw" });
    reg = await startStrata({
      config: {
        auth: { htpasswd: { path: file }, token: { service: "strata-test" } },
        access: [
          { repositories: ["**"], users: ["alice"], actions: ["pull", "push", "delete"] },
          { repositories: ["team/**"], users: ["bob"], actions: ["pull"] },
        ],
        anonymous: { pull: ["public/**"] },
      },
    });
    env = clientEnv();
    const root = path.join(dir, "a");
    expect(
      (await run(root, ["import", "-c", 'CMD ["sh"]', busyboxRootfs(), `${reg.host}/team/app:1`])).code,
    ).toBe(0);
    expect((await run(root, ["tag", `${reg.host}/team/app:1`, `${reg.host}/public/tool:1`])).code).toBe(0);
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("a wrong password is unauthorized at the token service", async () => {
    const r = await run(path.join(dir, "a"), ["login", reg.host, "-u", "alice", "--password-stdin"], "nope");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: Get "http:\/\/127\.0\.0\.1:\d+\/token\?[^"]*": unauthorized: /);
  });

  it("login, then push: one token for the repository's pull,push scope, reused by every request", async () => {
    const root = path.join(dir, "a");
    const login = await run(root, ["login", reg.host, "-u", "alice", "--password-stdin"], "alice-pw");
    expect(login.stdout).toBe("Login Succeeded\n");
    const mark = reg.logs().length;
    const push = await run(root, ["push", `${reg.host}/team/app:1`]);
    expect(push.stderr).toBe("");
    expect(push.stdout).toMatch(/1: digest: sha256:[0-9a-f]{64} size: \d+/);
    // login kept the registry's refresh token (docker's identitytoken): the push trades it
    // for one access token (a POST: the scope is in the body), reused by every request.
    const tokens = tokenRequests(mark, "alice");
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toContain('"POST /token');
    const pushPublic = await run(root, ["push", `${reg.host}/public/tool:1`]);
    expect(pushPublic.stdout).toMatch(/Layer already exists|Mounted from team\/app/);
  });

  it("a user with pull rights pulls; the same image ID comes back", async () => {
    const root = path.join(dir, "bob");
    const bob = clientEnv();
    const login = await strata(root, ["login", reg.host, "-u", "bob", "--password-stdin"], {
      env: bob.env,
      input: "bob-pw",
    });
    expect(login.code).toBe(0);
    const pull = await strata(root, ["pull", `${reg.host}/team/app:1`], { env: bob.env });
    expect(pull.stderr).toBe("");
    const ids = await Promise.all(
      [path.join(dir, "a"), root].map(
        async (r) => (await strata(r, ["inspect", "--format", "{{.Id}}", `${reg.host}/team/app:1`])).stdout,
      ),
    );
    expect(ids[1]).toBe(ids[0]);
    const push = await strata(root, ["push", `${reg.host}/team/app:1`], { env: bob.env });
    expect(push.code).toBe(1);
    expect(push.stderr).toMatch(/denied|unauthorized/);
    rmSync(bob.dir, { recursive: true, force: true });
  });

  it("anonymous pull of a public repository uses an anonymous token; a private one is refused", async () => {
    const anon = clientEnv();
    const root = path.join(dir, "anon");
    const mark = reg.logs().length;
    const pull = await strata(root, ["pull", `${reg.host}/public/tool:1`], { env: anon.env });
    expect(pull.stderr).toBe("");
    expect(pull.stdout).toContain(`Status: Downloaded newer image for ${reg.host}/public/tool:1`);
    expect(tokenRequests(mark, "-")).toHaveLength(1);
    const denied = await strata(path.join(dir, "anon2"), ["pull", `${reg.host}/team/app:1`], {
      env: anon.env,
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/unauthorized|denied/);
    expect(await storeBlobs(path.join(dir, "anon2"))).toEqual([]);
    rmSync(anon.dir, { recursive: true, force: true });
  });
});

/** A docker-credential-* helper (the real protocol) that keeps secrets as files in $STRATA_TEST_CREDS. */
function writeHelper(bin: string): void {
  mkdirSync(bin, { recursive: true });
  const file = path.join(bin, "docker-credential-strata-test");
  writeFileSync(
    file,
    `#!/usr/bin/env node
const fs = require("node:fs"), path = require("node:path");
const dir = process.env.STRATA_TEST_CREDS;
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const action = process.argv[2];
  const name = (s) => path.join(dir, Buffer.from(s.trim()).toString("hex"));
  if (action === "store") {
    const c = JSON.parse(input);
    fs.writeFileSync(name(c.ServerURL), JSON.stringify(c));
  } else if (action === "get") {
    try {
      process.stdout.write(fs.readFileSync(name(input)));
    } catch {
      process.stdout.write("credentials not found in native keychain\\n");
      process.exit(1);
    }
  } else if (action === "erase") {
    fs.rmSync(name(input), { force: true });
  } else process.exit(2);
});
`,
  );
  chmodSync(file, 0o755);
}

describe.skipIf(!need.ok)("credential helpers (credsStore, credHelpers)", () => {
  let reg: Distribution;
  let dir: string;
  let bin: string;
  let creds: string;

  beforeAll(async () => {
    dir = tmp("helper");
    reg = await startDistribution({ htpasswd: htpasswdFile(dir, { carol: "carol-pw" }) });
    bin = path.join(dir, "bin");
    creds = path.join(dir, "creds");
    mkdirSync(creds);
    writeHelper(bin);
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ["credsStore", "credHelpers"] as const) {
    it(`${kind}: login stores through the helper, push reads from it, logout erases`, async () => {
      const env = clientEnv();
      const cfg =
        kind === "credsStore"
          ? { credsStore: "strata-test" }
          : { credHelpers: { [reg.host]: "strata-test" } };
      writeFileSync(path.join(env.dockerConfig, "config.json"), JSON.stringify(cfg));
      const e = { ...env.env, PATH: `${bin}:${process.env.PATH}`, STRATA_TEST_CREDS: creds };
      const root = path.join(dir, kind);
      expect(
        (await strata(root, ["import", busyboxRootfs(), `${reg.host}/h/${kind.toLowerCase()}:1`], { env: e }))
          .code,
      ).toBe(0);
      const login = await strata(root, ["login", reg.host, "-u", "carol", "--password-stdin"], {
        env: e,
        input: "carol-pw",
      });
      expect(login.stdout).toBe("Login Succeeded\n");
      expect(login.stderr).toBe("");
      const doc = JSON.parse(readFileSync(path.join(env.dockerConfig, "config.json"), "utf8"));
      expect(doc.auths[reg.host]).toEqual({});
      expect(readdirSync(creds)).toHaveLength(1);
      const push = await strata(root, ["push", `${reg.host}/h/${kind.toLowerCase()}:1`], { env: e });
      expect(push.stderr).toBe("");
      expect(push.stdout).toMatch(/digest: sha256:/);
      const logout = await strata(root, ["logout", reg.host], { env: e });
      expect(logout.stdout).toBe(`Removing login credentials for ${reg.host}\n`);
      expect(readdirSync(creds)).toHaveLength(0);
      rmSync(env.dir, { recursive: true, force: true });
    });
  }

  it("a helper that is not installed is a clear credentials error", async () => {
    const env = clientEnv();
    writeFileSync(
      path.join(env.dockerConfig, "config.json"),
      JSON.stringify({ credsStore: "does-not-exist" }),
    );
    const r = await strata(path.join(dir, "missing"), ["pull", `${reg.host}/h/any:1`], { env: env.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("docker-credential-does-not-exist not found in PATH");
    rmSync(env.dir, { recursive: true, force: true });
  });
});
