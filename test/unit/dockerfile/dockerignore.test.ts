import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  chooseDockerignore,
  type DockerignoreSource,
  dockerignoreCandidates,
  type MatchInfo,
  PatternMatcher,
  readDockerignore,
} from "../../../src/dockerfile/dockerignore.js";
import { isStrataError } from "../../../src/util/index.js";
import { TESTDATA } from "../../helpers/testdata.js";

const DIR = path.join(TESTDATA, "dockerignore");
const load = <T>(name: string): T => JSON.parse(readFileSync(path.join(DIR, name), "utf8")) as T;

interface MatchCase {
  patterns: string[];
  path: string;
  match: boolean;
  error?: string;
  api: "Matches" | "MatchesOrParentMatches";
  platform?: string;
  source: string;
}

const cases = load<MatchCase[]>("cases.json");
const compileCases = load<{
  compile: { pattern: string; matchType: string; regexp?: string }[];
  newMatcher: {
    cases: { patterns: string[]; patternCount?: number; hasExclusions?: boolean; error?: string }[];
  };
}>("compile-cases.json");
const readfileCases = load<{ cases: { input: string | null; patterns: string[]; note?: string }[] }>(
  "readfile-cases.json",
);
const contextCases = load<{
  cases: {
    ignoreFiles?: Record<string, string>;
    builds?: { dockerfile: string }[];
    contextFiles: string[];
  }[];
}>("context-cases.json");

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Go's `filepath.Dir`: everything before the last slash, cleaned ("dir/a/" → "dir/a"). */
function goDir(file: string): string {
  const i = file.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  const d = path.posix.normalize(file.slice(0, i));
  return d.length > 1 && d.endsWith("/") ? d.slice(0, -1) : d;
}

/** The incremental form, fed with every parent directory first, as a tree walk would. */
function incremental(pm: PatternMatcher, file: string): boolean {
  const parentPath = goDir(file);
  let info: MatchInfo | undefined;
  if (parentPath !== ".") {
    const dirs = parentPath.split("/");
    for (let i = 0; i < dirs.length; i++)
      info = pm.matchesUsingParentResults(dirs.slice(0, i + 1).join("/"), info).info;
  }
  return pm.matchesUsingParentResults(file, info).matched;
}

describe("cases.json", () => {
  it("has 138 cases", () => expect(cases.length).toBe(138));

  it.each(cases.map((c, i) => [i, c.api, JSON.stringify(c.patterns), c.path, c] as const))(
    "#%i %s %s %s",
    (_i, api, _p, file, c) => {
      const run = () => {
        const pm = new PatternMatcher(c.patterns);
        return api === "Matches" ? pm.matches(file) : pm.matchesOrParentMatches(file);
      };
      if (c.error !== undefined) {
        const e = errorOf(run);
        expect(isStrataError(e, "INVALID_ARGUMENT"), "must fail").toBe(true);
        const want = c.error === "ErrBadPattern" ? "syntax error in pattern" : c.error;
        expect((e as Error).message).toContain(want);
        // Upstream: a repeated call must fail the same way, not crash.
        expect((errorOf(run) as Error).message).toContain(want);
        return;
      }
      expect(run()).toBe(c.match);
      if (api === "MatchesOrParentMatches") {
        // The incremental variants upstream also runs these cases through.
        const pm = new PatternMatcher(c.patterns);
        expect(incremental(pm, file), "with parent results").toBe(c.match);
        expect(pm.matchesUsingParentResults(file).matched, "without parent results").toBe(c.match);
      }
    },
  );

  it("a bad expression fails when it is evaluated, not when the matcher is built", () => {
    const pm = new PatternMatcher(["[Local-Only]/"]);
    expect(pm.patterns()).toEqual([
      { pattern: "[Local-Only]", exclusion: false, matchType: "regexp", regexp: "^[Local-Only]$" },
    ]);
    for (let i = 0; i < 2; i++) {
      expect(
        isStrataError(
          errorOf(() => pm.matchesOrParentMatches("x")),
          "INVALID_ARGUMENT",
        ),
      ).toBe(true);
    }
    // An exception that is never evaluated (nothing excluded yet) raises nothing.
    expect(new PatternMatcher(["![Local-Only]"]).matchesOrParentMatches("x")).toBe(false);
  });
});

describe("compile-cases.json", () => {
  it.each(compileCases.compile.map((c) => [c.pattern, c] as const))("%s", (pattern, c) => {
    const [p] = new PatternMatcher([pattern]).patterns();
    expect(p!.matchType).toBe(c.matchType);
    expect(p!.regexp).toBe(c.regexp);
  });

  it.each(compileCases.newMatcher.cases.map((c) => [JSON.stringify(c.patterns), c] as const))(
    "new %s",
    (_p, c) => {
      if (c.error !== undefined) {
        const e = errorOf(() => new PatternMatcher(c.patterns));
        expect(isStrataError(e, "INVALID_ARGUMENT")).toBe(true);
        expect((e as Error).message).toBe(c.error);
        return;
      }
      const pm = new PatternMatcher(c.patterns);
      if (c.patternCount !== undefined) expect(pm.patterns().length).toBe(c.patternCount);
      if (c.hasExclusions !== undefined) expect(pm.exclusions()).toBe(c.hasExclusions);
    },
  );
});

