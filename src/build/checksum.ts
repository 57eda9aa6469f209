import { createHash } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { atomicWriteFile } from "../util/index.js";
import type { ContextEntry } from "./context.js";

/**
 * Content digests of context files, with a persistent stat cache: (dev, inode, size,
 * mtime, ctime) -> sha256. A file whose stat is unchanged is not read again; a file
 * touched without a change is read and hashes the same, so the build cache still hits.
 *
 *   <root>/meta/statcache.json   { version, entries: { "<abs path>": [dev, ino, size, mtimeMs, digest] } }
 */
type StatEntry = [number, number, number, number, string];

export class StatCache {
  private entries = new Map<string, StatEntry>();
  private dirty = false;

  private constructor(private readonly file: string) {}

  static async open(root: string): Promise<StatCache> {
    const c = new StatCache(path.join(root, "meta", "statcache.json"));
    try {
      const doc = JSON.parse(await fsp.readFile(c.file, "utf8")) as {
        version: number;
        entries: Record<string, StatEntry>;
      };
      if (doc.version === 1) c.entries = new Map(Object.entries(doc.entries));
    } catch {
      // no cache yet, or unreadable: start empty (it is only an optimisation)
    }
    return c;
  }

  /** The cached digest when the file's stat is unchanged (no I/O, no promise). */
  cached(abs: string, e: ContextEntry): string | undefined {
    const hit = this.entries.get(abs);
    return hit && hit[0] === e.dev && hit[1] === e.ino && hit[2] === e.size && hit[3] === e.mtimeMs
      ? hit[4]
      : undefined;
  }

  /** sha256 hex of a regular file of the context, from the cache when its stat is unchanged. */
  async digest(abs: string, e: ContextEntry): Promise<string> {
    const hit = this.entries.get(abs);
    if (hit && hit[0] === e.dev && hit[1] === e.ino && hit[2] === e.size && hit[3] === e.mtimeMs)
      return hit[4];
    const h = createHash("sha256");
    if (e.size <= 1 << 20) h.update(await fsp.readFile(abs));
    else await pipeline(createReadStream(abs, { highWaterMark: 1 << 20 }), h);
    const hex = h.digest("hex");
    this.entries.set(abs, [e.dev, e.ino, e.size, e.mtimeMs, hex]);
    this.dirty = true;
    return hex;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    await atomicWriteFile(
      this.file,
      JSON.stringify({ version: 1, entries: Object.fromEntries(this.entries) }),
      { sync: false },
    );
    this.dirty = false;
  }
}

/** Hash many files with a bounded number in flight (two cores: I/O and hashing overlap). */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
