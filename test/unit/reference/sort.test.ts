import { describe, expect, it } from "vitest";
import { compareCodePoints, sortReferences } from "../../../src/reference/index.js";
import { loadCases } from "./cases.js";

const data = loadCases<{ cases: { unsorted: string[]; expected: string[] }[] }>("sort-cases.json");

describe("sort-cases.json: sortReferences (TestReferenceSorting)", () => {
  it("has the 5 upstream cases", () => expect(data.cases.length).toBe(5));
  data.cases.forEach((c, i) => {
    it(`#${i}`, () => {
      expect(sortReferences(c.unsorted), `sortReferences(${JSON.stringify(c.unsorted)})`).toEqual(c.expected);
    });
  });
});

describe("sortReferences (our own cases)", () => {
  it("returns canonical strings, ranks by information, and keeps unparseable strings last in byte order", () => {
    const d = `sha256:${"a".repeat(64)}`;
    const got = sortReferences([
      "Bad Name",
      "busybox",
      `busybox@${d}`,
      "a".repeat(64),
      "busybox:1",
      "!x",
      "\u{1F600}",
      "\uFFFF",
    ]);
    expect(got).toEqual([
      "docker.io/library/busybox:1",
      `docker.io/library/busybox@${d}`,
      "docker.io/library/busybox",
      d,
      "!x",
      "Bad Name",
      "\uFFFF",
      "\u{1F600}",
    ]);
  });

  it("does not change its argument", () => {
    const refs = ["b:1", "a:1"];
    sortReferences(refs);
    expect(refs).toEqual(["b:1", "a:1"]);
  });

  it("compareCodePoints orders as Go compares strings (UTF-8 bytes), not by UTF-16 units", () => {
    expect(compareCodePoints("\uFFFF", "\u{1F600}")).toBeLessThan(0);
    expect("\uFFFF" < "\u{1F600}").toBe(false);
    expect(compareCodePoints("a", "ab")).toBeLessThan(0);
    expect(compareCodePoints("b", "b")).toBe(0);
  });
});
