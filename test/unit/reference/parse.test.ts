import { describe, expect, it } from "vitest";
import {
  parseNamed,
  parseReference,
  type Reference,
  referenceString,
  repositoryName,
  withDigest,
  withName,
  withTag,
} from "../../../src/reference/index.js";
import { label, loadCases, thrown } from "./cases.js";

interface ParseCase {
  input: string;
  name?: string;
  domain?: string;
  path?: string;
  tag?: string;
  digest?: string;
  string?: string;
  error?: string;
}

/** The parts of a reference in the data files' convention: "" for absent. */
function parts(r: Reference) {
  return {
    name: repositoryName(r),
    domain: r.domain,
    path: r.path,
    tag: r.tag ?? "",
    digest: r.digest ?? "",
  };
}

const parseCases = loadCases<{ cases: ParseCase[] }>("parse-cases.json").cases;

describe("parse-cases.json: parseReference (reference.Parse)", () => {
  it("has the 48 upstream cases", () => expect(parseCases.length).toBe(48));

  // The upstream test binary registers only sha256; run the cases in that environment.
  const upstream = { digestAlgorithms: ["sha256"] };
  parseCases.forEach((c, i) => {
    it(`#${i} ${label(c.input)}`, () => {
      if (c.error !== undefined) {
        expect(
          thrown(() => parseReference(c.input, upstream)),
          `parseReference(${label(c.input)})`,
        ).toEqual({
          code: "INVALID_REFERENCE",
          message: c.error,
        });
        return;
      }
      const r = parseReference(c.input, upstream);
      const want = { name: c.name, domain: c.domain, path: c.path, tag: c.tag, digest: c.digest };
      expect(parts(r), `parseReference(${label(c.input)})`).toEqual(want);
      expect(referenceString(r), `referenceString(parseReference(${label(c.input)}))`).toBe(c.string);
    });
  });

  it("with the default algorithms every case behaves the same, except that sha512 is accepted", () => {
    for (const c of parseCases) {
      if (c.input.includes("@sha512:")) {
        const r = parseReference(c.input);
        expect(referenceString(r), `parseReference(${label(c.input)})`).toBe(c.input);
        continue;
      }
      const got = thrown(() => parseReference(c.input));
      const want = c.error === undefined ? "no error" : { code: "INVALID_REFERENCE", message: c.error };
      expect(got, `parseReference(${label(c.input)})`).toEqual(want);
    }
  });
});

interface ErrorCase {
  input: string;
  error: string;
}
interface ApiCases {
  withName: { fail: ErrorCase[]; ok: { input: string; domain: string; path: string }[] };
  withTag: { cases: { name: string; tag: string; digest?: string; combined: string }[] };
  withDigest: { cases: { name: string; digest: string; tag?: string; combined: string }[] };
  parseNamed: { cases: { input: string; domain?: string; path?: string; error?: string }[] };
  fieldSerialization: {
    cases: {
      description: string;
      input: string;
      name?: string;
      tag?: string;
      digest?: string;
      error?: string;
    }[];
  };
}
const api = loadCases<ApiCases>("api-cases.json");

