import { spawn } from "node:child_process";
import { StrataError } from "./errors.js";

/**
 * find's record for one entry: the path, its stat fields (space-separated; no NUL possible),
 * the symlink target (empty for other types). The ctime is there for signatures: anything
 * that changes an entry changes its record. build/context-find.ts parses it.
 */
export const FIND_LISTING_FORMAT = "%P\\0%y %m %U %G %s %T@ %C@ %D %i %n\\0%l\\0";

/**
 * Every entry below `root` listed by one GNU find process (symlinks never followed). The CLI
 * starts it before loading the build engine, so the walk runs on the other core meanwhile;
 * the returned promise may be dropped unawaited (a failure is then ignored).
 */
export function findListing(root: string): Promise<Buffer> {
  const p = new Promise<Buffer>((resolve, reject) => {
    const child = spawn("find", [".", "-mindepth", "1", "-printf", FIND_LISTING_FORMAT], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(Buffer.concat(chunks))
        : reject(
            new StrataError(
              "IO_ERROR",
              `listing the build context failed: ${Buffer.concat(err).toString().trim()}`,
            ),
          ),
    );
  });
  p.catch(() => {});
  return p;
}
