import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  chompHeredocContent,
  DirectiveParser,
  DockerfileParseError,
  detectSyntax,
  heredocsFromLine,
  parseDirective,
  parseDockerfile,
  parseHeredocWord,
  parseJSONArray,
  parseWords,
} from "../../../src/dockerfile/index.js";
import { TESTDATA } from "../../helpers/testdata.js";
import { dump } from "./dump.js";

const DIR = path.join(TESTDATA, "dockerfile-parser");
const json = <T>(p: string): T => JSON.parse(readFileSync(path.join(DIR, p), "utf8")) as T;

describe("dockerfile-parser cases/ (AST dump)", () => {
  const cases = readdirSync(path.join(DIR, "cases")).sort();
  it("has the 33 cases", () => expect(cases).toHaveLength(33));
  for (const name of cases) {
    it(name, () => {
      const input = readFileSync(path.join(DIR, "cases", name, "Dockerfile"));
      const want = readFileSync(path.join(DIR, "cases", name, "result"), "utf8").replace(/\r\n/g, "\n");
      expect(dump(parseDockerfile(input))).toBe(want);
    });
  }
});

describe("dockerfile-parser negative/", () => {
  const cases = readdirSync(path.join(DIR, "negative")).sort();
  it("has the 4 cases", () => expect(cases).toHaveLength(4));
  const reasons: Record<string, RegExp> = {
    empty_dockerfile: /file with no instructions/,
    only_comments: /file with no instructions/,
    env_no_value: /ENV must have two arguments/,
    "shykes-nested-json": /when using JSON array syntax, arrays must be comprised of strings only/,
  };
  for (const name of cases) {
    it(name, () => {
      const input = readFileSync(path.join(DIR, "negative", name, "Dockerfile"));
      let err: unknown;
      try {
        parseDockerfile(input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DockerfileParseError);
      expect((err as Error).message).toMatch(reasons[name]!);
    });
  }
});

describe("parse-words.json", () => {
  const data = json<{ cases: { input: string; expect: string[] }[] }>("parse-words.json");
  for (const c of data.cases) {
    it(JSON.stringify(c.input), () => expect(parseWords(c.input, "\\")).toEqual(c.expect));
  }
});

describe("json-arrays.json", () => {
  const data = json<{ valid: { input: string; expect: string[] }[]; invalidNotStringArray: string[] }>(
    "json-arrays.json",
  );
  for (const c of data.valid) {
    it(`valid ${JSON.stringify(c.input)}`, () => expect(parseJSONArray(c.input)).toEqual(c.expect));
  }
  for (const input of data.invalidNotStringArray) {
    it(`invalid ${JSON.stringify(input)}`, () => {
      expect(() => parseJSONArray(input)).toThrow(
        "when using JSON array syntax, arrays must be comprised of strings only",
      );
      // …and in a Dockerfile it is an error, not a fallback to the shell form.
      expect(() => parseDockerfile(`FROM a\nCMD ${input}\n`)).toThrow(/Dockerfile:2: when using JSON array/);
    });
  }
});

describe("directives.json", () => {
  interface Found {
    input: string;
    found: boolean;
    value?: string;
    cmdline?: string;
    line?: number;
  }
  const data = json<{
    parseAll: { cases: { input: string; directives: { name: string; value: string }[] }[] };
    detectSyntax: { cases: Found[] };
    parseDirective: { key: string; cases: Found[] };
  }>("directives.json");

  data.parseAll.cases.forEach((c, i) => {
    it(`parseAll #${i}`, () => {
      const got = new DirectiveParser().parseAll(c.input).map((d) => ({ name: d.name, value: d.value }));
      expect(got).toEqual(c.directives);
    });
  });

  const check = (got: ReturnType<typeof detectSyntax>, c: Found) => {
    if (!c.found) {
      expect(got).toBeUndefined();
      return;
    }
    expect(got).toBeDefined();
    if (c.value !== undefined) expect(got!.value).toBe(c.value);
    if (c.cmdline !== undefined) expect(got!.cmdline).toBe(c.cmdline);
    if (c.line !== undefined) expect(got!.line).toBe(c.line);
  };
  data.detectSyntax.cases.forEach((c, i) => {
    it(`detectSyntax #${i} ${JSON.stringify(c.input)}`, () => check(detectSyntax(c.input), c));
  });
  data.parseDirective.cases.forEach((c, i) => {
    it(`parseDirective(${data.parseDirective.key}) #${i}`, () =>
      check(parseDirective(data.parseDirective.key, c.input), c));
  });
});

describe("heredoc/", () => {
  interface H {
    name: string;
    content: string;
    expand: boolean;
    chomp: boolean;
    fileDescriptor: number;
  }
  const data = json<{
    extractsHeredoc: { children: { childIndex: number; heredocs: H[] | null }[] };
    chompHeredocContent: { input: string; expect: string }[];
    parseHeredocWord: { valid: string[]; invalid: string[]; notHeredoc: string[] };
    heredocsFromLine: { cases: { line: string; names: string[] | null }[] };
  }>("heredoc/expected.json");

  it("extracts the heredocs of heredoc/Dockerfile", () => {
    const r = parseDockerfile(readFileSync(path.join(DIR, "heredoc", "Dockerfile")));
    for (const c of data.extractsHeredoc.children) {
      expect(r.children[c.childIndex]!.heredocs, `child ${c.childIndex}`).toEqual(c.heredocs ?? []);
    }
    // `USER <<INVALID` starts no heredoc, so the next line is an instruction of its own.
    expect(r.children[3]!.value).toBe("USER");
    expect(r.children[4]!.value).toBe("INVALID");
    expect(r.children).toHaveLength(28);
  });

  it("has no heredoc in JSON form", () => {
    const r = parseDockerfile(readFileSync(path.join(DIR, "heredoc", "json-form.Dockerfile")));
    for (const i of [1, 2, 3]) expect(r.children[i]!.heredocs).toEqual([]);
  });

  for (const c of data.chompHeredocContent) {
    it(`chomps ${JSON.stringify(c.input)}`, () => expect(chompHeredocContent(c.input)).toBe(c.expect));
  }
  for (const w of data.parseHeredocWord.valid) {
    it(`heredoc word ${JSON.stringify(w)}`, () => expect(parseHeredocWord(w)?.name).toBe("EOF"));
  }
  for (const w of data.parseHeredocWord.invalid) {
    it(`bad heredoc word ${JSON.stringify(w)}`, () => expect(() => parseHeredocWord(w)).toThrow());
  }
  for (const w of data.parseHeredocWord.notHeredoc) {
    it(`not a heredoc ${JSON.stringify(w)}`, () => expect(parseHeredocWord(w)).toBeUndefined());
  }
  for (const c of data.heredocsFromLine.cases) {
    it(`heredocs in ${JSON.stringify(c.line)}`, () =>
      expect(heredocsFromLine(c.line).map((h) => h.name)).toEqual(c.names ?? []));
  }
});

describe("line-info/", () => {
  const data = json<{
    root: { startLine: number; endLine: number };
    childCount: number;
    children: number[][];
  }>("line-info/expected.json");
  it("gives start and end lines", () => {
    const r = parseDockerfile(readFileSync(path.join(DIR, "line-info", "Dockerfile")));
    expect({ startLine: r.startLine, endLine: r.endLine }).toEqual(data.root);
    expect(r.children).toHaveLength(data.childCount);
    expect(r.children.map((c) => [c.startLine, c.endLine])).toEqual(data.children);
  });
});

describe("warnings/", () => {
  const data = json<{
    cases: {
      dockerfile?: string;
      warningCount?: number;
      warnings?: { shortContains: string[]; detailContains?: string }[];
      generated?: { template: string; A: string };
      error?: string;
    }[];
  }>("warnings/expected.json");

  it("warns on empty continuation lines", () => {
    const c = data.cases[0]!;
    const r = parseDockerfile(readFileSync(path.join(DIR, "warnings", c.dockerfile!)));
    expect(r.warnings).toHaveLength(c.warningCount!);
    c.warnings!.forEach((w, i) => {
      for (const s of w.shortContains) expect(r.warnings[i]!.short).toContain(s);
      if (w.detailContains) expect(r.warnings[i]!.detail).toContain(w.detailContains);
    });
  });

  it("refuses a line over 65535 bytes", () => {
    const c = data.cases[1]!;
    const text = c.generated!.template.replace("<A>", "a".repeat(65536));
    expect(() => parseDockerfile(text)).toThrow(c.error!);
  });
});
