/**
 * Small text helpers that reproduce Go's definitions, so that the parser splits and trims exactly
 * where BuildKit does (Go's `unicode.IsSpace` is not JavaScript's `\s`).
 */

/** Go's `unicode.IsSpace`. */
export function isSpace(ch: string): boolean {
  const c = ch.codePointAt(0);
  if (c === undefined) return false;
  if (c <= 0xff) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0x85 || c === 0xa0;
  return (
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Go's `strings.TrimLeftFunc(s, unicode.IsSpace)`. */
export function trimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isSpace(s[i]!)) i++;
  return i === 0 ? s : s.slice(i);
}

/** Go's `strings.TrimRightFunc(s, unicode.IsSpace)`. */
export function trimRightSpace(s: string): string {
  let j = s.length;
  while (j > 0 && isSpace(s[j - 1]!)) j--;
  return j === s.length ? s : s.slice(0, j);
}

/** Go's `strings.TrimSpace`. */
export function trimSpace(s: string): string {
  return trimRightSpace(trimLeftSpace(s));
}

/** BuildKit's `reWhitespace`: runs of tab, VT, FF, CR and space (not newline, not Unicode spaces). */
export const RE_WHITESPACE = /[\t\v\f\r ]+/;
const RE_WHITESPACE_G = /[\t\v\f\r ]+/g;

/** Go's `reWhitespace.Split(s, -1)`. */
export function splitWhitespace(s: string): string[] {
  return s.split(RE_WHITESPACE_G);
}

/** Go's `reWhitespace.Split(s, 2)`. */
export function splitWhitespace2(s: string): string[] {
  const m = RE_WHITESPACE.exec(s);
  if (!m) return [s];
  return [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

/** Levenshtein distance (unit costs), as `agext/levenshtein.Distance(a, b, nil)`. */
export function levenshtein(a: string, b: string): number {
  const s = Array.from(a);
  const t = Array.from(b);
  if (s.length === 0) return t.length;
  if (t.length === 0) return s.length;
  let prev = new Array<number>(t.length + 1);
  let cur = new Array<number>(t.length + 1);
  for (let j = 0; j <= t.length; j++) prev[j] = j;
  for (let i = 1; i <= s.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[t.length]!;
}

function matchCase(val: string, orig: string): string {
  if (orig === orig.toLowerCase()) return val.toLowerCase();
  if (orig === orig.toUpperCase()) return val.toUpperCase();
  return val;
}

/**
 * BuildKit's `suggest.Search`: the closest option within edit distance 2, or undefined when
 * there is none or when `val` is itself one of the options. Options are tried in the order
 * given, and the first of equally close options wins.
 */
export function suggest(val: string, options: readonly string[], caseSensitive: boolean): string | undefined {
  const v = caseSensitive ? val : val.toLowerCase();
  let match: string | undefined;
  let minDist = 3;
  for (const o of options) {
    const opt = caseSensitive ? o : o.toLowerCase();
    if (v === opt) return undefined;
    const d = levenshtein(v, opt);
    if (d < minDist) {
      match = caseSensitive ? opt : matchCase(opt, val);
      minDist = d;
    }
  }
  return match;
}

/** `msg (did you mean X?)` when a suggestion exists, as BuildKit's `suggest.WrapError`. */
export function withSuggestion(
  msg: string,
  val: string,
  options: readonly string[],
  caseSensitive: boolean,
): string {
  const m = suggest(val, options, caseSensitive);
  return m === undefined ? msg : `${msg} (did you mean ${m}?)`;
}

/**
 * Go's `strconv.Quote`: the quoting used by BuildKit's AST dump and by `%q` in messages.
 * Printable Unicode stays as it is; control and non-printable characters are escaped.
 */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case "\\":
        out += "\\\\";
        continue;
      case "\x07":
        out += "\\a";
        continue;
      case "\b":
        out += "\\b";
        continue;
      case "\f":
        out += "\\f";
        continue;
      case "\n":
        out += "\\n";
        continue;
      case "\r":
        out += "\\r";
        continue;
      case "\t":
        out += "\\t";
        continue;
      case "\v":
        out += "\\v";
        continue;
    }
    if (c < 0x20 || c === 0x7f) {
      out += `\\x${c.toString(16).padStart(2, "0")}`;
    } else if (c === 0x20 || isGoPrintable(ch)) {
      out += ch;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      // A lone surrogate is not valid UTF-8; Go decodes it as U+FFFD, which is printable.
      out += "\uFFFD";
    } else if (c < 0x10000) {
      out += `\\u${c.toString(16).padStart(4, "0")}`;
    } else {
      out += `\\U${c.toString(16).padStart(8, "0")}`;
    }
  }
  return `${out}"`;
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go's `unicode.IsPrint` minus the ASCII space: letters, marks, numbers, punctuation, symbols. */
function isGoPrintable(ch: string): boolean {
  return PRINTABLE.test(ch);
}
