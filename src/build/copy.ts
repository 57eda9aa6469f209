import { createHash, type Hash } from "node:crypto";
import { closeSync, createReadStream, openSync, readFile, readFileSync, readSync } from "node:fs";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { pack as tarPack } from "tar-stream";
import { PatternMatcher } from "../dockerfile/index.js";
import { TAR_END, tarHeader, tarPadding } from "../layer/index.js";
import { followInRoot as followLinksInRoot, StrataError } from "../util/index.js";
import { type Compression, packArchive } from "./add.js";
import type { ContextEntry } from "./context.js";

/** One thing a COPY/ADD puts into the layer. */
export interface CopyItem {
  /** Path inside the image, relative to / (no leading slash). */
  dest: string;
  /** `archive`: a local tar archive ADD unpacks at `dest` (see add.ts). */
  type: "file" | "dir" | "symlink" | "archive";
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  linkTarget?: string;
  /** Where the bytes come from (files only). */
  source?: { abs: string } | { data: Buffer };
  /** Content digest (files), filled in for the cache key. */
  digest?: string;
  /** The context entry it came from (its stat feeds the checksum cache). */
  entry?: ContextEntry;
  /** A source named by the instruction itself (not found inside a copied directory). */
  topLevel?: boolean;
  /** For `archive` items: how to read it, and the --chown that replaces its owners. */
  archive?: { compression: Compression; chown?: { uid: number; gid: number } };
  /** entryKey's result, kept once the digest is known. */
  key?: string;
}

/** Files up to this size are read in one call; larger ones stream. */
const SMALL_FILE = 1 << 20;

