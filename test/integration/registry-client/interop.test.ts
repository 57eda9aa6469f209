/**
 * Interop through CNCF distribution: what Strata pushes, skopeo copies and dockerd pulls and
 * runs; what dockerd and skopeo push, Strata pulls with the same config; `docker login`
 * and `strata login` share Docker's config.json; a multi-platform index built here pulls
 * the host's platform, or the one --platform names.
 */
import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata } from "../../helpers/cli.js";
import { type Dockerd, startDockerd } from "../../helpers/dockerd.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import {
  type ClientEnv,
  clientEnv,
  type Distribution,
  htpasswdFile,
  sha256,
  startDistribution,
  tmp,
} from "../../helpers/registry-client.js";
import { pushBlob, writeOciLayout } from "../../helpers/registry-images.js";
import { request } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const pexec = promisify(execFile);
const need = requires({ tools: ["docker-registry", "skopeo", "dockerd", "htpasswd"], root: true });

describe.skipIf(!need.ok)("interop with skopeo and dockerd", () => {
  let reg: Distribution;
  let authReg: Distribution;
  let dockerd: Dockerd;
  let env: ClientEnv;
  let dir: string;
  let root: string;
  let id: string;
  const run = (args: string[], r = root, input?: string) => strata(r, args, { env: env.env, input });

  beforeAll(async () => {
    dir = tmp("interop");
    reg = await startDistribution();
    authReg = await startDistribution({ htpasswd: htpasswdFile(dir, { erin: "erin-pw" }) });
    env = clientEnv();
    root = path.join(dir, "store");
    const imp = await run([
      "import",
      "-c",
      'CMD ["echo", "hello from strata"]',
      busyboxRootfs(),
      `${reg.host}/io/busybox:1`,
    ]);
    id = imp.stdout.trim();
    expect((await run(["push", `${reg.host}/io/busybox:1`])).code).toBe(0);
    dockerd = await startDockerd({ insecureRegistries: [reg.host, authReg.host] });
  });
  afterAll(async () => {
    await dockerd?.stop();
    await reg?.stop();
    await authReg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("skopeo copies what Strata pushed (verifying every blob); the config is the image Strata has", async () => {
    const [img] = JSON.parse((await run(["inspect", id])).stdout);
    // To an OCI layout: skopeo converts the Docker manifest and rewrites the config as OCI,
    // so compare what must survive: the layers' diff IDs and the container config.
    const layout = path.join(dir, "skopeo-oci");
    await pexec("skopeo", [
      "copy",
      "--src-tls-verify=false",
      `docker://${reg.host}/io/busybox:1`,
      `oci:${layout}:bb`,
    ]);
    const index = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"));
    const blob = (d: string) => readFileSync(path.join(layout, "blobs/sha256", d.slice(7)), "utf8");
    const ociConfig = JSON.parse(blob(JSON.parse(blob(index.manifests[0].digest)).config.digest));
    expect(ociConfig.rootfs.diff_ids).toEqual(img.RootFS.Layers);
    expect(ociConfig.config.Cmd).toEqual(["echo", "hello from strata"]);
    // As it is (dir:): the very config bytes, so the same image ID.
    const plain = path.join(dir, "skopeo-dir");
    await pexec("skopeo", [
      "copy",
      "--src-tls-verify=false",
      `docker://${reg.host}/io/busybox:1`,
      `dir:${plain}`,
    ]);
    const manifest = JSON.parse(readFileSync(path.join(plain, "manifest.json"), "utf8"));
    expect(manifest.config.digest).toBe(id);
    expect(sha256(readFileSync(path.join(plain, id.slice(7))))).toBe(id);
  });

  it("dockerd pulls what Strata pushed, runs it, and sees the same image ID", async () => {
    const ref = `${reg.host}/io/busybox:1`;
    await dockerd.docker(["pull", ref]);
    const out = await dockerd.docker(["run", "--rm", "--network", "none", ref]);
    expect(out.stdout).toBe("hello from strata\n");
    const inspect = await dockerd.docker(["image", "inspect", "--format", "{{.Id}}", ref]);
    expect(inspect.stdout.trim()).toBe(id);
  });

  it("an image dockerd pushed is pulled by Strata with the same config and manifest digest", async () => {
    await dockerd.docker([
      "import",
      "--change",
      'CMD ["echo", "from docker"]',
      busyboxRootfs(),
      "dock/busybox:1",
    ]);
    const ref = `${reg.host}/io/from-docker:1`;
    await dockerd.docker(["tag", "dock/busybox:1", ref]);
    const push = await dockerd.docker(["push", ref]);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)![1];
    const dockerId = (await dockerd.docker(["image", "inspect", "--format", "{{.Id}}", ref])).stdout.trim();
    const pull = await run(["pull", ref], path.join(dir, "from-docker"));
    expect(pull.stderr).toBe("");
    expect(pull.stdout).toContain(`Digest: ${digest}`);
    const [img] = JSON.parse((await run(["inspect", ref], path.join(dir, "from-docker"))).stdout);
    expect(img.Id).toBe(dockerId);
    expect(img.Config.Cmd).toEqual(["echo", "from docker"]);
  });

  it("an OCI image skopeo pushed is pulled by Strata with the same config", async () => {
    const layout = path.join(dir, "oci-src");
    await writeOciLayout(layout, { tag: "latest", labels: { made: "by-skopeo-test" } });
    const index = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8"));
    const manifest = JSON.parse(
      readFileSync(path.join(layout, "blobs/sha256", index.manifests[0].digest.slice(7)), "utf8"),
    );
    await pexec("skopeo", [
      "copy",
      "--dest-tls-verify=false",
      `oci:${layout}:latest`,
      `docker://${reg.host}/io/from-skopeo:1`,
    ]);
    const r = path.join(dir, "from-skopeo");
    const pull = await run(["pull", `${reg.host}/io/from-skopeo:1`], r);
    expect(pull.stderr).toBe("");
    const [img] = JSON.parse((await run(["inspect", `${reg.host}/io/from-skopeo:1`], r)).stdout);
    expect(img.Id).toBe(manifest.config.digest);
    expect(img.Config.Labels).toEqual({ made: "by-skopeo-test" });
  });

  it("docker login and strata login share Docker's config.json", async () => {
    const cfg = env.dockerConfig;
    await dockerd.docker(["--config", cfg, "login", authReg.host, "-u", "erin", "--password-stdin"], {
      input: "erin-pw",
    });
    const ref = `${authReg.host}/io/shared:1`;
    expect((await run(["tag", `${reg.host}/io/busybox:1`, ref])).code).toBe(0);
    const push = await run(["push", ref]);
    expect(push.stderr).toBe("");
    expect(push.stdout).toMatch(/1: digest: sha256:/);
    await dockerd.docker(["--config", cfg, "logout", authReg.host]);
    const refused = await run(["push", ref]);
    expect(refused.stderr).toMatch(/no basic auth credentials/);
    expect((await run(["login", authReg.host, "-u", "erin", "--password-stdin"], root, "erin-pw")).code).toBe(
      0,
    );
    const pulled = await dockerd.docker(["--config", cfg, "pull", ref]);
    expect(pulled.stdout).toContain("Status:");
  });
});

describe.skipIf(!requires({ tools: ["docker-registry"] }).ok)("a multi-platform index", () => {
  let reg: Distribution;
  let env: ClientEnv;
  let dir: string;
  let amd64: string;
  let arm64: string;
  let indexDigest: string;

  beforeAll(async () => {
    dir = tmp("multi");
    reg = await startDistribution();
    env = clientEnv();
    const root = path.join(dir, "src");
    amd64 = (
      await strata(root, ["import", busyboxRootfs(), `${reg.host}/mp/app:amd64`], { env: env.env })
    ).stdout.trim();
    expect((await strata(root, ["push", `${reg.host}/mp/app:amd64`], { env: env.env })).code).toBe(0);
    const accept = { Accept: "application/vnd.docker.distribution.manifest.v2+json" };
    const amdManifest = (await request("GET", `${reg.url}/v2/mp/app/manifests/amd64`, { headers: accept }))
      .body;
    // The arm64 image: the same layer under a config that says arm64 (built by hand).
    const cfg = JSON.parse((await request("GET", `${reg.url}/v2/mp/app/blobs/${amd64}`)).body.toString());
    const armConfig = Buffer.from(JSON.stringify({ ...cfg, architecture: "arm64", variant: "v8" }));
    arm64 = sha256(armConfig);
    await pushBlob(reg.url, "mp/app", { digest: arm64, size: armConfig.length, data: armConfig });
    const m = JSON.parse(amdManifest.toString());
    const armManifest = Buffer.from(
      JSON.stringify({ ...m, config: { ...m.config, digest: arm64, size: armConfig.length } }, null, 3),
    );
    const put = await request("PUT", `${reg.url}/v2/mp/app/manifests/${sha256(armManifest)}`, {
      headers: { "Content-Type": m.mediaType },
      body: armManifest,
    });
    expect(put.status).toBe(201);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          {
            mediaType: m.mediaType,
            digest: sha256(amdManifest),
            size: amdManifest.length,
            platform: { os: "linux", architecture: "amd64" },
          },
          {
            mediaType: m.mediaType,
            digest: sha256(armManifest),
            size: armManifest.length,
            platform: { os: "linux", architecture: "arm64", variant: "v8" },
          },
        ],
      }),
    );
    indexDigest = sha256(index);
    const putIndex = await request("PUT", `${reg.url}/v2/mp/app/manifests/latest`, {
      headers: { "Content-Type": "application/vnd.oci.image.index.v1+json" },
      body: index,
    });
    expect(putIndex.status).toBe(201);
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("pulls the host's platform; Digest and RepoDigests name the index", async () => {
    const root = path.join(dir, "host");
    const r = await strata(root, ["pull", `${reg.host}/mp/app`], { env: env.env });
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`Digest: ${indexDigest}`);
    const [img] = JSON.parse((await strata(root, ["inspect", `${reg.host}/mp/app`])).stdout);
    expect(img.Id).toBe(process.arch === "arm64" ? arm64 : amd64);
    expect(img.RepoDigests).toEqual([`${reg.host}/mp/app@${indexDigest}`]);
  });

  it("--platform linux/arm64 pulls the arm64 image", async () => {
    const root = path.join(dir, "arm");
    const r = await strata(root, ["pull", "--platform", "linux/arm64", `${reg.host}/mp/app:latest`], {
      env: env.env,
    });
    expect(r.stderr).toBe("");
    const [img] = JSON.parse((await strata(root, ["inspect", `${reg.host}/mp/app:latest`])).stdout);
    expect(img.Id).toBe(arm64);
    expect(img.Architecture).toBe("arm64");
  });

  it("a platform the index lacks is an error that lists the platforms there are", async () => {
    const r = await strata(
      path.join(dir, "s390x"),
      ["pull", "--platform", "linux/s390x", `${reg.host}/mp/app`],
      {
        env: env.env,
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "Error: no matching manifest for linux/s390x in the manifest list entries (available: linux/amd64, linux/arm64/v8)\n",
    );
  });

  it("--platform on a single-platform image of another platform is refused", async () => {
    const r = await strata(
      path.join(dir, "single"),
      ["pull", "--platform", "linux/arm64", `${reg.host}/mp/app:amd64`],
      {
        env: env.env,
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "does not match the specified platform: wanted linux/arm64/v8, actual: linux/amd64",
    );
  });
});
