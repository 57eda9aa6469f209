import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const SRC = path.resolve(import.meta.dirname, "../src");

/** Which top-level folders each folder may import (STYLE.md §1). */
const ALLOWED: Record<string, string[]> = {
  util: [],
  oci: ["util"],
  reference: ["oci", "util"],
  image: ["oci", "util"],
  dockerfile: ["oci", "util"],
  layer: ["oci", "util"],
  store: ["oci", "reference", "image", "layer", "util"],
  snapshot: ["oci", "layer", "util"],
  runtime: ["oci", "util"],
  "registry/client": ["oci", "reference", "image", "layer", "util"],
  "registry/server": ["oci", "reference", "util"],
  archive: ["oci", "reference", "image", "layer", "store", "util"],
  build: ["dockerfile", "image", "layer", "snapshot", "runtime", "store", "oci", "reference", "util"],
  engine: [
    "util",
    "oci",
    "reference",
    "image",
    "dockerfile",
    "layer",
    "store",
    "snapshot",
    "runtime",
    "registry/client",
    "archive",
    "build",
  ],
  daemon: ["engine", "oci", "reference", "util"],
  web: ["util", "oci"],
  cli: ["engine", "registry/server", "web", "reference", "oci", "util"],
  // The entry point starts a build context's listing (util/find) before the CLI loads.
  ".": ["cli", "util"],
};
/**
 * The entry point starts a build context's listing before anything else loads: it imports
 * that one small module directly, not util's index (which would load all of util first).
 */
const ENTRY_POINT_DEEP = new Set([".>./util/find.js"]);
const PURE = new Set(["oci", "reference", "dockerfile", "image"]);
const IMPURE_BUILTINS = /^node:(fs|fs\/promises|net|http|https|http2|child_process)$/;

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function folderOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  if (rel.length === 1) return ".";
  if (rel[0] === "registry") return `registry/${rel[1]}`;
  return rel[0]!;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2])!);
  return out;
}

describe("architecture", () => {
  const files = walk(SRC).filter((f) => !f.endsWith(".test.ts"));

  it("knows every folder under src/", () => {
    const unknown = [...new Set(files.map(folderOf))].filter((f) => !(f in ALLOWED));
    expect(unknown).toEqual([]);
  });

  it("imports point down only and enter folders through index.ts", () => {
    const bad: string[] = [];
    for (const f of files) {
      const from = folderOf(f);
      for (const spec of importsOf(f)) {
        if (!spec.startsWith(".")) {
          if (PURE.has(from) && IMPURE_BUILTINS.test(spec))
            bad.push(`${path.relative(SRC, f)}: pure module imports ${spec}`);
          continue;
        }
        const target = path.resolve(path.dirname(f), spec).replace(/\.js$/, ".ts");
        const to = folderOf(target);
        if (to === from) continue;
        if (!ALLOWED[from]?.includes(to))
          bad.push(`${path.relative(SRC, f)}: ${from} may not import ${to} (${spec})`);
        const base = to === "." ? SRC : path.join(SRC, to);
        if (path.relative(base, target) !== "index.ts" && !ENTRY_POINT_DEEP.has(`${from}>${spec}`))
          bad.push(`${path.relative(SRC, f)}: deep import ${spec}; enter ${to} through its index.ts`);
      }
    }
    expect(bad).toEqual([]);
  });
});
