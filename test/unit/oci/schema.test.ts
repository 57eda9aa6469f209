import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  chainIds,
  DOCKER_TO_OCI,
  digestOf,
  parseDescriptor,
  parseDigest,
  parseImageConfig,
  parseIndex,
  parseLayout,
  parseManifest,
} from "../../../src/oci/index.js";
import { TESTDATA } from "../../helpers/testdata.js";

const FIX = path.join(TESTDATA, "oci-schemas/fixtures");
interface Case {
  document: string;
  valid: boolean;
  comment?: string;
}
const load = (f: string): Case[] => JSON.parse(readFileSync(path.join(FIX, f), "utf8")).cases;

const parsers: Record<string, (doc: string) => unknown> = {
  "manifest-cases.json": (d) => parseManifest(d, { strictSchema: true }),
  "index-cases.json": (d) => parseIndex(d),
  "config-cases.json": (d) => parseImageConfig(d),
  "descriptor-cases.json": (d) => parseDescriptor(JSON.parse(d)),
  "layout-cases.json": (d) => parseLayout(d),
};

describe("OCI schema fixtures", () => {
  for (const [file, parse] of Object.entries(parsers)) {
    load(file).forEach((c, i) => {
      it(`${file} #${i}: ${c.valid ? "valid" : "invalid"} ${c.comment ?? ""}`, () => {
        if (c.valid) expect(() => parse(c.document)).not.toThrow();
        else expect(() => parse(c.document)).toThrow();
      });
    });
  }

  it("docker-compat documents hash to their digest and validate after media-type conversion", () => {
    const d = JSON.parse(readFileSync(path.join(FIX, "docker-compat-cases.json"), "utf8"));
    const groups = d.groups as Record<
      string,
      { mediaType: string; cases: { document: string; digest: string; valid: boolean }[] }
    >;
    const map = d.mediaTypeMap as Record<string, string>;
    const byType: Record<string, (s: string) => unknown> = {
      "application/vnd.oci.image.manifest.v1+json": (s) => parseManifest(s, { strictSchema: true }),
      "application/vnd.oci.image.index.v1+json": (s) => parseIndex(s),
      "application/vnd.oci.image.config.v1+json": (s) => parseImageConfig(s),
    };
    let n = 0;
    for (const g of Object.values(groups)) {
      for (const c of g.cases) {
        n++;
        expect(digestOf(c.document)).toBe(c.digest);
        let doc = c.document;
        for (const [dk, oci] of Object.entries(map)) doc = doc.split(dk).join(oci);
        const parse = byType[g.mediaType]!;
        if (c.valid) expect(() => parse(doc)).not.toThrow();
        else expect(() => parse(doc)).toThrow();
      }
    }
    expect(n).toBe(4);
    expect(Object.keys(DOCKER_TO_OCI)).toEqual(expect.arrayContaining(Object.keys(map)));
  });

  it("spec examples all validate", () => {
    const d = JSON.parse(readFileSync(path.join(FIX, "spec-examples.json"), "utf8"));
    const cases = (d.cases ?? d.examples) as { document: string; mediaType: string; valid?: boolean }[];
    expect(cases.length).toBeGreaterThan(10);
    for (const c of cases) {
      const p: Record<string, (s: string) => unknown> = {
        "application/vnd.oci.image.manifest.v1+json": (s) => parseManifest(s),
        "application/vnd.oci.image.index.v1+json": (s) => parseIndex(s),
        "application/vnd.oci.image.config.v1+json": (s) => parseImageConfig(s),
        "application/vnd.oci.descriptor.v1+json": (s) => parseDescriptor(JSON.parse(s)),
        "application/vnd.oci.layout.header.v1+json": (s) => parseLayout(s),
      };
      const fn = p[c.mediaType];
      if (!fn) continue;
      expect(() => fn(c.document), c.document.slice(0, 80)).not.toThrow();
    }
  });
});

describe("digests", () => {
  it("parses go-digest's rules", () => {
    const hex = "a".repeat(64);
    expect(parseDigest(`sha256:${hex}`)).toBe(`sha256:${hex}`);
    expect(() => parseDigest("sha256:abc")).toThrow("invalid checksum digest length");
    expect(() => parseDigest(`sha256:${"A".repeat(64)}`)).toThrow("invalid checksum digest format");
    expect(() => parseDigest(`md5:${hex}`)).toThrow("unsupported digest algorithm");
    expect(() => parseDigest("nocolon")).toThrow("invalid checksum digest format");
  });
  it("computes chain IDs as the OCI spec defines them", () => {
    const a = digestOf("a");
    const b = digestOf("b");
    const ids = chainIds([a, b]);
    expect(ids[0]).toBe(a);
    expect(ids[1]).toBe(digestOf(`${a} ${b}`));
  });
  it("rejects oversized and malformed documents with the field named", () => {
    expect(() => parseImageConfig(Buffer.alloc(5 * 1024 * 1024, 32))).toThrow(/over the limit/);
    expect(() =>
      parseImageConfig('{"architecture":1,"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'),
    ).toThrow(/architecture/);
  });
});
