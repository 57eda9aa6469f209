/**
 * Interop with skopeo (containers/image): copy an OCI layout into the registry and back out,
 * anonymously, with Basic auth and with token auth, and between repositories (mounts).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeOciLayout } from "../../helpers/registry-images.js";
import {
  haveTool,
  type RegistryProcess,
  request,
  startStrata,
  tempDir,
  writeHtpasswd,
} from "../../helpers/registry-servers.js";

const run = promisify(execFile);
const hasSkopeo = haveTool("skopeo") && haveTool("htpasswd");

async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await run("skopeo", ["--insecure-policy", ...args], { timeout: 120_000 });
  return stdout;
}

/** Copy a layout in, copy it back out, and compare the manifests byte for byte. */
async function roundTrip(reg: RegistryProcess, repo: string, creds: string[]): Promise<void> {
  const dir = tempDir("skopeo");
  const src = path.join(dir, "src");
  const { digest } = await writeOciLayout(src, { tag: "v1", files: { "etc/motd": "hello from skopeo\n" } });
  await skopeo([
    "copy",
    "--dest-tls-verify=false",
    ...creds.map((c) => `--dest-${c}`),
    `oci:${src}:v1`,
    `docker://${reg.host}/${repo}:v1`,
  ]);
  const inspect = JSON.parse(
    await skopeo([
      "inspect",
      "--tls-verify=false",
      ...creds.map((c) => `--${c}`),
      "--raw",
      `docker://${reg.host}/${repo}:v1`,
    ]),
  ) as { config: { digest: string } };
  expect(inspect.config.digest).toMatch(/^sha256:/);
  const out = path.join(dir, "out");
  await skopeo([
    "copy",
    "--src-tls-verify=false",
    ...creds.map((c) => `--src-${c}`),
    `docker://${reg.host}/${repo}:v1`,
    `oci:${out}:v1`,
  ]);
  const index = JSON.parse(readFileSync(path.join(out, "index.json"), "utf8")) as {
    manifests: { digest: string }[];
  };
  // skopeo copies without converting, so the digest survives the round trip.
  expect(index.manifests[0]!.digest).toBe(digest);
}

describe.skipIf(!hasSkopeo)("skopeo interop", () => {
  describe("anonymous (loopback)", () => {
    let reg: RegistryProcess;
    beforeAll(async () => {
      reg = await startStrata();
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it("copies an OCI layout in and out", async () => {
      await roundTrip(reg, "skopeo/anon", []);
    });

    it("copies between repositories of the registry (blob mount) and lists tags", async () => {
      await roundTrip(reg, "skopeo/first", []);
      await skopeo([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        `docker://${reg.host}/skopeo/first:v1`,
        `docker://${reg.host}/skopeo/second:copied`,
      ]);
      const tags = JSON.parse(
        await skopeo(["list-tags", "--tls-verify=false", `docker://${reg.host}/skopeo/second`]),
      );
      expect(tags.Tags).toEqual(["copied"]);
      expect(reg.logs()).toMatch(
        /"POST \/v2\/skopeo\/second\/blobs\/uploads\/\?from=skopeo%2Ffirst&mount=sha256%3A[0-9a-f]{64}" 201/,
      );
    });
  });

  describe("Basic auth", () => {
    let reg: RegistryProcess;
    beforeAll(async () => {
      const file = path.join(tempDir("skopeo-basic"), "htpasswd");
      writeHtpasswd(file, { sam: "sam-pass" });
      reg = await startStrata({ config: { auth: { htpasswd: { path: file } } } });
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it("copies in and out with --creds", async () => {
      await roundTrip(reg, "skopeo/basic", ["creds=sam:sam-pass"]);
    });

    it("fails without credentials and with wrong ones", async () => {
      const src = path.join(tempDir("skopeo-nocreds"), "src");
      await writeOciLayout(src, { tag: "v1" });
      await expect(
        skopeo(["copy", "--dest-tls-verify=false", `oci:${src}:v1`, `docker://${reg.host}/skopeo/denied:v1`]),
      ).rejects.toThrow(/unauthorized|authentication required/i);
      await expect(
        skopeo([
          "copy",
          "--dest-tls-verify=false",
          "--dest-creds=sam:wrong",
          `oci:${src}:v1`,
          `docker://${reg.host}/skopeo/denied:v1`,
        ]),
      ).rejects.toThrow(/unauthorized|authentication required/i);
      const tags = await request("GET", `${reg.url}/v2/skopeo/denied/tags/list`, {
        headers: { Authorization: `Basic ${Buffer.from("sam:sam-pass").toString("base64")}` },
      });
      expect(tags.status).toBe(404);
    });
  });

  describe("token auth", () => {
    let reg: RegistryProcess;
    beforeAll(async () => {
      const file = path.join(tempDir("skopeo-token"), "htpasswd");
      writeHtpasswd(file, { tina: "tina-pass", viewer: "viewer-pass" });
      reg = await startStrata({
        config: {
          auth: { htpasswd: { path: file }, token: { service: "skopeo-test" } },
          access: [
            { repositories: ["**"], users: ["tina"], actions: ["pull", "push", "delete"] },
            { repositories: ["**"], users: ["viewer"], actions: ["pull"] },
          ],
        },
      });
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it("copies in and out through the Bearer token flow", async () => {
      await roundTrip(reg, "skopeo/token", ["creds=tina:tina-pass"]);
      expect(reg.logs()).toMatch(/tina "GET \/token\?/);
    });

    it("a pull-only user can copy out but not in", async () => {
      const out = path.join(tempDir("skopeo-viewer"), "out");
      await skopeo([
        "copy",
        "--src-tls-verify=false",
        "--src-creds=viewer:viewer-pass",
        `docker://${reg.host}/skopeo/token:v1`,
        `oci:${out}:v1`,
      ]);
      const src = path.join(tempDir("skopeo-viewer-src"), "src");
      await writeOciLayout(src, { tag: "v1" });
      await expect(
        skopeo([
          "copy",
          "--dest-tls-verify=false",
          "--dest-creds=viewer:viewer-pass",
          `oci:${src}:v1`,
          `docker://${reg.host}/skopeo/viewer:v1`,
        ]),
      ).rejects.toThrow(/denied|unauthorized/i);
    });
  });
});
