/**
 * layer/'s tar scanner: its own header parser (no entry bytes copied) must read every tar
 * the way tar-stream does — ustar with prefix, GNU long names (`tar --format=gnu`), PAX
 * records (`--format=posix`, tar-stream's pack), base-256 numbers — and fail the same
 * corrupt or hostile tars. Each case is checked against tar-stream's own reading.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract, pack } from "tar-stream";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEntryPath, TarHeaderParser, TarScanner } from "../../src/layer/index.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "strata-scan-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Seen {
  name: string;
  type: string | null | undefined;
  size: number | undefined;
  linkname: string | null | undefined;
  mode: number | undefined;
  uid: number | undefined;
}

/** What tar-stream reads from a tar: the reference. */
async function tarStreamRead(tar: Buffer): Promise<Seen[]> {
  const out: Seen[] = [];
  const ex = extract();
  ex.on("entry", (h, s, next) => {
    out.push({ name: h.name, type: h.type, size: h.size, linkname: h.linkname, mode: h.mode, uid: h.uid });
    s.on("end", next);
    s.resume();
  });
  await pipeline(Readable.from([tar]), ex);
  return out;
}

/** What TarHeaderParser reads, the tar fed in pieces of `step` bytes (headers split across writes). */
function fastRead(tar: Buffer, step: number): Seen[] {
  const out: Seen[] = [];
  const p = new TarHeaderParser((h) =>
    out.push({ name: h.name, type: h.type, size: h.size, linkname: h.linkname, mode: h.mode, uid: h.uid }),
  );
  for (let o = 0; o < tar.length; o += step) p.write(tar.subarray(o, o + step));
  p.end();
  return out;
}

async function scan(tar: Buffer, step = 4096) {
  const s = new TarScanner({ what: "layer t" });
  const chunks: Buffer[] = [];
  for (let o = 0; o < tar.length; o += step) chunks.push(tar.subarray(o, o + step));
  await pipeline(Readable.from(chunks), s);
  return s.result();
}

function gnuTar(format: string): Buffer {
  const src = path.join(dir, `src-${format}`);
  rmSync(src, { recursive: true, force: true });
  const long = `${"d".repeat(60)}/${"e".repeat(70)}`;
  mkdirSync(path.join(src, long), { recursive: true });
  writeFileSync(path.join(src, long, `${"f".repeat(120)}.txt`), "long name\n");
  writeFileSync(path.join(src, "small.txt"), "x".repeat(1000));
  writeFileSync(path.join(src, "ünïcode-名前.txt"), "utf8 name\n");
  symlinkSync(`${"t".repeat(150)}`, path.join(src, "long-link"));
  const out = path.join(dir, `${format}.tar`);
  execFileSync("tar", [`--format=${format}`, "-C", src, "-cf", out, "."]);
  return readFileSync(out);
}

describe("TarHeaderParser reads what tar-stream reads", () => {
  for (const format of ["gnu", "posix", "ustar"]) {
    it(`GNU tar --format=${format}, fed in pieces of 1, 100, 512 and 64 KiB bytes`, async () => {
      const tar = format === "ustar" ? ustarWithPrefix() : gnuTar(format);
      const want = await tarStreamRead(tar);
      expect(want.length).toBeGreaterThan(2);
      for (const step of [1, 100, 512, 65536]) expect(fastRead(tar, step)).toEqual(want);
    });
  }

  it("tar-stream's pack (PAX headers for long names), with a base-256 size field", async () => {
    const p = pack();
    p.entry({ name: `${"p".repeat(200)}/file`, mode: 0o644, uid: 1234567 }, "pax named\n");
    p.entry({ name: "dir", type: "directory", mode: 0o755 });
    p.entry({ name: "hard", type: "link", linkname: `${"p".repeat(200)}/file` });
    p.finalize();
    const chunks: Buffer[] = [];
    await pipeline(
      p,
      new Writable({
        write(c, _e, cb) {
          chunks.push(c);
          cb();
        },
      }),
    );
    const tar = Buffer.concat(chunks);
    const want = await tarStreamRead(tar);
    expect(want[0]!.name).toBe(`${"p".repeat(200)}/file`);
    expect(fastRead(tar, 7)).toEqual(want);
    // The same archive with the first real entry's size written base-256 (as GNU tar does past 8 GiB).
    const b256 = Buffer.from(tar);
    const at = findHeader(b256, "pax named".length);
    b256.fill(0, at + 124, at + 136);
    b256[at + 124] = 0x80;
    b256[at + 135] = "pax named\n".length;
    rewriteChecksum(b256, at);
    expect(fastRead(b256, 512)).toEqual(await tarStreamRead(b256));
  });

  it("a corrupt header and a truncated tar fail as with tar-stream", async () => {
    const tar = gnuTar("gnu");
    const bad = Buffer.from(tar);
    bad[600] = (bad[600]! + 1) % 256; // inside the second header's name: the checksum no longer matches
    await expect(tarStreamRead(bad)).rejects.toThrow(/Invalid tar header/);
    expect(() => fastRead(bad, 512)).toThrow(/Invalid tar header. Maybe the tar is corrupted/);
    const cut = tar.subarray(0, 512 + 300);
    await expect(tarStreamRead(cut)).rejects.toThrow(/Unexpected end of data/);
    expect(() => fastRead(cut, 512)).toThrow(/Unexpected end of data/);
    await expect(scan(cut)).rejects.toThrow(/layer t: invalid tar stream: Unexpected end of data/);
  });
});

