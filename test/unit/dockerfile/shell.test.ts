// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the inputs are shell words, not templates
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { envFromSlice, ShellLex } from "../../../src/dockerfile/shell.js";
import { isStrataError } from "../../../src/util/index.js";
import { TESTDATA } from "../../helpers/testdata.js";

const DIR = path.join(TESTDATA, "shell-lexer");

interface EnvVarRow {
  line: number;
  platform: string;
  input: string;
  expected: string;
}

/** envVarTest, read the way the upstream test reads it (see the folder README). */
function envVarRows(): EnvVarRow[] {
  const text = readFileSync(path.join(DIR, "envVarTest"), "utf8");
  const rows: EnvVarRow[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.startsWith("#")) return;
    const line = raw.trim();
    if (line === "") return;
    const fields = line.split("|");
    if (fields.length !== 3) throw new Error(`envVarTest line ${i + 1}: want 3 fields, got ${fields.length}`);
    const [platform, input, expected] = fields.map((f) => f.trim()) as [string, string, string];
    if (!["A", "U", "W"].includes(platform))
      throw new Error(`envVarTest line ${i + 1}: bad platform ${platform}`);
    rows.push({ line: i + 1, platform, input, expected });
  });
  return rows;
}

interface WordsRow {
  line: number;
  input: string;
  expected: string[];
  env: string[];
}

