import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { type Header, type Pack, extract as tarExtract } from "tar-stream";
import { extraCaAgent, StrataError, TLS_VERIFY_REASONS, undiciModule } from "../util/index.js";
import type { CopyItem } from "./copy.js";

/**
 * What ADD does beyond COPY (BuildKit's semantics):
 * - a local source that is a tar archive (plain, gzip, bzip2, xz or zstd — decided by its
 *   bytes, never by its name) is unpacked into the destination directory; archives inside a
 *   copied directory are not;
 * - an http(s) URL is downloaded into a file of mode 0600 named after the URL's last path
 *   segment (its Last-Modified as mtime), checked against `--checksum` when given, never
 *   unpacked.
 */

export type Compression = "none" | "gzip" | "bzip2" | "xz" | "zstd";

export function isUrl(src: string): boolean {
  return /^https?:\/\//i.test(src);
}

/** The compression of a stream from its first bytes (Docker's DetectCompression). */
export function detectCompression(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return "gzip";
  if (head.subarray(0, 3).toString("latin1") === "BZh") return "bzip2";
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "xz";
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return "zstd";
  return "none";
}

/** A decompressed read of a file; `stop()` ends it early (and its helper process). */
function openDecompressed(file: string, c: Compression): { stream: Readable; stop(): void } {
  if (c === "none") {
    const s = createReadStream(file);
    return { stream: s, stop: () => s.destroy() };
  }
  if (c === "gzip") {
    const src = createReadStream(file);
    const gz = createGunzip();
    src.on("error", (e) => gz.destroy(e));
    src.pipe(gz);
    return {
      stream: gz,
      stop: () => {
        src.destroy();
        gz.destroy();
      },
    };
  }
  // bzip2, xz and zstd have no decoder in Node: the system tools do it.
  const tool = c;
  const child: ChildProcess = spawn(tool, ["-dc", file], { stdio: ["ignore", "pipe", "pipe"] });
  const out = new PassThrough();
  const err: Buffer[] = [];
  let stopped = false;
  child.stderr!.on("data", (b: Buffer) => err.push(b));
  child.on("error", (e) =>
    out.destroy(new StrataError("UNSUPPORTED", `ADD of a ${c} archive needs ${tool}: ${e.message}`)),
  );
  child.on("close", (code) => {
    if (code !== 0 && !stopped)
      out.destroy(
        new StrataError("INVALID_ARCHIVE", `${tool} -d failed: ${Buffer.concat(err).toString().trim()}`),
      );
  });
  child.stdout!.pipe(out);
  return {
    stream: out,
    stop: () => {
      stopped = true;
      child.kill();
      out.destroy();
    },
  };
}

async function readPrefix(s: Readable, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let have = 0;
  try {
    for await (const c of s as AsyncIterable<Buffer>) {
      parts.push(c);
      have += c.length;
      if (have >= n) break;
    }
  } catch {
    // a stream that is not what its magic said: not an archive
  }
  return Buffer.concat(parts).subarray(0, n);
}

/** A tar header block's checksum is right (v7 tars have no "ustar" magic). */
function tarChecksumOk(block: Buffer): boolean {
  const field = block
    .subarray(148, 156)
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === Number.parseInt(field, 8);
}

