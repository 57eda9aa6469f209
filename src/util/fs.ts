import { randomBytes } from "node:crypto";
import { constants, promises as fsp } from "node:fs";
import path from "node:path";
import { isErrno } from "./errors.js";

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
