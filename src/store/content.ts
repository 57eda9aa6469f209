import { createHash, randomBytes } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Digest, digestFromHex, digestHex, parseDigest } from "../oci/index.js";
import { fsyncDir, isErrno, pidAlive, StrataError } from "../util/index.js";

/**
 * The content-addressed blob store. Layout (version 1):
 *
 *   <root>/blobs/sha256/<hex>      committed blobs, immutable, named by the digest of their bytes
 *   <root>/ingest/<pid>-<rand>     partial writes, never read as content; the pid names the writer
 *
 * A blob becomes visible only by rename(2) after its size and digest were verified while
 * it streamed, so a reader never sees a partial blob. Two writers of the same blob both
 * succeed (the second rename replaces identical bytes). A writer killed mid-way leaves
 * an ingest file that `cleanIngest()` removes once its pid is gone.
 */
export interface IngestExpect {
  digest?: Digest;
  size?: number;
}

export interface IngestResult {
  digest: Digest;
  size: number;
}

export interface IngestOptions {
  expected?: IngestExpect;
  /** Extra sinks that see every byte in order (a tar scanner, a second hasher). */
  tees?: Writable[];
  /** Refuse more bytes than this (when no expected size is known). */
  limit?: number;
  what?: string;
  signal?: AbortSignal;
  /** Groups staged files of one operation so it can drop them all (see discardGroup). */
  group?: string;
  /**
   * Leave the fsync to commit(): the caller goes on while the bytes are still being written
   * back, and commits (syncs, then renames) later, before anything refers to the blob.
   */
  deferSync?: boolean;
}

