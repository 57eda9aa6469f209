/**
 * Crash safety (kill -9 during an upload, restart, resume; fsck verifies everything),
 * graceful SIGTERM, and `strata registry gc` / `fsck` through the CLI, including a push
 * racing a gc.
 */
import { execFile } from "node:child_process";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { blob, makeImage, OCI_MANIFEST, pushBlob, pushImage, sha256 } from "../../helpers/registry-images.js";
import {
  REPO_ROOT,
  type RegistryProcess,
  request,
  STRATA_CLI,
  startStrata,
} from "../../helpers/registry-servers.js";

const pexec = promisify(execFile);

/** `strata registry <args>` as a separate process; resolves with exit code and output. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await pexec(process.execPath, [STRATA_CLI, "registry", ...args], {
      cwd: REPO_ROOT,
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === "number" ? err.code : -1,
      stdout: err.stdout ?? "",
      stderr: err.stderr ?? "",
    };
  }
}

function blobCount(root: string): number {
  let n = 0;
  const base = path.join(root, "blobs/sha256");
  for (const p of readdirSync(base)) n += readdirSync(path.join(base, p)).length;
  return n;
}

const running: RegistryProcess[] = [];
async function start(opts: Parameters<typeof startStrata>[0] = {}): Promise<RegistryProcess> {
  const r = await startStrata(opts);
  running.push(r);
  return r;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

describe("crash safety", () => {
  it("kill -9 in the middle of a chunk: restart, resume from the reported range, finish; fsck is clean", async () => {
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const digest = sha256(data);
    const repo = "crash/app";
    let reg = await start();
    const root = reg.root;
    const post = await request("POST", `${reg.url}/v2/${repo}/blobs/uploads/`);
    const id = post.header("docker-upload-uuid")!;
    const first = await request("PATCH", `${reg.url}/v2/${repo}/blobs/uploads/${id}`, {
      headers: { "Content-Range": `0-${1024 * 1024 - 1}` },
      body: data.subarray(0, 1024 * 1024),
    });
    expect(first.header("range")).toBe(`0-${1024 * 1024 - 1}`);

    // Start the second chunk, send part of it, and kill the server mid-request.
    const sock = net.connect(Number(new URL(reg.url).port), "127.0.0.1");
    sock.on("error", () => {});
    await new Promise((r) => sock.once("connect", r));
    sock.write(
      `PATCH /v2/${repo}/blobs/uploads/${id} HTTP/1.1\r\nHost: x\r\nContent-Range: ${1024 * 1024}-${3 * 1024 * 1024 - 1}\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`,
    );
    sock.write(data.subarray(1024 * 1024, 1024 * 1024 + 300 * 1024));
    await new Promise((r) => setTimeout(r, 300));
    await reg.kill9();
    sock.destroy();

    reg = await start({ root });
    const st = await request("GET", `${reg.url}/v2/${repo}/blobs/uploads/${id}`);
    expect(st.status).toBe(204);
    const have = Number(/^0-(\d+)$/.exec(st.header("range")!)![1]) + 1;
    // Whatever the dead server wrote is a prefix of what the client sent.
    expect(have).toBeGreaterThanOrEqual(1024 * 1024);
    expect(have).toBeLessThanOrEqual(1024 * 1024 + 300 * 1024);
    const rest = await request("PATCH", `${reg.url}/v2/${repo}/blobs/uploads/${id}`, {
      headers: { "Content-Range": `${have}-${data.length - 1}` },
      body: data.subarray(have),
    });
    expect(rest.status).toBe(202);
    const put = await request("PUT", `${reg.url}/v2/${repo}/blobs/uploads/${id}?digest=${digest}`);
    expect(put.status).toBe(201);
    const get = await request("GET", `${reg.url}/v2/${repo}/blobs/${digest}`);
    expect(get.body.equals(data)).toBe(true);

    const fsck = await cli(["fsck", "--root", root]);
    expect(fsck.code).toBe(0);
    expect(fsck.stdout).toContain("0 problems");
  }, 60_000);

  it("fsck finds a corrupted blob and exits 1", async () => {
    const reg = await start();
    const b = blob("will be corrupted");
    await pushBlob(reg.url, "crash/corrupt", b);
    await reg.stop();
    writeFileSync(path.join(reg.root, "blobs/sha256", b.digest.slice(7, 9), b.digest.slice(7)), "tampered");
    const fsck = await cli(["fsck", "--root", reg.root]);
    expect(fsck.code).toBe(1);
    expect(fsck.stdout).toContain(`blob ${b.digest}: content does not match its digest`);
    expect(fsck.stderr).toMatch(/^Error: registry check found 1 problems/m);
  });

  it("SIGTERM lets an in-flight upload finish and exits 0; the session is resumable", async () => {
    let reg = await start();
    const root = reg.root;
    const post = await request("POST", `${reg.url}/v2/crash/term/blobs/uploads/`);
    const id = post.header("docker-upload-uuid")!;
    const data = Buffer.alloc(512 * 1024, 7);
    // Send the chunk slowly in two halves, signalling SIGTERM in between.
    const sock = net.connect(Number(new URL(reg.url).port), "127.0.0.1");
    const reply = new Promise<string>((resolve) => {
      let t = "";
      sock.on("data", (d) => {
        t += d.toString();
      });
      sock.on("close", () => resolve(t));
    });
    await new Promise((r) => sock.once("connect", r));
    sock.write(
      `PATCH /v2/crash/term/blobs/uploads/${id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${data.length}\r\n\r\n`,
    );
    sock.write(data.subarray(0, data.length / 2));
    await new Promise((r) => setTimeout(r, 200));
    const exited = reg.stop();
    await new Promise((r) => setTimeout(r, 200));
    sock.write(data.subarray(data.length / 2));
    expect(await reply).toMatch(/^HTTP\/1\.1 202/);
    expect(await exited).toBe(0);
    reg = await start({ root });
    const st = await request("GET", `${reg.url}/v2/crash/term/blobs/uploads/${id}`);
    expect(st.header("range")).toBe(`0-${data.length - 1}`);
  });
});

describe("gc and fsck through the CLI", () => {
  it("--dry-run deletes nothing; gc removes orphans; --delete-untagged removes untagged images", async () => {
    const reg = await start();
    const keep = await makeImage({ layers: 2 });
    const drop = await makeImage({ layers: 2 });
    await pushImage(reg.url, "gc/app", "keep", keep);
    await pushImage(reg.url, "gc/app", "drop", drop);
    const orphan = blob("uploaded, never referenced");
    await pushBlob(reg.url, "gc/app", orphan);
    // Untag `drop`: its manifest stays until --delete-untagged.
    expect((await request("DELETE", `${reg.url}/v2/gc/app/manifests/drop`)).status).toBe(202);
    const total = blobCount(reg.root);
    // Manifests are blobs too: 2 x (manifest + config + 2 layers) + the orphan.
    expect(total).toBe(4 + 4 + 1);

    const dry = await cli([
      "gc",
      "--root",
      reg.root,
      "--grace-period",
      "0s",
      "--dry-run",
      "--delete-untagged",
    ]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would delete blob ${orphan.digest}`);
    expect(dry.stdout).toContain(`would delete manifest gc/app@${drop.digest}`);
    expect(blobCount(reg.root)).toBe(total);

    const gc1 = await cli(["gc", "--root", reg.root, "--grace-period", "0s"]);
    expect(gc1.code).toBe(0);
    expect(gc1.stdout).toMatch(/Deleted 0 manifests, 1 blobs/);
    expect(blobCount(reg.root)).toBe(total - 1);
    expect((await request("GET", `${reg.url}/v2/gc/app/manifests/${drop.digest}`)).status).toBe(200);

    const gc2 = await cli(["gc", "--root", reg.root, "--grace-period", "0s", "--delete-untagged"]);
    expect(gc2.code).toBe(0);
    expect(gc2.stdout).toMatch(/Deleted 1 manifests, 4 blobs/);
    expect(blobCount(reg.root)).toBe(4);
    expect((await request("GET", `${reg.url}/v2/gc/app/manifests/${drop.digest}`)).status).toBe(404);
    const kept = await request("GET", `${reg.url}/v2/gc/app/manifests/keep`, {
      headers: { Accept: OCI_MANIFEST },
    });
    expect(kept.body.equals(keep.manifest)).toBe(true);
    for (const l of keep.layers)
      expect((await request("HEAD", `${reg.url}/v2/gc/app/blobs/${l.digest}`)).status).toBe(200);
    const fsck = await cli(["fsck", "--root", reg.root]);
    expect(fsck.code).toBe(0);
  }, 60_000);

  it("keeps index children and referrers of tagged manifests with --delete-untagged", async () => {
    const reg = await start();
    const child = await makeImage();
    await pushImage(reg.url, "gc/multi", child.digest, child);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{ mediaType: OCI_MANIFEST, digest: child.digest, size: child.manifest.length }],
      }),
    );
    const put = await request("PUT", `${reg.url}/v2/gc/multi/manifests/latest`, {
      headers: { "Content-Type": "application/vnd.oci.image.index.v1+json" },
      body: index,
    });
    expect(put.status).toBe(201);
    const sig = await makeImage({
      artifactType: "application/vnd.example.sig",
      subject: {
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: sha256(index),
        size: index.length,
      },
    });
    await pushImage(reg.url, "gc/multi", sig.digest, sig);
    const gc = await cli(["gc", "--root", reg.root, "--grace-period", "0s", "--delete-untagged"]);
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/Deleted 0 manifests/);
    expect((await request("GET", `${reg.url}/v2/gc/multi/manifests/${child.digest}`)).status).toBe(200);
    expect((await request("GET", `${reg.url}/v2/gc/multi/manifests/${sig.digest}`)).status).toBe(200);
  }, 60_000);

  it("an upload whose start time is not written yet is not purged", async () => {
    const reg = await start();
    // A repository with an image already (gc looks at uploads of repositories).
    await pushImage(reg.url, "young/app", "v1", await makeImage());
    const b = blob(Buffer.from("young upload"));
    const post = await request("POST", `${reg.url}/v2/young/app/blobs/uploads/`);
    expect(post.status).toBe(202);
    // The moment gc can see: the session's directory is there, its startedat not yet.
    const uploads = path.join(reg.root, "repositories/young/app/_uploads");
    const [id] = readdirSync(uploads);
    rmSync(path.join(uploads, id!, "startedat"));
    const gc = await cli(["gc", "--root", reg.root]);
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/0 stale uploads/);
    const loc = new URL(post.header("location")!, reg.url);
    loc.searchParams.set("digest", b.digest);
    const put = await request("PUT", loc.toString(), {
      headers: { "Content-Type": "application/octet-stream" },
      body: b.data,
    });
    expect(put.status).toBe(201);
  }, 60_000);

  it("a push racing repeated gc runs loses nothing", async () => {
    const reg = await start();
    const images = await Promise.all(Array.from({ length: 6 }, () => makeImage({ layers: 3 })));
    let pushing = true;
    // A failed push ends the gc loop too (and fails the test), rather than leave it spinning.
    const pushes = (async () => {
      for (const [i, im] of images.entries()) await pushImage(reg.url, `race/app${i % 2}`, `t${i}`, im);
    })().finally(() => {
      pushing = false;
    });
    const failures: string[] = [];
    const gc = async () => {
      const r = await cli(["gc", "--root", reg.root, "--delete-untagged"]);
      if (r.code !== 0) failures.push(`exit ${r.code}: ${r.stderr.trim()}`);
    };
    while (pushing) await gc();
    await pushes;
    await gc();
    expect(failures).toEqual([]);
    for (const [i, im] of images.entries()) {
      const r = await request("GET", `${reg.url}/v2/race/app${i % 2}/manifests/t${i}`, {
        headers: { Accept: OCI_MANIFEST },
      });
      expect(r.status).toBe(200);
      for (const l of im.layers)
        expect((await request("HEAD", `${reg.url}/v2/race/app${i % 2}/blobs/${l.digest}`)).status).toBe(200);
    }
    const fsck = await cli(["fsck", "--root", reg.root]);
    expect(fsck.code).toBe(0);
    expect(fsck.stdout).toContain("0 problems");
  }, 120_000);
});
