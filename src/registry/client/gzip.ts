import os from "node:os";
import { Transform, type TransformCallback } from "node:stream";
import { Worker } from "node:worker_threads";
import zlib from "node:zlib";

export interface ParallelGzipOptions {
  /** zlib level for compressible blocks. Default 1: push time is on the critical path. */
  level?: number;
  /** Bytes per independently compressed block. Default 1 MiB (pigz uses 128 KiB; bigger keeps the ratio). */
  blockSize?: number;
  /** Blocks compressed at once on libuv's thread pool. Default: the CPUs available. */
  concurrency?: number;
  /** Store blocks whose sampled byte entropy says they will not shrink. Default true. */
  storeIncompressible?: boolean;
  /**
   * Worker threads to deflate on. Without one, zlib's asynchronous API is used, whose
   * per-call set-up (state, dictionary) runs on the main thread.
   */
  pool?: DeflatePool;
}

/**
 * The worker's whole program. A "block" message is one ParallelGzip block, transferred in:
 * the worker classifies its segments, deflates or stores each run, computes the block's
 * CRC-32 and transfers the joined output back, so the main thread only moves buffers.
 * A plain message is one raw deflate (the older protocol, kept for callers of deflate()).
 */
function workerSource(): string {
  return `
const { parentPort } = require("node:worker_threads");
const zlib = require("node:zlib");
const SEGMENT = ${SEGMENT}, WINDOW = ${WINDOW}, ENTROPY_LIMIT = ${ENTROPY_LIMIT};
const sampledEntropy = ${sampledEntropy.toString()};
const storedBlocks = ${storedBlocks.toString()};
const classify = ${classify.toString()};
const deflate = (data, level, dictionary, final) =>
  zlib.deflateRawSync(data, {
    level,
    memLevel: 9,
    chunkSize: data.length + 65536,
    finishFlush: final ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    ...(dictionary && dictionary.length ? { dictionary } : {}),
  });
const view = (u) => (u ? Buffer.from(u.buffer, u.byteOffset, u.byteLength) : undefined);
parentPort.on("message", (m) => {
  try {
    let out;
    let crc = 0;
    if (m.kind === "block") {
      const block = view(m.data);
      const prevTail = view(m.prev);
      const pieces = [];
      for (const r of classify(block, m.storeIncompressible, SEGMENT, ENTROPY_LIMIT, sampledEntropy)) {
        const lastPiece = m.final && r.last;
        const data = block.subarray(r.start, r.end);
        if (r.stored) { pieces.push(...storedBlocks(data, lastPiece)); continue; }
        let dictionary;
        if (r.start >= WINDOW) dictionary = block.subarray(r.start - WINDOW, r.start);
        else if (r.start > 0 || prevTail) {
          const joined = prevTail ? Buffer.concat([prevTail, block.subarray(0, r.start)]) : block.subarray(0, r.start);
          dictionary = joined.subarray(Math.max(0, joined.length - WINDOW));
        }
        pieces.push(deflate(data, m.level, dictionary, lastPiece));
      }
      out = Buffer.concat(pieces);
      if (block.length > 0) crc = zlib.crc32(block, 0);
    } else {
      out = deflate(m.data, m.level, m.dictionary, m.final);
    }
    const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
    parentPort.postMessage({ id: m.id, out, crc }, own ? [out.buffer] : []);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`;
}

/**
 * Cut a block into runs of 64 KiB segments, stored (sampled entropy says they will not
 * shrink) or deflated; the last run is marked. Self-contained: it also runs in the workers.
 */
export function classify(
  block: Buffer,
  storeIncompressible: boolean,
  segment: number,
  limit: number,
  entropy: (b: Buffer) => number,
): { start: number; end: number; stored: boolean; last: boolean }[] {
  const runs: { start: number; end: number; stored: boolean; last: boolean }[] = [];
  for (let off = 0; off < block.length || runs.length === 0; off += segment) {
    const end = Math.min(off + segment, block.length);
    const seg = block.subarray(off, end);
    const stored = storeIncompressible && seg.length >= 4096 && entropy(seg) > limit;
    const prev = runs[runs.length - 1];
    if (prev && prev.stored === stored) prev.end = end;
    else runs.push({ start: off, end, stored, last: false });
    if (block.length === 0) break;
  }
  runs[runs.length - 1]!.last = true;
  return runs;
}