/** Go's filepath.Match for one path segment pattern set: `*`, `?`, `[...]`, escapes. */
export function hasGlob(p: string): boolean {
  return /[*?[\\]/.test(p);
}

function segmentRegex(seg: string): RegExp {
  let re = "";
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < seg.length) re += `\\${seg[++i]}`;
    else if (c === "[") {
      const end = seg.indexOf("]", i + 1);
      if (end < 0) throw new StrataError("INVALID_ARGUMENT", `syntax error in pattern: ${seg}`);
      let cls = seg.slice(i + 1, end);
      if (cls.startsWith("^")) cls = `!${cls.slice(1)}`;
      re += `[${cls.startsWith("!") ? `^${cls.slice(1)}` : cls}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Clean a source path relative to the context root; a path that climbs out is an error. */
export function cleanSource(src: string): string {
  const parts: string[] = [];
  for (const seg of src.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (!parts.length)
        throw new StrataError("INVALID_ARGUMENT", `forbidden path outside the build context: ${src}`);
      parts.pop();
    } else parts.push(seg);
  }
  return parts.join("/");
}

export interface ResolveOptions {
  /** The stage's WORKDIR, for a relative destination. */
  workdir: string;
  chown?: { uid: number; gid: number };
  chmod?: number;
  /** What the instruction is called in messages (COPY, ADD). */
  name: string;
  /**
   * Keep the sources' uid/gid when there is no --chown (COPY --from a stage or image, as
   * BuildKit does); context files are always root's (BuildKit's client resets them).
   */
  keepOwner?: boolean;
  /**
   * `--exclude` patterns (.dockerignore syntax): matched against paths inside a copied
   * directory, and against the base name of a file source.
   */
  exclude?: string[];
  /**
   * `--parents`: keep each source's path (from the context root, or from a `/./` pivot in the
   * source) under the destination.
   */
  parents?: boolean;
}

/**
 * A source path with its symlinks followed inside the root, the last component included
 * (BuildKit copies what a source symlink points to; links inside a copied directory stay
 * links). Absolute targets and `..` never leave the root. Undefined when it leads nowhere.
 */
export function followInRoot(entries: ReadonlyMap<string, ContextEntry>, rel: string): string | undefined {
  return followLinksInRoot(
    rel,
    (p) => {
      const e = entries.get(p);
      return !e ? undefined : e.type === "symlink" ? { link: e.linkTarget ?? "" } : "other";
    },
    "fail",
  );
}

/**
 * Resolve COPY sources against the context entries (already filtered by .dockerignore)
 * with Docker's rules: a directory copies its contents; wildcards match per path segment;
 * several sources need a destination ending in "/"; a destination ending in "/" (or an
 * existing directory, which the caller tells by `destIsDir`) receives sources by base name.
 */
export function resolveCopy(
  entries: ReadonlyMap<string, ContextEntry>,
  sources: string[],
  dest: string,
  o: ResolveOptions,
  contextRoot: string,
  destIsDir: (p: string) => boolean,
): CopyItem[] {
  const absDest = path.posix.isAbsolute(dest) ? dest : path.posix.join(o.workdir || "/", dest);
  const destDirSyntax = dest.endsWith("/") || dest === "." || dest.endsWith("/.");
  const destRel = path.posix.normalize(absDest).replace(/^\/+/, "").replace(/\/$/, "");
  /**
   * `rel` is where the bytes are (symlinks followed), `name` the path as matched, `keep` the
   * part of it --parents keeps under the destination.
   */
  const matches: { rel: string; entry: ContextEntry; name: string; keep?: string }[] = [];
  const exclude = o.exclude?.length ? new PatternMatcher(o.exclude) : undefined;
  const join = (...parts: string[]) => parts.filter(Boolean).join("/");
  const all = [...entries.keys()];
  const notFound = (p: string) =>
    new StrataError("INVALID_ARGUMENT", `failed to compute cache key: "/${p}": not found`);
  const followed = (p: string) => {
    const real = entries.get(p)?.type === "symlink" ? followInRoot(entries, p) : p;
    if (real === undefined) throw notFound(p);
    if (real === "") return { rel: "", entry: rootEntry(), name: p };
    const e = entries.get(real);
    if (!e) throw notFound(p);
    return { rel: real, entry: e, name: p };
  };
  for (const s of sources) {
    const clean = cleanSource(s);
    const first = matches.length;
    if (hasGlob(clean)) {
      const segs = clean.split("/").map(segmentRegex);
      const hits = all.filter((p) => {
        const ps = p.split("/");
        return ps.length === segs.length && ps.every((x, i) => segs[i]!.test(x));
      });
      if (!hits.length) throw notFound(clean);
      for (const h of hits) matches.push(followed(h));
    } else if (clean === "") {
      matches.push({ rel: "", entry: rootEntry(), name: "" });
    } else {
      // A path through a symlinked directory is not an entry itself: follow it.
      const real = entries.has(clean) ? clean : followInRoot(entries, clean);
      if (real === undefined) throw notFound(clean);
      matches.push({ ...followed(real), name: clean });
    }
    if (o.parents) {
      // `a/./b/c`: the part after the `/./` pivot is kept; without one, the whole path.
      const pivot = s.indexOf("/./");
      const drop = pivot >= 0 ? cleanSource(s.slice(0, pivot)) : "";
      for (const m of matches.slice(first))
        m.keep = drop && m.name.startsWith(`${drop}/`) ? m.name.slice(drop.length + 1) : m.name;
    }
  }
  if ((matches.length > 1 || sources.length > 1) && !destDirSyntax && !o.parents)
    throw new StrataError(
      "INVALID_ARGUMENT",
      `When using ${o.name} with more than one source file, the destination must be a directory and end with a /`,
    );
  const items: CopyItem[] = [];
  // One object literal per item, no spreads: a COPY of 10,000 files makes 10,000 of them.
  const root = contextRoot.endsWith("/") ? contextRoot : `${contextRoot}/`;
  const add = (rel: string, e: ContextEntry, to: string) => {
    const uid = o.chown?.uid ?? (o.keepOwner ? e.uid : 0);
    const gid = o.chown?.gid ?? (o.keepOwner ? e.gid : 0);
    const mode = o.chmod ?? e.mode & 0o7777;
    if (e.type === "file")
      items.push({
        dest: to,
        type: "file",
        mode,
        uid,
        gid,
        mtimeMs: e.mtimeMs,
        size: e.size,
        // rel is a clean relative path (from the listing): joining needs no normalising.
        source: { abs: rel ? root + rel : contextRoot },
        entry: e,
      });
    else if (e.type === "symlink")
      items.push({
        dest: to,
        type: "symlink",
        mode,
        uid,
        gid,
        mtimeMs: e.mtimeMs,
        size: 0,
        linkTarget: e.linkTarget ?? "",
      });
    else if (e.type === "dir")
      items.push({ dest: to, type: "dir", mode, uid, gid, mtimeMs: e.mtimeMs, size: 0 });
  };
  const destDirs = new Set<string>();
  for (const m of matches) {
    if (m.entry.type === "dir") {
      const target = join(destRel, m.keep ?? "");
      // The destination directory exists afterwards even for an empty source (0755, the
      // --chown owner or root; an existing one keeps its metadata).
      if (target && !destIsDir(target) && !destDirs.has(target)) {
        destDirs.add(target);
        items.push({
          dest: target,
          type: "dir",
          mode: 0o755,
          uid: o.chown?.uid ?? 0,
          gid: o.chown?.gid ?? 0,
          mtimeMs: m.entry.mtimeMs,
          size: 0,
        });
      }
      // The directory's contents go into the destination.
      const prefix = m.rel === "" ? "" : `${m.rel}/`;
      for (const p of all) {
        if (prefix && !p.startsWith(prefix)) continue;
        const sub = p.slice(prefix.length);
        if (exclude?.matchesOrParentMatches(sub)) continue;
        add(p, entries.get(p)!, join(target, sub));
      }
      continue;
    }
    if (exclude && (exclude.matches(path.posix.basename(m.name)) || exclude.matches(m.name))) continue;
    const intoDir = destDirSyntax || matches.length > 1 || destIsDir(destRel);
    const to =
      m.keep !== undefined
        ? join(destRel, m.keep)
        : intoDir
          ? join(destRel, path.posix.basename(m.name))
          : destRel;
    if (!to) throw new StrataError("INVALID_ARGUMENT", `cannot copy a file to /`);
    const before = items.length;
    add(m.rel, m.entry, to);
    if (items.length > before) items[before]!.topLevel = true;
  }
  items.sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0));
  return items;
}

function rootEntry(): ContextEntry {
  return {
    relPath: "",
    type: "dir",
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeMs: 0,
    dev: 0,
    ino: 0,
    nlink: 1,
    rdev: 0,
  };
}

/**
 * A layer tar of the items, with the missing parent directories (`newDirs`) first. Files
 * stream from disk one at a time; nothing is buffered whole. Headers are written directly
 * (layer/tar-writer) and small entries go out in batches of about a megabyte; an ADD that
 * unpacks an archive into the layer takes the general tar stream instead.
 */
export function copyLayerStream(
  items: CopyItem[],
  newDirs: CopyItem[],
  existingDir: (p: string) => boolean = () => false,
  opts: LayerStreamOptions = {},
): Readable {
  const all = [...newDirs, ...items].sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0));
  if (all.some((it) => it.type === "archive")) {
    if (opts.hashed) throw new StrataError("INTERNAL", "an archive layer cannot hash its sources");
    return archiveLayerStream(all, existingDir);
  }
  return Readable.from(layerChunks(all, opts), { objectMode: false, highWaterMark: BATCH });
}

export interface LayerStreamOptions {
  /**
   * Hash the context files that have no digest yet from the bytes packed (one read per
   * file): called with each file's sha256 hex, which is also set on the item.
   */
  hashed?: (it: CopyItem, hex: string) => void;
  /**
   * The files are likely not in the page cache: read small ones ahead, several at a time,
   * through the thread pool, rather than one synchronous read after another.
   */
  cold?: boolean;
  /** An earlier layer of the same COPY: entries whose tar fields are unchanged are copied from its blob. */
  previous?: PreviousLayout;
  /** Told, for each entry, its tar fields' key and where its bytes lie in this layer. */
  layout?: (dest: string, key: string, offset: number, length: number) => void;
}

/** Where each entry of an earlier layer lies in its blob: dest -> [key, offset, length]. */
export interface PreviousLayout {
  blob: string;
  entries: Map<string, [string, number, number]>;
}

/**
 * Everything an entry's bytes in a COPY layer depend on (its header fields and content
 * digest); undefined for a file whose digest is not known yet.
 */
export function entryKey(it: CopyItem): string | undefined {
  if (it.key !== undefined) return it.key;
  if (it.type === "file" && !it.digest) return undefined;
  if (it.type === "archive") return undefined;
  it.key = `${it.type}|${it.mode}|${it.uid}|${it.gid}|${Math.floor(it.mtimeMs / 1000)}|${it.type === "file" ? it.size : 0}|${it.linkTarget ?? ""}|${it.digest ?? ""}`;
  return it.key;
}

/** Small files read ahead of the packer when they are cold. */
const READ_AHEAD = 16;
const readFileCb = promisify(readFile);

/** Bytes gathered before a chunk goes out. */
const BATCH = 1 << 20;

async function* layerChunks(all: CopyItem[], opts: LayerStreamOptions): AsyncGenerator<Buffer> {
  const abs = (it: CopyItem) => (it.source as { abs: string }).abs;
  const isSmallFile = (it: CopyItem) =>
    it.type === "file" && !!it.source && "abs" in it.source && it.size <= SMALL_FILE;
  const ahead = new Map<number, Promise<Buffer>>();
  let next = 0;
  const readAhead = (upTo: number) => {
    for (; next < all.length && next <= upTo; next++)
      if (isSmallFile(all[next]!)) {
        const p = readFileCb(abs(all[next]!));
        p.catch(() => {}); // awaited in order below
        ahead.set(next, p);
      }
  };
  const digestOf = (it: CopyItem, data: Buffer | Hash) => {
    if (!opts.hashed || it.digest) return;
    const hex = (Buffer.isBuffer(data) ? createHash("sha256").update(data) : (data as Hash)).digest("hex");
    it.digest = hex;
    opts.hashed(it, hex);
  };
  let batch: Buffer[] = [];
  let bytes = 0;
  const push = (b: Buffer) => {
    if (b.length) {
      batch.push(b);
      bytes += b.length;
    }
  };
  const take = () => {
    const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch, bytes);
    batch = [];
    bytes = 0;
    return out;
  };
  const changed = (it: CopyItem) =>
    new StrataError("IO_ERROR", `${it.dest}: file changed while it was being copied`);
  // Unchanged entries of the previous layer: consecutive ones are read from its blob as one range.
  let emitted = 0;
  let fd: number | undefined;
  let range: { start: number; length: number } | undefined;
  const flushRange = () => {
    if (!range) return;
    const buf = Buffer.allocUnsafe(range.length);
    for (let got = 0; got < range.length; ) {
      const n = readSync(fd!, buf, got, range.length - got, range.start + got);
      if (n === 0) throw new StrataError("IO_ERROR", "the previous layer's blob is shorter than recorded");
      got += n;
    }
    range = undefined;
    push(buf);
  };
  const pos = () => emitted + bytes + (range?.length ?? 0);
  try {
    for (const [i, it] of all.entries()) {
      if (opts.cold) readAhead(i + READ_AHEAD);
      const key = opts.previous || opts.layout ? entryKey(it) : undefined;
      const start = pos();
      const prev = key !== undefined ? opts.previous?.entries.get(it.dest) : undefined;
      if (prev && prev[0] === key) {
        fd ??= openSync(opts.previous!.blob, "r");
        if (range && range.start + range.length === prev[1]) range.length += prev[2];
        else {
          flushRange();
          range = { start: prev[1], length: prev[2] };
        }
        if (range.length >= BATCH) flushRange();
        opts.layout?.(it.dest, key!, start, prev[2]);
        if (bytes >= BATCH) {
          const out = take();
          emitted += out.length;
          yield out;
        }
        continue;
      }
      flushRange();
      const base = {
        name: it.dest,
        mode: it.mode,
        uid: it.uid,
        gid: it.gid,
        mtime: Math.floor(it.mtimeMs / 1000),
      };
      if (it.type === "dir") push(tarHeader({ ...base, type: "directory" }));
      else if (it.type === "symlink")
        push(tarHeader({ ...base, type: "symlink", linkname: it.linkTarget ?? "" }));
      else if (it.source && "data" in it.source) {
        const data = it.source.data;
        push(tarHeader({ ...base, type: "file", size: data.length }));
        push(data);
        push(tarPadding(data.length));
      } else if (it.size <= SMALL_FILE) {
        // Read synchronously unless cold: the build hashed these files just before (their
        // pages are cached), and a sync read is several times cheaper than the thread pool's
        // open/fstat/read/close round trips (2,000 small files: 16 ms against 60–130 ms).
        const pending = ahead.get(i);
        ahead.delete(i);
        const data = pending ? await pending : readFileSync(abs(it));
        if (data.length !== it.size) throw changed(it);
        digestOf(it, data);
        push(tarHeader({ ...base, type: "file", size: data.length }));
        push(data);
        push(tarPadding(data.length));
      } else {
        push(tarHeader({ ...base, type: "file", size: it.size }));
        const head = take();
        emitted += head.length;
        yield head;
        let n = 0;
        const h = opts.hashed && !it.digest ? createHash("sha256") : undefined;
        const src = createReadStream(abs(it), { highWaterMark: BATCH, end: it.size - 1 });
        for await (const chunk of src as AsyncIterable<Buffer>) {
          n += chunk.length;
          h?.update(chunk);
          emitted += chunk.length;
          yield chunk;
        }
        if (n !== it.size) throw changed(it);
        if (h) digestOf(it, h);
        push(tarPadding(it.size));
      }
      if (key !== undefined) opts.layout?.(it.dest, key, start, pos() - start);
      else if (opts.layout) {
        const k = entryKey(it);
        if (k !== undefined) opts.layout(it.dest, k, start, pos() - start);
      }
      if (bytes >= BATCH) {
        const out = take();
        emitted += out.length;
        yield out;
      }
    }
    flushRange();
    push(TAR_END);
    yield take();
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The general tar stream, for a layer an archive is unpacked into (ADD of a local tar). */
function archiveLayerStream(all: CopyItem[], existingDir: (p: string) => boolean): Readable {
  const pack = tarPack();
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  (async () => {
    const entry = (h: Parameters<typeof pack.entry>[0], body?: Buffer | string) =>
      new Promise<void>((resolve, reject) => {
        if (body !== undefined) pack.entry(h, body, (e) => (e ? reject(e) : resolve()));
        else pack.entry(h, (e) => (e ? reject(e) : resolve()));
      });
    const dirDests = new Set(all.filter((it) => it.type === "dir").map((it) => it.dest));
    for (const it of all) {
      const h = {
        name: it.type === "dir" ? `${it.dest}/` : it.dest,
        mode: it.mode,
        uid: it.uid,
        gid: it.gid,
        mtime: new Date(Math.floor(it.mtimeMs / 1000) * 1000),
      };
      if (it.type === "archive") await packArchive(pack, it, (p) => existingDir(p) || dirDests.has(p));
      else if (it.type === "dir") await entry({ ...h, type: "directory" });
      else if (it.type === "symlink") await entry({ ...h, type: "symlink", linkname: it.linkTarget });
      else if (it.source && "data" in it.source)
        await entry({ ...h, size: it.source.data.length }, it.source.data);
      else {
        const src = it.source as { abs: string };
        await new Promise<void>((resolve, reject) => {
          const w = pack.entry({ ...h, size: it.size }, (e) => (e ? reject(e) : resolve()));
          pipeline(createReadStream(src.abs, { highWaterMark: 1 << 20 }), w).catch(reject);
        });
      }
    }
    pack.finalize();
  })().catch((e) => pack.destroy(e));
  pack.on("error", (e) => out.destroy(e));
  pack.pipe(out);
  return out;
}
