import { createHash, type Hash, randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import {
  type AnyManifest,
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestHex,
  digestOf,
  isIndexType,
  isManifestType,
  MediaType,
  parseAnyManifest,
  parseDigest,
} from "../../oci/index.js";
import { isStrataError, StrataError } from "../../util/index.js";
import { LAYOUT_FILE, LAYOUT_VERSION, paths, UPLOAD_ID_RE } from "./layout.js";
import type { StorageDriver } from "./storage.js";

export interface RegistryOptions {
  /** Allow DELETE of manifests, tags and blobs. */
  deleteEnabled: boolean;
  /** Largest manifest accepted by PUT, in bytes. */
  maxManifestSize: number;
  /** Largest blob accepted by an upload, in bytes; undefined for no limit. */
  maxBlobSize?: number;
  /** Bytes of manifests kept in memory for GETs (content-addressed, so never stale). */
  manifestCacheBytes: number;
}

export interface UploadStatus {
  id: string;
  /** Bytes received so far. */
  size: number;
}

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  raw: Buffer;
}

export interface PutManifestResult {
  digest: Digest;
  subject?: Digest;
  tags: string[];
}

interface UploadState {
  hash: Hash;
  size: number;
}

/** The manifest types a registry stores and serves. */
export const MANIFEST_TYPES: readonly string[] = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];

/**
 * The registry's data model over a StorageDriver: repositories with linked blobs, upload
 * sessions, manifests, tags and referrers. It knows nothing of HTTP or auth; it throws
 * StrataErrors that the HTTP edge turns into the spec's error codes.
 *
 * Invariants: a blob becomes visible only after its digest was verified and it was moved
 * into place; a repository can read a blob only through its own link; manifests are stored
 * as blobs with the exact bytes received.
 */
export class Registry {
  private readonly uploads = new Map<string, UploadState>();
  private readonly uploadLocks = new Map<string, Promise<unknown>>();
  private readonly cache: ManifestCache;

  constructor(
    readonly driver: StorageDriver,
    readonly opts: RegistryOptions,
  ) {
    this.cache = new ManifestCache(opts.manifestCacheBytes);
  }

  /** Create or check the layout marker. Refuses a root written by a newer layout. */
  async init(): Promise<void> {
    const raw = await this.driver.getContent(LAYOUT_FILE);
    if (raw === undefined) {
      await this.driver.putContent(LAYOUT_FILE, `${JSON.stringify({ layoutVersion: LAYOUT_VERSION })}\n`);
      return;
    }
    let v: unknown;
    try {
      v = (JSON.parse(raw.toString("utf8")) as { layoutVersion?: unknown }).layoutVersion;
    } catch (e) {
      throw new StrataError("STORE_CORRUPT", `registry root: ${LAYOUT_FILE} is not JSON`, { cause: e });
    }
    if (v !== LAYOUT_VERSION)
      throw new StrataError(
        "STORE_CORRUPT",
        `registry root has layout version ${String(v)}, this build reads ${LAYOUT_VERSION}`,
      );
  }

  // ---- repositories ----------------------------------------------------------------

  async repositoryExists(name: string): Promise<boolean> {
    return (await this.driver.stat(paths.manifestsDir(name)))?.isDir === true;
  }

