import { spawn } from "node:child_process";
import { createHash, type Hash } from "node:crypto";

/**
 * The quick listing's record: the path, then type, size, ctime and inode. Enough to see
 * that nothing changed: any write, chmod, chown, link or rename of an entry moves its
 * ctime, a replacement changes its inode. find prints it about a fifth faster than the
 * full record (fewer fields to format), which matters because the no-change build waits
 * for it.
 */
export const QUICK_LISTING_FORMAT = "%P\\0%y %s %C@ %i\\0";

/**
 * The full record, for the steps that need entries: the path (with the starting point's
 * `./`), its stat fields (space-separated; no NUL possible), the symlink target (empty for
 * other types). build/context-find.ts parses it.
 */
export const FULL_LISTING_FORMAT = "%p\\0%y %m %U %G %s %T@ %C@ %D %i %n\\0%l\\0";

/** One top-level entry of the context and everything below it, as the quick listing saw it. */
export interface ListedTop {
  /** find's type letter of the top-level entry itself (f, d, l, …). */
  type: string;
  /** Bytes of the regular files in the subtree. */
  bytes: number;
  /** Number of records (entries) in the subtree, the top-level entry included. */
  records: number;
  /** sha256 of the subtree's raw records, in find's order. */
  digest: string;
}

export interface QuickListing {
  /** find's output as it came (for scans over every path). */
  raw: Buffer;
  /** Per top-level entry, in the order find met them. */
  tops: Map<string, ListedTop>;
}

interface TopState {
  type: string;
  bytes: number;
  records: number;
  hash: Hash;
}

/**
 * Every entry below `root` (symlinks never followed) listed by one GNU find process in the
 * quick format, grouped and digested per top-level entry while find's output streams in:
 * the entry point starts it before the CLI loads, so the walk runs on the other core and
 * the parsing in between module loads. The returned promise may be dropped unawaited (a
 * failure is then ignored).
 */
export function quickListing(root: string): Promise<QuickListing> {
  const tops = new Map<string, TopState>();
  const chunks: Buffer[] = [];
  let pending: Buffer | undefined;
  let cur: TopState | undefined;
  /** The current top's name as latin1 text, to compare with the next record's. */
  let curName = "\0";

  // Scanned as a latin1 string (one byte, one char): the string builtins are the fastest
  // way through ~15,000 records while the CLI is still loading.
  const take = (chunk: Buffer) => {
    chunks.push(chunk);
    const data = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    const text = data.toString("latin1");
    let pos = 0;
    // The start of the current run of records of one top, hashed in one update.
    let run = 0;
    for (;;) {
      const a = text.indexOf("\0", pos);
      const b = a < 0 ? -1 : text.indexOf("\0", a + 1);
      if (b < 0) {
        if (pos < data.length) pending = data.subarray(pos);
        break;
      }
      let slash = text.indexOf("/", pos);
      const isTop = slash < 0 || slash > a;
      if (isTop) slash = a;
      if (slash - pos !== curName.length || !text.startsWith(curName, pos)) {
        if (cur && pos > run) cur.hash.update(data.subarray(run, pos));
        run = pos;
        curName = text.slice(pos, slash);
        const name = data.toString("utf8", pos, slash);
        cur = tops.get(name);
        if (!cur) tops.set(name, (cur = { type: "", bytes: 0, records: 0, hash: createHash("sha256") }));
      }
      const type = text[a + 1]!;
      if (isTop) cur!.type = type;
      cur!.records++;
      if (type === "f") cur!.bytes += Number(text.slice(a + 3, text.indexOf(" ", a + 3)));
      pos = b + 1;
    }
    if (cur && pos > run) cur.hash.update(data.subarray(run, pos));
  };

  const p = new Promise<QuickListing>((resolve, reject) => {
    const child = spawn("find", [".", "-mindepth", "1", "-printf", QUICK_LISTING_FORMAT], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const err: Buffer[] = [];
    child.stdout.on("data", take);
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) {
        reject(listingError(err));
        return;
      }
      const out = new Map<string, ListedTop>();
      for (const [name, t] of tops)
        out.set(name, { type: t.type, bytes: t.bytes, records: t.records, digest: t.hash.digest("hex") });
      resolve({ raw: Buffer.concat(chunks), tops: out });
    });
  });
  p.catch(() => {});
  return p;
}

/**
 * The full records (FULL_LISTING_FORMAT) of the given top-level entries and everything
 * below them, or of the whole context without `tops`.
 */
export function fullListing(root: string, tops?: readonly string[]): Promise<Buffer> {
  // `./name`: a name starting with "-" is not taken for an option.
  const starts = tops ? tops.map((t) => `./${t}`) : [".", "-mindepth", "1"];
  return new Promise<Buffer>((resolve, reject) => {
    if (tops && !tops.length) {
      resolve(Buffer.alloc(0));
      return;
    }
    const child = spawn("find", [...starts, "-printf", FULL_LISTING_FORMAT], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(listingError(err))));
  });
}

/**
 * A plain Error, not a StrataError: the entry point bundles this file on its own, and its
 * copy of a StrataError class would not be the CLI's (build/context-find.ts wraps it).
 */
function listingError(err: Buffer[]): Error {
  return new Error(`listing the build context failed: ${Buffer.concat(err).toString().trim()}`);
}