interface PoolTask {
  resolve: (r: { out: Buffer; crc: number }) => void;
  reject: (e: Error) => void;
  worker: Worker;
}

/**
 * A small pool of worker threads that deflate for ParallelGzip. One per operation (a push),
 * closed by its owner; idle workers do not keep the process alive.
 */
export class DeflatePool {
  private readonly workers: { worker: Worker; busy: number }[] = [];
  private readonly tasks = new Map<number, PoolTask>();
  private nextId = 0;
  private closed = false;

  constructor(readonly size: number = os.availableParallelism()) {}

  private pick(): { worker: Worker; busy: number } {
    if (this.workers.length < this.size) {
      const worker = new Worker(workerSource(), { eval: true });
      const slot = { worker, busy: 0 };
      worker.on("message", (m: { id: number; out?: Uint8Array; crc?: number; error?: string }) => {
        const t = this.tasks.get(m.id);
        if (!t) return;
        this.tasks.delete(m.id);
        slot.busy--;
        if (slot.busy === 0) worker.unref();
        if (m.error !== undefined || !m.out) t.reject(new Error(`deflate worker: ${m.error}`));
        else
          t.resolve({ out: Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength), crc: m.crc ?? 0 });
      });
      worker.on("error", (e) => this.failAll(worker, e));
      worker.on("exit", (code) => {
        if (!this.closed) this.failAll(worker, new Error(`deflate worker exited with ${code}`));
      });
      this.workers.push(slot);
      return slot;
    }
    return this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private failAll(worker: Worker, e: Error): void {
    for (const [id, t] of this.tasks)
      if (t.worker === worker) {
        this.tasks.delete(id);
        t.reject(e);
      }
  }

  private post(msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<{ out: Buffer; crc: number }> {
    if (this.closed) return Promise.reject(new Error("deflate pool is closed"));
    const slot = this.pick();
    const id = this.nextId++;
    slot.busy++;
    slot.worker.ref();
    return new Promise((resolve, reject) => {
      this.tasks.set(id, { resolve, reject, worker: slot.worker });
      slot.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  /** Raw deflate of `data` (copied to the worker). */
  async deflate(data: Buffer, opts: { level: number; dictionary?: Buffer; final: boolean }): Promise<Buffer> {
    return (await this.post({ data, dictionary: opts.dictionary, level: opts.level, final: opts.final }, []))
      .out;
  }

  /**
   * One ParallelGzip block, done wholly in a worker: classified, deflated or stored with
   * `prev` (the 32 KiB before it) as dictionary, and its CRC-32. `block` is transferred
   * when it owns its memory (it is unusable here afterwards), else copied.
   */
  deflateBlock(
    block: Buffer,
    prev: Buffer | undefined,
    opts: { level: number; final: boolean; storeIncompressible: boolean },
  ): Promise<{ out: Buffer; crc: number }> {
    const owns = block.byteOffset === 0 && block.byteLength === block.buffer.byteLength;
    const data = owns || block.length < 4096 ? block : Buffer.from(block);
    const transfer = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    return this.post({ kind: "block", data, prev, ...opts }, transfer ? [data.buffer as ArrayBuffer] : []);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }
}

const WINDOW = 32 * 1024;
/** The unit of the stored-or-deflated decision: small enough to find files of random data in a tar. */
const SEGMENT = 64 * 1024;
/** 10-byte gzip header: deflate, no flags, mtime 0, no extra flags, OS unix (what zlib writes). */
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]);
/** Above this many bits per byte (of 8) a block is treated as already compressed. */
const ENTROPY_LIMIT = 7.5;

/**
 * Order-0 entropy (bits per byte) of `samples` evenly spaced 256-byte samples: random and
 * already-compressed data come out near 8, text near 4.5, executables near 6.
 */
export function sampledEntropy(data: Buffer, samples = 16): number {
  const counts = new Uint32Array(256);
  const span = 256;
  const n = data.length <= samples * span ? 1 : samples;
  const step = n === 1 ? 0 : Math.floor((data.length - span) / (n - 1));
  let total = 0;
  for (let s = 0; s < n; s++) {
    const start = s * step;
    const end = n === 1 ? data.length : start + span;
    for (let i = start; i < end; i++) counts[data[i]!]!++;
    total += end - start;
  }
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / total;
    h -= p * Math.log2(p);
  }
  return h;
}

/**
 * Deflate "stored" blocks for `data` (at most 65535 bytes each), starting byte-aligned as
 * they do after a sync flush: a 1-byte header (BFINAL, BTYPE 00, padding), LEN and NLEN.
 */
export function storedBlocks(data: Buffer, final: boolean): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  do {
    const len = Math.min(65535, data.length - off);
    const last = off + len >= data.length;
    const h = Buffer.alloc(5);
    h[0] = final && last ? 1 : 0;
    h.writeUInt16LE(len, 1);
    h.writeUInt16LE(~len & 0xffff, 3);
    out.push(h, data.subarray(off, off + len));
    off += len;
  } while (off < data.length);
  return out;
}

