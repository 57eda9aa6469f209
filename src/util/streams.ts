import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { StrataError } from "./errors.js";

/** A source that can be read again: each call opens a fresh stream. Callers close it. */
export type Opener = () => Promise<NodeJS.ReadableStream & AsyncIterable<Buffer>>;

export interface HashResult {
  algorithm: string;
  hex: string;
  size: number;
}

/**
 * A pass-through that hashes and counts bytes. With `expect`, it fails the stream before
 * it ends when the size or digest is wrong, so a consumer never commits bad bytes.
 * With `limit`, more bytes than that fail the stream at once.
 */
export class HashingStream extends Transform {
  private readonly hash: Hash;
  private count = 0;
  private result?: HashResult;

  constructor(
    private readonly opts: {
      algorithm?: string;
      limit?: number;
      expect?: { hex?: string; size?: number; what?: string };
    } = {},
  ) {
    super();
    this.hash = createHash(opts.algorithm ?? "sha256");
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    const max = this.opts.expect?.size ?? this.opts.limit;
    if (max !== undefined && this.count > max) {
      const what = this.opts.expect?.what ?? "stream";
      cb(
        this.opts.expect?.size !== undefined
          ? new StrataError("SIZE_MISMATCH", `${what}: more than the expected ${max} bytes`)
          : new StrataError("TOO_LARGE", `${what}: larger than the limit of ${max} bytes`),
      );
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const hex = this.hash.digest("hex");
    this.result = { algorithm: this.opts.algorithm ?? "sha256", hex, size: this.count };
    const ex = this.opts.expect;
    const what = ex?.what ?? "stream";
    if (ex?.size !== undefined && ex.size !== this.count) {
      cb(new StrataError("SIZE_MISMATCH", `${what}: got ${this.count} bytes, expected ${ex.size}`));
      return;
    }
    if (ex?.hex !== undefined && ex.hex !== hex) {
      cb(new StrataError("DIGEST_MISMATCH", `${what}: digest mismatch: got ${this.result.algorithm}:${hex}`));
      return;
    }
    cb();
  }

  /** Available after the stream has ended. */
  digest(): HashResult {
    if (!this.result) throw new StrataError("INTERNAL", "HashingStream.digest() called before end");
    return this.result;
  }
}

/** Read a whole small stream into memory, failing past `limit` bytes. */
export async function readAllLimited(stream: AsyncIterable<Buffer | string>, limit: number, what: string) {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    const b = typeof c === "string" ? Buffer.from(c) : c;
    n += b.length;
    if (n > limit) throw new StrataError("TOO_LARGE", `${what}: larger than the limit of ${limit} bytes`);
    parts.push(b);
  }
  return Buffer.concat(parts);
}