describe("TarScanner", () => {
  it("counts entries and file bytes; rejects .. names and paths through a symlink", async () => {
    const tar = await packed([
      { name: "a.txt", body: "12345" },
      { name: "sub/", type: "directory" },
      { name: "sub/b.txt", body: "1234567890" },
    ]);
    expect(await scan(tar)).toEqual({ entries: 3, contentSize: 15 });
    await expect(scan(await packed([{ name: "../evil", body: "x" }]))).rejects.toThrow(
      /layer t: invalid tar entry "..\/evil": path contains ".."/,
    );
    await expect(
      scan(
        await packed([
          { name: "link", type: "symlink", linkname: "/etc" },
          { name: "link/passwd", body: "x" },
        ]),
      ),
    ).rejects.toThrow(/passes through the symlink "link"/);
  });

  it("cleanEntryPath's fast path agrees with the segment-by-segment one", () => {
    const slow = (name: string) => {
      const parts: string[] = [];
      for (const seg of name.split("/")) {
        if (seg === "" || seg === ".") continue;
        if (seg === "..") {
          if (!parts.length) return "ESCAPES";
          parts.pop();
          continue;
        }
        parts.push(seg);
      }
      return parts.join("/");
    };
    const names = ["a", "a/b", "./a/b/", "/a/b", "//a", "a//b", ".a/b", "a/.b", "a/./b", "./", ".", "/", ""];
    names.push("a/b/../c", "a/..", "..a", "a..b/c", "./.././x", "a/b/", "a///", "././a");
    for (const n of names) {
      let got: string;
      try {
        got = cleanEntryPath(n);
      } catch {
        got = "ESCAPES";
      }
      expect(got, `cleanEntryPath(${JSON.stringify(n)})`).toBe(slow(n));
    }
  });
});

async function packed(
  entries: { name: string; body?: string; type?: "directory" | "symlink"; linkname?: string }[],
): Promise<Buffer> {
  const p = pack();
  for (const e of entries)
    p.entry({ name: e.name, type: e.type ?? "file", linkname: e.linkname, mode: 0o644 }, e.body ?? "");
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A ustar archive whose entry name is split into prefix and name (longer than 100 bytes). */
function ustarWithPrefix(): Buffer {
  const src = path.join(dir, "src-ustar");
  const long = `${"u".repeat(80)}/${"v".repeat(40)}`;
  mkdirSync(path.join(src, long), { recursive: true });
  writeFileSync(path.join(src, long, "file.txt"), "prefixed\n");
  const out = path.join(dir, "ustar.tar");
  execFileSync("tar", ["--format=ustar", "-C", src, "-cf", out, "."]);
  return readFileSync(out);
}

/** The offset of the first non-PAX header whose size field says `size`. */
function findHeader(tar: Buffer, size: number): number {
  for (let o = 0; o < tar.length; o += 512) {
    const field = tar.toString("latin1", o + 124, o + 135);
    if (tar[o + 156] === 0x30 && Number.parseInt(field, 8) === size + 1) return o;
    if (tar[o + 156] === 0x30 && Number.parseInt(field, 8) === size) return o;
  }
  throw new Error("no such header");
}

function rewriteChecksum(tar: Buffer, at: number): void {
  tar.fill(32, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += tar[i]!;
  tar.write(`${sum.toString(8).padStart(6, "0")}\0 `, at + 148, "latin1");
}