interface Job {
  /** The block's output, and its CRC-32 when a worker computed it (to be combined in order). */
  done: Promise<{ parts: Buffer[]; crc?: number }>;
  length: number;
}

/** zlib's gf2_matrix_times: the 32x32 bit matrix `mat` times the vector `vec`. */
function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]!);
}

/**
 * zlib's crc32_combine: the CRC-32 of A followed by B from crc(A), crc(B) and B's length,
 * so blocks can be checksummed apart (in the workers) and joined in order.
 */
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  if (len2 <= 0) return crc1 >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0xedb88320; // the CRC-32 polynomial: the operator for one zero bit
  let row = 1;
  for (let n = 1; n < 32; n++, row <<= 1) odd[n] = row;
  gf2Square(even, odd); // two zero bits
  gf2Square(odd, even); // four zero bits
  let c = crc1 >>> 0;
  let len = len2;
  for (;;) {
    gf2Square(even, odd);
    if (len % 2) c = gf2Times(even, c);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2) c = gf2Times(odd, c);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return (c ^ crc2) >>> 0;
}

/**
 * A gzip compressor that uses every core, as pigz does: the input is cut into fixed blocks,
 * each deflated on the thread pool with the previous 32 KiB as its dictionary and ended
 * with a sync flush, so the pieces join into one ordinary gzip member (any gunzip reads
 * it); CRC-32 and length go in the trailer. Blocks that sampling shows to be incompressible
 * (already-compressed files, random data) are written as stored blocks, skipping the work
 * deflate would waste on them. Output depends only on the input and zlib's version.
 */
export class ParallelGzip extends Transform {
  private readonly level: number;
  private readonly blockSize: number;
  private concurrency: number;
  private readonly storeIncompressible: boolean;
  private readonly pool?: DeflatePool;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private prev?: Buffer;
  private crc = 0;
  private length = 0;
  private readonly jobs: Job[] = [];
  private headerSent = false;

  constructor(opts: ParallelGzipOptions = {}) {
    super({ readableHighWaterMark: 4 << 20, writableHighWaterMark: 1 << 20 });
    this.level = opts.level ?? 1;
    this.blockSize = opts.blockSize ?? 1 << 20;
    this.concurrency = Math.max(1, opts.concurrency ?? os.availableParallelism());
    this.storeIncompressible = opts.storeIncompressible ?? true;
    this.pool = opts.pool;
    // With workers, keep each of them fed with two blocks.
    if (opts.pool && opts.concurrency === undefined) this.concurrency = 2 * opts.pool.size;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    this.drainInput(false).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.drainInput(true)
      .then(async () => {
        while (this.jobs.length) await this.emitOldest();
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(this.crc >>> 0, 0);
        trailer.writeUInt32LE(this.length % 2 ** 32, 4);
        this.push(trailer);
      })
      .then(() => cb(), cb);
  }