describe("readfile-cases.json", () => {
  it.each(readfileCases.cases.map((c, i) => [i, JSON.stringify(c.input), c] as const))(
    "#%i %s",
    (_i, _in, c) => {
      expect(readDockerignore(c.input)).toEqual(c.patterns);
    },
  );

  it("reads bytes, drops a BOM, and rejects a line over bufio.Scanner's 64 KiB", () => {
    expect(readDockerignore(new TextEncoder().encode("\uFEFF# c\r\nfoo\n"))).toEqual(["foo"]);
    expect(readDockerignore(`${"a".repeat(65_535)}\n`)).toEqual(["a".repeat(65_535)]);
    const e = errorOf(() => readDockerignore(`x\n${"a".repeat(65_536)}\n`));
    expect(isStrataError(e, "INVALID_ARGUMENT")).toBe(true);
    expect((e as Error).message).toContain("token too long");
  });

  it("patterns are cleaned like path.Clean", () => {
    expect(readDockerignore("a/b/../c\n/a/../../b\n../../x\na/./b/\n//a//b//\n./\n")).toEqual([
      "a/c",
      "b",
      "../../x",
      "a/b",
      "a/b",
      ".",
    ]);
  });
});

describe("choosing the ignore file (context-cases.json override case)", () => {
  const override = contextCases.cases.find((c) => c.ignoreFiles !== undefined)!;

  it("<Dockerfile>.dockerignore next to the Dockerfile wins over .dockerignore", () => {
    for (const build of override.builds!) {
      const exists = (s: DockerignoreSource) =>
        s.location === "dockerfile" ? override.contextFiles.includes(s.path) : false;
      expect(chooseDockerignore(build.dockerfile, exists)).toEqual({
        location: "dockerfile",
        path: `${build.dockerfile}.dockerignore`,
      });
    }
    const both = () => true;
    expect(chooseDockerignore("Dockerfile", both)?.location).toBe("dockerfile");
  });

  it("falls back to the context's .dockerignore, then to none", () => {
    const onlyContext = (s: DockerignoreSource) => s.location === "context";
    expect(chooseDockerignore("Dockerfile", onlyContext)).toEqual({
      location: "context",
      path: ".dockerignore",
    });
    expect(chooseDockerignore(undefined, () => false)).toBeUndefined();
  });

  it("the Dockerfile-specific name follows the Dockerfile path", () => {
    expect(dockerignoreCandidates("build/app.Dockerfile")[0]).toEqual({
      location: "dockerfile",
      path: "build/app.Dockerfile.dockerignore",
    });
    expect(dockerignoreCandidates()[0]!.path).toBe("Dockerfile.dockerignore");
  });
});

