import { isStrataError } from "../util/index.js";
import { parseAnyReference } from "./normalize.js";
import { type AnyReference, isNamed, referenceString } from "./reference.js";

/** Rank by information content: 1 name+tag+digest, 2 name+tag, 3 name+digest, 4 name, 5 digest. */
function rank(r: AnyReference): number {
  if (!isNamed(r)) return 5;
  if (r.tag !== undefined) return r.digest !== undefined ? 1 : 2;
  return r.digest !== undefined ? 3 : 4;
}

/** Go's string order: by code point (UTF-8 byte order), not by UTF-16 code unit. */
export function compareCodePoints(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/**
 * Sort references, most informative first (reference.Sort): each string is parsed with
 * parseAnyReference and comes back in its canonical form (`busybox` becomes
 * `docker.io/library/busybox`). Within a rank the order is by that string. Strings that
 * do not parse come last, unchanged and in string order.
 */
export function sortReferences(refs: readonly string[]): string[] {
  const parsed: { rank: number; text: string }[] = [];
  const bad: string[] = [];
  for (const s of refs) {
    let r: AnyReference;
    try {
      r = parseAnyReference(s);
    } catch (e) {
      if (!isStrataError(e, "INVALID_REFERENCE")) throw e;
      bad.push(s);
      continue;
    }
    parsed.push({ rank: rank(r), text: referenceString(r) });
  }
  parsed.sort((a, b) => a.rank - b.rank || compareCodePoints(a.text, b.text));
  bad.sort(compareCodePoints);
  return [...parsed.map((p) => p.text), ...bad];
}