  /** Cut full blocks (and at the end the rest) and queue them, keeping `concurrency` in flight. */
  private async drainInput(end: boolean): Promise<void> {
    while (this.pendingLen >= this.blockSize || (end && !this.finalQueued)) {
      const size = Math.min(this.blockSize, this.pendingLen);
      const block = this.cut(size);
      const final = end && this.pendingLen === 0;
      if (final) this.finalQueued = true;
      if (this.jobs.length >= this.concurrency) await this.emitOldest();
      const length = block.length;
      this.jobs.push({ done: this.compress(block, final), length });
    }
  }

  private finalQueued = false;

  private cut(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLen);
    const block = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingLen = rest.length;
    return block;
  }

  /**
   * One block: its 64 KiB segments classified by sampled entropy, runs of incompressible
   * ones written as stored blocks, the other runs deflated (each with the 32 KiB before it
   * as dictionary, so nothing is lost at the seams but the match distance across a stored
   * run). Every piece ends byte-aligned (sync flush), the very last one with BFINAL.
   */
  private compress(block: Buffer, final: boolean): Job["done"] {
    this.length += block.length;
    const prevTail =
      this.prev && this.prev.length > WINDOW ? this.prev.subarray(this.prev.length - WINDOW) : this.prev;
    if (this.pool) {
      // The block goes to the worker (transferred): keep a copy of the 32 KiB the next block
      // needs as its dictionary. Blocks are whole (blockSize >= WINDOW) but the last one.
      const joined = prevTail && block.length < WINDOW ? Buffer.concat([prevTail, block]) : block;
      this.prev = Buffer.from(joined.subarray(Math.max(0, joined.length - WINDOW)));
      return this.pool
        .deflateBlock(block, prevTail, {
          level: this.level,
          final,
          storeIncompressible: this.storeIncompressible,
        })
        .then(({ out, crc }) => ({ parts: [out], crc }));
    }
    // zlib's crc32() of a buffer with no memory behind it is its initial value (0), not `crc`.
    if (block.length > 0) this.crc = zlib.crc32(block, this.crc);
    this.prev = block;
    const runs = classify(block, this.storeIncompressible, SEGMENT, ENTROPY_LIMIT, sampledEntropy);
    const pieces = runs.map((r) => {
      const lastPiece = final && r.last;
      const data = block.subarray(r.start, r.end);
      if (r.stored) return Promise.resolve(storedBlocks(data, lastPiece));
      let dictionary: Buffer | undefined;
      if (r.start >= WINDOW) dictionary = block.subarray(r.start - WINDOW, r.start);
      else if (r.start > 0 || prevTail) {
        const joined = prevTail
          ? Buffer.concat([prevTail, block.subarray(0, r.start)])
          : block.subarray(0, r.start);
        dictionary = joined.subarray(Math.max(0, joined.length - WINDOW));
      }
      return new Promise<Buffer[]>((resolve, reject) => {
        zlib.deflateRaw(
          data,
          {
            level: this.level,
            // memLevel 9: a bigger hash table, ~10% faster at level 1 for the same ratio.
            memLevel: 9,
            // Room for all the output at once: one trip to the thread pool instead of one per 16 KiB.
            chunkSize: data.length + 64 * 1024,
            ...(dictionary?.length ? { dictionary } : {}),
            finishFlush: lastPiece ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
          },
          (err, out) => (err ? reject(err) : resolve([out])),
        );
      });
    });
    return Promise.all(pieces).then((ps) => ({ parts: ps.flat() }));
  }

  private async emitOldest(): Promise<void> {
    const job = this.jobs.shift();
    if (!job) return;
    const { parts, crc } = await job.done;
    if (crc !== undefined) this.crc = crc32Combine(this.crc, crc, job.length);
    if (!this.headerSent) {
      this.headerSent = true;
      this.push(HEADER);
    }
    for (const p of parts) this.push(p);
  }
}

/** A gzip Transform using every core (see ParallelGzip). */
export function parallelGzip(opts?: ParallelGzipOptions): ParallelGzip {
  return new ParallelGzip(opts);
}
