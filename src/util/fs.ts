import { randomBytes } from "node:crypto";
import { constants, promises as fsp, lstatSync, readlinkSync } from "node:fs";
import path from "node:path";
import { isErrno, StrataError } from "./errors.js";

/** fsync a directory so a rename inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A temp name next to `file`, on the same file system, unique per process and call. */
export function tempNameFor(file: string): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`,
  );
}

/**
 * Crash-safe replace: write a temp file beside the target, fsync it, rename it over the
 * target, fsync the directory. A reader sees the old or the new content, never a mix.
 */
export async function atomicWriteFile(
  file: string,
  data: string | Uint8Array,
  opts: { sync?: boolean } = {},
) {
  const sync = opts.sync ?? true;
  const tmp = tempNameFor(file);
  const fh = await fsp.open(tmp, "w", 0o644);
  try {
    await fh.writeFile(data);
    if (sync) await fh.sync();
  } catch (e) {
    await fh.close();
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  if (sync) await fsyncDir(path.dirname(file));
}

export async function readFileOrUndefined(file: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(file);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return undefined;
    throw e;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (e) {
    if (isErrno(e, "ENOENT")) return false;
    throw e;
  }
}

/** True when a process with that pid is alive (signal 0 probe). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isErrno(e, "EPERM");
  }
}

/** What a root-relative path is, for followInRoot: missing, a symlink and its target, or anything else. */
export type RootEntryKind = undefined | "other" | { link: string };

/**
 * `rel` inside a root with every symlink on the way followed inside it, the last component
 * included: an absolute target restarts at the root and `..` never climbs out of it (Docker's
 * FollowSymlinkInScope, what a chroot would see). `lookup` says what a root-relative path is,
 * over a real directory or a listing. A missing component ends the walk with undefined when
 * `missing` is "fail"; with "keep" the rest is taken as written. Returns a root-relative
 * path without leading slash ("" for the root).
 */
export function followInRoot(
  rel: string,
  lookup: (p: string) => RootEntryKind,
  missing: "fail" | "keep",
): string | undefined {
  let rest = rel.split("/");
  let out: string[] = [];
  let hops = 0;
  while (rest.length) {
    const seg = rest.shift()!;
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      out.pop();
      continue;
    }
    const kind = lookup([...out, seg].join("/"));
    if (kind === undefined && missing === "fail") return undefined;
    if (typeof kind === "object") {
      if (++hops > 255)
        throw new StrataError("INVALID_ARGUMENT", `too many levels of symbolic links: /${rel}`);
      if (kind.link.startsWith("/")) out = [];
      rest = [...kind.link.split("/"), ...rest];
      continue;
    }
    out.push(seg);
  }
  return out.join("/");
}

/** followInRoot over a real directory: the host path a bind mount or a `cp` of `root/rel` must use. */
export function resolveInRoot(root: string, rel: string): string {
  const inside = followInRoot(
    rel,
    (p) => {
      const abs = path.join(root, p);
      const st = lstatSync(abs, { throwIfNoEntry: false });
      return !st ? undefined : st.isSymbolicLink() ? { link: readlinkSync(abs) } : "other";
    },
    "keep",
  )!;
  return path.join(root, inside);
}
