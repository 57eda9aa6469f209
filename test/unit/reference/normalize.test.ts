import { describe, expect, it } from "vitest";
import {
  type AnyReference,
  familiarMatch,
  familiarName,
  familiarString,
  isNamed,
  parseAnyReference,
  parseDockerRef,
  parseNormalizedNamed,
  parseReference,
  referenceString,
  splitDockerDomain,
  withDefaultTag,
  withDigest,
  withTag,
} from "../../../src/reference/index.js";
import { label, loadCases, thrown } from "./cases.js";

interface NormalizeCases {
  parseNormalizedNamed: {
    cases: { input: string; fullName: string; familiarName: string; domain: string; path: string }[];
  };
  tagAndDigest: {
    input: string;
    string: string;
    familiarString: string;
    isTagged: boolean;
    isDigested: boolean;
  };
  validNames: Record<
    "fromValidateReferenceName" | "fromValidateRemoteName",
    { valid: string[]; invalid: string[] }
  >;
  invalidComponents: {
    cases: {
      op: string;
      input?: string;
      base?: string;
      tag?: string;
      digest?: string;
      expectError: boolean;
    }[];
  };
  parseAnyReference: { cases: { input: string; string: string; kind: "named" | "digest-only" }[] };
  normalizedSplitHostname: { cases: { input: string; domain: string; path: string }[] };
  familiarMatch: {
    cases: { reference: string; pattern: string; match: boolean }[];
    errorCases: { reference: string; pattern: string; expectError: boolean }[];
  };
  parseDockerRef: { cases: { name: string; input: string; expected: string }[] };
}
const data = loadCases<NormalizeCases>("normalize-cases.json");