/** wordsTest: ENV lines accumulate; trailing spaces of values and expectations matter. */
function wordsRows(): WordsRow[] {
  const text = readFileSync(path.join(DIR, "wordsTest"), "utf8");
  const rows: WordsRow[] = [];
  const env: string[] = [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  lines.forEach((line, i) => {
    if (line.startsWith("#")) return;
    if (line.startsWith("ENV ")) {
      env.push(line.slice(3).replace(/^ +/, ""));
      return;
    }
    const parts = line.split("|");
    if (parts.length !== 2) throw new Error(`wordsTest line ${i + 1}: want exactly one |`);
    rows.push({
      line: i + 1,
      input: parts[0]!.trim(),
      expected: parts[1]!.replace(/^ +/, "").split(","),
      env: [...env],
    });
  });
  return rows;
}

const lexCases = JSON.parse(readFileSync(path.join(DIR, "lex-cases.json"), "utf8")) as {
  processWordWithMatches: {
    cases: {
      input: string;
      env: Record<string, string>;
      expected?: string;
      matched?: string[];
      unmatched?: string[];
      expectError?: boolean;
    }[];
  };
  mandatoryEnvVars: {
    cases: {
      input: string;
      env: string[];
      expected?: string;
      expectError?: boolean;
      errorContains?: string;
    }[];
  };
  platformTemplate: { input: string; cases: { env: Record<string, string>; expected: string }[] };
  envFromSlice: { cases: { env: string[]; lookup: string; expected: string }[] };
  shellPatternToRegex: { invalid: string[] };
  reversePattern: { cases: { pattern: string; reversed: string }[] };
};

const ENVVAR_ENV = new Map([
  ["PWD", "/home"],
  ["SHELL", "bash"],
  ["KOREAN", "한국어"],
  ["NULL", ""],
]);

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe("envVarTest (ProcessWord)", () => {
  const rows = envVarRows();
  it("has the rows the README announces", () => {
    expect(rows.length).toBe(230);
    expect(rows.filter((r) => r.platform === "W").length).toBe(2);
    expect(rows.filter((r) => r.expected === "error").length).toBe(36);
  });

  // Linux: A and U rows; W rows hold only on Windows (case-insensitive variable names).
  const linux = rows.filter((r) => r.platform !== "W");
  it.each(linux.map((r) => [r.line, r.input, r.expected] as const))(
    "line %i: %s → %s",
    (_l, input, expected) => {
      const lex = new ShellLex("\\");
      if (expected === "error") {
        const e = errorOf(() => lex.processWord(input, ENVVAR_ENV));
        expect(isStrataError(e, "INVALID_ARGUMENT"), `processWord(${JSON.stringify(input)}) must fail`).toBe(
          true,
        );
      } else {
        expect(lex.processWord(input, ENVVAR_ENV).result).toBe(expected);
      }
    },
  );
});

describe("wordsTest (ProcessWords)", () => {
  const rows = wordsRows();
  it("has 24 rows", () => expect(rows.length).toBe(24));
  it.each(rows.map((r) => [r.line, r.input, r] as const))("line %i: %s", (_l, input, row) => {
    const lex = new ShellLex("\\");
    let got: string[];
    try {
      got = lex.processWords(input, envFromSlice(row.env)).result;
    } catch (e) {
      expect(isStrataError(e, "INVALID_ARGUMENT")).toBe(true);
      got = ["error"];
    }
    expect(got).toEqual(row.expected);
  });
});

describe("lex-cases.json", () => {
  describe("processWordWithMatches", () => {
    it.each(lexCases.processWordWithMatches.cases.map((c, i) => [i, c.input, c] as const))(
      "#%i %s",
      (_i, input, c) => {
        const lex = new ShellLex("\\");
        const env = new Map(Object.entries(c.env));
        if (c.expectError) {
          const e = errorOf(() => lex.processWord(input, env));
          expect(
            isStrataError(e, "INVALID_ARGUMENT"),
            `processWord(${JSON.stringify(input)}) must fail`,
          ).toBe(true);
          return;
        }
        const got = lex.processWord(input, env);
        expect(got.result).toBe(c.expected);
        expect([...got.used].sort()).toEqual([...c.matched!].sort());
        expect([...got.unmatched].sort()).toEqual([...c.unmatched!].sort());
      },
    );
  });

  describe("mandatoryEnvVars", () => {
    it.each(lexCases.mandatoryEnvVars.cases.map((c, i) => [i, c.input, c] as const))(
      "#%i %s",
      (_i, input, c) => {
        const lex = new ShellLex("\\");
        const env = envFromSlice(c.env);
        if (c.expectError) {
          const e = errorOf(() => lex.processWord(input, env));
          expect(isStrataError(e, "INVALID_ARGUMENT")).toBe(true);
          expect((e as Error).message).toContain(c.errorContains!);
          return;
        }
        expect(lex.processWord(input, env).result).toBe(c.expected);
      },
    );
  });

  it("platformTemplate", () => {
    const lex = new ShellLex("\\");
    for (const c of lexCases.platformTemplate.cases) {
      expect(lex.processWord(lexCases.platformTemplate.input, new Map(Object.entries(c.env))).result).toBe(
        c.expected,
      );
    }
  });

  it("envFromSlice", () => {
    for (const c of lexCases.envFromSlice.cases) {
      expect(envFromSlice(c.env).get(c.lookup) ?? "").toBe(c.expected);
    }
    expect(envFromSlice(["foo"]).has("foo")).toBe(true);
  });

  it("shellPatternToRegex invalid escapes fail in ${VAR#pattern}", () => {
    // A pattern ending in a lone backslash cannot be written inside ${...} (it would escape the
    // closing brace); the others are invalid escapes both forwards (#) and reversed (%).
    const lex = new ShellLex("\\");
    const env = new Map([["V", "abc"]]);
    for (const pat of lexCases.shellPatternToRegex.invalid.filter((p) => !/(^|[^\\])(\\\\)*\\$/.test(p))) {
      for (const op of ["#", "##", "%", "%%", "/", "//"]) {
        const word = op.startsWith("/") ? `\${V${op}${pat}/x}` : `\${V${op}${pat}}`;
        const e = errorOf(() => lex.processWord(word, env));
        expect(isStrataError(e, "INVALID_ARGUMENT"), word).toBe(true);
        expect((e as Error).message, word).toMatch(
          /invalid pattern \(.*\) in substitution: invalid escape '\\/,
        );
      }
    }
  });

  it("reversePattern: suffix removal keeps escapes attached", () => {
    // a\*c reversed is c\*a: ${V%a\*c} removes a literal "a*c" suffix.
    const lex = new ShellLex("\\");
    expect(lex.processWord("${V%a\\*c}", new Map([["V", "xa*c"]])).result).toBe("x");
    expect(lex.processWord("${V%a\\*c}", new Map([["V", "xabc"]])).result).toBe("xabc");
    // 👽\🚀🖖 reversed is 🖖\🚀👽: an invalid escape of 🚀 either way.
    const e = errorOf(() => lex.processWord("${V%👽\\🚀🖖}", new Map([["V", "x"]])));
    expect((e as Error).message).toContain(
      "invalid pattern (🖖\\🚀👽) in substitution: invalid escape '\\🚀'",
    );
    expect(lexCases.reversePattern.cases.length).toBe(5);
  });
});

describe("error messages are BuildKit's", () => {
  const lex = new ShellLex("\\");
  const env = new Map([
    ["SET", "v"],
    ["EMPTY", ""],
  ]);
  it.each([
    ["${X", `failed to process "\${X": unsupported modifier (\uFFFD) in substitution`],
    ["${", `failed to process "\${": syntax error: missing '}'`],
    ["${}", `failed to process "\${}": syntax error: bad substitution`],
    ["${X:-a", `failed to process "\${X:-a": syntax error: missing '}'`],
    ["${X/a", `failed to process "\${X/a": syntax error: missing '/' in \${}`],
    ["${X/a/b", `failed to process "\${X/a/b": syntax error: missing '}'`],
    ["${X=a}", `failed to process "\${X=a}": unsupported modifier (=) in substitution`],
    ["${X:#a}", `failed to process "\${X:#a}": unsupported modifier (:#) in substitution`],
    ["${X:=a}", `failed to process "\${X:=a}": unsupported modifier (:=) in substitution`],
    ["${X?}", `failed to process "\${X?}": X: is not allowed to be unset`],
    ["${EMPTY:?}", `failed to process "\${EMPTY:?}": EMPTY: is not allowed to be empty`],
    ["${X:?custom $SET}", `failed to process "\${X:?custom $SET}": X: custom v`],
    ["'abc", `failed to process "'abc": unexpected end of statement while looking for matching single-quote`],
    [
      '"abc',
      `failed to process "\\"abc": unexpected end of statement while looking for matching double-quote`,
    ],
    [
      "${SET#\\x}",
      `failed to process "\${SET#\\\\x}": invalid pattern (\\x) in substitution: invalid escape '\\x'`,
    ],
  ])("%s", (input, message) => {
    const e = errorOf(() => lex.processWord(input, env));
    expect(isStrataError(e, "INVALID_ARGUMENT")).toBe(true);
    expect((e as Error).message).toBe(message);
  });
});

describe("expansion details", () => {
  const lex = new ShellLex("\\");
  const w = (input: string, env: Record<string, string> = {}) =>
    lex.processWord(input, new Map(Object.entries(env))).result;

  it("prefix and suffix removal pick the shortest or longest match", () => {
    const env = { P: "/usr/local/bin/tool.tar.gz" };
    expect(w("${P#*/}", env)).toBe("usr/local/bin/tool.tar.gz");
    expect(w("${P##*/}", env)).toBe("tool.tar.gz");
    expect(w("${P%.*}", env)).toBe("/usr/local/bin/tool.tar");
    expect(w("${P%%.*}", env)).toBe("/usr/local/bin/tool");
    expect(w("${P%/*}", env)).toBe("/usr/local/bin");
    expect(w("${P#nomatch}", env)).toBe(env.P);
    expect(w("${P#/usr}", env)).toBe("/local/bin/tool.tar.gz");
    expect(w("${P%gz}", env)).toBe("/usr/local/bin/tool.tar.");
  });

  it("glob wildcards do not cross newlines (RE2's `.`)", () => {
    expect(w("${V#*b}", { V: "a\nb" })).toBe("a\nb");
    expect(w("${V#a?b}", { V: "a\nb" })).toBe("a\nb");
    expect(w("${V##*b}", { V: "ab\nb" })).toBe("\nb");
    expect(w("${V//?/x}", { V: "a\nb" })).toBe("x\nx");
  });

  it("patterns count characters, not UTF-16 units", () => {
    expect(w("${V#?}", { V: "🚀x" })).toBe("x");
    expect(w("${V%?}", { V: "x🚀" })).toBe("x");
    expect(w("${V/?/-}", { V: "🚀🚀" })).toBe("-🚀");
  });

  it("replacement: first and all, empty matches, $ templates in the replace-all form", () => {
    expect(w("${V/o/0}", { V: "foo" })).toBe("f0o");
    expect(w("${V//o/0}", { V: "foo" })).toBe("f00");
    expect(w("${V//x*/-}", { V: "axbxc" })).toBe("a-");
    // An empty pattern matches at every position; Go skips an empty match right after another.
    expect(w("${V///-}", { V: "ab" })).toBe("-a-b-");
    expect(w("${V//*/-}", { V: "ab" })).toBe("-");
    // The replacement is scanned with raw escapes, so `\$0` reaches Go's template as `\` + `$0`.
    expect(w("${V//?/[\\$0]}", { V: "ab" })).toBe("[\\a][\\b]");
    expect(w("${V//?/$$}", { V: "ab" })).toBe("");
    expect(w("${V/?/\\$0}", { V: "ab" })).toBe("\\$0b");
    expect(w("${V//a/\\$}", { V: "ab" })).toBe("\\$b");
  });

  it("escape directive: backtick", () => {
    const tick = new ShellLex("`");
    const env = new Map([["A", "x"]]);
    expect(tick.processWord("a`$A", env).result).toBe("a$A");
    expect(tick.processWord("C:\\dir\\$A", env).result).toBe("C:\\dir\\x");
    expect(tick.processWord('"q`"q"', env).result).toBe('q"q');
    expect(tick.processWord("a``b", env).result).toBe("a`b");
    expect(tick.processWords("a` b c", env).result).toEqual(["a b", "c"]);
  });

  it("modes: raw quotes, raw escapes, skip unset, skip quote processing", () => {
    const env = new Map([["A", "x"]]);
    expect(new ShellLex("\\", { rawQuotes: true }).processWord(`"a $A" 'b'`, env).result).toBe(`"a x" 'b'`);
    expect(new ShellLex("\\", { rawEscapes: true }).processWord("a\\ b\\$A", env).result).toBe("a\\ b\\$A");
    const skip = new ShellLex("\\", { skipUnsetEnv: true });
    expect(skip.processWord("$A $B ${B} ${B:-d} ${B/x/y} ${B#p}", env).result).toBe(
      "x $B ${B} ${B:-d} ${B/x/y} ${B#p}",
    );
    expect(new ShellLex("\\", { skipProcessQuotes: true }).processWord(`"a $A"`, env).result).toBe(`"a x"`);
    const lexer = new ShellLex();
    lexer.rawQuotes = true;
    expect(lexer.processWords(`a "b c"`, env).result).toEqual(["a", `"b c"`]);
  });

  it("heredoc markers keep the space after << in the same word", () => {
    expect(lex.processWords("cat << EOF", new Map()).result).toEqual(["cat", "<< EOF"]);
    expect(lex.processWords("a<b", new Map()).result).toEqual(["a<b"]);
  });

  it("words: text before and after a nested default stays in the word", () => {
    // BuildKit >= v0.15 returns ["bc"] here (a shared buffer is reset by the nested scan); see
    // the note at the top of shell.ts.
    expect(lex.processWords("a${X:-b}c", new Map()).result).toEqual(["abc"]);
    expect(lex.processWords("80${X:-0}/tcp 443", new Map()).result).toEqual(["800/tcp", "443"]);
  });

  it("a leading byte-order mark is skipped, as Go's text/scanner does", () => {
    expect(w("\uFEFFa$A", { A: "b" })).toBe("ab");
  });

  it("used and unmatched", () => {
    const r = lex.processWord(
      "$A ${B:-$C} ${D}",
      new Map([
        ["A", "1"],
        ["C", "3"],
      ]),
    );
    expect([...r.used].sort()).toEqual(["A", "C"]);
    expect([...r.unmatched].sort()).toEqual(["B", "D"]);
  });
});

describe("limits", () => {
  it("256 levels of ${a:-${a:-...}} succeed quickly", () => {
    const depth = 256;
    const word = "${a:-".repeat(depth) + "x" + "}".repeat(depth);
    const t = performance.now();
    expect(new ShellLex().processWord(word, new Map()).result).toBe("x");
    expect(performance.now() - t).toBeLessThan(500);
  });

  it("deeper nesting (1000, 100,000 levels) fails cleanly and quickly, never with a stack overflow", () => {
    for (const depth of [257, 1000, 100_000]) {
      const word = "${a:-".repeat(depth) + "x" + "}".repeat(depth);
      const t = performance.now();
      const e = errorOf(() => new ShellLex().processWord(word, new Map()));
      expect(performance.now() - t).toBeLessThan(500);
      expect(isStrataError(e, "TOO_LARGE"), `depth ${depth}`).toBe(true);
      expect((e as Error).message).toMatch(/nested deeper than 256 levels/);
    }
    const quoted = '"${a:-'.repeat(50_000);
    expect(
      isStrataError(
        errorOf(() => new ShellLex().processWord(quoted, new Map())),
        "TOO_LARGE",
      ),
    ).toBe(true);
  });

  it("without the depth limit, running out of stack still fails cleanly", () => {
    const lex = new ShellLex("\\", { limits: { maxDepth: Number.MAX_SAFE_INTEGER } });
    const word = "${a:-".repeat(100_000) + "x" + "}".repeat(100_000);
    const e = errorOf(() => lex.processWord(word, new Map()));
    expect(isStrataError(e, "TOO_LARGE")).toBe(true);
    expect((e as Error).message).toMatch(/nested too deeply/);
  });

  it("input and output sizes are bounded", () => {
    const lex = new ShellLex("\\", { limits: { maxInputLength: 100, maxOutputLength: 1000 } });
    expect(
      isStrataError(
        errorOf(() => lex.processWord("a".repeat(101), new Map())),
        "TOO_LARGE",
      ),
    ).toBe(true);
    const env = new Map([["A", "x".repeat(100)]]);
    expect(lex.processWord("$A".repeat(10), env).result.length).toBe(1000);
    expect(
      isStrataError(
        errorOf(() => lex.processWord("$A".repeat(11), env)),
        "TOO_LARGE",
      ),
    ).toBe(true);
    expect(
      isStrataError(
        errorOf(() => lex.processWord("${A//?/$A}", env)),
        "TOO_LARGE",
      ),
    ).toBe(true);
  });

  it("glob matching is linear per pattern position, and bounded", () => {
    const value = "a".repeat(20_000);
    const lex = new ShellLex();
    const t = performance.now();
    // Exponential for a backtracking matcher; a few million steps here.
    expect(lex.processWord(`\${V#${"*a".repeat(20)}b}`, new Map([["V", value]])).result).toBe(value);
    expect(performance.now() - t).toBeLessThan(2000);
    const small = new ShellLex("\\", { limits: { maxPatternWork: 1000 } });
    expect(
      isStrataError(
        errorOf(() => small.processWord("${V#*b}", new Map([["V", value]]))),
        "TOO_LARGE",
      ),
    ).toBe(true);
  });

  it("the lexer is reusable and independent between calls", () => {
    const lex = new ShellLex();
    expect(
      isStrataError(
        errorOf(() => lex.processWord("${", new Map())),
        "INVALID_ARGUMENT",
      ),
    ).toBe(true);
    expect(lex.processWord("ok", new Map()).result).toBe("ok");
  });
});
