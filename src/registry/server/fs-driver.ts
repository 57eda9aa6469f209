import { createReadStream, promises as fsp } from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { atomicWriteFile, fsyncDir, isErrno, StrataError } from "../../util/index.js";
import type { AppendWriter, FileInfo, StorageDriver } from "./storage.js";

/**
 * The filesystem storage driver: each driver path is a file under `root`. Atomic replace
 * is write-temp, fsync, rename, fsync-dir (util's atomicWriteFile); moves are renames on
 * one file system, so a crash leaves the old or the new object, never half of one.
 */
export class FsDriver implements StorageDriver {
  readonly name = "filesystem";

  constructor(readonly root: string) {}

  /** Map a driver path to a real path, refusing anything that could leave the root. */
  fullPath(p: string): string {
    if (!p.startsWith("/") || p.includes("\0"))
      throw new StrataError("INVALID_ARGUMENT", `storage path must be absolute: ${JSON.stringify(p)}`);
    for (const seg of p.split("/").slice(1)) {
      if (seg === "." || seg === ".." || (seg === "" && p !== "/"))
        throw new StrataError(
          "UNSAFE_PATH",
          `storage path has an empty, . or .. segment: ${JSON.stringify(p)}`,
        );
    }
    return path.join(this.root, p);
  }

  async getContent(p: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.fullPath(p));
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR") || isErrno(e, "EISDIR")) return undefined;
      throw e;
    }
  }

  async putContent(p: string, data: Buffer | string): Promise<void> {
    const full = this.fullPath(p);
    await fsp.mkdir(path.dirname(full), { recursive: true });
    await atomicWriteFile(full, data);
  }

  async reader(p: string, range?: { start: number; end: number }): Promise<Readable> {
    const full = this.fullPath(p);
    // Open first so a missing file is an error here, not an 'error' event later.
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(full, "r");
    } catch (e) {
      if (isErrno(e, "ENOENT")) throw new StrataError("BLOB_NOT_FOUND", `no object at ${p}`, { cause: e });
      throw e;
    }
    return createReadStream("", {
      fd: fh,
      start: range?.start,
      end: range?.end,
      highWaterMark: 256 * 1024,
      autoClose: true,
    });
  }

  async appender(p: string): Promise<AppendWriter> {
    const full = this.fullPath(p);
    await fsp.mkdir(path.dirname(full), { recursive: true });
    const fh = await fsp.open(full, "a");
    const { size } = await fh.stat();
    let closed = false;
    return {
      offset: size,
      async write(chunk: Buffer) {
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
          off += bytesWritten;
        }
      },
      async close(opts?: { sync?: boolean }) {
        if (closed) return;
        closed = true;
        try {
          if (opts?.sync) await fh.sync();
        } finally {
          await fh.close();
        }
      },
    };
  }

  async stat(p: string): Promise<FileInfo | undefined> {
    try {
      const st = await fsp.stat(this.fullPath(p));
      return { size: st.size, modTime: st.mtime, isDir: st.isDirectory() };
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return undefined;
      throw e;
    }
  }

  async list(p: string): Promise<string[]> {
    try {
      return (await fsp.readdir(this.fullPath(p))).sort();
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return [];
      throw e;
    }
  }

  async truncate(p: string, size: number): Promise<void> {
    await fsp.truncate(this.fullPath(p), size);
  }

  async move(from: string, to: string): Promise<void> {
    const src = this.fullPath(from);
    const dst = this.fullPath(to);
    // Make the content durable before it becomes visible under its final name.
    const fh = await fsp.open(src, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.mkdir(path.dirname(dst), { recursive: true });
    await fsp.rename(src, dst);
    await fsyncDir(path.dirname(dst));
  }

  async delete(p: string): Promise<void> {
    await fsp.rm(this.fullPath(p), { recursive: true, force: true });
  }

  async touch(p: string): Promise<void> {
    const now = new Date();
    try {
      await fsp.utimes(this.fullPath(p), now, now);
    } catch (e) {
      if (!isErrno(e, "ENOENT")) throw e;
    }
  }
}
