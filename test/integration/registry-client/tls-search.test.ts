/**
 * TLS by default and `search`, against Strata's registry: a registry on the machine's
 * non-loopback address is reached only over verified TLS (the CA from
 * `<certs-dir>/<host:port>/ca.crt`, as Docker's /etc/docker/certs.d), or insecurely when
 * Strata's config lists it; `search` reads the registry's /v1/search with Docker's columns.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { testPki } from "../../helpers/pki.js";
import { clientEnv, outsideAddress, tmp } from "../../helpers/registry-client.js";
import { freePort, type RegistryProcess, startStrata } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

/** The first non-loopback IPv4 address: a registry there is not "localhost" to Docker's rules. */

const ip = outsideAddress();
const need = requires({ tools: ["openssl"] });

describe.skipIf(!need.ok || !ip)("TLS by default for registries that are not on loopback", () => {
  let tlsReg: RegistryProcess;
  let plainReg: RegistryProcess;
  let dir: string;
  let certs: string;
  let root: string;

  beforeAll(async () => {
    dir = tmp("tls");
    const ca = path.join(dir, "ca");
    testPki(ca).issue("server", `/CN=${ip}`, `subjectAltName=IP:${ip}\n`);
    tlsReg = await startStrata({
      addr: `${ip}:${await freePort()}`,
      config: {
        insecureOpen: true,
        tls: { cert: path.join(ca, "server.crt"), key: path.join(ca, "server.key") },
      },
    });
    plainReg = await startStrata({ addr: `${ip}:${await freePort()}`, config: { insecureOpen: true } });
    certs = path.join(dir, "certs.d");
    mkdirSync(path.join(certs, tlsReg.host), { recursive: true });
    writeFileSync(path.join(certs, tlsReg.host, "ca.crt"), execFileSync("cat", [path.join(ca, "ca.crt")]));
    root = path.join(dir, "store");
    expect((await strata(root, ["import", busyboxRootfs(), "tls/busybox:1"])).code).toBe(0);
    for (const r of [tlsReg, plainReg])
      expect((await strata(root, ["tag", "tls/busybox:1", `${r.host}/tls/busybox:1`])).code).toBe(0);
  });
  afterAll(async () => {
    await tlsReg?.stop();
    await plainReg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("an unknown CA is refused with Docker's x509 message", async () => {
    const env = clientEnv({ "certs-dir": path.join(dir, "empty") });
    const r = await strata(root, ["push", `${tlsReg.host}/tls/busybox:1`], { env: env.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^Error: Get "https://${tlsReg.host}/v2/": x509: certificate signed by unknown authority`),
    );
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("the CA from <certs-dir>/<host:port>/ca.crt makes push and pull work", async () => {
    const env = clientEnv({ "certs-dir": certs });
    const push = await strata(root, ["push", `${tlsReg.host}/tls/busybox:1`], { env: env.env });
    expect(push.stderr).toBe("");
    expect(push.stdout).toMatch(/1: digest: sha256:/);
    const pull = await strata(path.join(dir, "pulled"), ["pull", `${tlsReg.host}/tls/busybox:1`], {
      env: env.env,
    });
    expect(pull.stderr).toBe("");
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("insecure-registries allows an unverified certificate", async () => {
    const env = clientEnv({ "certs-dir": path.join(dir, "empty"), "insecure-registries": [tlsReg.host] });
    const r = await strata(path.join(dir, "insecure"), ["pull", `${tlsReg.host}/tls/busybox:1`], {
      env: env.env,
    });
    expect(r.stderr).toBe("");
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("plain HTTP is used only for registries listed insecure (or on loopback)", async () => {
    const secure = clientEnv();
    const refused = await strata(root, ["push", `${plainReg.host}/tls/busybox:1`], { env: secure.env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`^Error: Get "https://${plainReg.host}/v2/": `));
    const listed = clientEnv({ "insecure-registries": [`${ip!.split(".").slice(0, 3).join(".")}.0/24`] });
    const ok = await strata(root, ["push", `${plainReg.host}/tls/busybox:1`], { env: listed.env });
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toMatch(/1: digest: sha256:/);
    rmSync(secure.dir, { recursive: true, force: true });
    rmSync(listed.dir, { recursive: true, force: true });
  });
});

describe("search against Strata's registry", () => {
  let reg: RegistryProcess;
  let dir: string;
  const env = clientEnv();

  beforeAll(async () => {
    dir = tmp("search");
    reg = await startStrata({
      config: {
        search: {
          repositories: {
            "library/busybox": { description: "Busybox base image.", stars: 3200, official: true },
            "team/busybox-tools": {
              description: "A long description that goes well past the forty-five characters Docker shows",
              stars: 12,
            },
            "team/other": { description: "not a match", stars: 1 },
          },
        },
      },
    });
    const root = path.join(dir, "store");
    expect((await strata(root, ["import", busyboxRootfs(), "s/busybox:1"])).code).toBe(0);
    for (const repo of ["library/busybox", "team/busybox-tools", "team/other"]) {
      expect((await strata(root, ["tag", "s/busybox:1", `${reg.host}/${repo}:1`])).code).toBe(0);
      expect((await strata(root, ["push", `${reg.host}/${repo}:1`], { env: env.env })).code).toBe(0);
    }
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  const search = (args: string[]) => strata(path.join(dir, "store"), ["search", ...args], { env: env.env });

  it("prints Docker's table: NAME DESCRIPTION STARS OFFICIAL, descriptions cut at 45", async () => {
    const r = await search([`${reg.host}/busybox`]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL$/);
    expect(lines[1]).toMatch(/^library\/busybox\s+Busybox base image\.\s+3200\s+\[OK\]$/);
    expect(lines[2]).toMatch(/^team\/busybox-tools\s+A long description that goes well past the f…\s+12\s*$/);
    expect(lines).toHaveLength(3);
  });

  it("--no-trunc, --limit, --filter stars= and is-official=, --format", async () => {
    expect((await search(["--no-trunc", `${reg.host}/busybox`])).stdout).toContain(
      "A long description that goes well past the forty-five characters Docker shows",
    );
    expect((await search(["--limit", "1", `${reg.host}/busybox`])).stdout.trim().split("\n")).toHaveLength(2);
    const stars = await search(["--filter", "stars=100", "--format", "{{.Name}}", `${reg.host}/busybox`]);
    expect(stars.stdout).toBe("library/busybox\n");
    const unofficial = await search([
      "-f",
      "is-official=false",
      "--format",
      "{{.Name}} {{.StarCount}}",
      `${reg.host}/busybox`,
    ]);
    expect(unofficial.stdout).toBe("team/busybox-tools 12\n");
    const bad = await search(["--filter", "color=red", `${reg.host}/busybox`]);
    expect(bad.stderr).toBe("Error: invalid filter 'color'\n");
    const limit = await search(["--limit", "101", `${reg.host}/busybox`]);
    expect(limit.stderr).toBe("Error: limit 101 is outside the range of [1, 100]\n");
  });
});