describe("normalize-cases.json", () => {
  it("has the upstream counts", () => {
    const v = data.validNames;
    expect({
      normalized: data.parseNormalizedNamed.cases.length,
      anyReference: data.parseAnyReference.cases.length,
      split: data.normalizedSplitHostname.cases.length,
      match: data.familiarMatch.cases.length + data.familiarMatch.errorCases.length,
      dockerRef: data.parseDockerRef.cases.length,
      invalidComponents: data.invalidComponents.cases.length,
      referenceNames: [v.fromValidateReferenceName.valid.length, v.fromValidateReferenceName.invalid.length],
      remoteNames: [v.fromValidateRemoteName.valid.length, v.fromValidateRemoteName.invalid.length],
    }).toEqual({
      normalized: 32,
      anyReference: 14,
      split: 11,
      match: 10,
      dockerRef: 11,
      invalidComponents: 3,
      referenceNames: [27, 14],
      remoteNames: [8, 13],
    });
  });

  describe("parseNormalizedNamed, familiarName (TestParseRepositoryInfo)", () => {
    data.parseNormalizedNamed.cases.forEach((c, i) => {
      it(`#${i} ${c.input}`, () => {
        const r = parseNormalizedNamed(c.input);
        const got = {
          fullName: referenceString(r),
          familiarName: familiarName(r),
          domain: r.domain,
          path: r.path,
        };
        const want = { fullName: c.fullName, familiarName: c.familiarName, domain: c.domain, path: c.path };
        expect(got, `parseNormalizedNamed(${label(c.input)})`).toEqual(want);
      });
    });
  });

  it("tag and digest together (TestParseReferenceWithTagAndDigest)", () => {
    const c = data.tagAndDigest;
    const r = parseNormalizedNamed(c.input);
    const got = {
      string: referenceString(r),
      familiarString: familiarString(r),
      isTagged: r.tag !== undefined,
      isDigested: r.digest !== undefined,
    };
    expect(got, `parseNormalizedNamed(${label(c.input)})`).toEqual({
      string: c.string,
      familiarString: c.familiarString,
      isTagged: c.isTagged,
      isDigested: c.isDigested,
    });
  });

  for (const list of ["fromValidateReferenceName", "fromValidateRemoteName"] as const) {
    const names = data.validNames[list];
    describe(`name validity: ${list}`, () => {
      for (const name of names.valid) {
        it(`accepts ${label(name)}`, () => {
          expect(
            thrown(() => parseNormalizedNamed(name)),
            `parseNormalizedNamed(${label(name)})`,
          ).toBe("no error");
        });
      }
      for (const name of names.invalid) {
        it(`rejects ${label(name)}`, () => {
          const got = thrown(() => parseNormalizedNamed(name));
          expect(got === "no error" ? got : got.code, `parseNormalizedNamed(${label(name)})`).toBe(
            "INVALID_REFERENCE",
          );
        });
      }
    });
  }

  describe("invalid components (TestInvalidReferenceComponents)", () => {
    data.invalidComponents.cases.forEach((c, i) => {
      it(`#${i} ${c.op}`, () => {
        const run = (): unknown => {
          if (c.op === "parseNormalizedNamed") return parseNormalizedNamed(c.input!);
          const base = parseNormalizedNamed(c.base!);
          if (c.op === "withTag") return withTag(base, c.tag!);
          if (c.op === "withDigest") return withDigest(base, c.digest!);
          throw new Error(`unknown op ${c.op}`);
        };
        const got = thrown(run);
        expect(got === "no error" ? got : got.code, JSON.stringify(c)).toBe("INVALID_REFERENCE");
      });
    });
  });

  describe("parseAnyReference (TestParseAnyReference)", () => {
    data.parseAnyReference.cases.forEach((c, i) => {
      it(`#${i} ${label(c.input)}`, () => {
        const r = parseAnyReference(c.input);
        const got = { string: referenceString(r), kind: isNamed(r) ? "named" : "digest-only" };
        expect(got, `parseAnyReference(${label(c.input)})`).toEqual({ string: c.string, kind: c.kind });
        if (c.kind === "named") {
          expect(r, `parseAnyReference(${label(c.input)}) vs parseReference(${label(c.string)})`).toEqual(
            parseReference(c.string),
          );
        }
      });
    });
  });

  describe("domain and path after normalisation (TestNormalizedSplitHostname)", () => {
    data.normalizedSplitHostname.cases.forEach((c, i) => {
      it(`#${i} ${c.input}`, () => {
        const r = parseNormalizedNamed(c.input);
        expect({ domain: r.domain, path: r.path }, `parseNormalizedNamed(${label(c.input)})`).toEqual({
          domain: c.domain,
          path: c.path,
        });
      });
    });
  });

  describe("familiarMatch (TestMatch)", () => {
    data.familiarMatch.cases.forEach((c, i) => {
      it(`#${i} ${c.pattern} vs ${c.reference}`, () => {
        const got = familiarMatch(c.pattern, parseAnyReference(c.reference));
        expect(got, `familiarMatch(${label(c.pattern)}, ${label(c.reference)})`).toBe(c.match);
      });
    });
    data.familiarMatch.errorCases.forEach((c, i) => {
      it(`error #${i} ${c.pattern}`, () => {
        expect(thrown(() => familiarMatch(c.pattern, parseAnyReference(c.reference)))).toEqual({
          code: "INVALID_ARGUMENT",
          message: "syntax error in pattern",
        });
      });
    });
  });

  describe("parseDockerRef (TestParseDockerRef)", () => {
    data.parseDockerRef.cases.forEach((c, i) => {
      it(`#${i} ${c.name}`, () => {
        const r = parseDockerRef(c.input);
        expect(referenceString(r), `parseDockerRef(${label(c.input)})`).toBe(c.expected);
        expect(r, `parseDockerRef(${label(c.input)}) vs parseReference(${label(c.expected)})`).toEqual(
          parseReference(c.expected),
        );
      });
    });
  });
});

