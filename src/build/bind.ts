import { createHash } from "node:crypto";
import path from "node:path";
import { StrataError } from "../util/index.js";
import { mapLimit, type StatCache } from "./checksum.js";
import type { ContextEntry } from "./context.js";
import { followInRoot } from "./copy.js";

/**
 * `RUN --mount=type=bind` sources: where the bind comes from, confined to its root, and
 * what its content is for the step's cache key.
 */

/**
 * A digest of what a bind mount of the context's `source` shows: every entry under it
 * (.dockerignore applied, symlinks inside kept as links) by relative path, type, mode,
 * size, link target and content digest. Changing a mounted file re-runs the step; its
 * mtime alone does not.
 */
export async function contextBindDigest(
  entries: ReadonlyMap<string, ContextEntry>,
  contextDir: string,
  source: string,
  statCache: StatCache,
): Promise<string> {
  const clean = source
    .split("/")
    .filter((s) => s && s !== ".")
    .join("/");
  const real = clean === "" ? "" : followInRoot(entries, clean);
  if (real === undefined || (real !== "" && !entries.has(real)))
    throw new StrataError("INVALID_ARGUMENT", `failed to compute cache key: "/${clean}": not found`);
  const under =
    real === ""
      ? [...entries.values()]
      : [...entries.values()].filter((e) => e.relPath === real || e.relPath.startsWith(`${real}/`));
  const rows = await mapLimit(under, 8, async (e) => [
    real === "" ? e.relPath : e.relPath.slice(real.length),
    e.type,
    e.mode & 0o7777,
    e.type === "file" ? e.size : 0,
    e.linkTarget ?? "",
    e.type === "file" ? await statCache.digest(path.join(contextDir, e.relPath), e) : "",
  ]);
  rows.sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
  return createHash("sha256").update(JSON.stringify(rows)).digest("hex");
}
