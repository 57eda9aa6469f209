import { readFileSync } from "node:fs";
import path from "node:path";
import { isStrataError } from "../../../src/util/index.js";
import { TESTDATA } from "../../helpers/testdata.js";

/** Read one of the shared reference data files in place. */
export function loadCases<T>(file: string): T {
  return JSON.parse(readFileSync(path.join(TESTDATA, "reference", file), "utf8")) as T;
}

/** The code and message of what `fn` throws, or "no error" so a diff shows got and want. */
export function thrown(fn: () => unknown): { code: string; message: string } | "no error" {
  try {
    fn();
  } catch (e) {
    if (isStrataError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  return "no error";
}

/** A short label for a test title; long inputs are cut. */
export function label(s: string): string {
  const q = JSON.stringify(s);
  return q.length > 70 ? `${q.slice(0, 60)}…(${s.length} chars)` : q;
}
