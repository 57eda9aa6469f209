import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { extract as tarExtract, pack as tarPack } from "tar-stream";
import { TAR_END, tarHeader } from "../layer/index.js";
import { chainIds, type Digest, digestHex } from "../oci/index.js";
import { exists, runTool, StrataError } from "../util/index.js";

/**
 * Unpacked layers composed with overlayfs (DESIGN.md §3):
 *
 *   <root>/snapshots/<chainIdHex>/fs     a committed layer's files, overlay-ready (whiteouts as 0/0 char devices)
 *   <root>/snapshots/active-<rand>/{fs,work,merged}   a writable snapshot being used by a RUN or a container
 *
 * A committed snapshot appears only by rename after it was complete, so a crash leaves
 * at most an `active-` or `tmp-` directory that `cleanup()` removes.
 */
export interface LayerSource {
  diffId: Digest;
  open(): Promise<AsyncIterable<Buffer> & NodeJS.ReadableStream>;
}

export interface ActiveSnapshot {
  /** The merged view: the root filesystem to run in. */
  mountpoint: string;
  /** Where the writes land: the next layer's diff. */
  upper: string;
  /** Unmount (the upper dir stays). */
  unmount(): Promise<void>;
  /** Unmount and delete. */
  remove(): Promise<void>;
}

/** A container's persistent snapshot: see `Snapshotter.prepareNamed`. */
export interface NamedSnapshot {
  key: string;
  base: string;
  /** Where the writes land: the container's diff. */
  upper: string;
  /** The merged root filesystem while mounted. */
  mountpoint: string;
}

/** Is `dir` a mount point (listed in /proc/self/mountinfo)? */
export async function isMountpoint(dir: string): Promise<boolean> {
  const info = await fsp.readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const want = path
    .resolve(dir)
    .replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  return info.split("\n").some((l) => l.split(" ")[4] === want);
}

export class Snapshotter {
  readonly dir: string;
  /** Whether overlayfs takes `volatile` here: learnt from the first mount of the process. */
  static volatile: boolean | undefined;

  constructor(root: string) {
    this.dir = path.join(root, "snapshots");
  }

  private committedPath(chainId: Digest): string {
    return path.join(this.dir, digestHex(chainId), "fs");
  }

  async has(chainId: Digest): Promise<boolean> {
    return exists(this.committedPath(chainId));
  }

  /**
   * Make sure every layer of a chain is unpacked; returns the lower dirs, topmost first
   * (overlayfs's order). Each layer is unpacked once per chain ID and shared.
   */
  async ensureChain(layers: readonly LayerSource[]): Promise<string[]> {
    const ids = chainIds(layers.map((l) => l.diffId));
    const dirs: string[] = [];
    for (let i = 0; i < layers.length; i++) {
      const chainId = ids[i]!;
      const fs = this.committedPath(chainId);
      if (!(await exists(fs))) await this.unpack(layers[i]!, chainId);
      dirs.push(fs);
    }
    return dirs.reverse();
  }

