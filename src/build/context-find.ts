import { spawn } from "node:child_process";
import type { PatternMatcher } from "../dockerfile/index.js";
import { StrataError } from "../util/index.js";
import { type ContextEntry, type ContextEntryType, compareUtf8 } from "./context.js";

const TYPES: Record<string, ContextEntryType> = {
  f: "file",
  d: "dir",
  l: "symlink",
  p: "fifo",
  s: "socket",
  c: "charDevice",
  b: "blockDevice",
};

/** Fields per entry in find's output, NUL-separated. */
const FORMAT = "%P\\0%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%D\\0%i\\0%n\\0%l\\0";
const FIELDS = 11;

/**
 * The whole context listed by GNU find (one native walk, ~5x faster than statting every
 * entry from JavaScript), filtered by the .dockerignore matcher. Only for matchers without
 * `!` exceptions: then an excluded directory excludes everything below it, which is what
 * this applies. Symlinks are listed, never followed (find's default -P). Sorted like
 * walkContext (byte order of the UTF-8 paths).
 */
export async function listContext(
  root: string,
  matcher: PatternMatcher | undefined,
): Promise<ContextEntry[]> {
  if (matcher?.exclusions()) throw new StrataError("INTERNAL", "listContext cannot apply exception patterns");
  const out = await new Promise<Buffer>((resolve, reject) => {
    const p = spawn("find", [".", "-mindepth", "1", "-printf", FORMAT], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on("data", (c: Buffer) => chunks.push(c));
    p.stderr.on("data", (c: Buffer) => err.push(c));
    p.on("error", reject);
    p.on("close", (code) =>
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
  const f = out.toString("utf8").split("\0");
  const entries: ContextEntry[] = [];
  const excludedDirs = new Set<string>();
  for (let i = 0; i + FIELDS <= f.length; i += FIELDS) {
    const relPath = f[i]!;
    const type = TYPES[f[i + 1]!];
    if (!type) continue;
    const slash = relPath.lastIndexOf("/");
    if (slash > 0 && excludedDirs.has(relPath.slice(0, slash))) {
      if (type === "dir") excludedDirs.add(relPath);
      continue;
    }
    if (matcher?.matches(relPath)) {
      if (type === "dir") excludedDirs.add(relPath);
      continue;
    }
    entries.push({
      relPath,
      type,
      mode: Number.parseInt(f[i + 2]!, 8),
      uid: Number(f[i + 3]),
      gid: Number(f[i + 4]),
      size: Number(f[i + 5]),
      mtimeMs: Number(f[i + 6]) * 1000,
      dev: Number(f[i + 7]),
      ino: Number(f[i + 8]),
      nlink: Number(f[i + 9]),
      rdev: 0,
      ...(type === "symlink" ? { linkTarget: f[i + 10]! } : {}),
    });
  }
  entries.sort((a, b) => compareUtf8(a.relPath, b.relPath));
  return entries;
}