/** A verified blob written to ingest/ but not yet visible: commit() or discard() it. */
export interface StagedBlob extends IngestResult {
  path: string;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, "blobs");
    this.ingestDir = path.join(root, "ingest");
  }

  async init(): Promise<void> {
    await fsp.mkdir(path.join(this.blobsDir, "sha256"), { recursive: true });
    await fsp.mkdir(this.ingestDir, { recursive: true });
  }

  blobPath(d: Digest): string {
    const i = d.indexOf(":");
    return path.join(this.blobsDir, d.slice(0, i), d.slice(i + 1));
  }

  async has(d: Digest): Promise<boolean> {
    try {
      await fsp.access(this.blobPath(d));
      return true;
    } catch {
      return false;
    }
  }

  async size(d: Digest): Promise<number> {
    try {
      return (await fsp.stat(this.blobPath(d))).size;
    } catch (e) {
      if (isErrno(e, "ENOENT")) throw new StrataError("BLOB_NOT_FOUND", `blob ${d} not found`);
      throw e;
    }
  }

  /** Open a committed blob for reading. The caller consumes or destroys the stream. */
  async open(d: Digest, opts: { start?: number; end?: number } = {}) {
    const p = this.blobPath(d);
    const fh = await fsp.open(p, "r").catch((e) => {
      if (isErrno(e, "ENOENT")) throw new StrataError("BLOB_NOT_FOUND", `blob ${d} not found`);
      throw e;
    });
    return fh.createReadStream({ highWaterMark: 1 << 20, start: opts.start, end: opts.end });
  }

  async readSmall(d: Digest, limit = 4 * 1024 * 1024): Promise<Buffer> {
    const size = await this.size(d);
    if (size > limit)
      throw new StrataError("TOO_LARGE", `blob ${d} is ${size} bytes, over the limit of ${limit}`);
    return fsp.readFile(this.blobPath(d));
  }

  /** Write a small document (manifest, config) held in memory. */
  async putBytes(data: Uint8Array | string, expected?: IngestExpect): Promise<IngestResult> {
    const buf = typeof data === "string" ? Buffer.from(data) : Buffer.from(data);
    const hex = createHash("sha256").update(buf).digest("hex");
    const digest = digestFromHex(hex);
    if (expected?.digest && expected.digest !== digest)
      throw new StrataError("DIGEST_MISMATCH", `digest mismatch: got ${digest}, expected ${expected.digest}`);
    if (await this.has(digest)) return { digest, size: buf.length };
    const tmp = this.tempPath();
    try {
      await fsp.writeFile(tmp, buf);
      await this.commitFile(tmp, digest);
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    return { digest, size: buf.length };
  }

  /**
   * Stream bytes into the store, hashing once on the way and verifying size and digest
   * before the blob becomes visible.
   */
  async ingest(
    source: AsyncIterable<Buffer> | NodeJS.ReadableStream,
    opts: IngestOptions = {},
  ): Promise<IngestResult> {
    const staged = await this.stage(source, opts);
    await staged.commit();
    return { digest: staged.digest, size: staged.size };
  }

  /**
   * Like ingest, but leave the verified bytes in ingest/ until the caller commits them:
   * a multi-blob operation (load, pull) commits all or nothing. If the process dies, the
   * staged files are garbage that cleanIngest() removes.
   */
  async stage(
    source: AsyncIterable<Buffer> | NodeJS.ReadableStream,
    opts: IngestOptions = {},
  ): Promise<StagedBlob> {
    const what = opts.what ?? "blob";
    const alg = opts.expected?.digest
      ? opts.expected.digest.slice(0, opts.expected.digest.indexOf(":"))
      : "sha256";
    const tmp = this.tempPath(opts.group);
    const fh = await fsp.open(tmp, "w", 0o644);
    const hash = createHash(alg);
    let size = 0;
    const max = opts.expected?.size ?? opts.limit;
    const tees = opts.tees ?? [];
    const writeTee = (t: Writable, chunk: Buffer) =>
      new Promise<void>((resolve, reject) => {
        t.write(chunk, (e) => (e ? reject(e) : resolve()));
      });
    // Tar streams arrive as many small chunks (512-byte headers, padding): coalesce them
    // into writes of up to 1 MiB so the file system sees few large writes.
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (!batch.length) return;
      const b = batch;
      batch = [];
      batchBytes = 0;
      await fh.writev(b);
    };
    const sink = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (max !== undefined && size > max) {
          cb(
            opts.expected?.size !== undefined
              ? new StrataError("SIZE_MISMATCH", `${what}: more than the expected ${max} bytes`)
              : new StrataError("TOO_LARGE", `${what}: larger than the limit of ${max} bytes`),
          );
          return;
        }
        hash.update(chunk);
        batch.push(chunk);
        batchBytes += chunk.length;
        const work: Promise<unknown>[] = [];
        if (batchBytes >= 1 << 20) work.push(flush());
        for (const t of tees) work.push(writeTee(t, chunk));
        if (!work.length) cb();
        else Promise.all(work).then(() => cb(), cb);
      },
      final(cb) {
        Promise.all([
          flush(),
          ...tees.map(
            (t) =>
              new Promise<void>((resolve, reject) => {
                t.once("error", reject);
                t.end(() => resolve());
              }),
          ),
        ]).then(() => cb(), cb);
      },
    });
    try {
      await pipeline(source as NodeJS.ReadableStream, sink, { signal: opts.signal });
      if (!opts.deferSync) await fh.sync();
      await fh.close();
      const digest = `${alg}:${hash.digest("hex")}` as Digest;
      if (opts.expected?.size !== undefined && size !== opts.expected.size)
        throw new StrataError("SIZE_MISMATCH", `${what}: got ${size} bytes, expected ${opts.expected.size}`);
      if (opts.expected?.digest && opts.expected.digest !== digest)
        throw new StrataError(
          "DIGEST_MISMATCH",
          `${what}: digest mismatch: got ${digest}, expected ${opts.expected.digest}`,
        );
      let done = false;
      return {
        digest,
        size,
        path: tmp,
        commit: async () => {
          if (done) return;
          done = true;
          if (opts.deferSync) {
            const f = await fsp.open(tmp, "r");
            try {
              await f.sync();
            } finally {
              await f.close();
            }
          }
          await this.commitFile(tmp, digest);
        },
        discard: async () => {
          done = true;
          await fsp.rm(tmp, { force: true });
        },
      };
    } catch (e) {
      await fh.close().catch(() => {});
      for (const t of tees) t.destroy();
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  private tempPath(group?: string): string {
    return path.join(
      this.ingestDir,
      `${process.pid}-${group ? `${group}-` : ""}${randomBytes(6).toString("hex")}`,
    );
  }

  /** A fresh group name for stage(). */
  newGroup(): string {
    return randomBytes(6).toString("hex");
  }

  /**
   * Remove every staged file of a group, whether or not its writer has settled: an
   * operation that failed half-way leaves nothing behind even if a stream never closed.
   */
  async discardGroup(group: string): Promise<void> {
    const prefix = `${process.pid}-${group}-`;
    const names = await fsp.readdir(this.ingestDir).catch(() => [] as string[]);
    for (const n of names)
      if (n.startsWith(prefix)) await fsp.rm(path.join(this.ingestDir, n), { force: true });
  }

  private async commitFile(tmp: string, d: Digest): Promise<void> {
    const dest = this.blobPath(d);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.rename(tmp, dest);
    await fsyncDir(path.dirname(dest));
  }

  /** Adopt an already-written file as a blob of known digest (after the caller verified it). */
  async adopt(file: string, d: Digest): Promise<void> {
    await this.commitFile(file, d);
  }

  /** A path in ingest/ for callers that build a file before knowing its digest. */
  ingestPath(): string {
    return this.tempPath();
  }

  async delete(d: Digest): Promise<boolean> {
    try {
      await fsp.unlink(this.blobPath(d));
      return true;
    } catch (e) {
      if (isErrno(e, "ENOENT")) return false;
      throw e;
    }
  }

  /** Every committed blob with its size and modification time. */
  async *walk(): AsyncGenerator<{ digest: Digest; size: number; mtimeMs: number }> {
    const algs = await fsp.readdir(this.blobsDir).catch(() => [] as string[]);
    for (const alg of algs) {
      const dir = path.join(this.blobsDir, alg);
      for (const hex of await fsp.readdir(dir)) {
        let digest: Digest;
        try {
          digest = parseDigest(`${alg}:${hex}`);
        } catch {
          continue;
        }
        const st = await fsp.stat(path.join(dir, hex)).catch(() => undefined);
        if (st) yield { digest, size: st.size, mtimeMs: st.mtimeMs };
      }
    }
  }

  /** Re-hash a committed blob; false when its bytes no longer match its name. */
  async verify(d: Digest): Promise<boolean> {
    const h = createHash(d.slice(0, d.indexOf(":")));
    await pipeline(createReadStream(this.blobPath(d), { highWaterMark: 1 << 20 }), h);
    return h.digest("hex") === digestHex(d);
  }

  /** Remove ingest files left by writers that are gone (kill -9, power loss). */
  async cleanIngest(): Promise<number> {
    let removed = 0;
    const names = await fsp.readdir(this.ingestDir).catch(() => [] as string[]);
    for (const n of names) {
      const pid = Number(n.split("-")[0]);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) continue;
      if (pid === process.pid) continue;
      await fsp.rm(path.join(this.ingestDir, n), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }
}
