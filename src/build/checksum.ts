import { createHash } from "node:crypto";
import { createReadStream, promises as fsp, readFile, readFileSync } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { atomicWriteFile } from "../util/index.js";
import type { ContextEntry } from "./context.js";

/**
 * Content digests of context files, with a persistent stat cache: (dev, inode, size,
 * mtime, ctime) -> sha256. A file whose stat is unchanged is not read again; a file
 * touched without a change is read and hashes the same, so the build cache still hits.
 *
 * Sharded by context directory and top-level entry, loaded on first lookup, so a build that
 * re-reads `src/` does not parse the records of 10,000 files under `node_modules/`:
 *
 *   <root>/meta/statcache/<sha256(context dir)[:16]>-<sha256(top-level name)[:16]>.json
 *     { version: 2, entries: { "<path relative to the context>": [dev, ino, size, mtimeMs, digest, ctimeMs] } }
 *
 * The ctime catches a rewrite that keeps the size and puts the mtime back (`touch -r`).
 */
/** The callback readFile: no FileHandle per file, so cheaper than fs/promises' for many small files. */
const readFileCb = promisify(readFile);

type StatEntry = [number, number, number, number, string, (number | null)?];

interface Shard {
  file: string;
  /** The parsed file as it is (a Map built from 10,000 entries costs more than the lookups it saves). */
  entries: Record<string, StatEntry>;
  dirty: boolean;
}

export class StatCache {
  private readonly shards = new Map<string, Shard>();
  private readonly dir: string;
  private readonly contextKey: string;

  private constructor(
    root: string,
    private readonly contextDir: string,
  ) {
    this.dir = path.join(root, "meta", "statcache");
    this.contextKey = hex16(contextDir);
  }

  static async open(root: string, contextDir: string): Promise<StatCache> {
    return new StatCache(root, path.resolve(contextDir));
  }

  /** The shard of a path and the path's key within it (relative to the context when inside). */
  private locate(abs: string): [Shard, string] {
    const inside = abs.startsWith(`${this.contextDir}/`);
    const rel = inside ? abs.slice(this.contextDir.length + 1) : abs;
    const slash = rel.indexOf("/");
    const top = inside ? (slash < 0 ? rel : rel.slice(0, slash)) : "/";
    let shard = this.shards.get(top);
    if (!shard) {
      const file = path.join(this.dir, `${this.contextKey}-${hex16(top)}.json`);
      shard = { file, entries: Object.create(null), dirty: false };
      try {
        // Synchronous on purpose: lookups are synchronous, and a shard is read once per build.
        const doc = JSON.parse(readFileSync(file, "utf8")) as {
          version: number;
          entries: Record<string, StatEntry>;
        };
        if (doc.version === 2 && doc.entries && typeof doc.entries === "object")
          shard.entries = Object.assign(Object.create(null), doc.entries);
      } catch {
        // no cache yet, or unreadable: start empty (it is only an optimisation)
      }
      this.shards.set(top, shard);
    }
    return [shard, rel];
  }

  /** The cached digest when the file's stat is unchanged (no I/O after its shard is read). */
  cached(abs: string, e: ContextEntry): string | undefined {
    const [shard, key] = this.locate(abs);
    const hit = shard.entries[key];
    return hit &&
      hit[0] === e.dev &&
      hit[1] === e.ino &&
      hit[2] === e.size &&
      hit[3] === e.mtimeMs &&
      (hit[5] ?? undefined) === e.ctimeMs
      ? hit[4]
      : undefined;
  }

  /** sha256 hex of a regular file of the context, from the cache when its stat is unchanged. */
  async digest(abs: string, e: ContextEntry): Promise<string> {
    const hit = this.cached(abs, e);
    if (hit) return hit;
    const h = createHash("sha256");
    if (e.size <= 1 << 20) h.update(await readFileCb(abs));
    else await pipeline(createReadStream(abs, { highWaterMark: 1 << 20 }), h);
    const hex = h.digest("hex");
    this.record(abs, e, hex);
    return hex;
  }

  /** Remember a digest computed elsewhere (from the bytes a COPY packed). */
  record(abs: string, e: ContextEntry, hex: string): void {
    const [shard, key] = this.locate(abs);
    shard.entries[key] = [e.dev, e.ino, e.size, e.mtimeMs, hex, e.ctimeMs ?? null];
    shard.dirty = true;
  }

  async save(): Promise<void> {
    for (const shard of this.shards.values()) {
      if (!shard.dirty) continue;
      await fsp.mkdir(this.dir, { recursive: true });
      await atomicWriteFile(shard.file, JSON.stringify({ version: 2, entries: shard.entries }), {
        sync: false,
      });
      shard.dirty = false;
    }
  }
}

function hex16(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 16);
}

/**
 * COPY steps whose sources are unchanged since an earlier build: a digest of the step and of
 * the raw listing records its sources see (ContextListing.signature) -> the cache key that
 * build computed. A hit skips parsing the listing, .dockerignore matching, resolving the
 * sources, the stat cache and hashing; the key still has to be in the build cache.
 *
 *   <root>/meta/copymemo.json   { version: 1, entries: { "<quick key>": "<cache key>" } }
 */
export class CopyMemo {
  private entries = new Map<string, string>();
  private dirty = false;
  /** Entries kept: the newest, in insertion order. */
  static readonly LIMIT = 4096;

  private constructor(private readonly file: string) {}

  static async open(root: string): Promise<CopyMemo> {
    const m = new CopyMemo(path.join(root, "meta", "copymemo.json"));
    try {
      const doc = JSON.parse(await fsp.readFile(m.file, "utf8")) as {
        version: number;
        entries: Record<string, string>;
      };
      if (doc.version === 1 && doc.entries && typeof doc.entries === "object")
        for (const [k, v] of Object.entries(doc.entries)) if (typeof v === "string") m.entries.set(k, v);
    } catch {
      // none yet, or unreadable: it is only an optimisation
    }
    return m;
  }

  get(quick: string): string | undefined {
    return this.entries.get(quick);
  }

  set(quick: string, key: string): void {
    if (this.entries.get(quick) === key) return;
    this.entries.delete(quick);
    this.entries.set(quick, key);
    while (this.entries.size > CopyMemo.LIMIT) this.entries.delete(this.entries.keys().next().value!);
    this.dirty = true;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    await atomicWriteFile(
      this.file,
      JSON.stringify({ version: 1, entries: Object.fromEntries(this.entries) }),
      {
        sync: false,
      },
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

/** Where the builder records each COPY's last layer layout (one file per COPY identity). */
export function layoutsDir(root: string): string {
  return path.join(root, "meta", "layouts");
}

/**
 * After `builder prune`: the build's own files that point at what is gone. A layout whose
 * layer blob was deleted goes; the COPY memo goes (its keys may name pruned cache records;
 * it is only a shortcut). The stat cache stays: it describes the context, not the store.
 */
export async function pruneBuildFiles(root: string, hasBlob: (d: string) => Promise<boolean>): Promise<void> {
  await fsp.rm(path.join(root, "meta", "copymemo.json"), { force: true });
  const dir = layoutsDir(root);
  for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
    const file = path.join(dir, n);
    try {
      const doc = JSON.parse(await fsp.readFile(file, "utf8")) as { diffId?: string };
      if (typeof doc.diffId === "string" && (await hasBlob(doc.diffId))) continue;
    } catch {
      // unreadable: remove it
    }
    await fsp.rm(file, { force: true });
  }
}
