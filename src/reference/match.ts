import { StrataError } from "../util/index.js";
import { familiarName, familiarString } from "./normalize.js";
import { type AnyReference, isNamed } from "./reference.js";

/** Go's path.ErrBadPattern message. */
export const BAD_PATTERN = "syntax error in pattern";

const SLASH = 0x2f;

type Item =
  | { readonly kind: "any" }
  | { readonly kind: "literal"; readonly cp: number }
  | {
      readonly kind: "class";
      readonly negated: boolean;
      readonly ranges: readonly (readonly [number, number])[];
    };

/** A run of single-character items, possibly preceded by `*`. */
interface Chunk {
  readonly star: boolean;
  readonly items: readonly Item[];
}

function badPattern(): StrataError {
  return new StrataError("INVALID_ARGUMENT", BAD_PATTERN);
}

const codePoints = (s: string): number[] => Array.from(s, (c) => c.codePointAt(0)!);

/**
 * Split a pattern into chunks and check all of it. Go's path.Match reports a malformed
 * pattern whatever the name, so checking everything first gives the same answers.
 */
function compile(pattern: string): Chunk[] {
  const p = codePoints(pattern);
  const chunks: Chunk[] = [];
  let i = 0;
  const at = (c: string): boolean => i < p.length && p[i] === c.codePointAt(0);
  // One character of a class: not `-` or `]` unless escaped, and never the pattern's end.
  const classChar = (): number => {
    if (i >= p.length || at("-") || at("]")) throw badPattern();
    if (at("\\")) {
      i++;
      if (i >= p.length) throw badPattern();
    }
    const cp = p[i++]!;
    if (i >= p.length) throw badPattern();
    return cp;
  };
  while (i < p.length) {
    let star = false;
    while (at("*")) {
      star = true;
      i++;
    }
    const items: Item[] = [];
    while (i < p.length && !at("*")) {
      if (at("?")) {
        items.push({ kind: "any" });
        i++;
      } else if (at("[")) {
        i++;
        const negated = at("^");
        if (negated) i++;
        const ranges: [number, number][] = [];
        while (!(at("]") && ranges.length > 0)) {
          const lo = classChar();
          let hi = lo;
          if (at("-")) {
            i++;
            hi = classChar();
          }
          ranges.push([lo, hi]);
        }
        i++;
        items.push({ kind: "class", negated, ranges });
      } else {
        if (at("\\")) {
          i++;
          if (i >= p.length) throw badPattern();
        }
        items.push({ kind: "literal", cp: p[i++]! });
      }
    }
    chunks.push({ star, items });
  }
  return chunks;
}

/** Match the items at `pos`; the position after them, or -1. */
function matchItems(items: readonly Item[], name: readonly number[], pos: number): number {
  for (const item of items) {
    if (pos >= name.length) return -1;
    const c = name[pos]!;
    if (item.kind === "any") {
      if (c === SLASH) return -1;
    } else if (item.kind === "literal") {
      if (c !== item.cp) return -1;
    } else {
      const inClass = item.ranges.some(([lo, hi]) => lo <= c && c <= hi);
      if (inClass === item.negated) return -1;
    }
    pos++;
  }
  return pos;
}

/**
 * Go's path.Match on code points: `*` is any run of characters other than `/`, `?` one
 * such character, `[...]` a class (`^` negates, `a-z` ranges, `\` escapes), `\c` the
 * character c. The whole name must match.
 *
 * @throws StrataError INVALID_ARGUMENT "syntax error in pattern" when the pattern is malformed
 */
export function pathMatch(pattern: string, name: string): boolean {
  const chunks = compile(pattern);
  const s = codePoints(name);
  let pos = 0;
  next: for (const [ci, chunk] of chunks.entries()) {
    const last = ci === chunks.length - 1;
    if (chunk.star && chunk.items.length === 0) return !s.slice(pos).includes(SLASH);
    // Each chunk takes the first place it matches; the last one must also end the name.
    const here = matchItems(chunk.items, s, pos);
    if (here >= 0 && (here === s.length || !last)) {
      pos = here;
      continue;
    }
    if (chunk.star) {
      for (let skip = pos; skip < s.length && s[skip] !== SLASH; skip++) {
        const end = matchItems(chunk.items, s, skip + 1);
        if (end < 0 || (last && end < s.length)) continue;
        pos = end;
        continue next;
      }
    }
    return false;
  }
  return pos === s.length;
}

/**
 * Whether a `reference=PATTERN` filter matches (reference.FamiliarMatch): the pattern
 * is tried against the familiar string (`ubuntu:22.04`), then against the familiar name
 * alone (`ubuntu`). Patterns use pathMatch syntax, so `*` does not cross `/`.
 *
 * @throws StrataError INVALID_ARGUMENT "syntax error in pattern" when the pattern is malformed
 */
export function familiarMatch(pattern: string, r: AnyReference): boolean {
  if (pathMatch(pattern, familiarString(r))) return true;
  return isNamed(r) && pathMatch(pattern, familiarName(r));
}
