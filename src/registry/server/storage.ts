import type { Readable } from "node:stream";

/**
 * The storage driver: a small path-addressed key/value file system, the same shape as CNCF
 * distribution's `storagedriver.StorageDriver`, so an object-storage driver can implement it
 * later without touching the protocol code. Paths are absolute within the driver
 * (`/blobs/sha256/ab/<hex>/data`), use `/` separators and never contain `.` or `..`
 * segments (drivers reject them).
 *
 * Guarantees every driver gives:
 * - `putContent` and `move` are atomic: a reader sees the old object or the new one.
 * - A `move` or `putContent` that returned is durable (fsync'd on the file system driver).
 * - `list` of a missing directory is an empty list; `delete` of a missing path is not an error.
 */
export interface StorageDriver {
  readonly name: string;
  /** Whole small object, or undefined when missing. */
  getContent(path: string): Promise<Buffer | undefined>;
  /** Atomically replace the object at `path` (parents are created). */
  putContent(path: string, data: Buffer | string): Promise<void>;
  /**
   * A stream of the object's bytes from `start` to `end` inclusive. The caller must consume
   * or destroy it. Throws a notFound StrataError when the object is missing.
   */
  reader(path: string, range?: { start: number; end: number }): Promise<Readable>;
  /**
   * Append to the object at `path` (created when missing), from the returned offset. The
   * writer must be ended with `close()`.
   */
  appender(path: string): Promise<AppendWriter>;
  /** Cut an object back to `size` bytes (drops a failed chunk of an upload). */
  truncate(path: string, size: number): Promise<void>;
  stat(path: string): Promise<FileInfo | undefined>;
  /** Names (not paths) of the children of a directory; [] when missing. */
  list(path: string): Promise<string[]>;
  /** Atomically and durably move `from` to `to`, replacing `to` (parents are created). */
  move(from: string, to: string): Promise<void>;
  /** Remove an object or a whole directory tree. */
  delete(path: string): Promise<void>;
  /** Update the modification time (used by gc's grace period). No error when missing. */
  touch(path: string): Promise<void>;
}

export interface FileInfo {
  size: number;
  modTime: Date;
  isDir: boolean;
}

export interface AppendWriter {
  /** Bytes in the object before this writer appended anything. */
  readonly offset: number;
  /** Write one chunk; resolves when the driver accepted it (honours backpressure). */
  write(chunk: Buffer): Promise<void>;
  /**
   * Close the writer; with `sync`, flush to stable storage first. Upload chunks close
   * without sync: an upload is made durable once, by `move`, when it is committed.
   */
  close(opts?: { sync?: boolean }): Promise<void>;
}