  /** A fresh tmp-<pid>-… dir with an empty fs/ (cleanup() removes it if its process dies). */
  private async tempSnapshot(): Promise<string> {
    const tmp = path.join(this.dir, `tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    await fsp.mkdir(path.join(tmp, "fs"), { recursive: true });
    return tmp;
  }

  private async unpack(layer: LayerSource, chainId: Digest): Promise<void> {
    const tmp = await this.tempSnapshot();
    try {
      await runTool("tar", unpackArgs(path.join(tmp, "fs")), { input: await layer.open() });
      await convertWhiteouts(path.join(tmp, "fs"));
      const dest = path.join(this.dir, digestHex(chainId));
      try {
        await fsp.rename(tmp, dest);
      } catch (e) {
        if (!(await exists(path.join(dest, "fs")))) throw e; // else: a racing unpack won
      }
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * A sink that unpacks a layer tar while it is being written elsewhere (the builder's
   * COPY feeds the same bytes to the store and here): no second read of the blob when a
   * later RUN needs the layer unpacked. `commit(chainId)` keeps it once the layer's digest
   * is known; `abort()` drops it. The layer must have no whiteouts (COPY layers have none).
   */
  async unpackTee(): Promise<{
    sink: NodeJS.WritableStream;
    commit(chainId: Digest): Promise<void>;
    abort(): Promise<void>;
  }> {
    const tmp = await this.tempSnapshot();
    const p = spawn("tar", unpackArgs(path.join(tmp, "fs")), {
      stdio: ["pipe", "ignore", "pipe"],
    });
    const err: Buffer[] = [];
    p.stderr!.on("data", (c: Buffer) => err.push(c));
    const exited = new Promise<number>((resolve) => p.on("close", (c) => resolve(c ?? 1)));
    p.stdin!.on("error", () => {}); // tar's own exit status reports the failure
    return {
      sink: p.stdin!,
      commit: async (chainId) => {
        const code = await exited;
        if (code !== 0) {
          await fsp.rm(tmp, { recursive: true, force: true });
          throw new StrataError(
            "IO_ERROR",
            `unpacking the layer failed: ${Buffer.concat(err).toString().trim()}`,
          );
        }
        await this.publish(tmp, chainId);
      },
      abort: async () => {
        p.kill();
        await exited;
        await fsp.rm(tmp, { recursive: true, force: true });
      },
    };
  }

  /** Move a finished snapshot into place under its chain ID; one made by someone else meanwhile wins. */
  private async publish(tmp: string, chainId: Digest): Promise<void> {
    try {
      await fsp.rename(tmp, path.join(this.dir, digestHex(chainId)));
    } catch {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * A layer's snapshot made from an earlier one instead of unpacking the whole layer: the
   * earlier snapshot hard-linked (snapshot files are never written once committed; tar
   * replaces a file by unlinking it first, so the earlier snapshot is left as it was), the
   * `remove`d paths deleted, then `delta` (a tar of the changed entries and every directory,
   * which sets their metadata last) unpacked over it. Undefined when the earlier snapshot
   * is not there. `commit` names it for `chainId`.
   */
  async prepareDerived(
    from: Digest,
    remove: string[],
    delta: NodeJS.ReadableStream,
  ): Promise<{ commit(chainId: Digest): Promise<void>; abort(): Promise<void> } | undefined> {
    const src = path.join(this.dir, digestHex(from), "fs");
    if (!(await exists(src))) return undefined;
    const tmp = await this.tempSnapshot();
    const work = (async () => {
      await fsp.rmdir(path.join(tmp, "fs"));
      await runTool("cp", ["-a", "--link", src, path.join(tmp, "fs")]);
      for (const r of remove) await fsp.rm(path.join(tmp, "fs", r), { recursive: true, force: true });
      await runTool("tar", unpackArgs(path.join(tmp, "fs")), { input: delta });
    })();
    work.catch(() => {});
    return {
      commit: async (chainId) => {
        try {
          await work;
        } catch (e) {
          await fsp.rm(tmp, { recursive: true, force: true });
          throw new StrataError("IO_ERROR", `deriving the layer's snapshot failed: ${(e as Error).message}`);
        }
        await this.publish(tmp, chainId);
      },
      abort: async () => {
        await work.catch(() => {});
        await fsp.rm(tmp, { recursive: true, force: true });
      },
    };
  }

  /** A writable overlay over the chain (or an empty root for scratch). */
  async prepare(lowers: string[]): Promise<ActiveSnapshot> {
    const base = path.join(this.dir, `active-${process.pid}-${randomBytes(4).toString("hex")}`);
    const upper = path.join(base, "fs");
    const work = path.join(base, "work");
    const merged = path.join(base, "merged");
    await fsp.mkdir(upper, { recursive: true });
    await fsp.mkdir(work, { recursive: true });
    await fsp.mkdir(merged, { recursive: true });
    try {
      // The upper dir is a build step's scratch space: what it becomes (a layer blob) is
      // written and committed by the content store, so it needs no sync at unmount.
      await this.mountOverlay(lowers, upper, work, merged, true, "RUN needs");
    } catch (e) {
      await fsp.rm(base, { recursive: true, force: true });
      throw e;
    }
    let mounted = true;
    let removed = false;
    const unmount = async () => {
      if (!mounted) return;
      mounted = false;
      await runTool("umount", [merged]).catch(() => runTool("umount", ["-l", merged]).catch(() => {}));
    };
    return {
      mountpoint: merged,
      upper,
      unmount,
      remove: async () => {
        if (removed) return;
        removed = true;
        await unmount();
        await fsp.rm(base, { recursive: true, force: true });
      },
    };
  }

  /**
   * A read-only view of `dir` with `hidden` entries (relative paths) masked by whiteouts: a
   * lower layer of whiteout devices over `dir`, no upper. `dirMeta` gives the mode, owner and
   * mtime of the directories that hold whiteouts (overlayfs shows the top layer's). Nothing
   * is written to `dir`. Needs root and overlayfs.
   */
  async maskedView(
    dir: string,
    hidden: string[],
    dirMeta: (rel: string) => { mode: number; uid: number; gid: number; mtimeMs: number } | undefined,
  ): Promise<{ mountpoint: string; remove(): Promise<void> }> {
    const base = path.join(this.dir, `active-${process.pid}-${randomBytes(4).toString("hex")}`);
    const masks = path.join(base, "masks");
    const merged = path.join(base, "merged");
    await fsp.mkdir(masks, { recursive: true });
    await fsp.mkdir(merged, { recursive: true });
    let mounted = false;
    const remove = async () => {
      if (mounted)
        await runTool("umount", [merged]).catch(() => runTool("umount", ["-l", merged]).catch(() => {}));
      mounted = false;
      await fsp.rm(base, { recursive: true, force: true });
    };
    try {
      const parts: Buffer[] = [];
      const dirs = new Set<string>();
      for (const h of [...hidden].sort()) {
        const segs = h.split("/");
        for (let i = 1; i < segs.length; i++) {
          const d = segs.slice(0, i).join("/");
          if (dirs.has(d)) continue;
          dirs.add(d);
          const m = dirMeta(d) ?? { mode: 0o755, uid: 0, gid: 0, mtimeMs: 0 };
          parts.push(
            tarHeader({
              name: d,
              type: "directory",
              mode: m.mode,
              uid: m.uid,
              gid: m.gid,
              mtime: m.mtimeMs / 1000,
            }),
          );
        }
        parts.push(tarHeader({ name: h, type: "charDevice", mode: 0, uid: 0, gid: 0, mtime: 0 }));
      }
      parts.push(TAR_END);
      await runTool(
        "tar",
        ["-x", "-f", "-", "-C", masks, "--numeric-owner", "--same-owner", "--same-permissions"],
        {
          input: Readable.from([Buffer.concat(parts)]),
        },
      );
      const top = dirMeta("");
      if (top) {
        await fsp.chown(masks, top.uid, top.gid);
        await fsp.chmod(masks, top.mode & 0o7777);
      }
      await runTool("mount", ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${masks}:${dir}`, merged]);
      mounted = true;
    } catch (e) {
      await remove();
      throw new StrataError("UNSUPPORTED", `masking ignored files failed: ${(e as Error).message}`);
    }
    return { mountpoint: merged, remove };
  }

  /**
   * A named, persistent writable snapshot (a container's): `<root>/snapshots/<key>/{fs,work,merged}`.
   * Unlike `prepare`, it survives the process and a stop: `mountNamed` mounts it (again) over
   * the same lowers, `unmountNamed` leaves the upper dir in place, `removeNamed` deletes it.
   */
  async prepareNamed(key: string, lowers: string[]): Promise<NamedSnapshot> {
    if (!/^[a-z][a-z0-9-]*$/.test(key) || /^(?:active|tmp)-/.test(key))
      throw new StrataError("INVALID_ARGUMENT", `invalid snapshot key ${key}`);
    const base = path.join(this.dir, key);
    for (const d of ["fs", "work", "merged"]) await fsp.mkdir(path.join(base, d), { recursive: true });
    await fsp.writeFile(path.join(base, "lowers.json"), JSON.stringify(lowers));
    return this.named(key);
  }

  /** The paths of a named snapshot (whether or not it is mounted). */
  named(key: string): NamedSnapshot {
    const base = path.join(this.dir, key);
    return { key, base, upper: path.join(base, "fs"), mountpoint: path.join(base, "merged") };
  }

  /**
   * Mount a named snapshot's overlay if it is not mounted; returns the merged dir.
   * `volatile` (for a layer that is deleted when the container exits, `run --rm`) skips
   * overlayfs's syncs of the upper file system: its unmount would otherwise sync the whole
   * host file system under it, which costs from tens to hundreds of milliseconds.
   */
  async mountNamed(key: string, opts: { volatile?: boolean } = {}): Promise<string> {
    const snap = this.named(key);
    if (await isMountpoint(snap.mountpoint)) return snap.mountpoint;
    const lowers = JSON.parse(await fsp.readFile(path.join(snap.base, "lowers.json"), "utf8")) as string[];
    // A work dir left by an unclean unmount must be empty for overlayfs to reuse it.
    const work = path.join(snap.base, "work");
    await fsp.rm(work, { recursive: true, force: true });
    await fsp.mkdir(work, { recursive: true });
    await this.mountOverlay(lowers, snap.upper, work, snap.mountpoint, !!opts.volatile, "containers need");
    return snap.mountpoint;
  }

  /** Unmount a named snapshot (its upper dir stays). */
  async unmountNamed(key: string): Promise<void> {
    const snap = this.named(key);
    if (!(await isMountpoint(snap.mountpoint))) return;
    await runTool("umount", [snap.mountpoint]).catch(() => runTool("umount", ["-l", snap.mountpoint]));
  }

  /** Unmount and delete a named snapshot. */
  async removeNamed(key: string): Promise<void> {
    await this.unmountNamed(key);
    await fsp.rm(this.named(key).base, { recursive: true, force: true });
  }

  /** Keep an active snapshot's upper dir as the committed snapshot of a chain ID. */
  async commitUpper(snap: ActiveSnapshot, chainId: Digest): Promise<void> {
    const dest = path.join(this.dir, digestHex(chainId));
    await snap.unmount();
    if (await exists(path.join(dest, "fs"))) {
      await snap.remove();
      return;
    }
    await fsp.mkdir(dest, { recursive: true });
    await fsp.rename(snap.upper, path.join(dest, "fs"));
    await snap.remove();
  }

  /**
   * Mount a writable overlay. `volatile` (Linux 5.10+) skips overlayfs's syncs of the upper
   * file system, whose unmount otherwise syncs the whole host file system under it (0.2-0.4 s
   * after a step that wrote 100 MB); a kernel without it gets a plain mount, learnt once per
   * process. `who` says what needs the mount, for the error ("RUN needs").
   */
  private async mountOverlay(
    lowers: string[],
    upper: string,
    work: string,
    merged: string,
    volatile: boolean,
    who: string,
  ): Promise<void> {
    // overlayfs needs at least one lower dir: scratch gets an empty one.
    const lower = lowers.length ? lowers : [await this.emptyDir()];
    const opts = `lowerdir=${lower.join(":")},upperdir=${upper},workdir=${work},index=off`;
    if (opts.length > 4000)
      throw new StrataError("UNSUPPORTED", `too many layers to mount (${lowers.length})`);
    const mount = (o: string) => runTool("mount", ["-t", "overlay", "overlay", "-o", o, merged]);
    try {
      if (volatile && Snapshotter.volatile !== false) {
        try {
          await mount(`${opts},volatile`);
          Snapshotter.volatile = true;
          return;
        } catch (e) {
          if (Snapshotter.volatile) throw e;
          Snapshotter.volatile = false;
        }
      }
      await mount(opts);
    } catch (e) {
      throw new StrataError(
        "UNSUPPORTED",
        `overlayfs mount failed (${who} root and overlayfs): ${(e as Error).message}`,
      );
    }
  }

  private async emptyDir(): Promise<string> {
    const d = path.join(this.dir, "empty");
    await fsp.mkdir(d, { recursive: true });
    return d;
  }

  /** Remove leftovers of dead processes (active and tmp dirs), unmounting first. */
  async cleanup(): Promise<void> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    for (const n of names) {
      const m = /^(?:active|tmp)-(\d+)-/.exec(n);
      if (!m) continue;
      const pid = Number(m[1]);
      try {
        process.kill(pid, 0);
        continue;
      } catch {
        // dead: clean
      }
      await runTool("umount", ["-l", path.join(this.dir, n, "merged")]).catch(() => {});
      await fsp.rm(path.join(this.dir, n), { recursive: true, force: true });
    }
  }

  /** Delete a committed snapshot (GC). */
  async remove(chainId: Digest): Promise<void> {
    await fsp.rm(path.join(this.dir, digestHex(chainId)), { recursive: true, force: true });
  }
}

/**
 * GNU tar does the extraction (ownership, modes, times, xattrs, links) natively; layers in
 * the store were already checked against breakout entries when they were ingested.
 */
function unpackArgs(dest: string): string[] {
  return [
    "-x",
    "-f",
    "-",
    "-C",
    dest,
    "--numeric-owner",
    "-p",
    "--same-owner",
    "--xattrs",
    "--xattrs-include=*",
  ];
}

/** OCI whiteouts in an unpacked tree -> overlayfs form (0/0 char devices, opaque xattr). */
async function convertWhiteouts(root: string): Promise<void> {
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, ent.name);
      if (ent.name === ".wh..wh..opq") {
        await fsp.rm(p, { force: true });
        await runTool("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", dir]);
      } else if (ent.name.startsWith(".wh.")) {
        await fsp.rm(p, { force: true, recursive: true });
        await runTool("mknod", [path.join(dir, ent.name.slice(4)), "c", "0", "0"]);
      } else if (ent.isDirectory()) stack.push(p);
    }
  }
}

/**
 * An upper dir as an OCI layer tar stream: GNU tar reads the tree (sorted, numeric ids,
 * xattrs), and this transform rewrites overlay whiteouts into `.wh.` entries and opaque
 * directories into `.wh..wh..opq` markers, and drops the "./" prefix. `exclude` names
 * paths (relative to `upper`) to leave out, such as mount points a runtime created.
 */
export function diffUpper(upper: string, opaqueDirs: Set<string>, exclude: readonly string[] = []): Readable {
  const tar = spawn(
    "tar",
    [
      "-c",
      // Paths relative to the upper dir (a container's mount-point stubs) left out of the layer.
      ...exclude.map((e) => `--exclude=./${e.replace(/^\/+/, "")}`),
      "-f",
      "-",
      "-C",
      upper,
      "--sort=name",
      "--numeric-owner",
      "--xattrs",
      "--xattrs-include=*",
      "--xattrs-exclude=trusted.overlay.*",
      ".",
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const ex = tarExtract();
  const pk = tarPack();
  ex.on("entry", (h, stream, next) => {
    let name = h.name.replace(/^\.\//, "");
    if (name === "" || name === ".") {
      stream.resume();
      stream.on("end", next);
      return;
    }
    const isDir = h.type === "directory";
    if (isDir) name = name.replace(/\/$/, "");
    if (h.type === "character-device" && h.devmajor === 0 && h.devminor === 0) {
      const base = path.posix.basename(name);
      const dir = path.posix.dirname(name);
      const wh = dir === "." ? `.wh.${base}` : `${dir}/.wh.${base}`;
      stream.resume();
      stream.on("end", () =>
        pk.entry({ ...h, name: wh, type: "file", size: 0, devmajor: 0, devminor: 0 }, "", next),
      );
      return;
    }
    const entry = pk.entry({ ...h, name: isDir ? `${name}/` : name }, (e) => {
      if (e) return next(e);
      if (isDir && opaqueDirs.has(name))
        pk.entry(
          { name: `${name}/.wh..wh..opq`, size: 0, mode: 0o644, mtime: h.mtime, uid: 0, gid: 0 },
          "",
          next,
        );
      else next();
    });
    stream.pipe(entry);
  });
  ex.on("finish", () => pk.finalize());
  ex.on("error", (e) => pk.destroy(e));
  const err: Buffer[] = [];
  tar.stderr!.on("data", (c: Buffer) => err.push(c));
  tar.on("close", (code) => {
    if (code !== 0)
      pk.destroy(
        new StrataError("IO_ERROR", `tar of the layer diff failed: ${Buffer.concat(err).toString().trim()}`),
      );
  });
  tar.stdout!.pipe(ex);
  return pk as unknown as Readable;
}

/** Directories of an upper dir marked opaque by overlayfs (trusted.overlay.opaque=y); they are rare. */
export function findOpaqueDirs(upper: string): Promise<Set<string>> {
  return new Promise((resolve) => {
    const out = new Set<string>();
    const q = spawn("getfattr", ["-R", "-h", "--absolute-names", "-n", "trusted.overlay.opaque", upper], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let text = "";
    q.stdout!.on("data", (c: Buffer) => {
      text += c.toString();
    });
    q.on("close", () => {
      for (const line of text.split("\n")) {
        const m = /^# file: (.*)$/.exec(line);
        if (m) out.add(path.relative(upper, m[1]!));
      }
      resolve(out);
    });
    q.on("error", () => resolve(out));
  });
}
