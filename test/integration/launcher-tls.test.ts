/**
 * bin/strata hands NODE_EXTRA_CA_CERTS over to Strata (node would read the file at every
 * start-up): every TLS client the CLI has must still trust those CAs. Against Debian's
 * docker-registry over TLS (push, pull) and a node https server (ADD <url>, import <url>),
 * both with certificates of a test CA that only the extra-CA file names.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../helpers/cli.js";
import { busyboxRootfs } from "../helpers/fixtures.js";
import { testPki } from "../helpers/pki.js";
import {
  clientEnv,
  type Distribution,
  outsideAddress,
  startDistribution,
  tmp,
} from "../helpers/registry-client.js";
import { requires } from "../helpers/tools.js";

const ip = outsideAddress();
const need = requires({ tools: ["openssl", "docker-registry"] });

describe.skipIf(!need.ok || !ip)("bin/strata and NODE_EXTRA_CA_CERTS", () => {
  let dir: string;
  let ca: string;
  let reg: Distribution;
  let web: https.Server;
  let webUrl: string;
  let root: string;
  /** A config with an empty certs-dir: the test CA is only in the extra-CA file. */
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dir = tmp("launcher-tls");
    const pki = path.join(dir, "pki");
    testPki(pki).issue("server", `/CN=${ip}`, `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\n`);
    ca = path.join(pki, "ca.crt");
    const cert = path.join(pki, "server.crt");
    const key = path.join(pki, "server.key");
    reg = await startDistribution({ address: ip!, tls: { cert, key } });
    const rootfs = readFileSync(busyboxRootfs());
    web = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
      if (req.url === "/hello.txt") res.end("hello over TLS\n");
      else if (req.url === "/rootfs.tar") res.end(rootfs);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => web.listen(0, ip, resolve));
    webUrl = `https://${ip}:${(web.address() as AddressInfo).port}`;
    mkdirSync(path.join(dir, "certs.d"));
    env = clientEnv({ "certs-dir": path.join(dir, "certs.d") }).env;
    root = path.join(dir, "store");
    expect((await strata(root, ["import", busyboxRootfs(), `${reg.host}/tls/busybox:1`])).code).toBe(0);
  });
  afterAll(async () => {
    await reg?.stop();
    await new Promise((resolve) => web?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it("without the extra CA the registry and the URLs are refused (x509)", async () => {
    const none = { ...env, NODE_EXTRA_CA_CERTS: undefined };
    const push = await strata(root, ["push", `${reg.host}/tls/busybox:1`], { env: none, launcher: true });
    expect(push.code).toBe(1);
    expect(push.stderr).toMatch(/x509: certificate signed by unknown authority/);
    const ctx = path.join(dir, "ctx-none");
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, "Dockerfile"), `FROM scratch\nADD ${webUrl}/hello.txt /hello.txt\n`);
    const build = await strata(root, ["build", "-q", ctx], { env: none, launcher: true });
    expect(build.code).toBe(1);
    expect(build.stderr).toContain(
      `Get "${webUrl}/hello.txt": x509: certificate signed by unknown authority`,
    );
  });

  it("through the launcher: push and pull trust the CA that NODE_EXTRA_CA_CERTS names", async () => {
    const extra = { ...env, NODE_EXTRA_CA_CERTS: ca };
    const push = await strata(root, ["push", `${reg.host}/tls/busybox:1`], { env: extra, launcher: true });
    expect(push.stderr).toBe("");
    expect(push.code).toBe(0);
    const pulled = path.join(dir, "pulled");
    const pull = await strata(pulled, ["pull", `${reg.host}/tls/busybox:1`], { env: extra, launcher: true });
    expect(pull.stderr).toBe("");
    expect((await strata(pulled, ["images", "-q"])).stdout.trim()).toMatch(/^[0-9a-f]{12}$/);
    // Plain node reads the variable itself: the same push works that way too.
    const plain = await strata(root, ["push", `${reg.host}/tls/busybox:1`], { env: extra });
    expect(plain.code).toBe(0);
  });

  it("through the launcher: ADD <https url> and import <https url> trust it too", async () => {
    const extra = { ...env, NODE_EXTRA_CA_CERTS: ca };
    const ctx = path.join(dir, "ctx");
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, "Dockerfile"), `FROM scratch\nADD ${webUrl}/hello.txt /hello.txt\n`);
    const out = path.join(dir, "out");
    const build = await strata(root, ["build", "-q", "-o", `type=local,dest=${out}`, ctx], {
      env: extra,
      launcher: true,
    });
    expect(build.stderr).toBe("");
    expect(readFileSync(path.join(out, "hello.txt"), "utf8")).toBe("hello over TLS\n");
    const imp = await strata(root, ["import", `${webUrl}/rootfs.tar`, "from-url:1"], {
      env: extra,
      launcher: true,
    });
    expect(imp.code).toBe(0);
    expect(imp.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
  });

  it("an unreadable extra-CA file is what node makes of it: a warning, only where TLS is used", async () => {
    const bad = { ...env, NODE_EXTRA_CA_CERTS: path.join(dir, "missing.crt") };
    const images = await strata(root, ["images", "-q"], { env: bad, launcher: true });
    expect(images.code).toBe(0);
    expect(images.stderr).toBe("");
    const push = await strata(root, ["push", `${reg.host}/tls/busybox:1`], { env: bad, launcher: true });
    expect(push.code).toBe(1);
    const lines = push.stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^Warning: Ignoring extra certs from `.*missing\.crt`, load failed: .*ENOENT/);
    expect(lines[1]).toMatch(/x509: certificate signed by unknown authority/);
    expect(lines).toHaveLength(2);
  });
});
