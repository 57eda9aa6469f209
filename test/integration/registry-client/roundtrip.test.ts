/**
 * push and pull against Debian's CNCF distribution (anonymous): Docker's output lines, the
 * same image ID after a round trip, RepoDigests, layer sharing (`Layer already exists`,
 * `Mounted from`, `Already exists`), -a/--all-tags, pull by digest, -q, and Docker's errors.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "../../../src/registry/client/index.js";
import { strata } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import {
  type ClientEnv,
  clientEnv,
  type Distribution,
  dockerArchive,
  startDistribution,
  tarOf,
  tmp,
} from "../../helpers/registry-client.js";
import { request } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["docker-registry"] });

describe.skipIf(!need.ok)("push and pull with CNCF distribution (anonymous)", () => {
  let reg: Distribution;
  let env: ClientEnv;
  let dir: string;
  let rootA: string;
  let id: string;
  let diffId: string;
  let pushed: string;
  const run = (root: string, args: string[]) => strata(root, args, { env: env.env });

  beforeAll(async () => {
    reg = await startDistribution();
    env = clientEnv();
    dir = tmp("rt");
    rootA = path.join(dir, "a");
    const r = await run(rootA, [
      "import",
      "-c",
      'CMD ["echo", "hello from busybox"]',
      busyboxRootfs(),
      `${reg.host}/rt/busybox:1`,
    ]);
    expect(r.stderr).toBe("");
    id = r.stdout.trim();
    const inspect = JSON.parse((await run(rootA, ["inspect", id])).stdout);
    diffId = inspect[0].RootFS.Layers[0];
  });

  afterAll(async () => {
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(env.dir, { recursive: true, force: true });
  });

  it("push prints Docker's lines; the manifest digest is the registry's; a second push finds the layer", async () => {
    const r = await run(rootA, ["push", `${reg.host}/rt/busybox:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const short = diffId.slice(7, 19);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`The push refers to repository [${reg.host}/rt/busybox]`);
    expect(lines).toContain(`${short}: Preparing`);
    expect(lines).toContain(`${short}: Pushed`);
    const m = /^1: digest: (sha256:[0-9a-f]{64}) size: (\d+)$/.exec(lines[lines.length - 1]!);
    expect(m, r.stdout).not.toBeNull();
    pushed = m![1]!;
    const head = await request("HEAD", `${reg.url}/v2/rt/busybox/manifests/1`, {
      headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
    });
    expect(head.header("docker-content-digest")).toBe(pushed);
    expect(Number(head.header("content-length"))).toBe(Number(m![2]));
    const manifest = (
      await request("GET", `${reg.url}/v2/rt/busybox/manifests/1`, {
        headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
      })
    ).json<{ mediaType: string; config: { digest: string }; layers: { mediaType: string }[] }>();
    expect(manifest.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(manifest.config.digest).toBe(id);
    expect(manifest.layers[0]!.mediaType).toBe("application/vnd.docker.image.rootfs.diff.tar.gzip");

    const again = await run(rootA, ["push", `${reg.host}/rt/busybox:1`]);
    expect(again.stdout).toContain(`${short}: Layer already exists`);
    expect(again.stdout).toContain(`1: digest: ${pushed} size: `);
    const digests = await run(rootA, [
      "images",
      "--digests",
      "--format",
      "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    expect(digests.stdout).toContain(`${reg.host}/rt/busybox 1 ${pushed}`);
  });

  it("rmi, then pull gives back the same image ID with its RepoDigest; pulling again is up to date", async () => {
    expect((await run(rootA, ["rmi", `${reg.host}/rt/busybox:1`])).code).toBe(0);
    const r = await run(rootA, ["pull", `${reg.host}/rt/busybox:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe("1: Pulling from rt/busybox");
    const layer = /^([0-9a-f]{12}): Pulling fs layer$/.exec(lines[1]!)?.[1];
    expect(layer, r.stdout).toBeDefined();
    expect(lines).toContain(`${layer}: Verifying Checksum`);
    expect(lines).toContain(`${layer}: Download complete`);
    expect(lines).toContain(`${layer}: Pull complete`);
    expect(lines.slice(-3)).toEqual([
      `Digest: ${pushed}`,
      `Status: Downloaded newer image for ${reg.host}/rt/busybox:1`,
      `${reg.host}/rt/busybox:1`,
    ]);
    const [img] = JSON.parse((await run(rootA, ["inspect", `${reg.host}/rt/busybox:1`])).stdout);
    expect(img.Id).toBe(id);
    expect(img.RepoDigests).toEqual([`${reg.host}/rt/busybox@${pushed}`]);
    expect(img.Config.Cmd).toEqual(["echo", "hello from busybox"]);

    const again = await run(rootA, ["pull", `${reg.host}/rt/busybox:1`]);
    expect(again.stdout).toContain(`${layer}: Already exists`);
    expect(again.stdout).toContain(`Status: Image is up to date for ${reg.host}/rt/busybox:1`);
    // The pulled layer's compressed digest was remembered: the push that follows needs no compression.
    const repush = await run(rootA, ["push", `${reg.host}/rt/busybox:1`]);
    expect(repush.stdout).toContain(`1: digest: ${pushed} size: `);
  });

  it("a fresh store pulls, then pushes to another repository by mounting the layer", async () => {
    const rootB = path.join(dir, "b");
    expect((await run(rootB, ["pull", "-q", `${reg.host}/rt/busybox:1`])).stdout).toBe(
      `${reg.host}/rt/busybox:1\n`,
    );
    expect((await run(rootB, ["tag", `${reg.host}/rt/busybox:1`, `${reg.host}/other/busybox:1`])).code).toBe(
      0,
    );
    const r = await run(rootB, ["push", `${reg.host}/other/busybox:1`]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`${diffId.slice(7, 19)}: Mounted from rt/busybox`);
    expect(r.stdout).toContain(`1: digest: ${pushed} size: `);
    const head = await request("HEAD", `${reg.url}/v2/other/busybox/manifests/1`, {
      headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
    });
    expect(head.status).toBe(200);
  });

  it("a second image on the same base: the base layer already exists on push and on pull", async () => {
    const base = readFileSync(busyboxRootfs());
    const extra = await tarOf({ "app/hello.txt": "hello from the app layer\n" });
    const { archive, id: appId } = await dockerArchive([base, extra], {
      tag: `${reg.host}/rt/app:1`,
      cmd: ["cat", "/app/hello.txt"],
    });
    const file = path.join(dir, "app.tar");
    writeFileSync(file, archive);
    expect((await run(rootA, ["load", "-i", file])).code).toBe(0);
    const push = await run(rootA, ["push", `${reg.host}/rt/app:1`]);
    expect(push.stderr).toBe("");
    const extraShort = (
      JSON.parse((await run(rootA, ["inspect", appId])).stdout)[0].RootFS.Layers[1] as string
    ).slice(7, 19);
    const baseShort = diffId.slice(7, 19);
    // Docker lists the top layer first.
    const lines = push.stdout.split("\n");
    expect(lines.indexOf(`${extraShort}: Preparing`)).toBeLessThan(lines.indexOf(`${baseShort}: Preparing`));
    expect(push.stdout).toMatch(new RegExp(`${baseShort}: (Layer already exists|Mounted from rt/busybox)`));
    expect(push.stdout).toContain(`${extraShort}: Pushed`);

    const rootC = path.join(dir, "c");
    expect((await run(rootC, ["pull", `${reg.host}/rt/busybox:1`])).code).toBe(0);
    const pull = await run(rootC, ["pull", `${reg.host}/rt/app:1`]);
    expect(pull.code).toBe(0);
    const already = pull.stdout.split("\n").filter((l) => l.endsWith(": Already exists"));
    const complete = pull.stdout.split("\n").filter((l) => l.endsWith(": Pull complete"));
    expect(already).toHaveLength(1);
    expect(complete).toHaveLength(1);
    const [img] = JSON.parse((await run(rootC, ["inspect", `${reg.host}/rt/app:1`])).stdout);
    expect(img.Id).toBe(appId);
  });

  it("push -a and pull -a move every tag; pull by digest records only the digest", async () => {
    for (const t of ["2", "3"])
      expect(
        (await run(rootA, ["tag", `${reg.host}/rt/busybox:1`, `${reg.host}/rt/busybox:${t}`])).code,
      ).toBe(0);
    const push = await run(rootA, ["push", "-a", `${reg.host}/rt/busybox`]);
    expect(push.stderr).toBe("");
    for (const t of ["1", "2", "3"]) expect(push.stdout).toContain(`${t}: digest: ${pushed} size: `);
    expect(push.stdout.match(/The push refers to repository/g)).toHaveLength(1);

    const rootD = path.join(dir, "d");
    const pull = await run(rootD, ["pull", "--all-tags", `${reg.host}/rt/busybox`]);
    expect(pull.stderr).toBe("");
    expect(pull.stdout).not.toContain("Using default tag");
    for (const t of ["1", "2", "3"]) expect(pull.stdout).toContain(`${t}: Pulling from rt/busybox`);
    expect(pull.stdout.trimEnd().split("\n").slice(-2)).toEqual([
      `Status: Downloaded newer image for ${reg.host}/rt/busybox`,
      `${reg.host}/rt/busybox`,
    ]);
    const tags = await run(rootD, ["images", "--format", "{{.Tag}}", `${reg.host}/rt/busybox`]);
    expect(tags.stdout.trim().split("\n").sort()).toEqual(["1", "2", "3"]);

    const rootE = path.join(dir, "e");
    const byDigest = await run(rootE, ["pull", `${reg.host}/rt/busybox@${pushed}`]);
    expect(byDigest.stderr).toBe("");
    expect(byDigest.stdout).toContain(`${pushed}: Pulling from rt/busybox`);
    expect(byDigest.stdout).toContain(`Status: Downloaded newer image for ${reg.host}/rt/busybox@${pushed}`);
    const list = await run(rootE, [
      "images",
      "--digests",
      "--format",
      "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}",
    ]);
    expect(list.stdout.trim()).toBe(`${reg.host}/rt/busybox <none> ${pushed} ${id.slice(7, 19)}`);
  });

  it("tag lists follow the registry's Link header page by page", async () => {
    const client = new Client();
    try {
      const repo = client.registry(reg.host).repository("rt/busybox");
      // Three pages of one tag each (distribution 2.8 pages in its own order).
      expect((await repo.tags({ pageSize: 1 })).sort()).toEqual(["1", "2", "3"]);
      expect((await repo.tags()).sort()).toEqual(["1", "2", "3"]);
    } finally {
      await client.close();
    }
  });

  it("a name without tag says Using default tag; -q prints only the reference", async () => {
    expect(
      (await run(rootA, ["tag", `${reg.host}/rt/busybox:1`, `${reg.host}/rt/busybox:latest`])).code,
    ).toBe(0);
    const push = await run(rootA, ["push", `${reg.host}/rt/busybox`]);
    expect(push.stdout.split("\n")[0]).toBe("Using default tag: latest");
    const quiet = await run(rootA, ["push", "-q", `${reg.host}/rt/busybox:latest`]);
    expect(quiet.stdout).toBe(`${reg.host}/rt/busybox:latest\n`);
    const pull = await run(path.join(dir, "f"), ["pull", `${reg.host}/rt/busybox`]);
    expect(pull.stdout.split("\n").slice(0, 2)).toEqual([
      "Using default tag: latest",
      "latest: Pulling from rt/busybox",
    ]);
  });

  it("errors read like Docker's: unknown tag, no such local image, bad reference", async () => {
    const missing = await run(rootA, ["pull", `${reg.host}/rt/busybox:nope`]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toBe(
      `Error: manifest for ${reg.host}/rt/busybox:nope not found: manifest unknown: manifest unknown\n`,
    );
    const noImage = await run(rootA, ["push", `${reg.host}/rt/none:1`]);
    expect(noImage.code).toBe(1);
    expect(noImage.stderr).toBe(`Error: An image does not exist locally with the tag: ${reg.host}/rt/none\n`);
    const bad = await run(rootA, ["pull", "Bad//Name"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^Error: invalid reference format/);
  });
});
