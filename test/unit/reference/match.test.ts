import { describe, expect, it } from "vitest";
import { pathMatch } from "../../../src/reference/index.js";
import { label, thrown } from "./cases.js";

// Go's path.Match semantics; `"error"` marks a malformed pattern.
const cases: [pattern: string, name: string, want: boolean | "error"][] = [
  ["abc", "abc", true],
  ["*", "abc", true],
  ["*c", "abc", true],
  ["a*", "a", true],
  ["a*", "abc", true],
  ["a*", "ab/c", false],
  ["a*/b", "abc/b", true],
  ["a*/b", "a/c/b", false],
  ["a*b*c*d*e*/f", "axbxcxdxe/f", true],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/f", true],
  ["a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/fff", false],
  ["a*b?c*x", "abxbbxdbxebxczzx", true],
  ["a*b?c*x", "abxbbxdbxebxczzy", false],
  ["ab[c]", "abc", true],
  ["ab[b-d]", "abc", true],
  ["ab[e-g]", "abc", false],
  ["ab[^c]", "abc", false],
  ["ab[^b-d]", "abc", false],
  ["ab[^e-g]", "abc", true],
  ["a\\*b", "a*b", true],
  ["a\\*b", "ab", false],
  ["a?b", "a☺b", true],
  ["a[^a]b", "a☺b", true],
  ["a???b", "a☺b", false],
  ["a[^a][^a][^a]b", "a☺b", false],
  ["[a-ζ]*", "α", true],
  ["*[a-ζ]", "A", false],
  ["a?b", "a/b", false],
  ["a*b", "a/b", false],
  ["[/]", "/", true],
  ["[\\]a]", "]", true],
  ["[\\-]", "-", true],
  ["[x\\-]", "x", true],
  ["[x\\-]", "-", true],
  ["[x\\-]", "z", false],
  ["[\\-x]", "x", true],
  ["[\\-x]", "-", true],
  ["[\\-x]", "a", false],
  ["*x", "xxx", true],
  ["**", "ab", true],
  ["foo/**/bar", "foo/a/bar", true],
  ["foo/**/bar", "foo/a/b/bar", false],
  ["", "", true],
  ["", "a", false],
  ["[]a]", "]", "error"],
  ["[-]", "-", "error"],
  ["[x-]", "x", "error"],
  ["[x-]", "-", "error"],
  ["[x-]", "z", "error"],
  ["[-x]", "x", "error"],
  ["[-x]", "-", "error"],
  ["[-x]", "a", "error"],
  ["\\", "a", "error"],
  ["[a-b-c]", "a", "error"],
  ["[", "a", "error"],
  ["[^", "a", "error"],
  ["[^bc", "a", "error"],
  ["a[", "a", "error"],
  ["a[", "ab", "error"],
  ["a[", "x", "error"],
  ["a/b[", "x", "error"],
  // Malformed after a part that already failed to match: still an error.
  ["x*[", "abc", "error"],
  ["abc*\\", "abc", "error"],
];

describe("pathMatch (Go's path.Match)", () => {
  cases.forEach(([pattern, name, want], i) => {
    it(`#${i} ${label(pattern)} vs ${label(name)}`, () => {
      const got = thrown(() => pathMatch(pattern, name));
      if (want === "error") {
        expect(got, `pathMatch(${label(pattern)}, ${label(name)})`).toEqual({
          code: "INVALID_ARGUMENT",
          message: "syntax error in pattern",
        });
        return;
      }
      expect(got, `pathMatch(${label(pattern)}, ${label(name)}) threw`).toBe("no error");
      expect(pathMatch(pattern, name), `pathMatch(${label(pattern)}, ${label(name)})`).toBe(want);
    });
  });
});
