import { describe, expect, it } from "vitest";
import { ERROR_CODES, StrataError } from "../../src/util/index.js";

describe("error codes", () => {
  it("each code has a kind and a doc line", () => {
    for (const [code, v] of Object.entries(ERROR_CODES)) {
      expect(v.doc.length, code).toBeGreaterThan(10);
      expect(new StrataError(code as keyof typeof ERROR_CODES, "x").kind).toBe(v.kind);
    }
  });
  it("codes are unique SCREAMING_CASE names", () => {
    const codes = Object.keys(ERROR_CODES);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^[A-Z][A-Z_]+$/);
  });
});
