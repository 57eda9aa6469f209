import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * The quick listing's record: the path, then type, size, ctime and inode. Enough to see
 * that nothing changed: any write, chmod, chown, link or rename of an entry moves its
 * ctime, a replacement changes its inode. find prints it a fifth faster than the full
 * record (fewer fields to format), and the no-change build waits for it. A top-level
 * entry's record starts with the byte 0x01 (find's `-path` test tells them apart), so
 * that the subtrees can be cut apart without parsing each record.
 */
const QUICK_RECORD = "%P\\0%y %s %C@ %i\\0";
export const QUICK_LISTING_ARGS: readonly string[] = [
  ".",
  "-mindepth",
  "1",
  "(",
  "-path",
  "./*/*",
  "-printf",
  QUICK_RECORD,
  ")",
  "-o",
  "-printf",
  `\\001${QUICK_RECORD}`,
];

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
  /** Bytes of the subtree's records in the listing. */
  bytes: number;
  /** sha256 of the subtree's raw records, in find's order. */
  digest: string;
}

export interface QuickListing {
  /** find's output as it came (for scans over every path). */
  raw: Buffer;
  /** Per top-level entry, in the order find met them. */
  tops: Map<string, ListedTop>;
}

/**
 * Every entry below `root` (symlinks never followed) listed by one GNU find process in the
 * quick format, cut into subtrees per top-level entry and digested. The entry point
 * starts it before the CLI loads, so the walk runs on the other core meanwhile. find
 * writes to an unlinked temporary file, not a pipe: a pipe holds 64 KiB, and find would
 * stop whenever the CLI, busy loading, does not read it. The returned promise may be
 * dropped unawaited (a failure is then ignored).
 */
export function quickListing(root: string): Promise<QuickListing> {
  let out: number | "pipe" = "pipe";
  try {
    const tmp = path.join(tmpdir(), `strata-listing-${process.pid}-${randomBytes(6).toString("hex")}`);
    out = openSync(tmp, "wx+", 0o600);
    unlinkSync(tmp);
  } catch {
    // No writable temporary directory: through the pipe then.
  }
  const p = new Promise<QuickListing>((resolve, reject) => {
    const child = spawn("find", QUICK_LISTING_ARGS, { cwd: root, stdio: ["ignore", out, "pipe"] });
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (c: Buffer) => chunks.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => {
      if (typeof out === "number") closeSync(out);
      reject(e);
    });
    child.on("close", (code) => {
      let raw: Buffer;
      try {
        if (typeof out === "number") {
          raw = Buffer.allocUnsafe(fstatSync(out).size);
          let off = 0;
          while (off < raw.length) {
            const n = readSync(out, raw, off, raw.length - off, off);
            if (n === 0) break;
            off += n;
          }
          closeSync(out);
          raw = raw.subarray(0, off);
        } else raw = Buffer.concat(chunks);
      } catch (e) {
        reject(e);
        return;
      }
      if (code !== 0) reject(listingError(err));
      else resolve({ raw, tops: subtrees(raw) });
    });
  });
  p.catch(() => {});
  return p;
}

/**
 * Cut the quick listing into subtrees. find walks depth-first, so each top-level entry's
 * records follow it; a top-level record starts the listing or follows a NUL with 0x01.
 * A 0x01 can also begin a name; such a candidate is taken only when its path has no "/",
 * which a deeper entry's always has.
 */
export function subtrees(raw: Buffer): Map<string, ListedTop> {
  const tops = new Map<string, ListedTop>();
  const next = (from: number): number => {
    for (let at = raw.indexOf(BOUNDARY, from); at >= 0; at = raw.indexOf(BOUNDARY, at + 1)) {
      const start = at + 1;
      const nul = raw.indexOf(0, start);
      const slash = raw.indexOf(0x2f, start);
      if (nul > 0 && (slash < 0 || slash > nul)) return start;
    }
    return -1;
  };
  let s = raw.length && raw[0] === 1 ? 0 : next(0);
  while (s >= 0) {
    const n = next(s);
    const end = n < 0 ? raw.length : n;
    const nul = raw.indexOf(0, s);
    const name = raw.toString("utf8", s + 1, nul);
    const digest = createHash("sha256").update(raw.subarray(s, end)).digest("hex");
    const had = tops.get(name);
    tops.set(name, {
      type: String.fromCharCode(raw[nul + 1]!),
      bytes: end - s + (had?.bytes ?? 0),
      // find lists a subtree in one piece; should it not, both pieces count, in order.
      digest: had ? createHash("sha256").update(`${had.digest}${digest}`).digest("hex") : digest,
    });
    s = n;
  }
  return tops;
}

const BOUNDARY = Buffer.from([0, 1]);

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