  /** Every repository name, sorted lexically. */
  async repositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string) => {
      const children = await this.driver.list(dir);
      if (prefix && children.includes("_manifests")) out.push(prefix);
      for (const c of children) {
        if (c.startsWith("_") || c.startsWith(".")) continue;
        await walk(`${dir}/${c}`, prefix ? `${prefix}/${c}` : c);
      }
    };
    await walk(paths.reposRoot(), "");
    return out.sort(compareStrings);
  }

  // ---- blobs -----------------------------------------------------------------------

  /** Size of a blob readable in `name`, or undefined. */
  async statBlob(name: string, digest: Digest): Promise<{ size: number } | undefined> {
    if (!(await this.driver.stat(paths.layerLink(name, digest)))) return undefined;
    const st = await this.driver.stat(paths.blob(digest));
    return st && !st.isDir ? { size: st.size } : undefined;
  }

  /** The blob's bytes (inclusive range). The caller consumes or destroys the stream. */
  async openBlob(digest: Digest, range?: { start: number; end: number }): Promise<Readable> {
    return this.driver.reader(paths.blob(digest), range);
  }

  async deleteBlob(name: string, digest: Digest): Promise<void> {
    this.requireDelete();
    const link = paths.layerLink(name, digest);
    if (!(await this.driver.stat(link)))
      throw new StrataError("BLOB_NOT_FOUND", `blob ${digest} is not in ${name}`);
    await this.driver.delete(link);
  }

  /** Link a blob from `from` into `name`. False when `from` cannot provide it. */
  async mountBlob(name: string, from: string, digest: Digest): Promise<boolean> {
    if (!(await this.statBlob(from, digest))) return false;
    await this.linkBlob(name, digest);
    return true;
  }

  private async linkBlob(name: string, digest: Digest): Promise<void> {
    await this.driver.putContent(paths.layerLink(name, digest), digest);
  }

  // ---- uploads ---------------------------------------------------------------------

  async startUpload(name: string): Promise<UploadStatus> {
    const id = randomUUID();
    await this.driver.putContent(paths.uploadStarted(name, id), new Date().toISOString());
    const w = await this.driver.appender(paths.uploadData(name, id));
    await w.close();
    this.uploads.set(`${name}\0${id}`, { hash: createHash("sha256"), size: 0 });
    return { id, size: 0 };
  }

  async uploadStatus(name: string, id: string): Promise<UploadStatus> {
    const st = UPLOAD_ID_RE.test(id) ? await this.driver.stat(paths.uploadData(name, id)) : undefined;
    if (!st) throw new StrataError("UPLOAD_NOT_FOUND", `blob upload ${id} is not known in ${name}`);
    return { id, size: st.size };
  }

  /**
   * Append a chunk. With `range`, the chunk must start where the session ends and have
   * exactly `end - start + 1` bytes. A chunk that fails half way is cut off again, so
   * the session stays where it was and the client can retry it.
   */
  async appendUpload(
    name: string,
    id: string,
    body: AsyncIterable<Buffer>,
    opts: { range?: { start: number; end: number }; length?: number } = {},
  ): Promise<UploadStatus> {
    return this.withUpload(name, id, () => this.appendLocked(name, id, body, opts));
  }

  async cancelUpload(name: string, id: string): Promise<void> {
    await this.withUpload(name, id, async () => {
      await this.uploadStatus(name, id);
      await this.driver.delete(paths.upload(name, id));
      this.uploads.delete(`${name}\0${id}`);
    });
  }

  /**
   * Close a session: append the optional last chunk, verify the whole blob against
   * `digest`, then move it into the blob store and link it into `name`. On a digest or size
   * mismatch the session is cancelled and nothing is stored.
   */
  async finishUpload(
    name: string,
    id: string,
    digest: Digest,
    body?: AsyncIterable<Buffer>,
    opts: { range?: { start: number; end: number }; length?: number } = {},
  ): Promise<{ digest: Digest; size: number }> {
    return this.withUpload(name, id, async () => {
      if (body) await this.appendLocked(name, id, body, opts);
      const key = `${name}\0${id}`;
      const status = await this.uploadStatus(name, id);
      let state = this.uploads.get(key);
      if (!state || state.size !== status.size || digestAlgorithm(digest) !== "sha256")
        state = await this.rehash(name, id, digestAlgorithm(digest));
      const hex = state.hash.copy().digest("hex");
      if (hex !== digestHex(digest)) {
        await this.driver.delete(paths.upload(name, id));
        this.uploads.delete(key);
        throw new StrataError(
          "DIGEST_MISMATCH",
          `uploaded content has digest ${digestAlgorithm(digest)}:${hex}, not ${digest}`,
        );
      }
      const data = paths.uploadData(name, id);
      const target = paths.blob(digest);
      const existing = await this.driver.stat(target);
      if (!existing || existing.size !== status.size) await this.driver.move(data, target);
      await this.linkBlob(name, digest);
      await this.driver.delete(paths.upload(name, id));
      this.uploads.delete(key);
      return { digest, size: status.size };
    });
  }

  private async appendLocked(
    name: string,
    id: string,
    body: AsyncIterable<Buffer>,
    opts: { range?: { start: number; end: number }; length?: number },
  ): Promise<UploadStatus> {
    const key = `${name}\0${id}`;
    const status = await this.uploadStatus(name, id);
    const { range, length } = opts;
    if (range) {
      if (range.start !== status.size || range.end < range.start)
        throw new StrataError(
          "UPLOAD_RANGE_INVALID",
          `chunk ${range.start}-${range.end} does not follow the ${status.size} bytes received`,
        );
      if (length !== undefined && length !== range.end - range.start + 1)
        throw new StrataError(
          "UPLOAD_RANGE_INVALID",
          `Content-Range ${range.start}-${range.end} does not match Content-Length ${length}`,
        );
    }
    const expect = range ? range.end - range.start + 1 : length;
    let state = this.uploads.get(key);
    if (!state || state.size !== status.size) state = await this.rehash(name, id, "sha256");
    const dataPath = paths.uploadData(name, id);
    const w = await this.driver.appender(dataPath);
    const start = w.offset;
    let n = 0;
    try {
      for await (const chunk of body) {
        n += chunk.length;
        if (expect !== undefined && n > expect)
          throw new StrataError("SIZE_MISMATCH", `chunk is longer than the announced ${expect} bytes`);
        if (this.opts.maxBlobSize !== undefined && start + n > this.opts.maxBlobSize)
          throw new StrataError(
            "TOO_LARGE",
            `blob is larger than the limit of ${this.opts.maxBlobSize} bytes`,
          );
        await w.write(chunk);
        state.hash.update(chunk);
        state.size += chunk.length;
      }
      if (expect !== undefined && n !== expect)
        throw new StrataError("SIZE_MISMATCH", `chunk has ${n} bytes, ${expect} were announced`);
      await w.close();
    } catch (e) {
      await w.close().catch(() => {});
      await this.driver.truncate(dataPath, start).catch(() => {});
      this.uploads.delete(key);
      throw e;
    }
    this.uploads.set(key, state);
    return { id, size: start + n };
  }

  /** Rebuild the hash of a session from its bytes on disk (after a restart or an error). */
  private async rehash(name: string, id: string, algorithm: string): Promise<UploadState> {
    let hash: Hash;
    try {
      hash = createHash(algorithm);
    } catch (e) {
      throw new StrataError("INVALID_DIGEST", `unsupported digest algorithm ${algorithm}`, { cause: e });
    }
    let size = 0;
    const r = await this.driver.reader(paths.uploadData(name, id));
    for await (const c of r as AsyncIterable<Buffer>) {
      hash.update(c);
      size += c.length;
    }
    const state = { hash, size };
    if (algorithm === "sha256") this.uploads.set(`${name}\0${id}`, state);
    return state;
  }

  /** One request at a time per session (in this process). */
  private async withUpload<T>(name: string, id: string, fn: () => Promise<T>): Promise<T> {
    if (!UPLOAD_ID_RE.test(id))
      throw new StrataError("UPLOAD_NOT_FOUND", `blob upload ${id} is not known in ${name}`);
    const key = `${name}\0${id}`;
    const prev = this.uploadLocks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.uploadLocks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.uploadLocks.get(key) === tail) this.uploadLocks.delete(key);
    }
  }

  // ---- manifests -------------------------------------------------------------------

  async resolveTag(name: string, tag: string): Promise<Digest | undefined> {
    const raw = await this.driver.getContent(paths.tag(name, tag));
    if (!raw) return undefined;
    return parseDigest(raw.toString("utf8").trim());
  }

  /** A manifest by tag or digest. Throws MANIFEST_NOT_FOUND or REPOSITORY_NOT_FOUND. */
  async getManifest(name: string, reference: string): Promise<StoredManifest> {
    const digest = isDigestRef(reference) ? parseDigest(reference) : await this.resolveTag(name, reference);
    const link = digest && (await this.driver.getContent(paths.revision(name, digest)));
    if (!digest || !link) {
      if (!(await this.repositoryExists(name)))
        throw new StrataError("REPOSITORY_NOT_FOUND", `repository ${name} is not known`);
      throw new StrataError("MANIFEST_NOT_FOUND", `manifest ${reference} is not known in ${name}`);
    }
    const mediaType = parseRevisionLink(link);
    const cached = this.cache.get(digest);
    if (cached) return { digest, mediaType, raw: cached };
    const raw = await this.driver.getContent(paths.blob(digest));
    if (!raw)
      throw new StrataError("MANIFEST_NOT_FOUND", `manifest ${digest} is linked in ${name} but missing`);
    this.cache.set(digest, raw);
    return { digest, mediaType, raw };
  }

  /**
   * Store a manifest under a tag or its digest. Validates the JSON, the media type, the
   * digest when the reference is one, and that every blob and child manifest it refers to
   * is in the repository (a `subject` may be missing).
   */
  async putManifest(
    name: string,
    reference: string,
    raw: Buffer,
    contentType: string | undefined,
    extraTags: readonly string[] = [],
  ): Promise<PutManifestResult> {
    if (raw.length > this.opts.maxManifestSize)
      throw new StrataError(
        "TOO_LARGE",
        `manifest is ${raw.length} bytes, over the limit of ${this.opts.maxManifestSize}`,
      );
    const ct = contentType?.split(";")[0]?.trim() || undefined;
    let parsed: AnyManifest;
    try {
      parsed = parseAnyManifest(raw, ct && MANIFEST_TYPES.includes(ct) ? ct : undefined);
    } catch (e) {
      if (
        isStrataError(e, "INVALID_JSON") ||
        isStrataError(e, "UNSUPPORTED") ||
        isStrataError(e, "TOO_LARGE")
      )
        throw new StrataError("INVALID_JSON", e.message, { cause: e });
      throw e;
    }
    const doc = parsed.doc.value;
    const mediaType =
      doc.mediaType ??
      (ct && MANIFEST_TYPES.includes(ct)
        ? ct
        : parsed.kind === "index"
          ? MediaType.OciIndex
          : MediaType.OciManifest);
    if (doc.mediaType && ct && ct !== doc.mediaType && MANIFEST_TYPES.includes(ct))
      throw new StrataError(
        "INVALID_JSON",
        `Content-Type ${ct} does not match the manifest's mediaType ${doc.mediaType}`,
      );
    if (parsed.kind === "index" ? !isIndexType(mediaType) : !isManifestType(mediaType))
      throw new StrataError("INVALID_JSON", `media type ${mediaType} does not match the document`);
    const digest = digestOf(raw);
    if (isDigestRef(reference)) {
      const want = parseDigest(reference);
      const have = digestAlgorithm(want) === "sha256" ? digest : digestOf(raw, digestAlgorithm(want));
      if (have !== want) throw new StrataError("DIGEST_MISMATCH", `manifest digest is ${have}, not ${want}`);
    }
    await this.checkReferences(name, parsed);

    if (!(await this.driver.stat(paths.blob(digest)))) await this.driver.putContent(paths.blob(digest), raw);
    await this.driver.putContent(paths.revision(name, digest), JSON.stringify({ mediaType }));
    this.cache.set(digest, raw);
    const subject = doc.subject?.digest as Digest | undefined;
    if (subject) {
      const desc: Descriptor = { mediaType, digest, size: raw.length } as Descriptor;
      const artifactType =
        doc.artifactType ?? (parsed.kind === "manifest" ? parsed.doc.value.config.mediaType : undefined);
      if (artifactType) desc.artifactType = artifactType;
      if (doc.annotations) desc.annotations = doc.annotations;
      await this.driver.putContent(paths.referrer(name, subject, digest), JSON.stringify(desc));
    }
    const tags = [...(isDigestRef(reference) ? [] : [reference]), ...extraTags];
    for (const t of tags) await this.driver.putContent(paths.tag(name, t), digest);
    return { digest, tags, ...(subject ? { subject } : {}) };
  }

  private async checkReferences(name: string, parsed: AnyManifest): Promise<void> {
    if (parsed.kind === "manifest") {
      const m = parsed.doc.value;
      for (const d of [m.config, ...m.layers]) {
        // Foreign (non-distributable) layers live at their URLs, not in registries.
        if (d.urls?.length && d.mediaType.includes("nondistributable")) continue;
        if (d.mediaType.includes("foreign") && d.urls?.length) continue;
        const digest = parseDigest(d.digest);
        const st = await this.statBlob(name, digest);
        if (!st)
          throw new StrataError("MANIFEST_REFERENCE_MISSING", `blob ${digest} is not in repository ${name}`);
        if (st.size !== d.size)
          throw new StrataError(
            "INVALID_JSON",
            `descriptor of ${digest} says ${d.size} bytes, the blob has ${st.size}`,
          );
        // Refresh the link so a gc running now sees it as young and keeps it (grace period).
        await this.driver.touch(paths.layerLink(name, digest));
      }
    } else {
      for (const d of parsed.doc.value.manifests) {
        const digest = parseDigest(d.digest);
        if (!(await this.driver.stat(paths.revision(name, digest))))
          throw new StrataError(
            "MANIFEST_REFERENCE_MISSING",
            `manifest ${digest} is not in repository ${name}`,
          );
        await this.driver.touch(paths.revision(name, digest));
      }
    }
  }

  /**
   * DELETE of a manifest: by digest removes the manifest, every tag pointing to it and its
   * referrers entry; by tag removes only the tag.
   */
  async deleteManifest(name: string, reference: string): Promise<void> {
    this.requireDelete();
    if (!isDigestRef(reference)) {
      if (!(await this.driver.stat(paths.tag(name, reference))))
        throw new StrataError("MANIFEST_NOT_FOUND", `tag ${reference} is not known in ${name}`);
      await this.driver.delete(paths.tag(name, reference));
      return;
    }
    const digest = parseDigest(reference);
    if (!(await this.driver.stat(paths.revision(name, digest)))) {
      if (!(await this.repositoryExists(name)))
        throw new StrataError("REPOSITORY_NOT_FOUND", `repository ${name} is not known`);
      throw new StrataError("MANIFEST_NOT_FOUND", `manifest ${digest} is not known in ${name}`);
    }
    await this.removeManifest(name, digest);
  }

  /** Unlink a manifest from a repository with its tags and its referrers entry (gc uses it too). */
  async removeManifest(name: string, digest: Digest): Promise<void> {
    for (const t of await this.driver.list(paths.tagsDir(name))) {
      if ((await this.resolveTag(name, t).catch(() => undefined)) === digest)
        await this.driver.delete(paths.tag(name, t));
    }
    const raw = await this.driver.getContent(paths.blob(digest));
    if (raw) {
      try {
        const subject = parseAnyManifest(raw).doc.value.subject?.digest;
        if (subject) await this.driver.delete(paths.referrer(name, parseDigest(subject), digest));
      } catch {
        // An unparsable stored manifest has no referrers entry to remove.
      }
    }
    await this.driver.delete(paths.revision(name, digest));
  }

  async listTags(name: string): Promise<string[]> {
    if (!(await this.repositoryExists(name)))
      throw new StrataError("REPOSITORY_NOT_FOUND", `repository ${name} is not known`);
    return (await this.driver.list(paths.tagsDir(name)))
      .filter((t) => !t.startsWith("."))
      .sort(compareStrings);
  }

  /** Descriptors of the manifests in `name` whose subject is `subject`, optionally filtered. */
  async referrers(name: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    if (!(await this.repositoryExists(name)))
      throw new StrataError("REPOSITORY_NOT_FOUND", `repository ${name} is not known`);
    const dir = paths.referrersOf(name, subject);
    const out: Descriptor[] = [];
    for (const entry of await this.driver.list(dir)) {
      if (entry.startsWith(".")) continue;
      const raw = await this.driver.getContent(`${dir}/${entry}`);
      if (!raw) continue;
      let desc: Descriptor;
      try {
        desc = JSON.parse(raw.toString("utf8")) as Descriptor;
      } catch {
        continue;
      }
      if (!(await this.driver.stat(paths.revision(name, desc.digest)))) continue;
      if (artifactType !== undefined && desc.artifactType !== artifactType) continue;
      out.push(desc);
    }
    return out.sort((a, b) => compareStrings(a.digest, b.digest));
  }

  private requireDelete(): void {
    if (!this.opts.deleteEnabled)
      throw new StrataError("UNSUPPORTED", "deletion is disabled on this registry");
  }
}

export function isDigestRef(reference: string): boolean {
  return reference.includes(":");
}

export function parseRevisionLink(link: Buffer): string {
  try {
    const v = JSON.parse(link.toString("utf8")) as { mediaType?: unknown };
    if (typeof v.mediaType === "string") return v.mediaType;
  } catch {
    // fall through
  }
  return MediaType.OciManifest;
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A byte-bounded LRU of manifest bytes by digest. Content-addressed: entries never go stale. */
class ManifestCache {
  private readonly map = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(d: string): Buffer | undefined {
    const v = this.map.get(d);
    if (v) {
      this.map.delete(d);
      this.map.set(d, v);
    }
    return v;
  }

  set(d: string, v: Buffer): void {
    if (v.length > this.maxBytes / 16) return;
    const old = this.map.get(d);
    if (old) {
      this.bytes -= old.length;
      this.map.delete(d);
    }
    this.map.set(d, v);
    this.bytes += v.length;
    for (const [k, b] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= b.length;
    }
  }
}
