import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { extract as tarExtract } from "tar-stream";

/** One path of a flattened image filesystem. Times are left out on purpose (see `treeDiff`). */
export interface TreeEntry {
  type: "file" | "dir" | "symlink" | "char" | "block" | "fifo";
  /** Permission bits with setuid/setgid/sticky (`mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** sha256 of the content (files; a hard link gets its target's). */
  digest?: string;
  /** Symlink target. */
  link?: string;
}

export type Tree = Map<string, TreeEntry>;

interface RawEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkname?: string;
  data: Buffer;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Entries of a tar (gzip sniffed), read whole: test images are small. */
export async function tarEntries(tar: Buffer): Promise<RawEntry[]> {
  const plain = tar[0] === 0x1f && tar[1] === 0x8b ? gunzipSync(tar) : tar;
  const ex = tarExtract();
  const out: RawEntry[] = [];
  const done = new Promise<void>((resolve, reject) => {
    ex.on("entry", (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => chunks.push(c as Buffer));
      stream.on("end", () => {
        out.push({
          name: h.name,
          type: h.type ?? "file",
          mode: (h.mode ?? 0) & 0o7777,
          uid: h.uid ?? 0,
          gid: h.gid ?? 0,
          linkname: h.linkname ?? undefined,
          data: Buffer.concat(chunks),
        });
        next();
      });
      stream.on("error", reject);
    });
    ex.on("finish", () => resolve());
    ex.on("error", reject);
  });
  ex.end(plain);
  await done;
  return out;
}

const clean = (p: string) =>
  p
    .replace(/^(\.\/)+/, "")
    .replace(/^\/+/, "")
    .replace(/\/+$/, "");

function removeUnder(t: Tree, dir: string, self: boolean): void {
  if (self) t.delete(dir);
  const prefix = dir === "" ? "" : `${dir}/`;
  for (const k of [...t.keys()]) if (k.startsWith(prefix) && k !== dir) t.delete(k);
}

/**
 * Apply one layer tar to a tree with the OCI rules: `.wh.NAME` deletes NAME from the lower
 * layers, `.wh..wh..opq` empties its directory of everything from the lower layers. The
 * deletions of a layer are applied before its additions (they never touch its own entries).
 */
export async function applyLayer(t: Tree, layer: Buffer): Promise<void> {
  const entries = await tarEntries(layer);
  for (const e of entries) {
    const name = clean(e.name);
    const base = name.split("/").pop()!;
    const dir = name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : "";
    if (base === ".wh..wh..opq") removeUnder(t, dir, false);
    else if (base.startsWith(".wh.")) removeUnder(t, dir ? `${dir}/${base.slice(4)}` : base.slice(4), true);
  }
  const own = new Map<string, RawEntry>();
  for (const e of entries) {
    const name = clean(e.name);
    const base = name.split("/").pop()!;
    if (name === "" || base.startsWith(".wh.")) continue;
    own.set(name, e);
    const common = { mode: e.mode, uid: e.uid, gid: e.gid };
    // A non-directory replaces whatever was there, a directory's old contents included.
    if (e.type !== "directory" && t.get(name)?.type === "dir") removeUnder(t, name, true);
    switch (e.type) {
      case "directory":
        t.set(name, { type: "dir", ...common });
        break;
      case "symlink":
        t.set(name, { type: "symlink", ...common, link: e.linkname });
        break;
      case "link": {
        const target = clean(e.linkname ?? "");
        const src = own.get(target);
        const digest = src ? sha(src.data) : t.get(target)?.digest;
        t.set(name, { type: "file", ...common, digest });
        break;
      }
      case "character-device":
        t.set(name, { type: "char", ...common });
        break;
      case "block-device":
        t.set(name, { type: "block", ...common });
        break;
      case "fifo":
        t.set(name, { type: "fifo", ...common });
        break;
      default:
        t.set(name, { type: "file", ...common, digest: sha(e.data) });
    }
  }
}

/** Files of a tar archive (a docker-archive or OCI layout tarball), by name. */
async function archiveFiles(archive: Buffer | string): Promise<Map<string, Buffer>> {
  const buf = typeof archive === "string" ? readFileSync(archive) : archive;
  const files = new Map<string, Buffer>();
  for (const e of await tarEntries(buf)) if (e.type === "file") files.set(clean(e.name), e.data);
  return files;
}

export interface ArchiveImage {
  config: Record<string, unknown> & { config?: Record<string, unknown> };
  /** Layer tars, base first. */
  layers: Buffer[];
  repoTags: string[];
}

/** The images of a docker-archive (`docker save`, `strata save`), in manifest.json's order. */
export async function readDockerArchive(archive: Buffer | string): Promise<ArchiveImage[]> {
  const files = await archiveFiles(archive);
  const manifest = JSON.parse(files.get("manifest.json")?.toString() ?? "null") as
    | { Config: string; Layers: string[]; RepoTags?: string[] | null }[]
    | null;
  if (!manifest) throw new Error("not a docker-archive: no manifest.json");
  return manifest.map((m) => ({
    config: JSON.parse(files.get(clean(m.Config))!.toString()),
    layers: m.Layers.map((l) => {
      const b = files.get(clean(l));
      if (!b) throw new Error(`docker-archive: layer ${l} is missing`);
      return b;
    }),
    repoTags: m.RepoTags ?? [],
  }));
}

/** The final filesystem of an image: its layers applied in order. */
export async function flatten(layers: Buffer[]): Promise<Tree> {
  const t: Tree = new Map();
  for (const l of layers) await applyLayer(t, l);
  return t;
}

/** The tree of a plain filesystem tar (`-o type=tar`). */
export async function treeOfTar(tar: Buffer | string): Promise<Tree> {
  return flatten([typeof tar === "string" ? readFileSync(tar) : tar]);
}

function describe(e: TreeEntry | undefined): string {
  if (!e) return "(absent)";
  const bits = [e.type, `0${e.mode.toString(8)}`, `${e.uid}:${e.gid}`];
  if (e.digest) bits.push(e.digest.slice(0, 12));
  if (e.link !== undefined) bits.push(`-> ${e.link}`);
  return bits.join(" ");
}

/**
 * Differences between two trees as readable lines (`path: ours ≠ theirs`), empty when equal.
 * Compared: paths, types, permission bits, uid/gid, content digests, symlink targets.
 * Not compared: modification times (a build stamps them with the time it ran).
 */
export function treeDiff(ours: Tree, theirs: Tree, ignore: (p: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const paths = [...new Set([...ours.keys(), ...theirs.keys()])].sort();
  for (const p of paths) {
    if (ignore(p)) continue;
    const a = describe(ours.get(p));
    const b = describe(theirs.get(p));
    if (a !== b) out.push(`/${p}: strata ${a} ≠ docker ${b}`);
  }
  return out;
}

/** Readable listing of a subtree, for assertions on a few paths. */
export function listing(t: Tree, under = ""): string[] {
  const prefix = under ? `${clean(under)}/` : "";
  return [...t.keys()]
    .filter((k) => k.startsWith(prefix))
    .sort()
    .map((k) => `/${k} ${describe(t.get(k))}`);
}