describe("normalisation (our own cases)", () => {
  it("names the first component a domain by the Docker CLI's rule", () => {
    const cases: [string, { domain: string; remainder: string }][] = [
      ["ubuntu:22.04", { domain: "docker.io", remainder: "library/ubuntu:22.04" }],
      ["localhost/app", { domain: "localhost", remainder: "app" }],
      ["localhost:5000/app", { domain: "localhost:5000", remainder: "app" }],
      ["Registry/app", { domain: "Registry", remainder: "app" }],
      ["index.docker.io/ubuntu", { domain: "docker.io", remainder: "library/ubuntu" }],
      ["docker.io/user/app", { domain: "docker.io", remainder: "user/app" }],
      ["user/app", { domain: "docker.io", remainder: "user/app" }],
      // A bare "localhost" or "example.com" is a name on Docker Hub, as upstream.
      ["localhost", { domain: "docker.io", remainder: "library/localhost" }],
    ];
    for (const [input, want] of cases)
      expect(splitDockerDomain(input), `splitDockerDomain(${input})`).toEqual(want);
  });

  it("gives the upstream messages for image IDs and upper-case names", () => {
    const id = "a".repeat(64);
    const cases: [string, string][] = [
      [id, `invalid repository name (${id}), cannot specify 64-byte hexadecimal strings`],
      ["Foo", "invalid reference format: repository name (library/Foo) must be lowercase"],
      ["user/App:Tag", "invalid reference format: repository name (user/App) must be lowercase"],
      ["", "invalid reference format"],
      ["example.com/", "invalid reference format"],
      [`x/${"a".repeat(254)}`, "repository name must not be more than 255 characters"],
    ];
    for (const [input, message] of cases) {
      expect(
        thrown(() => parseNormalizedNamed(input)),
        `parseNormalizedNamed(${label(input)})`,
      ).toEqual({
        code: "INVALID_REFERENCE",
        message,
      });
    }
  });

  it("withDefaultTag adds latest only to a bare name", () => {
    const d = `sha256:${"e".repeat(64)}`;
    const cases: [string, string][] = [
      ["busybox", "docker.io/library/busybox:latest"],
      ["busybox:1", "docker.io/library/busybox:1"],
      [`busybox@${d}`, `docker.io/library/busybox@${d}`],
      [`busybox:1@${d}`, `docker.io/library/busybox:1@${d}`],
    ];
    for (const [input, want] of cases) {
      expect(referenceString(withDefaultTag(parseNormalizedNamed(input))), `withDefaultTag(${input})`).toBe(
        want,
      );
    }
  });

  it("familiar forms drop only Docker Hub's domain and its one-level library/ prefix", () => {
    const d = `sha256:${"e".repeat(64)}`;
    const cases: [AnyReference, string][] = [
      [parseNormalizedNamed("busybox:1"), "busybox:1"],
      [parseNormalizedNamed("library/a/b:1"), "library/a/b:1"],
      [parseNormalizedNamed("localhost:5000/library/x"), "localhost:5000/library/x"],
      [parseNormalizedNamed(`user/app@${d}`), `user/app@${d}`],
      [parseAnyReference(d), d],
      [parseReference("docker.io/library/x"), "x"],
    ];
    for (const [r, want] of cases)
      expect(familiarString(r), `familiarString(${JSON.stringify(r)})`).toBe(want);
  });

  it("parseAnyReference takes a digest of any supported algorithm, and short IDs as names", () => {
    const sha512 = `sha512:${"c".repeat(128)}`;
    expect(parseAnyReference(sha512)).toEqual({ digest: sha512 });
    expect(referenceString(parseAnyReference(sha512, { digestAlgorithms: ["sha256"] }))).toBe(
      `docker.io/library/sha512:${"c".repeat(128)}`,
    );
    expect(referenceString(parseAnyReference("abc123"))).toBe("docker.io/library/abc123");
  });

  it("familiarMatch: digest-only references match on the digest alone", () => {
    const d = `sha256:${"e".repeat(64)}`;
    expect(familiarMatch("sha256:*", parseAnyReference(d))).toBe(true);
    expect(familiarMatch("busybox*", parseAnyReference(d))).toBe(false);
  });
});
