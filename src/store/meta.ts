import { promises as fsp } from "node:fs";
import path from "node:path";
import { type Digest, MediaType } from "../oci/index.js";
import { atomicWriteFile, readFileOrUndefined, StrataError, withFileLock } from "../util/index.js";

/**
 * Image metadata, one JSON document (version 1):
 *
 *   <root>/meta/images.json   { version, images: {id: ImageRecord}, tags: {ref: id}, layers: {diffId: LayerRecord} }
 *   <root>/meta/lock          the target of the cross-process lock (proper-lockfile makes lock.lock/)
 *   <root>/index.json         derived from tags after every write: the OCI layout's view
 *
 * One document keeps `images` to a single read (1,000 tags answer in milliseconds) and
 * makes every change one atomic rename; writers serialise on the lock and re-read
 * inside it, so racing `tag` processes lose nothing.
 */
export const META_VERSION = 1;

export interface ImageRecord {
  /** Image ID: the digest of the config blob. */
  id: Digest;
  /** The local OCI manifest (uncompressed layers) kept in blobs/. */
  manifest: Digest;
  manifestSize: number;
  /** `created` of the config, if any. */
  created?: string;
  /** Sum of the layers' content sizes (what Docker shows as SIZE). */
  size: number;
  /** Canonical `name@sha256:…` of manifests this image was pushed as or pulled by. */
  repoDigests: string[];
  lastTagTime?: string;
  /** When the image entered this store: the order for `before=`/`since=`. */
  added: string;
}

export interface CompressedVariant {
  mediaType: string;
  digest: Digest;
  size: number;
  /**
   * Repositories (`host/path`) known to hold this blob, from pushes and pulls: a later push
   * to the same registry checks or mounts from them instead of uploading.
   */
  sources?: string[];
}

export interface LayerRecord {
  /** Uncompressed tar digest; the blob is stored under this digest. */
  diffId: Digest;
  /** Bytes of the uncompressed tar. */
  size: number;
  /** Bytes of regular-file content (Docker's layer size). */
  contentSize: number;
  /** Compressed forms made once for push or save, remembered. */
  compressed?: CompressedVariant[];
}

/** A build step's result, by cache key: the layer it made (null: no filesystem change). */
export interface CacheRecord {
  diffId: Digest | null;
  created: string;
  lastUsed: string;
}

export interface MetaDoc {
  version: number;
  images: Record<string, ImageRecord>;
  /** Full reference (docker.io/library/ubuntu:latest) -> image ID. */
  tags: Record<string, Digest>;
  layers: Record<string, LayerRecord>;
  /** Build cache: step key -> result. Its layers are GC roots until `builder prune`. */
  buildCache?: Record<string, CacheRecord>;
}

export function emptyMeta(): MetaDoc {
  return { version: META_VERSION, images: {}, tags: {}, layers: {} };
}

export class MetaStore {
  readonly dir: string;
  readonly file: string;
  readonly lockTarget: string;

  constructor(readonly root: string) {
    this.dir = path.join(root, "meta");
    this.file = path.join(this.dir, "images.json");
    this.lockTarget = path.join(this.dir, "lock");
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    const fh = await fsp.open(this.lockTarget, "a");
    await fh.close();
  }

  async read(): Promise<MetaDoc> {
    const buf = await readFileOrUndefined(this.file);
    if (!buf) return emptyMeta();
    let doc: MetaDoc;
    try {
      doc = JSON.parse(buf.toString("utf8")) as MetaDoc;
    } catch (e) {
      throw new StrataError(
        "STORE_CORRUPT",
        `store metadata ${this.file} is unreadable: ${(e as Error).message}`,
      );
    }
    if (doc.version !== META_VERSION)
      throw new StrataError(
        "STORE_CORRUPT",
        `store metadata version ${doc.version} is not supported (want ${META_VERSION})`,
      );
    return doc;
  }

  /**
   * Read-modify-write under the lock. `fn` mutates the document in place and returns a
   * value; the result is written atomically and index.json regenerated.
   */
  async update<T>(fn: (doc: MetaDoc) => T | Promise<T>): Promise<T> {
    return withFileLock(this.lockTarget, async () => {
      const doc = await this.read();
      const out = await fn(doc);
      await atomicWriteFile(this.file, JSON.stringify(doc));
      await atomicWriteFile(path.join(this.root, "index.json"), layoutIndex(doc));
      return out;
    });
  }

  /** Run under the lock without writing (readers that must not race a writer's sweep). */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(this.lockTarget, fn);
  }
}

/** The OCI layout index.json: one entry per tag, named by `org.opencontainers.image.ref.name`. */
export function layoutIndex(doc: MetaDoc): string {
  const manifests = Object.entries(doc.tags)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .flatMap(([ref, id]) => {
      const img = doc.images[id];
      if (!img) return [];
      return [
        {
          mediaType: MediaType.OciManifest,
          digest: img.manifest,
          size: img.manifestSize,
          annotations: { "io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref },
        },
      ];
    });
  return `${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }, null, 2)}\n`;
}