/** The compression of a tar archive, or undefined when the file is not a tar archive. */
export async function sniffArchive(file: string): Promise<Compression | undefined> {
  const fh = await fsp.open(file, "r");
  let head: Buffer;
  try {
    const b = Buffer.alloc(8);
    const { bytesRead } = await fh.read(b, 0, 8, 0);
    head = b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const c = detectCompression(head);
  const d = openDecompressed(file, c);
  const block = await readPrefix(d.stream, 512);
  d.stop();
  if (block.length < 512 || block.every((x) => x === 0)) return undefined;
  return block.subarray(257, 262).toString("latin1") === "ustar" || tarChecksumOk(block) ? c : undefined;
}

/** An archive's entry name inside the destination; a name that climbs out is refused. */
function entryPath(name: string): string {
  const norm = path.posix.normalize(name.replace(/^\/+/, "").replace(/\/+$/, "") || ".");
  if (norm === ".." || norm.startsWith("../"))
    throw new StrataError(
      "UNSAFE_PATH",
      `ADD: archive entry ${JSON.stringify(name)} is outside the destination`,
    );
  return norm === "." ? "" : norm.replace(/\/+$/, "");
}

/**
 * Unpack an archive item into a layer being packed: its entries under `item.dest`, owners
 * replaced by --chown when given, hard links re-rooted, missing parent directories created
 * (0755). Whiteout names are dropped: an archive is content, not a layer.
 */
export async function packArchive(
  pack: Pack,
  item: CopyItem,
  existingDir: (p: string) => boolean,
): Promise<void> {
  const src = item.source as { abs: string };
  const d = openDecompressed(src.abs, item.archive!.compression);
  const ex = tarExtract();
  const made = new Set<string>();
  const under = (p: string) => (item.dest ? (p ? `${item.dest}/${p}` : item.dest) : p);
  const add = (h: Parameters<Pack["entry"]>[0], body?: AsyncIterable<unknown>) =>
    new Promise<void>((resolve, reject) => {
      if (!body) {
        pack.entry(h, (e) => (e ? reject(e) : resolve()));
        return;
      }
      const w = pack.entry(h, (e) => (e ? reject(e) : resolve()));
      pipeline(body as NodeJS.ReadableStream, w as unknown as NodeJS.WritableStream).catch(reject);
    });
  const chown = item.archive!.chown;
  const parents = async (rel: string, mtime: Date) => {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const p = under(parts.slice(0, i).join("/"));
      if (made.has(p) || existingDir(p)) continue;
      made.add(p);
      await add({
        name: `${p}/`,
        type: "directory",
        mode: 0o755,
        uid: chown?.uid ?? 0,
        gid: chown?.gid ?? 0,
        mtime,
      });
    }
  };
  const feed = pipeline(d.stream, ex as unknown as NodeJS.WritableStream);
  feed.catch(() => {}); // awaited below; the loop may fail first
  try {
    for await (const entry of ex) {
      const h: Header = entry.header;
      const rel = entryPath(h.name);
      const base = rel.split("/").pop() ?? "";
      const skip =
        rel === "" ||
        base.startsWith(".wh.") ||
        ![
          "file",
          "contiguous-file",
          "directory",
          "symlink",
          "link",
          "character-device",
          "block-device",
          "fifo",
        ].includes(h.type);
      if (skip) {
        entry.resume();
        continue;
      }
      await parents(rel, h.mtime);
      const full = under(rel);
      const common = {
        mode: h.mode & 0o7777,
        uid: chown?.uid ?? h.uid,
        gid: chown?.gid ?? h.gid,
        mtime: h.mtime,
      };
      if (h.type === "directory") {
        made.add(full);
        entry.resume();
        await add({ ...common, name: `${full}/`, type: "directory" });
      } else if (h.type === "file" || h.type === "contiguous-file") {
        await add({ ...common, name: full, type: "file", size: h.size }, entry);
      } else {
        entry.resume();
        const linkname = h.type === "link" ? under(entryPath(h.linkname)) : h.linkname;
        await add({
          ...common,
          name: full,
          type: h.type,
          linkname,
          devmajor: h.devmajor,
          devminor: h.devminor,
        });
      }
    }
    await feed;
  } finally {
    d.stop();
  }
}

export interface Download {
  file: string;
  /** sha256 hex of the content. */
  digest: string;
  size: number;
  mtimeMs: number;
  /** The file name ADD gives it: the URL path's last segment. */
  name: string;
}

/** The name BuildKit's ADD gives a downloaded file: the URL path's base, else `__unnamed__`. */
export function urlFileName(url: string): string {
  try {
    const base = path.posix.basename(new URL(url).pathname);
    if (base && base !== "." && base !== "/") return decodeURIComponent(base);
  } catch {
    // fall through
  }
  return "__unnamed__";
}

/** Download a URL into `dir`, hashing on the way; `--checksum` (sha256:…) must match. */
export async function downloadUrl(
  url: string,
  dir: string,
  opts: { checksum?: string; signal?: AbortSignal } = {},
): Promise<Download> {
  if (opts.checksum && !/^sha256:[a-f0-9]{64}$/.test(opts.checksum))
    throw new StrataError("INVALID_DIGEST", `invalid checksum digest format: ${opts.checksum}`);
  let res: Response;
  try {
    const dispatcher = await extraCaAgent(); // also for http: it may redirect to https
    if (dispatcher) {
      // Extra CAs (bin/strata's STRATA_EXTRA_CA_CERTS): undici's own fetch, with its agent.
      const u = await undiciModule();
      res = (await u.fetch(url, {
        redirect: "follow",
        signal: opts.signal,
        dispatcher,
      })) as unknown as Response;
    } else res = await fetch(url, { redirect: "follow", signal: opts.signal });
  } catch (e) {
    // fetch fails with "fetch failed"; the reason is its cause (Go's url.Error wording).
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const reason = (cause?.code && TLS_VERIFY_REASONS[cause.code]) || cause?.message || (e as Error).message;
    throw new StrataError("REGISTRY_UNAVAILABLE", `failed to load ${url}: Get "${url}": ${reason}`, {
      cause: e,
    });
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => {});
    throw new StrataError("IO_ERROR", `invalid response status ${res.status} for ${url}`);
  }
  const file = path.join(dir, `download-${createHash("sha256").update(url).digest("hex").slice(0, 16)}`);
  const hash = createHash("sha256");
  let size = 0;
  const { Readable: R } = await import("node:stream");
  const body = R.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
  body.on("data", (c: Buffer) => {
    hash.update(c);
    size += c.length;
  });
  await pipeline(body, createWriteStream(file, { mode: 0o600 }));
  const digest = hash.digest("hex");
  if (opts.checksum && opts.checksum !== `sha256:${digest}`)
    throw new StrataError(
      "DIGEST_MISMATCH",
      `digest mismatch ${opts.checksum}: sha256:${digest} (ADD ${url} --checksum)`,
    );
  const lm = Date.parse(res.headers.get("last-modified") ?? "");
  return { file, digest, size, mtimeMs: Number.isNaN(lm) ? Date.now() : lm, name: urlFileName(url) };
}

