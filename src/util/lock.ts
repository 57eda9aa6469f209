import { promises as fsp } from "node:fs";
import { StrataError } from "./errors.js";

/**
 * proper-lockfile, loaded on first use: it pulls in graceful-fs, which patches fs as it loads
 * (~15 ms of start-up that commands taking no lock need not pay). A command that will write
 * metadata can start loading it early (`preloadLock`), while it waits on something else.
 */
const importLockfile = () => import("proper-lockfile");
let lockModule: ReturnType<typeof importLockfile> | undefined;
const loadLockfile = () => (lockModule ??= importLockfile());

export function preloadLock(): void {
  loadLockfile().catch(() => {});
}

export interface LockOptions {
  /** How long to keep retrying before giving up. Default 30 s: long metadata writes are rare. */
  timeoutMs?: number;
}

/**
 * Run `fn` holding an exclusive cross-process lock on `target` (a file that must exist).
 * proper-lockfile's mkdir lock is atomic on every local file system and goes stale when
 * its holder dies (the mtime stops being refreshed), so a kill -9 never wedges the store.
 */
export async function withFileLock<T>(
  target: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const ownerFile = `${target}.owner`;
  let release: () => Promise<void>;
  const { default: lockfile } = await loadLockfile();
  try {
    release = await lockfile.lock(target, {
      stale: 10_000,
      update: 2_000,
      realpath: false,
      retries: {
        retries: Math.ceil(timeoutMs / 50),
        factor: 1,
        minTimeout: 20,
        maxTimeout: 80,
        randomize: true,
      },
    });
  } catch (e) {
    const owner = await fsp.readFile(ownerFile, "utf8").catch(() => "unknown");
    throw new StrataError("LOCK_TIMEOUT", `store is locked by another process (${owner.trim()}): ${target}`, {
      cause: e,
    });
  }
  try {
    await fsp.writeFile(ownerFile, `pid ${process.pid} since ${new Date().toISOString()}\n`).catch(() => {});
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
