/**
 * TLS against Debian's docker-registry (CNCF distribution) on the machine's non-loopback
 * address, with certificates made by openssl in the test and a certs.d directory of the
 * test's own (Strata's `certs-dir`, Docker's /etc/docker/certs.d layout):
 * - the registry's CA in `<certs-dir>/<host:port>/ca.crt` is trusted, and nothing else is;
 * - a registry that requires client certificates (distribution's `clientcas`) is reached
 *   with `client.cert` + `client.key` from the same directory, and refused without them;
 * - a client certificate without its key is a clear error.
 */
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { testPki } from "../../helpers/pki.js";
import {
  clientEnv,
  type Distribution,
  outsideAddress,
  startDistribution,
  tmp,
} from "../../helpers/registry-client.js";
import { requires } from "../../helpers/tools.js";

const ip = outsideAddress();
const need = requires({ tools: ["openssl", "docker-registry"] });

describe.skipIf(!need.ok || !ip)(
  "TLS to Debian's docker-registry: CA and client certificates from certs.d",
  () => {
    let dir: string;
    let pki: string;
    let serverOnly: Distribution;
    let mutual: Distribution;
    let root: string;

    /** A key and a certificate signed by the test CA, with `ext` (subjectAltName, extendedKeyUsage). */
    /** A certs.d tree with `files` (name -> PEM file in the PKI dir) for both registries. */
    const certsDir = (name: string, files: Record<string, string>) => {
      const d = path.join(dir, name);
      for (const reg of [serverOnly, mutual]) {
        mkdirSync(path.join(d, reg.host), { recursive: true });
        for (const [file, from] of Object.entries(files))
          copyFileSync(path.join(pki, from), path.join(d, reg.host, file));
      }
      return clientEnv({ "certs-dir": d });
    };

    beforeAll(async () => {
      dir = tmp("tls-dist");
      pki = path.join(dir, "pki");
      const { issue } = testPki(pki);
      issue("server", `/CN=${ip}`, `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\n`);
      issue("client", "/CN=strata client", "extendedKeyUsage=clientAuth\n");
      const tls = { cert: path.join(pki, "server.crt"), key: path.join(pki, "server.key") };
      serverOnly = await startDistribution({ address: ip!, tls });
      mutual = await startDistribution({
        address: ip!,
        tls: { ...tls, clientCas: [path.join(pki, "ca.crt")] },
      });
      root = path.join(dir, "store");
      expect((await strata(root, ["import", busyboxRootfs(), "tls/busybox:1"])).code).toBe(0);
      for (const r of [serverOnly, mutual])
        expect((await strata(root, ["tag", "tls/busybox:1", `${r.host}/tls/busybox:1`])).code).toBe(0);
    });
    afterAll(async () => {
      await serverOnly?.stop();
      await mutual?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("without the CA in certs.d the registry's certificate is refused (x509), and nothing is pushed", async () => {
      const env = certsDir("no-ca", {});
      const r = await strata(root, ["push", `${serverOnly.host}/tls/busybox:1`], { env: env.env });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^Error: Get "https://${serverOnly.host.replace(/\./g, "\\.")}/v2/": x509: certificate signed by unknown authority`,
        ),
      );
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    });

    it("with <certs-dir>/<host:port>/ca.crt, push and pull go over verified TLS; the image ID comes back", async () => {
      const env = certsDir("ca-only", { "ca.crt": "ca.crt" });
      const push = await strata(root, ["push", `${serverOnly.host}/tls/busybox:1`], { env: env.env });
      expect(push.stderr).toBe("");
      expect(push.stdout).toMatch(/1: digest: sha256:[0-9a-f]{64} size: \d+/);
      const pulled = path.join(dir, "pulled-ca");
      const pull = await strata(pulled, ["pull", `${serverOnly.host}/tls/busybox:1`], { env: env.env });
      expect(pull.stderr).toBe("");
      const id = (r: string) => strata(r, ["images", "-q", "--no-trunc"], { env: env.env });
      expect((await id(pulled)).stdout.trim()).toBe(
        (await strata(root, ["inspect", "-f", "{{.Id}}", "tls/busybox:1"])).stdout.trim(),
      );
    });

    it("a registry that requires client certificates refuses a client without one", async () => {
      const env = certsDir("ca-no-client", { "ca.crt": "ca.crt" });
      const r = await strata(root, ["push", `${mutual.host}/tls/busybox:1`], { env: env.env });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`^Error: Get "https://${mutual.host.replace(/\./g, "\\.")}/v2/": `),
      );
      expect(mutual.logs()).toMatch(
        /client didn't provide a certificate|bad certificate|certificate required/i,
      );
    });

    it("client.cert + client.key from certs.d are presented: push and pull work", async () => {
      const env = certsDir("ca-client", {
        "ca.crt": "ca.crt",
        "client.cert": "client.crt",
        "client.key": "client.key",
      });
      const push = await strata(root, ["push", `${mutual.host}/tls/busybox:1`], { env: env.env });
      expect(push.stderr).toBe("");
      expect(push.stdout).toMatch(/1: digest: sha256:/);
      const pull = await strata(path.join(dir, "pulled-mtls"), ["pull", `${mutual.host}/tls/busybox:1`], {
        env: env.env,
      });
      expect(pull.stderr).toBe("");
      expect(pull.stdout).toContain(`Status: Downloaded newer image for ${mutual.host}/tls/busybox:1`);
    });

    it("a client certificate without its key is a clear one-line error", async () => {
      const env = certsDir("cert-no-key", { "ca.crt": "ca.crt", "client.cert": "client.crt" });
      const r = await strata(root, ["pull", `${mutual.host}/tls/busybox:1`], { env: env.env });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^Error: missing key client\.key for client certificate client\.cert in .+\n$/,
      );
    });
  },
);
