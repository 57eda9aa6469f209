import { Writable } from "node:stream";
import { type Header, extract as tarExtract } from "tar-stream";
import { StrataError } from "../util/index.js";

/** What a pass over a layer tar learns: entry count and the bytes of file content (Docker's layer size). */
export interface LayerScan {
  entries: number;
  /** Sum of regular-file sizes: what Docker reports as a layer's (and an image's) size. */
  contentSize: number;
  /** With `collectIndex`: what a later layer needs to know about this one's tree. */
  index?: LayerIndex;
}

/** The directories a layer creates (with their metadata) and the paths it deletes. */
export interface LayerIndex {
  /** Cleaned relative path -> [mode, uid, gid] of every directory entry. */
  dirs: Record<string, [number, number, number]>;
  /** Paths of every non-directory entry (a COPY must know a file is in the way). */
  files: string[];
  /** Paths removed by `.wh.` entries, and directories made opaque. */
  whiteouts: string[];
  opaque: string[];
}

/** Clean a tar entry name to a relative path, or throw when it escapes the root. */
export function cleanEntryPath(name: string): string {
  const parts: string[] = [];
  for (const seg of name.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (parts.length === 0)
        throw new StrataError("UNSAFE_PATH", `invalid tar entry "${name}": path escapes the root`);
      parts.pop();
      continue;
    }
    parts.push(seg);
  }
  return parts.join("/");
}

/** Is a path a raw `..` climber (even one that normalises back inside)? Docker rejects these outright. */
function hasDotDot(name: string): boolean {
  return name.split("/").includes("..");
}

export interface ScanOptions {
  /** Record the directory index (LayerScan.index). */
  collectIndex?: boolean;
  /** Reject absolute symlink targets (an outer archive, not a root filesystem). */
  rejectAbsoluteSymlinks?: boolean;
  /** Reject symlinks whose relative target climbs out of the root. */
  rejectEscapingSymlinks?: boolean;
  what?: string;
}

/**
 * Validate one tar header against Docker's breakout rules: names may not climb out with
 * `..`, hard links must point inside the tree. Symlink targets are only data in a layer
 * (they are resolved inside the container's root), unless the options say otherwise.
 */
export function checkTarHeader(h: Header, opts: ScanOptions = {}): void {
  const what = opts.what ?? "layer";
  if (h.name.includes("\0"))
    throw new StrataError("UNSAFE_PATH", `${what}: tar entry name contains a NUL byte`);
  if (hasDotDot(h.name))
    throw new StrataError("UNSAFE_PATH", `${what}: invalid tar entry "${h.name}": path contains ".."`);
  cleanEntryPath(h.name);
  if (h.type === "link" && h.linkname) {
    if (h.linkname.startsWith("/") || hasDotDot(h.linkname))
      throw new StrataError(
        "UNSAFE_PATH",
        `${what}: invalid hard link "${h.name}" -> "${h.linkname}": target outside the root`,
      );
  }
  if (h.type === "symlink" && h.linkname) {
    if (opts.rejectAbsoluteSymlinks && h.linkname.startsWith("/"))
      throw new StrataError(
        "UNSAFE_PATH",
        `${what}: invalid symlink "${h.name}" -> "${h.linkname}": absolute target`,
      );
    if (opts.rejectEscapingSymlinks) {
      const dir = cleanEntryPath(h.name).split("/").slice(0, -1).join("/");
      try {
        cleanEntryPath(`${dir}/${h.linkname}`);
      } catch {
        throw new StrataError(
          "UNSAFE_PATH",
          `${what}: invalid symlink "${h.name}" -> "${h.linkname}": target outside the root`,
        );
      }
    }
  }
}

/**
 * A writable that parses a tar stream as it is written and validates every header.
 * Pipe a layer into it beside the hasher and the file writer (one pass over the bytes);
 * after `finish`, `result()` gives the scan. A truncated or corrupt tar fails the stream.
 */
export class TarScanner extends Writable {
  private readonly ex = tarExtract();
  private scan: LayerScan = { entries: 0, contentSize: 0 };
  private failure?: Error;
  private finished = false;
  private readonly done: Promise<void>;
  /** Symlinks seen so far: a later entry may not pass through one (it could point anywhere). */
  private readonly symlinks = new Set<string>();

