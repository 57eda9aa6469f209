import { describe, expect, it } from "vitest";
import { grammar } from "../../../src/reference/index.js";
import { label, loadCases } from "./cases.js";

interface RegexpCase {
  input: string;
  match: boolean;
  groups?: string[];
}
type Group = { description: string; cases: RegexpCase[] };
const data =
  loadCases<Record<"domainAndPort" | "anchoredName" | "reference" | "identifier", Group>>(
    "regexp-cases.json",
  );

const groups: [keyof typeof data, RegExp, number][] = [
  ["domainAndPort", grammar.domain, 30],
  ["anchoredName", grammar.name, 63],
  ["reference", grammar.reference, 12],
  ["identifier", grammar.identifier, 5],
];

describe("regexp-cases.json: the grammar (TestDomainRegexp, TestFullNameRegexp, TestReferenceRegexp, TestIdentifierRegexp)", () => {
  for (const [group, re, count] of groups) {
    describe(group, () => {
      it(`has the ${count} upstream cases`, () => expect(data[group].cases.length).toBe(count));
      data[group].cases.forEach((c, i) => {
        it(`#${i} ${label(c.input)} ${c.match ? "matches" : "does not match"}`, () => {
          const m = re.exec(c.input);
          expect(m !== null, `${group}.exec(${label(c.input)}) matched`).toBe(c.match);
          if (m !== null && c.groups !== undefined) {
            expect(
              m.slice(1).map((g) => g ?? ""),
              `${group}.exec(${label(c.input)}) groups`,
            ).toEqual(c.groups);
          }
        });
      });
    });
  }
});

describe("grammar (our own cases)", () => {
  it("tags: a word character first, then up to 127 of [\\w.-]", () => {
    const cases: [string, boolean][] = [
      ["latest", true],
      ["_x", true],
      ["1.0-rc.1", true],
      ["A".repeat(128), true],
      ["A".repeat(129), false],
      [".x", false],
      ["-x", false],
      ["a~b", false],
      ["é", false],
      ["", false],
    ];
    for (const [tag, want] of cases) expect(grammar.tag.test(tag), `tag.test(${label(tag)})`).toBe(want);
  });

  it("digests: an algorithm of letter-led parts, then 32 or more hex digits", () => {
    const cases: [string, boolean][] = [
      [`sha256:${"a".repeat(64)}`, true],
      [`SHA256:${"A".repeat(32)}`, true],
      [`sha256+b64u:${"0".repeat(32)}`, true],
      [`sha256:${"a".repeat(31)}`, false],
      [`256:${"a".repeat(32)}`, false],
      [`sha256:${"g".repeat(32)}`, false],
      [`sha256-:${"a".repeat(32)}`, false],
    ];
    for (const [d, want] of cases) expect(grammar.digest.test(d), `digest.test(${label(d)})`).toBe(want);
  });

  it("the composable sources build the anchored expressions", () => {
    expect(new RegExp(`^${grammar.source.domainAndPort}$`).source).toBe(grammar.domain.source);
    expect(new RegExp(`^${grammar.source.remoteName}$`).source).toBe(grammar.path.source);
    expect(new RegExp(`^(?:${grammar.source.name})$`).test("localhost:5000/a/b")).toBe(true);
  });

  it("answers in linear-looking time on long hostile input", () => {
    const hostile = [
      "a".repeat(20000) + "!",
      "a/".repeat(10000) + "!",
      "a-".repeat(10000) + "a:x/b",
      "a.".repeat(10000),
    ];
    const start = performance.now();
    for (const s of hostile) {
      grammar.reference.exec(s);
      grammar.name.exec(s);
      grammar.domain.exec(s);
    }
    expect(performance.now() - start).toBeLessThan(1000);
  });
});
