/** Small test images for the registry tests: blobs, manifests and OCI layouts made on the spot. */
import { createHash, randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";
import { request } from "./registry-servers.js";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
export const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip";

export function sha256(b: Buffer | string): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

export interface Blob {
  digest: string;
  size: number;
  data: Buffer;
}

export function blob(data: Buffer | string): Blob {
  const b = Buffer.from(data);
  return { digest: sha256(b), size: b.length, data: b };
}

/** A gzip'd tar of the given files (deterministic). */
export async function tarGz(files: Record<string, string>): Promise<{ gz: Buffer; diffId: string }> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files))
    pack.entry({ name, mtime: new Date(0), mode: 0o644, uid: 0, gid: 0 }, content);
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) parts.push(c);
  const raw = Buffer.concat(parts);
  return { gz: gzipSync(raw), diffId: sha256(raw) };
}

export interface TestImage {
  config: Blob;
  layers: Blob[];
  manifest: Buffer;
  digest: string;
  mediaType: string;
}

/** An image with `n` layers. `real` layers are tars (for skopeo/docker); otherwise random bytes. */
export async function makeImage(
  opts: {
    layers?: number;
    docker?: boolean;
    labels?: Record<string, string>;
    subject?: { digest: string; size: number; mediaType: string };
    artifactType?: string;
    annotations?: Record<string, string>;
    seed?: string;
  } = {},
): Promise<TestImage> {
  const n = opts.layers ?? 1;
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = await tarGz({
      [`file-${i}.txt`]: `${opts.seed ?? randomBytes(8).toString("hex")} layer ${i}\n`,
    });
    layers.push(blob(t.gz));
    diffIds.push(t.diffId);
  }
  const config = blob(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"], ...(opts.labels ? { Labels: opts.labels } : {}) },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: diffIds.map(() => ({ created_by: "test" })),
    }),
  );
  const mediaType = opts.docker ? DOCKER_MANIFEST : OCI_MANIFEST;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
      config: {
        mediaType: opts.docker ? DOCKER_CONFIG : OCI_CONFIG,
        digest: config.digest,
        size: config.size,
      },
      layers: layers.map((l) => ({
        mediaType: opts.docker ? DOCKER_LAYER : OCI_LAYER_GZIP,
        digest: l.digest,
        size: l.size,
      })),
      ...(opts.subject ? { subject: opts.subject } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    }),
  );
  return { config, layers, manifest, digest: sha256(manifest), mediaType };
}

/** Push a blob with a session + one PUT (works on every registry). */
export async function pushBlob(
  base: string,
  repo: string,
  b: Blob,
  headers: Record<string, string> = {},
): Promise<void> {
  const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, { headers });
  if (post.status !== 202) throw new Error(`POST upload: ${post.status} ${post.body}`);
  const loc = new URL(post.header("location")!, base);
  loc.searchParams.set("digest", b.digest);
  const put = await request("PUT", loc.toString(), {
    headers: { ...headers, "Content-Type": "application/octet-stream" },
    body: b.data,
  });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${put.body}`);
}

export async function pushImage(
  base: string,
  repo: string,
  ref: string,
  img: TestImage,
  headers: Record<string, string> = {},
): Promise<void> {
  for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b, headers);
  const r = await request("PUT", `${base}/v2/${repo}/manifests/${ref}`, {
    headers: { ...headers, "Content-Type": img.mediaType },
    body: img.manifest,
  });
  if (r.status !== 201) throw new Error(`PUT manifest: ${r.status} ${r.body}`);
}

/**
 * Write an OCI image layout with one image tagged `tag` (busybox-free: a few text files and
 * an optional /bin/busybox from the host so containers can run).
 */
export async function writeOciLayout(
  dir: string,
  opts: { tag?: string; files?: Record<string, string>; labels?: Record<string, string> } = {},
): Promise<{ digest: string }> {
  const t = await tarGz(opts.files ?? { "hello.txt": `hello ${randomBytes(4).toString("hex")}\n` });
  const layer = blob(t.gz);
  const config = blob(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/hello.txt"], ...(opts.labels ? { Labels: opts.labels } : {}) },
      rootfs: { type: "layers", diff_ids: [t.diffId] },
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: [{ mediaType: OCI_LAYER_GZIP, digest: layer.digest, size: layer.size }],
    }),
  );
  await fsp.mkdir(path.join(dir, "blobs/sha256"), { recursive: true });
  for (const b of [layer, config, manifest])
    await fsp.writeFile(path.join(dir, "blobs/sha256", b.digest.slice(7)), b.data);
  await fsp.writeFile(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await fsp.writeFile(
    path.join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: manifest.digest,
          size: manifest.size,
          annotations: { "org.opencontainers.image.ref.name": opts.tag ?? "latest" },
        },
      ],
    }),
  );
  return { digest: manifest.digest };
}
