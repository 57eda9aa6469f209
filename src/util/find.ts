import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * The quick listing's record: the path, then type, mode, owner, size, mtime, ctime and
 * inode: what a step's inputs are made of, and ctime and inode besides, which move with any
 * write, chmod, chown, link or replacement where a file system keeps them (a FUSE mount may
 * not, hence the others). find prints it faster than the full record (no device, link
 * count or symlink target), and the no-change build waits for it. A top-level entry's
 * record starts with the byte 0x01 (find's `-path` test tells them apart), so that the
 * subtrees can be cut apart without parsing each record.
 */
const QUICK_RECORD = "%P\\0%y %m %U %G %s %T@ %C@ %i\\0";
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
 * A listing under way. `stop()` ends find early: it writes into a file, not a pipe, so
 * nothing else would, and the process waits for its children (the entry point stops it
 * once the command is done, used or not).
 */
export type RunningListing = Promise<QuickListing> & { stop(): void };

/**
 * Every entry below `root` (symlinks never followed) listed by one GNU find process in the
 * quick format, cut into subtrees per top-level entry and digested. The entry point
 * starts it before the CLI loads, so the walk runs on the other core meanwhile. find
 * writes to an unlinked temporary file, not a pipe: a pipe holds 64 KiB, and find would
 * stop whenever the CLI, busy loading, does not read it. The returned promise may be
 * dropped unawaited (a failure is then ignored).
 */
export function quickListing(root: string): RunningListing {
  let out: number | "pipe" = "pipe";
  try {
    const tmp = path.join(tmpdir(), `strata-listing-${process.pid}-${randomBytes(6).toString("hex")}`);
    const fd = openSync(tmp, "wx+", 0o600);
    try {
      unlinkSync(tmp);
      out = fd;
    } catch {
      closeSync(fd);
    }
  } catch {
    // No writable temporary directory: through the pipe then.
  }
  const file = typeof out === "number" ? out : undefined;
  let closed = false;
  const closeFile = () => {
    if (file !== undefined && !closed) {
      closed = true;
      closeSync(file);
    }
  };
  let running: ChildProcess | undefined;
  const p = new Promise<QuickListing>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn("find", QUICK_LISTING_ARGS, { cwd: root, stdio: ["ignore", out, "pipe"] });
    } catch (e) {
      closeFile();
      reject(e);
      return;
    }
    running = child;
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (c: Buffer) => chunks.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    // 'close' follows 'error' (find missing, a vanished directory): settle and clean up there.
    let spawnError: Error | undefined;
    child.on("error", (e) => {
      spawnError = e;
    });
    child.on("close", (code) => {
      running = undefined;
      if (spawnError || code !== 0) {
        closeFile();
        reject(spawnError ?? listingError(err));
        return;
      }
      let raw: Buffer;
      try {
        if (file !== undefined) {
          raw = Buffer.allocUnsafe(fstatSync(file).size);
          let off = 0;
          while (off < raw.length) {
            const n = readSync(file, raw, off, raw.length - off, off);
            if (n === 0) break;
            off += n;
          }
          raw = raw.subarray(0, off);
        } else raw = Buffer.concat(chunks);
      } catch (e) {
        reject(e);
        return;
      } finally {
        closeFile();
      }
      resolve({ raw, tops: subtrees(raw) });
    });
  }) as RunningListing;
  p.catch(() => {});
  p.stop = () => running?.kill();
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
      // The slash is looked for in this path only: a search to the next slash anywhere
      // would make many top-level files quadratic.
      if (nul > 0 && !raw.subarray(start, nul).includes(0x2f)) return start;
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