describe("api-cases.json", () => {
  it("has 7 + 6 + 5 + 4 + 8 + 4 cases", () => {
    const n = [
      api.withName.fail.length,
      api.withName.ok.length,
      api.withTag.cases.length,
      api.withDigest.cases.length,
      api.parseNamed.cases.length,
      api.fieldSerialization.cases.length,
    ];
    expect(n).toEqual([7, 6, 5, 4, 8, 4]);
  });

  describe("withName (TestWithNameFailure, TestDomainAndPath)", () => {
    api.withName.fail.forEach((c, i) => {
      it(`fail #${i} ${label(c.input)}`, () => {
        expect(
          thrown(() => withName(c.input)),
          `withName(${label(c.input)})`,
        ).toEqual({
          code: "INVALID_REFERENCE",
          message: c.error,
        });
      });
    });
    api.withName.ok.forEach((c, i) => {
      it(`ok #${i} ${label(c.input)}`, () => {
        const r = withName(c.input);
        expect({ domain: r.domain, path: r.path }, `withName(${label(c.input)})`).toEqual({
          domain: c.domain,
          path: c.path,
        });
        expect(repositoryName(r)).toBe(c.input);
      });
    });
  });

  describe("withTag (TestWithTag)", () => {
    api.withTag.cases.forEach((c, i) => {
      it(`#${i} ${c.combined}`, () => {
        let r = withName(c.name);
        if (c.digest !== undefined) r = withDigest(r, c.digest);
        const got = referenceString(withTag(r, c.tag));
        expect(got, `withTag(${c.name}${c.digest ? `@${c.digest}` : ""}, ${c.tag})`).toBe(c.combined);
      });
    });
  });

  describe("withDigest (TestWithDigest)", () => {
    api.withDigest.cases.forEach((c, i) => {
      it(`#${i} ${c.combined}`, () => {
        let r = withName(c.name);
        if (c.tag !== undefined) r = withTag(r, c.tag);
        const got = referenceString(withDigest(r, c.digest));
        expect(got, `withDigest(${c.name}${c.tag ? `:${c.tag}` : ""}, ${c.digest})`).toBe(c.combined);
      });
    });
  });

  describe("parseNamed (TestParseNamed)", () => {
    api.parseNamed.cases.forEach((c, i) => {
      it(`#${i} ${label(c.input)}`, () => {
        if (c.error !== undefined) {
          expect(
            thrown(() => parseNamed(c.input)),
            `parseNamed(${label(c.input)})`,
          ).toEqual({
            code: "INVALID_REFERENCE",
            message: c.error,
          });
          return;
        }
        const r = parseNamed(c.input);
        expect({ domain: r.domain, path: r.path }, `parseNamed(${label(c.input)})`).toEqual({
          domain: c.domain,
          path: c.path,
        });
      });
    });
  });

  describe("a reference as a JSON string field (TestSerialization)", () => {
    api.fieldSerialization.cases.forEach((c, i) => {
      it(`#${i} ${c.description}`, () => {
        const doc = JSON.stringify({ Description: c.description, Field: c.input });
        const decode = () => {
          const v = JSON.parse(doc) as { Description: string; Field: string };
          return { ...v, Field: parseReference(v.Field) };
        };
        if (c.error !== undefined) {
          expect(thrown(decode), `decode ${doc}`).toEqual({ code: "INVALID_REFERENCE", message: c.error });
          return;
        }
        const v = decode();
        expect(
          { name: repositoryName(v.Field), tag: v.Field.tag ?? "", digest: v.Field.digest ?? "" },
          `decode ${doc}`,
        ).toEqual({ name: c.name, tag: c.tag, digest: c.digest });
        const encoded = JSON.stringify({ Description: v.Description, Field: referenceString(v.Field) });
        expect(encoded, "encode after decode").toBe(doc);
      });
    });
  });
});

describe("builders (our own cases)", () => {
  it("withTag replaces a tag and keeps a digest; withDigest replaces a digest and keeps a tag", () => {
    const d = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const r = parseReference(`example.com/app:1@${d}`);
    expect(referenceString(withTag(r, "2"))).toBe(`example.com/app:2@${d}`);
    expect(referenceString(withDigest(r, `sha256:${"a".repeat(64)}`))).toBe(
      `example.com/app:1@sha256:${"a".repeat(64)}`,
    );
  });

  it("reports invalid tags and digests with the upstream messages", () => {
    const r = withName("busybox");
    expect(thrown(() => withTag(r, "-foo"))).toEqual({
      code: "INVALID_REFERENCE",
      message: "invalid tag format",
    });
    expect(thrown(() => withTag(r, "a".repeat(129)))).toEqual({
      code: "INVALID_REFERENCE",
      message: "invalid tag format",
    });
    expect(thrown(() => withDigest(r, "sha256:abc"))).toEqual({
      code: "INVALID_REFERENCE",
      message: "invalid digest format",
    });
  });

  it("a digest error keeps go-digest's message and the INVALID_DIGEST error as its cause", () => {
    // Fewer than 32 hex digits is outside the reference grammar, so not a digest error.
    expect(thrown(() => parseReference("repo@sha256:ffff"))).toEqual({
      code: "INVALID_REFERENCE",
      message: "invalid reference format",
    });
    let err: unknown;
    try {
      parseReference(`repo@sha256:${"f".repeat(40)}`);
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toBe("invalid checksum digest length");
    expect(((err as Error).cause as { code: string }).code).toBe("INVALID_DIGEST");
  });

  it("checks the length of an upper-case hex digest before its case, as go-digest does", () => {
    const cases: [string, string][] = [
      [`repo@sha256:${"F".repeat(40)}`, "invalid checksum digest length"],
      [`repo@sha256:${"F".repeat(64)}`, "invalid checksum digest format"],
      [`repo@SHA256:${"f".repeat(64)}`, "invalid checksum digest format"],
      [`repo@sha384:${"f".repeat(96)}`, "unsupported digest algorithm"],
    ];
    for (const [input, message] of cases) {
      expect(
        thrown(() => parseReference(input)),
        `parseReference(${label(input)})`,
      ).toEqual({
        code: "INVALID_REFERENCE",
        message,
      });
    }
  });

  it("leaves absent parts out of the object", () => {
    expect(parseReference("example.com/app")).toEqual({ domain: "example.com", path: "app" });
    expect(Object.keys(parseReference("app:1"))).toEqual(["domain", "path", "tag"]);
  });
});