export interface AddOptions {
  /** The http(s) sources of the ADD, in order. */
  urls: string[];
  /** All sources (files, URLs, heredocs) counted: several need a directory destination. */
  sourceCount: number;
  dest: string;
  workdir: string;
  chown?: { uid: number; gid: number };
  chmod?: number;
  checksum?: string;
  /** `--unpack=false` keeps archives as files. */
  unpack?: boolean;
  destIsDir: (p: string) => boolean;
  signal?: AbortSignal;
}

/**
 * Turn an ADD's resolved items into what goes into the layer: top-level local archives become
 * `archive` items unpacked at the destination, URLs are downloaded into file items. The
 * caller calls `release()` once the layer is written (it removes the downloads).
 */
export async function prepareAdd(
  items: CopyItem[],
  o: AddOptions,
): Promise<{ items: CopyItem[]; release(): Promise<void> }> {
  if (o.checksum && !o.urls.length)
    throw new StrataError("INVALID_ARGUMENT", "checksum can't be specified for non-HTTP(S) sources");
  if (o.checksum && o.sourceCount > 1)
    throw new StrataError("INVALID_ARGUMENT", "checksum can't be specified for multiple sources");
  const absDest = path.posix.isAbsolute(o.dest) ? o.dest : path.posix.join(o.workdir || "/", o.dest);
  const destDirSyntax = o.dest.endsWith("/") || o.dest === "." || o.dest.endsWith("/.");
  const destRel = path.posix.normalize(absDest).replace(/^\/+/, "").replace(/\/$/, "");
  if (o.sourceCount > 1 && !destDirSyntax)
    throw new StrataError(
      "INVALID_ARGUMENT",
      "When using ADD with more than one source file, the destination must be a directory and end with a /",
    );
  const out: CopyItem[] = [];
  const dirMade = new Set<string>();
  for (const it of items) {
    const compression =
      it.topLevel && it.type === "file" && o.unpack !== false && it.source && "abs" in it.source
        ? await sniffArchive(it.source.abs)
        : undefined;
    if (!compression) {
      out.push(it);
      continue;
    }
    if (destRel && !o.destIsDir(destRel) && !dirMade.has(destRel)) {
      dirMade.add(destRel);
      out.push({
        dest: destRel,
        type: "dir",
        mode: 0o755,
        uid: o.chown?.uid ?? 0,
        gid: o.chown?.gid ?? 0,
        mtimeMs: it.mtimeMs,
        size: 0,
      });
    }
    out.push({ ...it, type: "archive", dest: destRel, archive: { compression, chown: o.chown } });
  }
  let tmp: string | undefined;
  const release = async () => {
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  };
  try {
    for (const url of o.urls) {
      tmp ??= await fsp.mkdtemp(path.join(os.tmpdir(), "strata-add-"));
      const dl = await downloadUrl(url, tmp, { checksum: o.checksum, signal: o.signal });
      const intoDir = destDirSyntax || o.destIsDir(destRel);
      const dest = intoDir ? (destRel ? `${destRel}/${dl.name}` : dl.name) : destRel;
      if (!dest) throw new StrataError("INVALID_ARGUMENT", "cannot copy a file to /");
      out.push({
        dest,
        type: "file",
        mode: o.chmod ?? 0o600,
        uid: o.chown?.uid ?? 0,
        gid: o.chown?.gid ?? 0,
        mtimeMs: dl.mtimeMs,
        size: dl.size,
        source: { abs: dl.file },
        digest: dl.digest,
      });
    }
  } catch (e) {
    await release();
    throw e;
  }
  out.sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0));
  return { items: out, release };
}