describe("RE2 semantics of regexp patterns (what Docker does, not what filepath.Match would)", () => {
  const m = (patterns: string[], file: string) => new PatternMatcher(patterns).matchesOrParentMatches(file);

  it("backslash escapes reach RE2: \\d is a digit, \\x41 is A, \\y does not compile", () => {
    expect(m(["ab\\d"], "ab5")).toBe(true);
    expect(m(["ab\\d"], "abd")).toBe(false);
    expect(m(["\\x41"], "A")).toBe(true);
    const pm = new PatternMatcher(["a\\y"]);
    expect(
      isStrataError(
        errorOf(() => pm.matchesOrParentMatches("ay")),
        "INVALID_ARGUMENT",
      ),
    ).toBe(true);
  });

  it("brackets are RE2 classes", () => {
    expect(m(["[[:alpha:]]x"], "ax")).toBe(true);
    expect(m(["[[:alpha:]]x"], "1x")).toBe(false);
    // patternmatcher turns `*` inside brackets into `[^/]*`: `[*]` becomes `^[[^/]*]$`.
    expect(m(["[*]"], "[]")).toBe(true);
    expect(m(["[*]"], "*")).toBe(false);
    expect(m(["a[b-d]e"], "ace")).toBe(true);
    expect(m(["a[^b-d]e"], "ace")).toBe(false);
    expect(m(["[a-ζ]*"], "α")).toBe(true);
  });

  it("RE2 characters patternmatcher does not escape", () => {
    // `^` stays an anchor inside a regexp pattern: `a^*` can never match.
    expect(m(["a^*"], "a^")).toBe(false);
    // but a pattern without wildcards is an exact match, `^` included.
    expect(m(["a^b"], "a^b")).toBe(true);
    expect(m(["a.|)$(}+{bc"], "a.|)$(}+{bc")).toBe(true);
  });

  it("classification quirks: `**name` is a plain suffix, `name**` a plain prefix", () => {
    expect(m(["**foo"], "barfoo")).toBe(true);
    expect(m(["foo**"], "foobar/x")).toBe(true);
    expect(m(["dir/**"], "dir")).toBe(false);
    expect(m(["dir/**"], "dir/x")).toBe(true);
    expect(m(["**"], "anything/at/all")).toBe(true);
  });

  it("long patterns compile in linear time", () => {
    const t = performance.now();
    // Each `[:` inside the class makes RE2 look for a `:]` further on (there is none).
    const pm = new PatternMatcher([`[${"[:a".repeat(30_000)}]`, `b${"?*".repeat(200)}`]);
    expect(pm.matchesOrParentMatches(":")).toBe(true);
    expect(pm.matchesOrParentMatches(`b${"x".repeat(200)}`)).toBe(true);
    expect(pm.matchesOrParentMatches(`b${"x".repeat(199)}`)).toBe(false);
    // With a `:]` at the end, RE2 reads `[:...:]` as a POSIX class name, which does not exist.
    const bad = new PatternMatcher([`[${"[:".repeat(30_000)}]`]);
    const e = errorOf(() => bad.matchesOrParentMatches(":"));
    expect(isStrataError(e, "INVALID_ARGUMENT")).toBe(true);
    expect((e as Error).message.length).toBeLessThan(300);
    expect(performance.now() - t).toBeLessThan(2000);
  });

  it("matching time is linear in the path whatever the pattern", () => {
    const pm = new PatternMatcher([`${"*a".repeat(12)}*b`, `${"**/".repeat(12)}z`]);
    const file = `${"a".repeat(3000)}/${"a/".repeat(500)}c`;
    const t = performance.now();
    expect(pm.matchesOrParentMatches(file)).toBe(false);
    expect(performance.now() - t).toBeLessThan(1000);
  });
});

describe("matcher API", () => {
  it("the last applicable pattern wins; exceptions re-include inside excluded directories", () => {
    const pm = new PatternMatcher(
      readDockerignore("node_modules\n!node_modules/keep\n*.log\n!important.log\n"),
    );
    expect(pm.matchesOrParentMatches("node_modules")).toBe(true);
    expect(pm.matchesOrParentMatches("node_modules/x/y.js")).toBe(true);
    expect(pm.matchesOrParentMatches("node_modules/keep")).toBe(false);
    expect(pm.matchesOrParentMatches("node_modules/keep/deep/file")).toBe(false);
    expect(pm.matchesOrParentMatches("a.log")).toBe(true);
    expect(pm.matchesOrParentMatches("important.log")).toBe(false);
    expect(pm.matchesOrParentMatches("src/a.log")).toBe(false);
  });

  it("matches() is the deprecated helper: cleaned path, '.' never excluded", () => {
    const pm = new PatternMatcher(["*"]);
    expect(pm.matches(".")).toBe(false);
    expect(pm.matches("./a")).toBe(true);
    expect(pm.matches("a/b")).toBe(true);
  });

  it("incremental results follow BuildKit's walker where it differs from matchesOrParentMatches", () => {
    // The exception `!a` is not evaluated for `a` (nothing excluded yet), so its parent result is
    // "no match", and for `a/c` it is only tried against `a/c` itself.
    const pm = new PatternMatcher(["a/c", "!a"]);
    expect(pm.matchesOrParentMatches("a/c")).toBe(false);
    expect(incremental(pm, "a/c")).toBe(true);
  });

  it("mayMatchInside: fsutil's pruning rule", () => {
    expect(new PatternMatcher(["a"]).mayMatchInside("a")).toBe(false);
    const prefixes = new PatternMatcher(["a", "b", "!a/keep/**", "!c/d"]);
    expect(prefixes.mayMatchInside("a")).toBe(true);
    expect(prefixes.mayMatchInside("a/keep")).toBe(true);
    expect(prefixes.mayMatchInside("a/other")).toBe(false);
    expect(prefixes.mayMatchInside("b")).toBe(false);
    expect(prefixes.mayMatchInside("c")).toBe(true);
    // An exception with wildcards could match anywhere: no pruning at all.
    expect(new PatternMatcher(["a", "!**/*.keep"]).mayMatchInside("a")).toBe(true);
  });

  it("rejects a wrong-sized parent result", () => {
    const pm = new PatternMatcher(["a", "b"]);
    const e = errorOf(() => pm.matchesUsingParentResults("x", { parentMatched: new Uint8Array(1) }));
    expect(isStrataError(e, "INTERNAL")).toBe(true);
  });
});
