import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { extract } from "tar-stream";
import { afterAll, describe, expect, it } from "vitest";
import { TAR_END, type TarEntryHeader, tarHeader, tarPadding } from "../../../src/layer/index.js";

const long = (n: number) => Array.from({ length: n }, (_, i) => `dir${i}`).join("/");
const entries: (TarEntryHeader & { data?: string })[] = [
  { name: "a", type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: 1704067200 },
  {
    name: "a/hello.txt",
    type: "file",
    mode: 0o644,
    uid: 1000,
    gid: 1000,
    mtime: 1704067200,
    data: "hello\n",
  },
  { name: "a/link", type: "symlink", mode: 0o777, uid: 0, gid: 0, mtime: 1704067200, linkname: "hello.txt" },
  // 100 < length <= 256 with a slash that splits into ustar's prefix and name
  { name: `${long(20)}/f.txt`, type: "file", mode: 0o600, uid: 0, gid: 0, mtime: 1, data: "split" },
  // too long for ustar: a PAX path record
  { name: `${long(60)}/deep.txt`, type: "file", mode: 0o640, uid: 0, gid: 0, mtime: 2, data: "pax" },
  // a 120-byte single component: no split possible
  { name: `a/${"x".repeat(120)}`, type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 3, data: "" },
  { name: "a/ünïcødé-名前.txt", type: "file", mode: 0o4755, uid: 0, gid: 0, mtime: 4, data: "utf8" },
  { name: "a/longlink", type: "symlink", mode: 0o777, uid: 0, gid: 0, mtime: 5, linkname: `/${long(40)}` },
  { name: "a/bigid", type: "file", mode: 0o644, uid: 3_000_000, gid: 2_500_000, mtime: 6, data: "ids" },
];

function archive(): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? "");
    parts.push(tarHeader({ ...e, size: e.type === "file" ? data.length : undefined }));
    if (e.type === "file") parts.push(data, tarPadding(data.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

describe("tar-writer: headers tar-stream and GNU tar read back exactly", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "strata-tarw-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("tar-stream sees every name, type, mode, owner, time, link and content", async () => {
    const ex = extract();
    const seen: {
      name: string;
      type: string;
      mode: number;
      uid: number;
      gid: number;
      mtime: number;
      linkname?: string | null;
      data: string;
    }[] = [];
    const done = new Promise<void>((resolve, reject) => {
      ex.on("entry", (h, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          seen.push({
            name: h.name,
            type: h.type ?? "",
            mode: h.mode ?? 0,
            uid: h.uid ?? 0,
            gid: h.gid ?? 0,
            mtime: Math.floor((h.mtime?.getTime() ?? 0) / 1000),
            linkname: h.linkname,
            data: Buffer.concat(chunks).toString(),
          });
          next();
        });
      });
      ex.on("finish", resolve);
      ex.on("error", reject);
    });
    ex.end(archive());
    await done;
    expect(seen.map((s) => s.name)).toEqual(
      entries.map((e) => (e.type === "directory" ? `${e.name}/` : e.name)),
    );
    for (const [i, e] of entries.entries()) {
      const s = seen[i]!;
      expect(s.type).toBe(e.type);
      expect(s.mode).toBe(e.mode);
      expect([s.uid, s.gid]).toEqual([e.uid, e.gid]);
      expect(s.mtime).toBe(e.mtime);
      if (e.type === "symlink") expect(s.linkname).toBe(e.linkname);
      if (e.type === "file") expect(s.data).toBe(e.data);
    }
  });

  it("GNU tar extracts it without a warning and with the same bytes", () => {
    const file = path.join(dir, "t.tar");
    writeFileSync(file, archive());
    const out = path.join(dir, "x");
    execFileSync("mkdir", ["-p", out]);
    const r = execFileSync("tar", ["-x", "-f", file, "-C", out, "--numeric-owner", "--same-owner"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(r.toString()).toBe("");
    for (const e of entries) {
      const p = path.join(out, e.name);
      if (e.type === "file") {
        expect(readFileSync(p, "utf8")).toBe(e.data);
        const st = statSync(p);
        expect(st.mode & 0o7777).toBe(e.mode);
        expect([st.uid, st.gid]).toEqual([e.uid, e.gid]);
        expect(Math.floor(st.mtimeMs / 1000)).toBe(e.mtime);
      } else if (e.type === "symlink") expect(readlinkSync(p)).toBe(e.linkname);
      else expect(statSync(p).isDirectory()).toBe(true);
    }
  });
});
