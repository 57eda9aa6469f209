/**
 * ParallelGzip: the output is one ordinary gzip member (node's gunzip, which checks the
 * CRC-32 and length in the trailer, reads it back), the same with worker threads as on
 * libuv's pool, for text, random data and a mix; crc32Combine agrees with zlib's crc32.
 */
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { crc32Combine, DeflatePool, ParallelGzip } from "../../../src/registry/client/gzip.js";

const pool = new DeflatePool(2);
afterAll(() => pool.close());

async function gzipWith(data: Buffer, opts: ConstructorParameters<typeof ParallelGzip>[0], piece = 100_003) {
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  // Pieces that do not line up with blocks, each in memory of its own (as file reads are).
  for (let o = 0; o < data.length; o += piece) pieces.push(Buffer.from(data.subarray(o, o + piece)));
  await pipeline(
    Readable.from(pieces),
    new ParallelGzip(opts),
    new Writable({
      write(c, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

function mixed(): Buffer {
  const text = Buffer.from("the quick brown fox jumps over the lazy dog\n".repeat(30_000));
  return Buffer.concat([text, randomBytes(700_000), text.subarray(0, 333_333), randomBytes(5000), text]);
}

describe("ParallelGzip", () => {
  for (const [name, make] of [
    ["text, random and mixed data", mixed],
    ["an empty input", () => Buffer.alloc(0)],
    ["less than one window", () => Buffer.from("tiny\n".repeat(100))],
  ] as const) {
    it(`${name}: gunzip reads back the input, with workers and without, block for block the same`, async () => {
      const data = make();
      const withPool = await gzipWith(data, { pool, blockSize: 256 * 1024 });
      const withoutPool = await gzipWith(data, { blockSize: 256 * 1024 });
      expect(zlib.gunzipSync(withPool).equals(data)).toBe(true);
      expect(withPool.equals(withoutPool)).toBe(true);
    });
  }

  it("stores random data instead of deflating it, and still shrinks the text", async () => {
    const rnd = randomBytes(2 << 20);
    const gz = await gzipWith(rnd, { pool });
    // Stored blocks cost 5 bytes per 64 KiB; deflate would waste time and a little more.
    expect(gz.length).toBeLessThan(rnd.length + 1024);
    const text = Buffer.from("aaaa bbbb cccc\n".repeat(200_000));
    expect((await gzipWith(text, { pool })).length).toBeLessThan(text.length / 20);
  });
});

describe("crc32Combine", () => {
  it("joins CRCs of parts into the CRC of the whole", () => {
    const a = randomBytes(123_457);
    const b = randomBytes(1 << 20);
    const whole = zlib.crc32(Buffer.concat([a, b]));
    expect(crc32Combine(zlib.crc32(a), zlib.crc32(b), b.length)).toBe(whole >>> 0);
    expect(crc32Combine(zlib.crc32(a), 0, 0)).toBe(zlib.crc32(a) >>> 0);
    expect(crc32Combine(0, zlib.crc32(b), b.length)).toBe(zlib.crc32(b) >>> 0);
  });
});
