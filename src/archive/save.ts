import { pipeline } from "node:stream/promises";
import { pack as tarPack } from "tar-stream";
import type { Image } from "../image/index.js";
import { type Digest, digestHex, MediaType } from "../oci/index.js";
import { familiarName, familiarString, parseDockerRef } from "../reference/index.js";

export interface SaveItem {
  image: Image;
  /** The local OCI manifest of the image (uncompressed layers), as bytes. */
  manifest: { raw: Buffer; digest: Digest };
  /** Full references to record for it (empty: saved by ID). */
  tags: string[];
}

const EPOCH = new Date(0);

/**
 * Write images as a `docker save` archive, the layout Docker 25+ writes: an OCI image
 * layout (oci-layout, index.json, blobs/sha256/…) plus the legacy manifest.json and
 * repositories, so `docker load` of every version and skopeo's docker-archive: and
 * oci-archive: transports read it. Layers are uncompressed tars, each written once however
 * many images share it; bytes stream from the store, nothing is held whole.
 */
export async function saveArchive(
  items: SaveItem[],
  out: NodeJS.WritableStream,
  opts: { signal?: AbortSignal } = {},
) {
  const pack = tarPack();
  const done = pipeline(pack, out, { signal: opts.signal });
  const written = new Set<string>();

  const addBytes = (name: string, data: Buffer | string) =>
    new Promise<void>((resolve, reject) => {
      pack.entry({ name, mtime: EPOCH, mode: 0o644 }, data, (e) => (e ? reject(e) : resolve()));
    });
  const addDir = (name: string) =>
    new Promise<void>((resolve, reject) => {
      pack.entry({ name, type: "directory", mtime: EPOCH, mode: 0o755 }, (e) => (e ? reject(e) : resolve()));
    });
  const addStream = async (
    name: string,
    size: number,
    open: () => Promise<AsyncIterable<Buffer> & NodeJS.ReadableStream>,
  ) => {
    const src = await open();
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry({ name, size, mtime: EPOCH, mode: 0o644 }, (e) => (e ? reject(e) : resolve()));
      pipeline(src, entry).catch(reject);
    });
  };
  const blobName = (d: Digest) => `blobs/sha256/${digestHex(d)}`;

  try {
    await addBytes("oci-layout", '{"imageLayoutVersion":"1.0.0"}');
    await addDir("blobs/");
    await addDir("blobs/sha256/");
    const index: object[] = [];
    const manifestJson: object[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const it of items) {
      const img = it.image;
      for (const l of img.layers) {
        if (written.has(l.diffId)) continue;
        written.add(l.diffId);
        await addStream(blobName(l.diffId), l.size, () => l.open());
      }
      if (!written.has(img.id)) {
        written.add(img.id);
        await addBytes(blobName(img.id), img.config.raw);
      }
      if (!written.has(it.manifest.digest)) {
        written.add(it.manifest.digest);
        await addBytes(blobName(it.manifest.digest), it.manifest.raw);
      }
      const desc = {
        mediaType: MediaType.OciManifest,
        digest: it.manifest.digest,
        size: it.manifest.raw.length,
      };
      const repoTags: string[] = [];
      for (const t of it.tags) {
        const ref = parseDockerRef(t);
        const tag = ref.tag ?? "latest";
        index.push({
          ...desc,
          annotations: { "io.containerd.image.name": t, "org.opencontainers.image.ref.name": tag },
        });
        repoTags.push(familiarString({ ...ref, digest: undefined }));
        const top = img.layers[img.layers.length - 1];
        if (top) (repositories[familiarName(ref)] ??= {})[tag] = digestHex(top.diffId);
      }
      if (!it.tags.length) index.push(desc);
      manifestJson.push({
        Config: blobName(img.id),
        RepoTags: repoTags.length ? repoTags : null,
        Layers: img.layers.map((l) => blobName(l.diffId)),
      });
    }
    await addBytes(
      "index.json",
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: index }),
    );
    await addBytes("manifest.json", JSON.stringify(manifestJson));
    if (Object.keys(repositories).length) await addBytes("repositories", JSON.stringify(repositories));
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await done.catch(() => {});
    throw e;
  }
  await done;
}