  constructor(private readonly opts: ScanOptions = {}) {
    super({ highWaterMark: 1 << 20 });
    if (opts.collectIndex) this.scan.index = { dirs: {}, files: [], whiteouts: [], opaque: [] };
    this.ex.on("entry", (h, stream, next) => {
      try {
        checkTarHeader(h, this.opts);
        const p = cleanEntryPath(h.name);
        const parts = p.split("/");
        for (let i = 1; i < parts.length; i++) {
          const prefix = parts.slice(0, i).join("/");
          if (this.symlinks.has(prefix))
            throw new StrataError(
              "UNSAFE_PATH",
              `${this.opts.what ?? "layer"}: invalid tar entry "${h.name}": path passes through the symlink "${prefix}"`,
            );
        }
        if (h.type === "symlink") this.symlinks.add(p);
        else this.symlinks.delete(p);
      } catch (e) {
        this.failure = e as Error;
        // The entry stream errors too when the extractor is destroyed: nobody else listens.
        stream.on("error", () => {});
        this.ex.destroy(e as Error);
        return;
      }
      this.scan.entries++;
      if (h.type === "file" || h.type === "contiguous-file") this.scan.contentSize += h.size ?? 0;
      if (this.scan.index) recordIndex(this.scan.index, h);
      stream.on("end", next);
      stream.resume();
    });
    this.done = new Promise((resolve, reject) => {
      this.ex.on("finish", () => {
        this.finished = true;
        resolve();
      });
      this.ex.on("error", (e) => {
        this.failure ??= e;
        reject(this.failure);
      });
    });
    this.done.catch(() => {});
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.failure) {
      cb(this.wrapped());
      return;
    }
    if (this.finished) {
      cb();
      return;
    } // trailing padding after the end-of-archive blocks
    if (this.ex.write(chunk)) cb();
    else this.ex.once("drain", () => cb(this.failure ? this.wrapped() : null));
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (this.failure) {
      cb(this.wrapped());
      return;
    }
    (this.ex as unknown as { end(): void }).end();
    this.done.then(
      () => cb(),
      () => cb(this.wrapped()),
    );
  }

  private wrapped(): Error {
    const e = this.failure!;
    if (e instanceof StrataError) return e;
    return new StrataError(
      "INVALID_ARCHIVE",
      `${this.opts.what ?? "layer"}: invalid tar stream: ${e.message}`,
      {
        cause: e,
      },
    );
  }

  result(): LayerScan {
    return { ...this.scan };
  }
}

function recordIndex(idx: LayerIndex, h: Header): void {
  const p = cleanEntryPath(h.name);
  if (p === "") return;
  const base = p.slice(p.lastIndexOf("/") + 1);
  const dir = p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "";
  if (base === ".wh..wh..opq") idx.opaque.push(dir);
  else if (base.startsWith(".wh.")) idx.whiteouts.push(dir ? `${dir}/${base.slice(4)}` : base.slice(4));
  else if (h.type === "directory") idx.dirs[p] = [(h.mode ?? 0o755) & 0o7777, h.uid ?? 0, h.gid ?? 0];
  else idx.files.push(p);
}

/**
 * A tee for bytes that may or may not be a tar (an archive member before its manifest
 * says what it is): when the first block has a tar magic it scans like TarScanner but
 * records a failure instead of failing the stream; otherwise it only drains.
 */
export class TarProbe extends Writable {
  private head: Buffer[] = [];
  private headLen = 0;
  private inner?: TarScanner;
  private decided = false;
  private error?: Error;

  constructor(private readonly opts: ScanOptions = {}) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (!this.decided) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen < 512) {
        cb();
        return;
      }
      this.decide();
      const buffered = Buffer.concat(this.head);
      this.head = [];
      this.feed(buffered, cb);
      return;
    }
    this.feed(chunk, cb);
  }

  private decide(): void {
    this.decided = true;
    const first = Buffer.concat(this.head).subarray(0, 512);
    const magic = first.subarray(257, 262).toString("latin1");
    if (magic === "ustar") {
      this.inner = new TarScanner(this.opts);
      this.inner.on("error", (e) => {
        this.error ??= e;
      });
    }
  }

  private feed(chunk: Buffer, cb: (e?: Error | null) => void): void {
    if (!this.inner || this.error) {
      cb();
      return;
    }
    this.inner.write(chunk, (e) => {
      if (e) this.error ??= e;
      cb();
    });
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.decided) this.decide();
    if (!this.inner || this.error) {
      cb();
      return;
    }
    let called = false;
    const once = () => {
      if (!called) {
        called = true;
        cb();
      }
    };
    this.inner.once("error", once);
    this.inner.end(once);
  }

  /** undefined: not a tar. Otherwise the scan, or the reason it is not a valid layer. */
  result(): { scan?: LayerScan; error?: Error } | undefined {
    if (!this.inner) return undefined;
    return this.error ? { error: this.error } : { scan: this.inner.result() };
  }
}
