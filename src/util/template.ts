/**
 * Go's text/template as Docker's `--format` flags use it: the lexer, parser and executor of
 * text/template (Go 1.23), Go's fmt for printing values and for printf, Docker's template
 * functions (json, split, join, title, lower, upper, pad, truncate) and the docker/cli table
 * formatter with its tabwriter. Messages follow Go's wording, e.g.
 * `template: :1: function "foo" not defined` or
 * `template: :1:7: executing "" at <join .A>: error calling join: ...`.
 *
 * Value model. Templates run over plain JS data (parsed JSON), read the way Go reads JSON decoded
 * into interface{} values, with Docker's typed shapes where plain data is ambiguous:
 *  - objects are maps: `.Key` reads an own key; %v prints `map[k:v k2:v2]` with sorted keys; a
 *    missing key (or a key whose value is `undefined`) is Go's invalid value, printed `<no value>`;
 *  - arrays are slices, printed `[a b c]`; strings and booleans are Go's; a number with an integral
 *    value is an int, any other number a float64 (%v prints strconv's shortest 'g': 0.5, 1.5e+06);
 *  - `null` is a nil pointer: printed `<nil>`, false in `if`, empty in `range`, `null` in `json`,
 *    and reading a field through it fails ("nil pointer evaluating interface {}.X");
 *  - NIL_SLICE and NIL_MAP (or another GoNil) stand for Go's typed nil slice and map, which print
 *    `[]` and `map[]` where a JSON null would print `<nil>`; use them for fields Go declares as
 *    slices or maps (Config.Cmd, Config.Labels, ...);
 *  - goStruct(obj, "T") marks an object as a Go struct: %v prints its fields as `{a b}` in key
 *    order (`&{a b}` if T starts with "*") and reading a field it lacks fails as in Go
 *    ("can't evaluate field X in type T");
 *  - an array whose elements are all strings is typed []string, an object whose values are all
 *    strings map[string]string (what Docker's tag lists and label maps are): `join` takes the
 *    former, and `index` of a key missing from the latter yields "" as it does in Docker.
 * `json` writes objects' keys in their JS order (Go structs keep field order) and, like Docker's
 * json function, does not HTML-escape unless TemplateOptions.jsonEscapeHTML is set.
 */

import { StrataError } from "./errors.js";

// ---------------------------------------------------------------------------------------------
// Public value model

/** A typed nil slice or map (Go's `[]string(nil)`, `map[string]string(nil)`). */
export class GoNil {
  constructor(
    readonly kind: "slice" | "map",
    /** The Go type, used in messages and to pick the zero value of a missing map key. */
    readonly typeName: string,
  ) {
    Object.freeze(this);
  }

  toJSON(): null {
    return null;
  }
}

/** A nil []string: prints `[]`, `json` null, len 0. */
export const NIL_SLICE: GoNil = new GoNil("slice", "[]string");
/** A nil map[string]string: prints `map[]`, `json` null, len 0, `index` of any key "". */
export const NIL_MAP: GoNil = new GoNil("map", "map[string]string");

const structTypes = new WeakMap<object, string>();

/**
 * Mark `fields` as a value of Go struct type `typeName` (e.g. "*formatter.imageContext") and
 * return it. Own keys and getters are its fields, in key order.
 */
export function goStruct<T extends object>(fields: T, typeName: string): T {
  structTypes.set(fields, typeName);
  return fields;
}

export interface TemplateOptions {
  /**
   * Go's Option("missingkey=..."): what reading a key a map lacks yields. "default" (Go's
   * invalid value, printed `<no value>`), "zero" (the zero of the map's element type) or "error".
   */
  missingKey?: "default" | "zero" | "error";
  /** Escape <, > and & in `json` output as json.Marshal does. Docker's `json` does not. */
  jsonEscapeHTML?: boolean;
}

/** A parsed template; execute it as many times as needed. */
export interface Template {
  /** Render against `data`; throws StrataError TEMPLATE_ERROR where Go's Execute fails. */
  execute(data: unknown): string;
}

// ---------------------------------------------------------------------------------------------
// Value helpers

/** A float64 with an integral value, as the literal `1.0` makes. */
class GoFloat {
  constructor(readonly value: number) {}
}

type Obj = Record<string, unknown>;
type Kind = "invalid" | "nil" | "bool" | "int" | "float" | "string" | "slice" | "map" | "struct" | "other";

function kindOf(v: unknown): Kind {
  switch (typeof v) {
    case "string":
      return "string";
    case "number":
      return Number.isInteger(v) ? "int" : "float";
    case "boolean":
      return "bool";
    case "undefined":
      return "invalid";
    case "object":
      if (v === null) return "nil";
      if (Array.isArray(v)) return "slice";
      if (v instanceof GoNil) return v.kind;
      if (v instanceof GoFloat) return "float";
      return structTypes.has(v) ? "struct" : "map";
    default:
      return "other";
  }
}

function num(v: unknown): number {
  return v instanceof GoFloat ? v.value : (v as number);
}

function isStr(v: unknown): boolean {
  return typeof v === "string";
}

function sliceItems(v: unknown): readonly unknown[] {
  return v instanceof GoNil ? [] : (v as unknown[]);
}

function mapGet(m: unknown, key: string): unknown {
  if (m instanceof GoNil) return undefined;
  const o = m as Obj;
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function mapKeys(m: unknown): string[] {
  if (m instanceof GoNil) return [];
  const o = m as Obj;
  return Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort(compareGoStrings);
}

function structGet(s: Obj, key: string): { ok: boolean; value: unknown } {
  if (Object.hasOwn(s, key) || (key in s && !(key in Object.prototype))) return { ok: true, value: s[key] };
  return { ok: false, value: undefined };
}

/** The Go type name of a value, as %T and messages print it. */
function typeName(v: unknown): string {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return "interface {}";
    case "bool":
      return "bool";
    case "int":
      return "int";
    case "float":
      return "float64";
    case "string":
      return "string";
    case "slice":
      if (v instanceof GoNil) return v.typeName;
      return (v as unknown[]).every(isStr) ? "[]string" : "[]interface {}";
    case "map":
      if (v instanceof GoNil) return v.typeName;
      return Object.values(v as Obj).every((x) => x === undefined || typeof x === "string")
        ? "map[string]string"
        : "map[string]interface {}";
    case "struct":
      return structTypes.get(v as object)!;
    default:
      return typeof v;
  }
}

/** The zero value of a map's element type, for `index` and missingkey=zero. */
function mapZero(m: unknown): unknown {
  const t = typeName(m);
  const elem = t.startsWith("map[") ? t.slice(t.indexOf("]") + 1) : "";
  switch (elem) {
    case "string":
      return "";
    case "bool":
      return false;
    case "int":
    case "int64":
    case "uint64":
      return 0;
    case "float64":
      return new GoFloat(0);
    default:
      return elem.startsWith("[]")
        ? new GoNil("slice", elem)
        : elem.startsWith("map[")
          ? new GoNil("map", elem)
          : undefined;
  }
}

/** Go's truth: not the zero value of its type. */
function truth(v: unknown): boolean {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return false;
    case "bool":
      return v as boolean;
    case "int":
    case "float":
      return num(v) !== 0;
    case "string":
      return (v as string).length > 0;
    case "slice":
      return sliceItems(v).length > 0;
    case "map":
      return mapKeys(v).length > 0;
    default:
      return true;
  }
}

/** Byte order of the UTF-8 encodings, which is code point order. */
function compareGoStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1;
      return x - y;
    }
  }
  return a.length - b.length;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 and Unicode helpers

const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;
const PRINT_RE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
/** unicode.IsSpace above Latin-1 plus U+0085 and U+00A0 (JS \s differs at U+0085 and U+FEFF). */
const SPACE_RE = /^[\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/;
const LETTER_OR_DIGIT_RE = /^[\p{L}\p{Nd}]$/u;

function utf8Len(s: string): number {
  return ASCII_PRINTABLE.test(s) ? s.length : Buffer.byteLength(s, "utf8");
}

function utf8Bytes(s: string): Uint8Array {
  return Buffer.from(s, "utf8");
}

const utf8Decoder = new TextDecoder("utf-8");
function utf8Decode(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}

function runeCount(s: string): number {
  if (ASCII_PRINTABLE.test(s)) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
function isPrint(r: number): boolean {
  if (r < 0x80) return r >= 0x20 && r < 0x7f;
  if (r >= 0xd800 && r <= 0xdfff) return false;
  return PRINT_RE.test(String.fromCodePoint(r));
}

function hex(n: number, width: number, upper = false): string {
  const s = n.toString(16).padStart(width, "0");
  return upper ? s.toUpperCase() : s;
}

/** strconv.Quote (or QuoteToASCII); `q` is the quote character. */
function goQuoteWith(s: string, q: '"' | "'", asciiOnly: boolean): string {
  let out = q;
  for (const ch of s) {
    const r = ch.codePointAt(0)!;
    if (ch === q || r === 0x5c) {
      out += `\\${ch}`;
    } else if (asciiOnly ? r < 0x80 && isPrint(r) : isPrint(r)) {
      out += ch;
    } else {
      switch (r) {
        case 7:
          out += "\\a";
          break;
        case 8:
          out += "\\b";
          break;
        case 12:
          out += "\\f";
          break;
        case 10:
          out += "\\n";
          break;
        case 13:
          out += "\\r";
          break;
        case 9:
          out += "\\t";
          break;
        case 11:
          out += "\\v";
          break;
        default:
          if (r < 0x20 || r === 0x7f) out += `\\x${hex(r, 2)}`;
          else if (r >= 0xd800 && r <= 0xdfff) out += "\\ufffd";
          else if (r < 0x10000) out += `\\u${hex(r, 4)}`;
          else out += `\\U${hex(r, 8)}`;
      }
    }
  }
  return out + q;
}

function goQuote(s: string): string {
  return goQuoteWith(s, '"', false);
}

/** fmt's %#U: "U+0041 'A'". */
function unicodeSharp(r: number): string {
  const base = `U+${hex(r, 4, true)}`;
  return isPrint(r) ? `${base} '${String.fromCodePoint(r)}'` : base;
}

function canBackquote(s: string): boolean {
  for (const ch of s) {
    const r = ch.codePointAt(0)!;
    if ((r < 0x20 && r !== 9) || r === 0x60 || r === 0x7f || r === 0xfeff || (r >= 0xd800 && r <= 0xdfff))
      return false;
  }
  return true;
}

/** unicode.ToUpper / ToLower / ToTitle: the simple (one rune to one rune) case mappings. */
function mapRunes(s: string, f: (ch: string) => string): string {
  let out = "";
  for (const ch of s) out += f(ch);
  return out;
}

function simpleUpper(ch: string): string {
  const u = ch.toUpperCase();
  if (u.length === ch.length || [...u].length === 1) return u;
  // Greek with ypogegrammeni: the full mapping is two letters, the simple one the titlecase form.
  const r = ch.codePointAt(0)!;
  if (r >= 0x1f80 && r <= 0x1faf && (r & 0xf) < 8) return String.fromCodePoint(r + 8);
  if (r === 0x1fb3 || r === 0x1fc3 || r === 0x1ff3) return String.fromCodePoint(r + 9);
  return ch;
}

function simpleLower(ch: string): string {
  if (ch === "\u0130") return "i";
  const l = ch.toLowerCase();
  return l.length === ch.length || [...l].length === 1 ? l : ch;
}

const TITLE_DIGRAPHS: Record<string, string> = {
  "\u01c4": "\u01c5",
  "\u01c5": "\u01c5",
  "\u01c6": "\u01c5",
  "\u01c7": "\u01c8",
  "\u01c8": "\u01c8",
  "\u01c9": "\u01c8",
  "\u01ca": "\u01cb",
  "\u01cb": "\u01cb",
  "\u01cc": "\u01cb",
  "\u01f1": "\u01f2",
  "\u01f2": "\u01f2",
  "\u01f3": "\u01f2",
};

function goUpper(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s.toUpperCase() : mapRunes(s, simpleUpper);
}

function goLower(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s.toLowerCase() : mapRunes(s, simpleLower);
}

/** strings.Title: upper-case (title-case) the first letter of each word. */
function goTitle(s: string): string {
  let prev = " ";
  return mapRunes(s, (ch) => {
    const sep = isSeparator(prev);
    prev = ch;
    return sep ? (TITLE_DIGRAPHS[ch] ?? simpleUpper(ch)) : ch;
  });
}

function isSeparator(ch: string): boolean {
  const r = ch.codePointAt(0)!;
  if (r <= 0x7f) {
    return !((r >= 0x30 && r <= 0x39) || (r >= 0x41 && r <= 0x5a) || (r >= 0x61 && r <= 0x7a) || r === 0x5f);
  }
  if (LETTER_OR_DIGIT_RE.test(ch)) return false;
  return SPACE_RE.test(ch);
}

// ---------------------------------------------------------------------------------------------
// strconv.FormatFloat

/** A decimal 0.d × 10^dp, as strconv's decimal type: no leading or trailing zeros ("" is 0). */
interface Dec {
  d: string;
  dp: number;
}

function trimDec(d: string, dp: number): Dec {
  let end = d.length;
  while (end > 0 && d[end - 1] === "0") end--;
  let start = 0;
  while (start < end && d[start] === "0") start++;
  if (start === end) return { d: "", dp: 0 };
  return { d: d.slice(start, end), dp: dp - start };
}

/** The shortest digits that read back as x (x finite, >= 0). */
function shortestDec(x: number): Dec {
  if (x === 0) return { d: "", dp: 0 };
  const [m, e] = x.toExponential().split("e") as [string, string];
  return trimDec(m.replace(".", ""), Number(e) + 1);
}

/** Every digit of x's exact binary value (x finite, >= 0). */
function exactDec(x: number): Dec {
  if (x === 0) return { d: "", dp: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let e: number;
  if (expBits === 0) e = -1074;
  else {
    mant |= 1n << 52n;
    e = expBits - 1075;
  }
  if (e >= 0) {
    const d = (mant << BigInt(e)).toString();
    return trimDec(d, d.length);
  }
  const d = (mant * 5n ** BigInt(-e)).toString();
  return trimDec(d, d.length + e);
}

/** strconv's decimal.Round: to nd digits, halfway cases to even. */
function roundDec(a: Dec, nd: number): Dec {
  if (nd < 0 || nd >= a.d.length) return a;
  const c = a.d.charCodeAt(nd);
  let up: boolean;
  if (c === 0x35 && nd + 1 === a.d.length) up = nd > 0 && (a.d.charCodeAt(nd - 1) - 0x30) % 2 === 1;
  else up = c >= 0x35;
  if (!up) return trimDec(a.d.slice(0, nd), a.dp);
  for (let i = nd - 1; i >= 0; i--) {
    const ci = a.d.charCodeAt(i);
    if (ci < 0x39) return { d: a.d.slice(0, i) + String.fromCharCode(ci + 1), dp: a.dp };
  }
  return { d: "1", dp: a.dp + 1 };
}

function fmtE(neg: boolean, d: Dec, prec: number, fmt: string): string {
  let s = neg ? "-" : "";
  s += d.d.length === 0 ? "0" : d.d[0];
  if (prec > 0) {
    s += ".";
    const m = Math.min(d.d.length, prec + 1);
    let i = 1;
    if (i < m) {
      s += d.d.slice(i, m);
      i = m;
    }
    for (; i <= prec; i++) s += "0";
  }
  s += fmt;
  let exp = d.d.length === 0 ? 0 : d.dp - 1;
  s += exp < 0 ? "-" : "+";
  exp = Math.abs(exp);
  return s + (exp < 10 ? `0${exp}` : String(exp));
}

function fmtF(neg: boolean, d: Dec, prec: number): string {
  let s = neg ? "-" : "";
  if (d.dp > 0) {
    const m = Math.min(d.d.length, d.dp);
    s += d.d.slice(0, m) + "0".repeat(d.dp - m);
  } else {
    s += "0";
  }
  if (prec > 0) {
    s += ".";
    for (let i = 1; i <= prec; i++) {
      const j = d.dp + i - 1;
      s += j >= 0 && j < d.d.length ? d.d[j] : "0";
    }
  }
  return s;
}

function floatBits(x: number): { neg: boolean; mant: bigint; exp: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  let exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  if (exp === 0) exp++;
  else mant |= 1n << 52n;
  return { neg: bits >> 63n === 1n, mant, exp: exp - 1023 };
}

/** strconv's %b: mantissa "p" binary exponent. */
function fmtB(x: number): string {
  const { neg, mant, exp } = floatBits(x);
  const e = exp - 52;
  return `${neg ? "-" : ""}${mant}p${e >= 0 ? "+" : ""}${e}`;
}

/** strconv's %x: -0x1.yyyyp±dd. */
function fmtX(x: number, prec: number, fmt: string): string {
  const b = floatBits(x);
  let mant = b.mant;
  let exp = mant === 0n ? 0 : b.exp;
  mant <<= 8n;
  while (mant !== 0n && (mant & (1n << 60n)) === 0n) {
    mant <<= 1n;
    exp--;
  }
  if (prec >= 0 && prec < 15) {
    const shift = BigInt(prec * 4);
    const extra = (mant << shift) & ((1n << 60n) - 1n);
    mant >>= 60n - shift;
    if ((extra | (mant & 1n)) > 1n << 59n) mant++;
    mant <<= 60n - shift;
    if ((mant & (1n << 61n)) !== 0n) {
      mant >>= 1n;
      exp++;
    }
  }
  const digits = fmt === "X" ? UDIGITS : LDIGITS;
  let s = `${b.neg ? "-" : ""}0${fmt}${(mant >> 60n) & 1n}`;
  mant = (mant << 4n) & ((1n << 64n) - 1n);
  if (prec < 0 && mant !== 0n) {
    s += ".";
    while (mant !== 0n) {
      s += digits[Number((mant >> 60n) & 15n)];
      mant = (mant << 4n) & ((1n << 64n) - 1n);
    }
  } else if (prec > 0) {
    s += ".";
    for (let i = 0; i < prec; i++) {
      s += digits[Number((mant >> 60n) & 15n)];
      mant = (mant << 4n) & ((1n << 64n) - 1n);
    }
  }
  s += fmt === "X" ? "P" : "p";
  s += exp < 0 ? "-" : "+";
  const ae = Math.abs(exp);
  return s + (ae < 10 ? `0${ae}` : String(ae));
}

/** strconv.FormatFloat(x, fmt, prec, 64); prec -1 is the shortest exact form. */
function formatFloat(x: number, fmt: string, prec: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Number.POSITIVE_INFINITY) return "+Inf";
  if (x === Number.NEGATIVE_INFINITY) return "-Inf";
  if (fmt === "b") return fmtB(x);
  if (fmt === "x" || fmt === "X") return fmtX(x, prec, fmt);
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  const shortest = prec < 0;
  let d: Dec;
  if (shortest) {
    d = shortestDec(ax);
    if (fmt === "e" || fmt === "E") prec = Math.max(d.d.length - 1, 0);
    else if (fmt === "f") prec = Math.max(d.d.length - d.dp, 0);
    else prec = d.d.length;
  } else {
    d = exactDec(ax);
    if (fmt === "e" || fmt === "E") d = roundDec(d, prec + 1);
    else if (fmt === "f") d = roundDec(d, d.dp + prec);
    else {
      if (prec === 0) prec = 1;
      d = roundDec(d, prec);
    }
  }
  if (fmt === "e" || fmt === "E") return fmtE(neg, d, prec, fmt);
  if (fmt === "f") return fmtF(neg, d, prec);
  let eprec = prec;
  if (eprec > d.d.length && d.d.length >= d.dp) eprec = d.d.length;
  if (shortest) eprec = 6;
  const exp = d.dp - 1;
  if (exp < -4 || exp >= eprec) {
    if (prec > d.d.length) prec = d.d.length;
    return fmtE(neg, d, prec - 1, fmt === "G" ? "E" : "e");
  }
  if (prec > d.dp) prec = d.d.length;
  return fmtF(neg, d, Math.max(prec - d.dp, 0));
}

function intString(n: number): string {
  return Math.abs(n) < 1e21 ? String(n === 0 ? 0 : n) : BigInt(n).toString();
}

// ---------------------------------------------------------------------------------------------
// fmt: Go's printer

const LDIGITS = "0123456789abcdefx";
const UDIGITS = "0123456789ABCDEFX";
const NOT_INT = Symbol("not an int");

class Printer {
  buf = "";
  plus = false;
  minus = false;
  sharp = false;
  space = false;
  zero = false;
  plusV = false;
  sharpV = false;
  wid = 0;
  widPresent = false;
  prec = 0;
  precPresent = false;

  clearFlags(): void {
    this.plus = this.minus = this.sharp = this.space = this.zero = false;
    this.plusV = this.sharpV = false;
    this.wid = this.prec = 0;
    this.widPresent = this.precPresent = false;
  }

  writePadding(n: number): void {
    if (n <= 0) return;
    this.buf += (this.zero && !this.minus ? "0" : " ").repeat(n);
  }

  pad(s: string): void {
    if (!this.widPresent || this.wid === 0) {
      this.buf += s;
      return;
    }
    const width = this.wid - runeCount(s);
    if (!this.minus) {
      this.writePadding(width);
      this.buf += s;
    } else {
      this.buf += s;
      this.writePadding(width);
    }
  }

  truncate(s: string): string {
    if (!this.precPresent) return s;
    let n = this.prec;
    let i = 0;
    for (const ch of s) {
      if (n-- <= 0) return s.slice(0, i);
      i += ch.length;
    }
    return s;
  }

  printArg(arg: unknown, verb: string): void {
    if (arg === null || arg === undefined) {
      if (verb === "T" || verb === "v") this.pad("<nil>");
      else this.badVerb(verb, null);
      return;
    }
    if (verb === "T") {
      this.fmtS(typeName(arg));
      return;
    }
    if (verb === "p") {
      this.badVerb(verb, arg);
      return;
    }
    this.printValue(arg, verb, 0);
  }

  printValue(v: unknown, verb: string, depth: number): void {
    switch (kindOf(v)) {
      case "invalid":
      case "nil":
        this.buf += this.sharpV ? "interface {}(nil)" : "<nil>";
        return;
      case "bool":
        if (verb === "t" || verb === "v") this.pad(v ? "true" : "false");
        else this.badVerb(verb, v);
        return;
      case "int":
        this.fmtInteger(v as number, verb);
        return;
      case "float":
        this.fmtFloatVerb(num(v), verb);
        return;
      case "string":
        this.fmtString(v as string, verb);
        return;
      case "slice":
        this.printSlice(v, verb, depth);
        return;
      case "map":
        this.printMap(v, verb, depth);
        return;
      case "struct":
        this.printStruct(v as Obj, verb, depth);
        return;
      default:
        this.buf += String(v);
    }
  }

  private printSlice(v: unknown, verb: string, depth: number): void {
    const items = sliceItems(v);
    if (this.sharpV) {
      this.buf += typeName(v);
      if (v instanceof GoNil) {
        this.buf += "(nil)";
        return;
      }
      this.buf += "{";
      items.forEach((e, i) => {
        if (i > 0) this.buf += ", ";
        this.printValue(e ?? null, verb, depth + 1);
      });
      this.buf += "}";
      return;
    }
    this.buf += "[";
    items.forEach((e, i) => {
      if (i > 0) this.buf += " ";
      this.printValue(e ?? null, verb, depth + 1);
    });
    this.buf += "]";
  }

  private printMap(v: unknown, verb: string, depth: number): void {
    if (this.sharpV) {
      this.buf += typeName(v);
      if (v instanceof GoNil) {
        this.buf += "(nil)";
        return;
      }
      this.buf += "{";
    } else {
      this.buf += "map[";
    }
    mapKeys(v).forEach((k, i) => {
      if (i > 0) this.buf += this.sharpV ? ", " : " ";
      this.printValue(k, verb, depth + 1);
      this.buf += ":";
      this.printValue(mapGet(v, k), verb, depth + 1);
    });
    this.buf += this.sharpV ? "}" : "]";
  }

  private printStruct(v: Obj, verb: string, depth: number): void {
    const t = structTypes.get(v)!;
    const ptr = t.startsWith("*");
    if (ptr) this.buf += "&";
    if (this.sharpV) this.buf += ptr ? t.slice(1) : t;
    this.buf += "{";
    Object.keys(v).forEach((k, i) => {
      if (i > 0) this.buf += this.sharpV ? ", " : " ";
      if (this.plusV || this.sharpV) this.buf += `${k}:`;
      this.printValue(v[k] ?? null, verb, depth + 1);
    });
    this.buf += "}";
  }

  badVerb(verb: string, v: unknown): void {
    this.buf += `%!${verb}(`;
    if (v === null || v === undefined) this.buf += "<nil>";
    else {
      this.buf += `${typeName(v)}=`;
      this.printArg(v, "v");
    }
    this.buf += ")";
  }

  private fmtInteger(v: number, verb: string): void {
    switch (verb) {
      case "v":
      case "d":
        this.fmtIntegerBase(v, 10, verb, LDIGITS);
        return;
      case "b":
        this.fmtIntegerBase(v, 2, verb, LDIGITS);
        return;
      case "o":
      case "O":
        this.fmtIntegerBase(v, 8, verb, LDIGITS);
        return;
      case "x":
        this.fmtIntegerBase(v, 16, verb, LDIGITS);
        return;
      case "X":
        this.fmtIntegerBase(v, 16, verb, UDIGITS);
        return;
      case "c":
        this.pad(String.fromCodePoint(validRune(v)));
        return;
      case "q":
        this.pad(goQuoteWith(String.fromCodePoint(validRune(v)), "'", this.plus));
        return;
      case "U":
        this.fmtUnicode(v);
        return;
      default:
        this.badVerb(verb, v);
    }
  }

  private fmtIntegerBase(v: number, base: number, verb: string, digits: string): void {
    const negative = v < 0;
    const u = Math.abs(v);
    let prec = 0;
    if (this.precPresent) {
      prec = this.prec;
      if (prec === 0 && u === 0) {
        const oldZero = this.zero;
        this.zero = false;
        this.writePadding(this.wid);
        this.zero = oldZero;
        return;
      }
    } else if (this.zero && !this.minus && this.widPresent) {
      prec = this.wid;
      if (negative || this.plus || this.space) prec--;
    }
    let s = u <= Number.MAX_SAFE_INTEGER ? u.toString(base) : BigInt(u).toString(base);
    if (digits === UDIGITS) s = s.toUpperCase();
    if (s.length < prec) s = "0".repeat(prec - s.length) + s;
    if (this.sharp) {
      if (base === 2) s = `0b${s}`;
      else if (base === 8 && s[0] !== "0") s = `0${s}`;
      else if (base === 16) s = `0${digits[16]}${s}`;
    }
    if (verb === "O") s = `0o${s}`;
    if (negative) s = `-${s}`;
    else if (this.plus) s = `+${s}`;
    else if (this.space) s = ` ${s}`;
    const oldZero = this.zero;
    this.zero = false;
    this.pad(s);
    this.zero = oldZero;
  }

  private fmtUnicode(v: number): void {
    const u = v < 0 ? BigInt.asUintN(64, BigInt(v)) : BigInt(v);
    let s = u.toString(16).toUpperCase();
    const prec = this.precPresent && this.prec > 4 ? this.prec : 4;
    if (s.length < prec) s = "0".repeat(prec - s.length) + s;
    s = `U+${s}`;
    if (this.sharp && v >= 0 && v <= 0x10ffff && isPrint(v)) s += ` '${String.fromCodePoint(v)}'`;
    const oldZero = this.zero;
    this.zero = false;
    this.pad(s);
    this.zero = oldZero;
  }

  private fmtFloatVerb(v: number, verb: string): void {
    switch (verb) {
      case "v":
        this.fmtFloat(v, "g", -1);
        return;
      case "b":
      case "g":
      case "G":
      case "x":
      case "X":
        this.fmtFloat(v, verb, -1);
        return;
      case "f":
      case "e":
      case "E":
        this.fmtFloat(v, verb, 6);
        return;
      case "F":
        this.fmtFloat(v, "f", 6);
        return;
      default:
        this.badVerb(verb, v);
    }
  }

  private fmtFloat(v: number, verb: string, prec: number): void {
    if (this.precPresent) prec = this.prec;
    let num = formatFloat(v, verb, prec);
    if (num[0] !== "-" && num[0] !== "+") num = `+${num}`;
    if (this.space && num[0] === "+" && !this.plus) num = ` ${num.slice(1)}`;
    if (num[1] === "I" || num[1] === "N") {
      const oldZero = this.zero;
      this.zero = false;
      if (num[1] === "N" && !this.space && !this.plus) num = num.slice(1);
      this.pad(num);
      this.zero = oldZero;
      return;
    }
    if (this.sharp && verb !== "b") num = sharpFloat(num, verb, prec);
    if (this.plus || num[0] !== "+") {
      if (this.zero && !this.minus && this.widPresent && this.wid > num.length) {
        this.buf += num[0];
        this.writePadding(this.wid - num.length);
        this.buf += num.slice(1);
        return;
      }
      this.pad(num);
      return;
    }
    this.pad(num.slice(1));
  }

  private fmtString(v: string, verb: string): void {
    switch (verb) {
      case "v":
        if (this.sharpV) this.fmtQ(v);
        else this.fmtS(v);
        return;
      case "s":
        this.fmtS(v);
        return;
      case "x":
        this.fmtSx(v, LDIGITS);
        return;
      case "X":
        this.fmtSx(v, UDIGITS);
        return;
      case "q":
        this.fmtQ(v);
        return;
      default:
        this.badVerb(verb, v);
    }
  }

  fmtS(s: string): void {
    this.pad(this.truncate(s));
  }

  private fmtQ(s: string): void {
    s = this.truncate(s);
    if (this.sharp && canBackquote(s)) this.pad(`\`${s}\``);
    else this.pad(goQuoteWith(s, '"', this.plus));
  }

  private fmtSx(s: string, digits: string): void {
    const b = utf8Bytes(s);
    let length = b.length;
    if (this.precPresent && this.prec < length) length = this.prec;
    let width = 2 * length;
    if (width > 0) {
      if (this.space) {
        if (this.sharp) width *= 2;
        width += length - 1;
      } else if (this.sharp) {
        width += 2;
      }
    } else {
      if (this.widPresent) this.writePadding(this.wid);
      return;
    }
    if (this.widPresent && this.wid > width && !this.minus) this.writePadding(this.wid - width);
    let out = this.sharp ? `0${digits[16]}` : "";
    for (let i = 0; i < length; i++) {
      if (this.space && i > 0) {
        out += " ";
        if (this.sharp) out += `0${digits[16]}`;
      }
      const c = b[i]!;
      out += digits[c >> 4]! + digits[c & 15]!;
    }
    this.buf += out;
    if (this.widPresent && this.wid > width && this.minus) this.writePadding(this.wid - width);
  }
}

function validRune(v: number): number {
  return v < 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) ? 0xfffd : v;
}

/** fmt's '#' flag on floats: keep the decimal point and, for %g, trailing zeros. */
function sharpFloat(num: string, verb: string, prec: number): string {
  let digits = 0;
  if (verb === "v" || verb === "g" || verb === "G" || verb === "x") digits = prec === -1 ? 6 : prec;
  let tail = "";
  let body = num;
  let hasDecimalPoint = false;
  let sawNonzeroDigit = false;
  for (let i = 1; i < body.length; i++) {
    const c = body[i]!;
    if (c === ".") {
      hasDecimalPoint = true;
    } else if (c === "p" || c === "P" || ((c === "e" || c === "E") && verb !== "x" && verb !== "X")) {
      tail = body.slice(i);
      body = body.slice(0, i);
      break;
    } else {
      if (c !== "0") sawNonzeroDigit = true;
      if (sawNonzeroDigit) digits--;
    }
  }
  if (!hasDecimalPoint) {
    if (body.length === 2 && body[1] === "0") digits--;
    body += ".";
  }
  while (digits > 0) {
    body += "0";
    digits--;
  }
  return body + tail;
}

function tooLarge(x: number): boolean {
  return x > 1e6 || x < -1e6;
}

function parseNum(s: string, start: number, end: number): { num: number; isNum: boolean; next: number } {
  if (start >= end) return { num: 0, isNum: false, next: end };
  let n = 0;
  let isNum = false;
  let i = start;
  for (; i < end && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39; i++) {
    if (tooLarge(n)) return { num: 0, isNum: false, next: end };
    n = n * 10 + (s.charCodeAt(i) - 0x30);
    isNum = true;
  }
  return { num: n, isNum, next: i };
}

/** fmt.Sprintf over template values. */
function sprintf(format: string, a: readonly unknown[]): string {
  const p = new Printer();
  const end = format.length;
  let argNum = 0;
  let afterIndex = false;
  let reordered = false;
  let goodArgNum = true;

  // fmt's argNumber and parseArgNumber: an explicit argument index "[n]".
  const argNumber = (i: number): { i: number; found: boolean } => {
    if (i >= end || format[i] !== "[") return { i, found: false };
    reordered = true;
    const close = end - i < 3 ? -1 : format.indexOf("]", i + 1);
    if (close < 0) {
      goodArgNum = false;
      return { i: i + 1, found: false };
    }
    const n = parseNum(format, i + 1, close);
    if (!n.isNum || n.next !== close) {
      goodArgNum = false;
      return { i: close + 1, found: false };
    }
    const index = n.num - 1;
    if (index >= 0 && index < a.length) argNum = index;
    else goodArgNum = false;
    return { i: close + 1, found: true };
  };

  const intFromArg = (): number | typeof NOT_INT => {
    if (argNum >= a.length) return NOT_INT;
    const v = a[argNum++];
    if (kindOf(v) !== "int" || tooLarge(v as number)) return NOT_INT;
    return v as number;
  };

  let i = 0;
  while (i < end) {
    goodArgNum = true;
    const lasti = i;
    while (i < end && format[i] !== "%") i++;
    if (i > lasti) p.buf += format.slice(lasti, i);
    if (i >= end) break;
    i++;
    p.clearFlags();
    flags: for (; i < end; i++) {
      switch (format[i]) {
        case "#":
          p.sharp = true;
          break;
        case "0":
          p.zero = true;
          break;
        case "+":
          p.plus = true;
          break;
        case "-":
          p.minus = true;
          break;
        case " ":
          p.space = true;
          break;
        default:
          break flags;
      }
    }
    let r = argNumber(i);
    i = r.i;
    afterIndex = r.found;
    if (i < end && format[i] === "*") {
      i++;
      const w = intFromArg();
      if (w === NOT_INT) {
        p.buf += "%!(BADWIDTH)";
      } else {
        p.wid = w;
        p.widPresent = true;
        if (w < 0) {
          p.wid = -w;
          p.minus = true;
          p.zero = false;
        }
      }
      afterIndex = false;
    } else {
      const n = parseNum(format, i, end);
      p.wid = n.num;
      p.widPresent = n.isNum;
      i = n.next;
      if (afterIndex && p.widPresent) goodArgNum = false;
    }
    if (i + 1 < end && format[i] === ".") {
      i++;
      if (afterIndex) goodArgNum = false;
      r = argNumber(i);
      i = r.i;
      afterIndex = r.found;
      if (i < end && format[i] === "*") {
        i++;
        const pr = intFromArg();
        if (pr === NOT_INT || pr < 0) {
          p.buf += "%!(BADPREC)";
        } else {
          p.prec = pr;
          p.precPresent = true;
        }
        afterIndex = false;
      } else {
        const n = parseNum(format, i, end);
        p.prec = n.isNum ? n.num : 0;
        p.precPresent = true;
        i = n.next;
      }
    }
    if (!afterIndex) {
      r = argNumber(i);
      i = r.i;
      afterIndex = r.found;
    }
    if (i >= end) {
      p.buf += "%!(NOVERB)";
      break;
    }
    const cp = format.codePointAt(i)!;
    const verb = String.fromCodePoint(cp);
    i += verb.length;
    if (verb === "%") {
      p.buf += "%";
    } else if (!goodArgNum) {
      p.buf += `%!${verb}(BADINDEX)`;
    } else if (argNum >= a.length) {
      p.buf += `%!${verb}(MISSING)`;
    } else {
      if (verb === "v") {
        p.sharpV = p.sharp;
        p.sharp = false;
        p.plusV = p.plus;
        p.plus = false;
      }
      p.printArg(a[argNum], verb);
      argNum++;
    }
  }
  if (!reordered && argNum < a.length) {
    p.clearFlags();
    p.buf += "%!(EXTRA ";
    a.slice(argNum).forEach((arg, k) => {
      if (k > 0) p.buf += ", ";
      if (arg === null || arg === undefined) p.buf += "<nil>";
      else {
        p.buf += `${typeName(arg)}=`;
        p.printArg(arg, "v");
      }
    });
    p.buf += ")";
  }
  return p.buf;
}

/** fmt.Sprint: a space between operands when neither is a string. */
function sprint(a: readonly unknown[]): string {
  const p = new Printer();
  let prevString = false;
  a.forEach((arg, i) => {
    const isString = typeof arg === "string";
    if (i > 0 && !isString && !prevString) p.buf += " ";
    p.printArg(arg, "v");
    prevString = isString;
  });
  return p.buf;
}

/** fmt.Sprintln: operands separated by spaces, then a newline. */
function sprintln(a: readonly unknown[]): string {
  const p = new Printer();
  a.forEach((arg, i) => {
    if (i > 0) p.buf += " ";
    p.printArg(arg, "v");
  });
  return `${p.buf}\n`;
}

/** %v of one value, as an action prints it. */
function formatValue(v: unknown): string {
  switch (typeof v) {
    case "string":
      return v;
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (Number.isInteger(v)) return intString(v);
      break;
    default:
      if (v === undefined) return "<no value>";
  }
  const p = new Printer();
  p.printArg(v, "v");
  return p.buf;
}

// ---------------------------------------------------------------------------------------------
// encoding/json

const UNSUPPORTED = Symbol("json: unsupported value");

function jsonString(s: string, escapeHTML: boolean): string {
  let out = '"';
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let rep: string | undefined;
    if (c < 0x20) {
      rep =
        c === 8
          ? "\\b"
          : c === 12
            ? "\\f"
            : c === 10
              ? "\\n"
              : c === 13
                ? "\\r"
                : c === 9
                  ? "\\t"
                  : `\\u00${hex(c, 2)}`;
    } else if (c === 0x22) {
      rep = '\\"';
    } else if (c === 0x5c) {
      rep = "\\\\";
    } else if (escapeHTML && (c === 0x3c || c === 0x3e || c === 0x26)) {
      rep = `\\u00${hex(c, 2)}`;
    } else if (c === 0x2028 || c === 0x2029) {
      rep = `\\u${hex(c, 4)}`;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c < 0xdc00 && d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      rep = "\\ufffd";
    }
    if (rep !== undefined) {
      out += s.slice(last, i) + rep;
      last = i + 1;
    }
  }
  return `${out + s.slice(last)}"`;
}

function jsonFloat(x: number): string {
  if (!Number.isFinite(x)) throw UNSUPPORTED;
  return Number.isInteger(x) && Math.abs(x) < 1e21 ? intString(x) : String(x);
}

function jsonValue(x: unknown, escapeHTML: boolean, seen: Set<object>): string {
  switch (typeof x) {
    case "string":
      return jsonString(x, escapeHTML);
    case "boolean":
      return x ? "true" : "false";
    case "number":
      if (!Number.isFinite(x)) throw UNSUPPORTED;
      return Number.isInteger(x) ? intString(x) : String(x);
    case "bigint":
      return x.toString();
    case "object":
      break;
    default:
      return "null";
  }
  if (x === null || x instanceof GoNil) return "null";
  if (x instanceof GoFloat) return jsonFloat(x.value);
  const toJSON = (x as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return jsonValue(toJSON.call(x), escapeHTML, seen);
  if (seen.has(x)) throw UNSUPPORTED;
  seen.add(x);
  try {
    if (Array.isArray(x)) {
      return `[${x.map((e) => (e === undefined || typeof e === "function" ? "null" : jsonValue(e, escapeHTML, seen))).join(",")}]`;
    }
    const o = x as Obj;
    const parts: string[] = [];
    for (const k of Object.keys(o)) {
      const v = o[k];
      if (v === undefined || typeof v === "function" || typeof v === "symbol") continue;
      parts.push(`${jsonString(k, escapeHTML)}:${jsonValue(v, escapeHTML, seen)}`);
    }
    return `{${parts.join(",")}}`;
  } finally {
    seen.delete(x);
  }
}

/** Docker's json function: compact encoding/json output; "" when Go's encoder would fail. */
function dockerJSON(v: unknown, escapeHTML: boolean): string {
  try {
    return jsonValue(v, escapeHTML, new Set());
  } catch (e) {
    if (e === UNSUPPORTED) return "";
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// html, js and urlquery escaping

const HTML_ESCAPES: Record<string, string> = {
  "\0": "\ufffd",
  '"': "&#34;",
  "'": "&#39;",
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
};

function htmlEscape(s: string): string {
  return s.replace(/[\0"'&<>]/g, (c) => HTML_ESCAPES[c]!);
}

function jsEscape(s: string): string {
  let out = "";
  for (const ch of s) {
    const r = ch.codePointAt(0)!;
    if (r < 0x80) {
      switch (ch) {
        case "\\":
          out += "\\\\";
          break;
        case "'":
          out += "\\'";
          break;
        case '"':
          out += '\\"';
          break;
        case "<":
          out += "\\u003C";
          break;
        case ">":
          out += "\\u003E";
          break;
        case "&":
          out += "\\u0026";
          break;
        case "=":
          out += "\\u003D";
          break;
        default:
          out += r < 0x20 ? `\\u00${hex(r, 2, true)}` : ch;
      }
    } else {
      out += isPrint(r) ? ch : `\\u${hex(r >= 0xd800 && r <= 0xdfff ? 0xfffd : r, 4, true)}`;
    }
  }
  return out;
}

function queryEscape(s: string): string {
  let out = "";
  for (const c of utf8Bytes(s)) {
    if (
      (c >= 0x30 && c <= 0x39) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x61 && c <= 0x7a) ||
      c === 0x2d ||
      c === 0x5f ||
      c === 0x2e ||
      c === 0x7e
    ) {
      out += String.fromCharCode(c);
    } else if (c === 0x20) {
      out += "+";
    } else {
      out += `%${hex(c, 2, true)}`;
    }
  }
  return out;
}

/** text/template's evalArgs: the one string argument, or fmt.Sprint of printable values. */
function evalArgs(args: readonly unknown[]): string {
  if (args.length === 1 && typeof args[0] === "string") return args[0];
  return sprint(args.map((a) => (a === null || a === undefined ? "<no value>" : a)));
}

// ---------------------------------------------------------------------------------------------
// Lexer (text/template/parse/lex.go)

type Tok =
  | "error"
  | "bool"
  | "char"
  | "charConst"
  | "complex"
  | "assign"
  | "declare"
  | "eof"
  | "field"
  | "ident"
  | "leftDelim"
  | "leftParen"
  | "number"
  | "pipe"
  | "rawString"
  | "rightDelim"
  | "rightParen"
  | "space"
  | "string"
  | "text"
  | "variable"
  | "block"
  | "break"
  | "continue"
  | "dot"
  | "define"
  | "else"
  | "end"
  | "if"
  | "nil"
  | "range"
  | "template"
  | "with";

const KEYWORDS: Readonly<Record<string, Tok>> = {
  ".": "dot",
  block: "block",
  break: "break",
  continue: "continue",
  define: "define",
  else: "else",
  end: "end",
  if: "if",
  nil: "nil",
  range: "range",
  template: "template",
  with: "with",
};
const KEYWORD_TOKS = new Set<Tok>(Object.values(KEYWORDS));

interface Token {
  typ: Tok;
  pos: number;
  val: string;
}

/** item.String(), as parse errors print tokens. */
function tokenString(t: Token): string {
  if (t.typ === "eof") return "EOF";
  if (t.typ === "error") return t.val;
  if (KEYWORD_TOKS.has(t.typ)) return `<${t.val}>`;
  if (utf8Len(t.val) > 10) return `${goQuote([...t.val].slice(0, 10).join(""))}...`;
  return goQuote(t.val);
}

const EOF = -1;
const LEFT = "{{";
const RIGHT = "}}";

function isSpaceCode(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

const ALNUM_RE = /^[\p{L}\p{Nd}_]$/u;
function isAlphaNumeric(c: number): boolean {
  if (c < 0) return false;
  if (c < 0x80)
    return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
  return ALNUM_RE.test(String.fromCodePoint(c));
}

function hasLeftTrimMarker(s: string, i: number): boolean {
  return s.charCodeAt(i) === 0x2d && isSpaceCode(s.charCodeAt(i + 1));
}

function hasRightTrimMarker(s: string, i: number): boolean {
  return isSpaceCode(s.charCodeAt(i)) && s.charCodeAt(i + 1) === 0x2d;
}

type LexState = (l: Lexer) => LexState | null;

class Lexer {
  readonly toks: Token[] = [];
  pos = 0;
  start = 0;
  width = 0;
  parenDepth = 0;
  insideAction = false;

  constructor(readonly input: string) {}

  run(): Token[] {
    for (;;) {
      let state: LexState | null = this.insideAction ? lexInsideAction : lexText;
      while (state) state = state(this);
      const last = this.toks[this.toks.length - 1]!;
      if (last.typ === "eof" || last.typ === "error") return this.toks;
    }
  }

  next(): number {
    if (this.pos >= this.input.length) {
      this.width = 0;
      return EOF;
    }
    const c = this.input.codePointAt(this.pos)!;
    this.width = c > 0xffff ? 2 : 1;
    this.pos += this.width;
    return c;
  }

  backup(): void {
    this.pos -= this.width;
  }

  peek(): number {
    const c = this.next();
    this.backup();
    return c;
  }

  /** Go's thisItem: the pending input as a token; it is consumed. */
  item(typ: Tok): Token {
    const t: Token = { typ, pos: this.start, val: this.input.slice(this.start, this.pos) };
    this.start = this.pos;
    return t;
  }

  emit(typ: Tok): null {
    this.toks.push(this.item(typ));
    return null;
  }

  push(t: Token): null {
    this.toks.push(t);
    return null;
  }

  ignore(): void {
    this.start = this.pos;
  }

  accept(valid: string): boolean {
    const c = this.next();
    if (c >= 0 && valid.includes(String.fromCodePoint(c))) return true;
    this.backup();
    return false;
  }

  acceptRun(valid: string): void {
    for (;;) if (!this.accept(valid)) return;
  }

  errorf(msg: string): null {
    this.toks.push({ typ: "error", pos: this.start, val: msg });
    return null;
  }

  atTerminator(): boolean {
    const r = this.peek();
    if (isSpaceCode(r)) return true;
    switch (r) {
      case EOF:
      case 0x2e:
      case 0x2c:
      case 0x7c:
      case 0x3a:
      case 0x29:
      case 0x28:
        return true;
    }
    return this.input.startsWith(RIGHT, this.pos);
  }

  atRightDelim(): { delim: boolean; trim: boolean } {
    if (hasRightTrimMarker(this.input, this.pos) && this.input.startsWith(RIGHT, this.pos + 2)) {
      return { delim: true, trim: true };
    }
    if (this.input.startsWith(RIGHT, this.pos)) return { delim: true, trim: false };
    return { delim: false, trim: false };
  }
}

function rightTrimLength(s: string, from: number, to: number): number {
  let i = to;
  while (i > from && isSpaceCode(s.charCodeAt(i - 1))) i--;
  return to - i;
}

function leftTrimLength(s: string, from: number): number {
  let i = from;
  while (i < s.length && isSpaceCode(s.charCodeAt(i))) i++;
  return i - from;
}

function lexText(l: Lexer): LexState | null {
  const x = l.input.indexOf(LEFT, l.pos);
  if (x >= 0) {
    if (x > l.pos) {
      l.pos = x;
      const trim = hasLeftTrimMarker(l.input, x + LEFT.length) ? rightTrimLength(l.input, l.start, l.pos) : 0;
      l.pos -= trim;
      const it = l.item("text");
      l.pos += trim;
      l.ignore();
      if (it.val.length > 0) return l.push(it);
    }
    return lexLeftDelim;
  }
  l.pos = l.input.length;
  if (l.pos > l.start) return l.emit("text");
  return l.emit("eof");
}

function lexLeftDelim(l: Lexer): LexState | null {
  l.pos += LEFT.length;
  const trim = hasLeftTrimMarker(l.input, l.pos);
  const afterMarker = trim ? 2 : 0;
  if (l.input.startsWith("/*", l.pos + afterMarker)) {
    l.pos += afterMarker;
    l.ignore();
    return lexComment;
  }
  const it = l.item("leftDelim");
  l.insideAction = true;
  l.pos += afterMarker;
  l.ignore();
  l.parenDepth = 0;
  return l.push(it);
}

function lexComment(l: Lexer): LexState | null {
  l.pos += 2;
  const x = l.input.indexOf("*/", l.pos);
  if (x < 0) return l.errorf("unclosed comment");
  l.pos = x + 2;
  const { delim, trim } = l.atRightDelim();
  if (!delim) return l.errorf("comment ends before closing delimiter");
  if (trim) l.pos += 2;
  l.pos += RIGHT.length;
  if (trim) l.pos += leftTrimLength(l.input, l.pos);
  l.ignore();
  return lexText;
}

function lexRightDelim(l: Lexer): LexState | null {
  const { trim } = l.atRightDelim();
  if (trim) {
    l.pos += 2;
    l.ignore();
  }
  l.pos += RIGHT.length;
  const it = l.item("rightDelim");
  if (trim) {
    l.pos += leftTrimLength(l.input, l.pos);
    l.ignore();
  }
  l.insideAction = false;
  return l.push(it);
}

function lexInsideAction(l: Lexer): LexState | null {
  if (l.atRightDelim().delim) {
    if (l.parenDepth === 0) return lexRightDelim;
    return l.errorf("unclosed left paren");
  }
  const r = l.next();
  if (r === EOF) return l.errorf("unclosed action");
  if (isSpaceCode(r)) {
    l.backup();
    return lexSpace;
  }
  switch (r) {
    case 0x3d:
      return l.emit("assign");
    case 0x3a:
      if (l.next() !== 0x3d) return l.errorf("expected :=");
      return l.emit("declare");
    case 0x7c:
      return l.emit("pipe");
    case 0x22:
      return lexQuote;
    case 0x60:
      return lexRawQuote;
    case 0x24:
      return lexVariable;
    case 0x27:
      return lexChar;
    case 0x28:
      l.parenDepth++;
      return l.emit("leftParen");
    case 0x29:
      l.parenDepth--;
      if (l.parenDepth < 0) return l.errorf("unexpected right paren");
      return l.emit("rightParen");
  }
  if (r === 0x2e) {
    const c = l.input.charCodeAt(l.pos);
    if (l.pos < l.input.length && (c < 0x30 || c > 0x39)) return lexField;
  }
  if (r === 0x2e || r === 0x2b || r === 0x2d || (r >= 0x30 && r <= 0x39)) {
    l.backup();
    return lexNumber;
  }
  if (isAlphaNumeric(r)) {
    l.backup();
    return lexIdentifier;
  }
  if (r < 0x80 && r >= 0x20 && r < 0x7f) return l.emit("char");
  return l.errorf(`unrecognized character in action: ${unicodeSharp(r)}`);
}

function lexSpace(l: Lexer): LexState | null {
  let n = 0;
  while (isSpaceCode(l.peek())) {
    l.next();
    n++;
  }
  if (hasRightTrimMarker(l.input, l.pos - 1) && l.input.startsWith(RIGHT, l.pos + 1)) {
    l.pos--;
    if (n === 1) return lexInsideAction;
  }
  return l.emit("space");
}

function lexIdentifier(l: Lexer): LexState | null {
  for (;;) {
    const r = l.next();
    if (isAlphaNumeric(r)) continue;
    l.backup();
    const word = l.input.slice(l.start, l.pos);
    if (!l.atTerminator()) return l.errorf(`bad character ${unicodeSharp(r)}`);
    const key = Object.hasOwn(KEYWORDS, word) ? KEYWORDS[word] : undefined;
    if (key) return l.emit(key);
    if (word === "true" || word === "false") return l.emit("bool");
    return l.emit("ident");
  }
}

function lexField(l: Lexer): LexState | null {
  return lexFieldOrVariable(l, "field");
}

function lexVariable(l: Lexer): LexState | null {
  if (l.atTerminator()) return l.emit("variable");
  return lexFieldOrVariable(l, "variable");
}

function lexFieldOrVariable(l: Lexer, typ: Tok): LexState | null {
  if (l.atTerminator()) return l.emit(typ === "variable" ? "variable" : "dot");
  let r: number;
  for (;;) {
    r = l.next();
    if (!isAlphaNumeric(r)) {
      l.backup();
      break;
    }
  }
  if (!l.atTerminator()) return l.errorf(`bad character ${unicodeSharp(r)}`);
  return l.emit(typ);
}

function lexQuoted(l: Lexer, quote: number, typ: Tok, msg: string): LexState | null {
  for (;;) {
    const c = l.next();
    if (c === 0x5c) {
      const r = l.next();
      if (r !== EOF && r !== 0x0a) continue;
      return l.errorf(msg);
    }
    if (c === EOF || c === 0x0a) return l.errorf(msg);
    if (c === quote) return l.emit(typ);
  }
}

function lexChar(l: Lexer): LexState | null {
  return lexQuoted(l, 0x27, "charConst", "unterminated character constant");
}

function lexQuote(l: Lexer): LexState | null {
  return lexQuoted(l, 0x22, "string", "unterminated quoted string");
}

function lexRawQuote(l: Lexer): LexState | null {
  for (;;) {
    const c = l.next();
    if (c === EOF) return l.errorf("unterminated raw quoted string");
    if (c === 0x60) return l.emit("rawString");
  }
}

function scanNumber(l: Lexer): boolean {
  l.accept("+-");
  let digits = "0123456789_";
  if (l.accept("0")) {
    if (l.accept("xX")) digits = "0123456789abcdefABCDEF_";
    else if (l.accept("oO")) digits = "01234567_";
    else if (l.accept("bB")) digits = "01_";
  }
  l.acceptRun(digits);
  if (l.accept(".")) l.acceptRun(digits);
  if (digits.length === 11 && l.accept("eE")) {
    l.accept("+-");
    l.acceptRun("0123456789_");
  }
  if (digits.length === 23 && l.accept("pP")) {
    l.accept("+-");
    l.acceptRun("0123456789_");
  }
  l.accept("i");
  if (isAlphaNumeric(l.peek())) {
    l.next();
    return false;
  }
  return true;
}

function lexNumber(l: Lexer): LexState | null {
  if (!scanNumber(l)) return l.errorf(`bad number syntax: ${goQuote(l.input.slice(l.start, l.pos))}`);
  const sign = l.peek();
  if (sign === 0x2b || sign === 0x2d) {
    if (!scanNumber(l) || l.input[l.pos - 1] !== "i") {
      return l.errorf(`bad number syntax: ${goQuote(l.input.slice(l.start, l.pos))}`);
    }
    return l.emit("complex");
  }
  return l.emit("number");
}

// ---------------------------------------------------------------------------------------------
// Literals: strconv.Unquote, UnquoteChar, ParseInt(s, 0, 64), ParseFloat

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = {
  a: 7,
  b: 8,
  f: 12,
  n: 10,
  r: 13,
  t: 9,
  v: 11,
  "\\": 0x5c,
};

/**
 * strconv.UnquoteChar: one (possibly escaped) character at s[i]. `isByte` marks a \x or octal
 * escape inside a double-quoted string, which Go keeps as a raw byte.
 */
function unquoteChar(
  s: string,
  i: number,
  quote: string,
): { value: number; isByte: boolean; next: number } | null {
  const c = s.codePointAt(i);
  if (c === undefined) return null;
  const ch = String.fromCodePoint(c);
  if (ch === quote && (quote === "'" || quote === '"')) return null;
  if (ch !== "\\") return { value: c, isByte: false, next: i + ch.length };
  const e = s[i + 1];
  if (e === undefined) return null;
  if (Object.hasOwn(SIMPLE_ESCAPES, e)) return { value: SIMPLE_ESCAPES[e]!, isByte: false, next: i + 2 };
  if (e === "'" || e === '"')
    return e === quote ? { value: e.charCodeAt(0), isByte: false, next: i + 2 } : null;
  if (e === "x" || e === "u" || e === "U") {
    const n = e === "x" ? 2 : e === "u" ? 4 : 8;
    const h = s.slice(i + 2, i + 2 + n);
    if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) return null;
    const v = Number.parseInt(h, 16);
    if (e === "x") return { value: v, isByte: quote !== "'", next: i + 2 + n };
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return null;
    return { value: v, isByte: false, next: i + 2 + n };
  }
  if (e >= "0" && e <= "7") {
    const o = s.slice(i + 1, i + 4);
    if (!/^[0-7]{3}$/.test(o)) return null;
    const v = Number.parseInt(o, 8);
    if (v > 255) return null;
    return { value: v, isByte: quote !== "'", next: i + 4 };
  }
  return null;
}

/** strconv.Unquote of a "..." or `...` token; undefined where Go reports invalid syntax. */
function unquote(tok: string): string | undefined {
  if (tok.startsWith("`")) return tok.slice(1, -1).replace(/\r/g, "");
  const body = tok.slice(1, -1);
  if (!/[\\\x80-\uffff]/.test(body)) return body;
  const bytes: number[] = [];
  for (let i = 0; i < body.length; ) {
    const r = unquoteChar(body, i, '"');
    if (!r) return undefined;
    if (r.isByte) bytes.push(r.value);
    else for (const b of utf8Bytes(String.fromCodePoint(r.value))) bytes.push(b);
    i = r.next;
  }
  return utf8Decode(Uint8Array.from(bytes));
}

function underscoreOK(text: string): boolean {
  let s = text;
  if (s[0] === "-" || s[0] === "+") s = s.slice(1);
  let saw = "^";
  let i = 0;
  let isHex = false;
  if (s.length >= 2 && s[0] === "0" && /[bBoOxX]/.test(s[1]!)) {
    i = 2;
    saw = "0";
    isHex = s[1] === "x" || s[1] === "X";
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    if ((c >= "0" && c <= "9") || (isHex && /[a-fA-F]/.test(c))) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

const INT64_MAX = 2n ** 63n - 1n;

/** strconv.ParseInt(text, 0, 64); undefined if it is not an int64. */
function parseGoInt(text: string): number | undefined {
  let s = text;
  let neg = false;
  if (s[0] === "+" || s[0] === "-") {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (!underscoreOK(s)) return undefined;
  let base = 10;
  let body = s;
  if (/^0[xX]/.test(s)) {
    base = 16;
    body = s.slice(2);
  } else if (/^0[oO]/.test(s)) {
    base = 8;
    body = s.slice(2);
  } else if (/^0[bB]/.test(s)) {
    base = 2;
    body = s.slice(2);
  } else if (s.length > 1 && s[0] === "0") {
    base = 8;
    body = s.slice(1);
  }
  body = body.replace(/_/g, "");
  const re = base === 16 ? /^[0-9a-fA-F]+$/ : base === 8 ? /^[0-7]+$/ : base === 2 ? /^[01]+$/ : /^[0-9]+$/;
  if (!re.test(body)) return undefined;
  let v = 0n;
  const b = BigInt(base);
  for (const c of body) v = v * b + BigInt(Number.parseInt(c, 16));
  if (v > INT64_MAX + (neg ? 1n : 0n)) return undefined;
  return Number(neg ? -v : v);
}

/** strconv.ParseFloat(text, 64) for the forms the lexer scans; undefined if malformed. */
function parseGoFloat(text: string): number | undefined {
  if (!underscoreOK(text)) return undefined;
  const s = text.replace(/_/g, "");
  const h = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?[pP]([+-]?\d+)$/.exec(s);
  if (h) {
    const int = h[2] ?? "";
    const frac = h[3] ?? "";
    if (int === "" && frac === "") return undefined;
    const mant = Number.parseInt(int + frac || "0", 16);
    const v = mant * 2 ** (Number(h[4]) - 4 * frac.length);
    return h[1] === "-" ? -v : v;
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

// ---------------------------------------------------------------------------------------------
// Parse tree (text/template/parse/node.go)

interface FieldNode {
  t: "field";
  pos: number;
  ident: string[];
}
interface VariableNode {
  t: "variable";
  pos: number;
  ident: string[];
}
interface ChainNode {
  t: "chain";
  pos: number;
  node: Operand;
  field: string[];
}
interface IdentNode {
  t: "ident";
  pos: number;
  name: string;
}
interface DotNode {
  t: "dot";
  pos: number;
}
interface NilNode {
  t: "nil";
  pos: number;
}
interface BoolNode {
  t: "bool";
  pos: number;
  value: boolean;
}
interface NumberNode {
  t: "number";
  pos: number;
  text: string;
  isInt: boolean;
  isFloat: boolean;
  isRune: boolean;
  int: number;
  float: number;
}
interface StringNode {
  t: "string";
  pos: number;
  quoted: string;
  text: string;
}
interface PipeNode {
  t: "pipe";
  pos: number;
  decl: VariableNode[];
  isAssign: boolean;
  cmds: CommandNode[];
}
interface CommandNode {
  t: "command";
  pos: number;
  args: Operand[];
}
type Operand =
  | FieldNode
  | VariableNode
  | ChainNode
  | IdentNode
  | DotNode
  | NilNode
  | BoolNode
  | NumberNode
  | StringNode
  | PipeNode;

interface TextNode {
  t: "text";
  pos: number;
  text: string;
}
interface ActionNode {
  t: "action";
  pos: number;
  pipe: PipeNode;
}
interface BranchNode {
  t: "if" | "with" | "range";
  pos: number;
  pipe: PipeNode;
  list: Node[];
  elseList: Node[] | null;
}
interface TemplateNode {
  t: "template";
  pos: number;
  name: string;
  pipe: PipeNode | null;
}
interface MarkerNode {
  t: "break" | "continue" | "end" | "else";
  pos: number;
}
type Node = TextNode | ActionNode | BranchNode | TemplateNode | MarkerNode;
type AnyNode = Node | Operand | CommandNode;

function listString(list: readonly Node[]): string {
  return list.map(nodeString).join("");
}

/** Node.String(), as exec errors quote the node they stopped at. */
function nodeString(n: AnyNode): string {
  switch (n.t) {
    case "text":
      return n.text;
    case "action":
      return `{{${nodeString(n.pipe)}}}`;
    case "if":
    case "with":
    case "range":
      return `{{${n.t} ${nodeString(n.pipe)}}}${listString(n.list)}${
        n.elseList ? `{{else}}${listString(n.elseList)}` : ""
      }{{end}}`;
    case "template":
      return n.pipe
        ? `{{template ${goQuote(n.name)} ${nodeString(n.pipe)}}}`
        : `{{template ${goQuote(n.name)}}}`;
    case "break":
    case "continue":
    case "end":
    case "else":
      return `{{${n.t}}}`;
    case "field":
      return `.${n.ident.join(".")}`;
    case "variable":
      return n.ident.join(".");
    case "chain": {
      const s = nodeString(n.node);
      return (n.node.t === "pipe" ? `(${s})` : s) + n.field.map((f) => `.${f}`).join("");
    }
    case "ident":
      return n.name;
    case "dot":
      return ".";
    case "nil":
      return "nil";
    case "bool":
      return n.value ? "true" : "false";
    case "number":
      return n.text;
    case "string":
      return n.quoted;
    case "pipe": {
      const decl = n.decl.length ? `${n.decl.map(nodeString).join(", ")}${n.isAssign ? " = " : " := "}` : "";
      return decl + n.cmds.map(nodeString).join(" | ");
    }
    case "command":
      return n.args.map((a) => (a.t === "pipe" ? `(${nodeString(a)})` : nodeString(a))).join(" ");
  }
}

// ---------------------------------------------------------------------------------------------
// Parser (text/template/parse/parse.go)

const MAX_PAREN_DEPTH = 1000;

class Parser {
  private i = 0;
  private read = 0;
  private vars: string[] = ["$"];
  private rangeDepth = 0;
  private actionLine = 0;
  private parenDepth = 0;
  readonly trees = new Map<string, Node[]>();

  constructor(
    private readonly text: string,
    private readonly toks: readonly Token[],
    private readonly funcs: ReadonlySet<string>,
  ) {}

  private at(i: number): Token {
    const k = Math.min(i, this.toks.length - 1);
    if (k > this.read) this.read = k;
    return this.toks[k]!;
  }

  private next(): Token {
    return this.at(this.i++);
  }

  private backup(): void {
    this.i--;
  }

  private peek(): Token {
    return this.at(this.i);
  }

  private nextNonSpace(): Token {
    for (;;) {
      const t = this.next();
      if (t.typ !== "space") return t;
    }
  }

  private peekNonSpace(): Token {
    const t = this.nextNonSpace();
    this.backup();
    return t;
  }

  private lineOf(pos: number): number {
    let n = 1;
    for (let k = this.text.indexOf("\n"); k >= 0 && k < pos; k = this.text.indexOf("\n", k + 1)) n++;
    return n;
  }

  private errorf(msg: string): never {
    throw new StrataError("TEMPLATE_ERROR", `template: :${this.lineOf(this.toks[this.read]!.pos)}: ${msg}`);
  }

  private expect(typ: Tok, context: string): Token {
    const t = this.nextNonSpace();
    if (t.typ !== typ) this.unexpected(t, context);
    return t;
  }

  private unexpected(t: Token, context: string): never {
    if (t.typ === "error") {
      let extra = "";
      const line = this.lineOf(t.pos);
      if (this.actionLine !== 0 && this.actionLine !== line) {
        extra = ` in action started at :${this.actionLine}`;
        if (t.val.endsWith(" action")) extra = extra.slice(" in action".length);
      }
      this.errorf(t.val + extra);
    }
    this.errorf(`unexpected ${tokenString(t)} in ${context}`);
  }

  parse(): Node[] {
    const root: Node[] = [];
    while (this.peek().typ !== "eof") {
      if (this.peek().typ === "leftDelim") {
        const save = this.i;
        this.next();
        if (this.nextNonSpace().typ === "define") {
          this.parseDefinition();
          continue;
        }
        this.i = save;
      }
      const n = this.textOrAction();
      if (n.t === "end" || n.t === "else") this.errorf(`unexpected ${nodeString(n)}`);
      root.push(n);
    }
    return root;
  }

  private add(name: string, list: Node[]): void {
    const old = this.trees.get(name);
    if (old && !isEmptyTree(old) && !isEmptyTree(list)) {
      this.errorf(`template: multiple definition of template ${goQuote(name)}`);
    }
    if (!old || isEmptyTree(old)) this.trees.set(name, list);
  }

  /** A nested template body ({{define}} or {{block}}) parses with fresh variables. */
  private nested<T>(f: () => T): T {
    const vars = this.vars;
    const rangeDepth = this.rangeDepth;
    this.vars = ["$"];
    this.rangeDepth = 0;
    try {
      return f();
    } finally {
      this.vars = vars;
      this.rangeDepth = rangeDepth;
    }
  }

  private parseDefinition(): void {
    const context = "define clause";
    const t = this.nextNonSpace();
    if (t.typ !== "string" && t.typ !== "rawString") this.unexpected(t, context);
    const name = this.unquoteOrFail(t.val);
    this.expect("rightDelim", context);
    this.nested(() => {
      const [list, end] = this.itemList();
      if (end.t !== "end") this.errorf(`unexpected ${nodeString(end)} in ${context}`);
      this.add(name, list);
    });
  }

  private unquoteOrFail(s: string): string {
    const v = unquote(s);
    if (v === undefined) this.errorf("invalid syntax");
    return v;
  }

  private itemList(): [Node[], Node] {
    const list: Node[] = [];
    while (this.peekNonSpace().typ !== "eof") {
      const n = this.textOrAction();
      if (n.t === "end" || n.t === "else") return [list, n];
      list.push(n);
    }
    this.errorf("unexpected EOF");
  }

  private textOrAction(): Node {
    const t = this.nextNonSpace();
    switch (t.typ) {
      case "text":
        return { t: "text", pos: t.pos, text: t.val };
      case "leftDelim":
        this.actionLine = this.lineOf(t.pos);
        try {
          return this.action();
        } finally {
          this.actionLine = 0;
        }
      default:
        this.unexpected(t, "input");
    }
  }

  private action(): Node {
    const t = this.nextNonSpace();
    switch (t.typ) {
      case "block":
        return this.blockControl();
      case "break":
      case "continue":
        return this.loopControl(t);
      case "else":
        return this.elseControl();
      case "end":
        return { t: "end", pos: this.expect("rightDelim", "end").pos };
      case "if":
      case "range":
      case "with":
        return this.branchControl(t.typ);
      case "template":
        return this.templateControl();
    }
    this.backup();
    const first = this.peek();
    return { t: "action", pos: first.pos, pipe: this.pipeline("command", "rightDelim") };
  }

  private loopControl(t: Token): Node {
    const name = t.typ as "break" | "continue";
    const n = this.nextNonSpace();
    if (n.typ !== "rightDelim") this.unexpected(n, `{{${name}}}`);
    if (this.rangeDepth === 0) this.errorf(`{{${name}}} outside {{range}}`);
    return { t: name, pos: t.pos };
  }

  private elseControl(): Node {
    const p = this.peekNonSpace();
    if (p.typ === "if" || p.typ === "with") return { t: "else", pos: p.pos };
    return { t: "else", pos: this.expect("rightDelim", "else").pos };
  }

  private branchControl(context: "if" | "range" | "with"): BranchNode {
    const nVars = this.vars.length;
    const pipe = this.pipeline(context, "rightDelim");
    if (context === "range") this.rangeDepth++;
    const [list, first] = this.itemList();
    let next = first;
    if (context === "range") this.rangeDepth--;
    let elseList: Node[] | null = null;
    if (next.t === "else") {
      if ((context === "if" || context === "with") && this.peek().typ === context) {
        this.next();
        elseList = [this.branchControl(context)];
      } else {
        [elseList, next] = this.itemList();
        if (next.t !== "end") this.errorf(`expected end; found ${nodeString(next)}`);
      }
    }
    this.vars.length = nVars;
    return { t: context, pos: pipe.pos, pipe, list, elseList };
  }

  private templateName(t: Token, context: string): string {
    if (t.typ !== "string" && t.typ !== "rawString") this.unexpected(t, context);
    return this.unquoteOrFail(t.val);
  }

  private templateControl(): Node {
    const context = "template clause";
    const t = this.nextNonSpace();
    const name = this.templateName(t, context);
    let pipe: PipeNode | null = null;
    if (this.nextNonSpace().typ !== "rightDelim") {
      this.backup();
      pipe = this.pipeline(context, "rightDelim");
    }
    return { t: "template", pos: t.pos, name, pipe };
  }

  private blockControl(): Node {
    const context = "block clause";
    const t = this.nextNonSpace();
    const name = this.templateName(t, context);
    const pipe = this.pipeline(context, "rightDelim");
    this.nested(() => {
      const [list, end] = this.itemList();
      if (end.t !== "end") this.errorf(`unexpected ${nodeString(end)} in ${context}`);
      this.add(name, list);
    });
    return { t: "template", pos: t.pos, name, pipe };
  }

  private pipeline(context: string, end: Tok): PipeNode {
    const pipe: PipeNode = { t: "pipe", pos: this.peekNonSpace().pos, decl: [], isAssign: false, cmds: [] };
    for (;;) {
      const v = this.peekNonSpace();
      if (v.typ !== "variable") break;
      const vIndex = this.i;
      this.next();
      const next = this.peekNonSpace();
      if (next.typ === "assign" || next.typ === "declare") {
        pipe.isAssign = next.typ === "assign";
        this.nextNonSpace();
        pipe.decl.push({ t: "variable", pos: v.pos, ident: v.val.split(".") });
        this.vars.push(v.val);
      } else if (next.typ === "char" && next.val === ",") {
        this.nextNonSpace();
        pipe.decl.push({ t: "variable", pos: v.pos, ident: v.val.split(".") });
        this.vars.push(v.val);
        if (context === "range" && pipe.decl.length < 2) {
          const p = this.peekNonSpace().typ;
          if (p === "variable" || p === "rightDelim" || p === "rightParen") continue;
          this.errorf("range can only initialize variables");
        }
        this.errorf(`too many declarations in ${context}`);
      } else {
        this.i = vIndex; // not a declaration: $x is the pipeline's first operand
      }
      break;
    }
    for (;;) {
      const t = this.nextNonSpace();
      if (t.typ === end) {
        this.checkPipeline(pipe, context);
        return pipe;
      }
      switch (t.typ) {
        case "bool":
        case "charConst":
        case "complex":
        case "dot":
        case "field":
        case "ident":
        case "number":
        case "nil":
        case "rawString":
        case "string":
        case "variable":
        case "leftParen":
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(t, context);
      }
    }
  }

  private checkPipeline(pipe: PipeNode, context: string): void {
    if (pipe.cmds.length === 0) this.errorf(`missing value for ${context}`);
    pipe.cmds.slice(1).forEach((c, i) => {
      const t = c.args[0]!.t;
      if (t === "bool" || t === "dot" || t === "nil" || t === "number" || t === "string") {
        this.errorf(`non executable command in pipeline stage ${i + 2}`);
      }
    });
  }

  private command(): CommandNode {
    const cmd: CommandNode = { t: "command", pos: this.peekNonSpace().pos, args: [] };
    for (;;) {
      this.peekNonSpace();
      const op = this.operand();
      if (op) cmd.args.push(op);
      const t = this.next();
      if (t.typ === "space") continue;
      if (t.typ === "rightDelim" || t.typ === "rightParen") this.backup();
      else if (t.typ !== "pipe") this.unexpected(t, "operand");
      break;
    }
    if (cmd.args.length === 0) this.errorf("empty command");
    return cmd;
  }

  private operand(): Operand | null {
    const node = this.term();
    if (!node) return null;
    if (this.peek().typ !== "field") return node;
    const pos = this.peek().pos;
    const fields: string[] = [];
    while (this.peek().typ === "field") fields.push(this.next().val.slice(1));
    switch (node.t) {
      case "field":
        return { t: "field", pos, ident: [...node.ident, ...fields] };
      case "variable":
        return { t: "variable", pos, ident: [...node.ident, ...fields] };
      case "bool":
      case "string":
      case "number":
      case "nil":
      case "dot":
        this.errorf(`unexpected . after term ${goQuote(nodeString(node))}`);
        break;
    }
    return { t: "chain", pos, node, field: fields };
  }

  private term(): Operand | null {
    const t = this.nextNonSpace();
    switch (t.typ) {
      case "ident":
        if (!this.funcs.has(t.val)) this.errorf(`function ${goQuote(t.val)} not defined`);
        return { t: "ident", pos: t.pos, name: t.val };
      case "dot":
        return { t: "dot", pos: t.pos };
      case "nil":
        return { t: "nil", pos: t.pos };
      case "variable": {
        const ident = t.val.split(".");
        if (!this.vars.includes(ident[0]!)) this.errorf(`undefined variable ${goQuote(ident[0]!)}`);
        return { t: "variable", pos: t.pos, ident };
      }
      case "field":
        return { t: "field", pos: t.pos, ident: t.val.slice(1).split(".") };
      case "bool":
        return { t: "bool", pos: t.pos, value: t.val === "true" };
      case "charConst":
      case "complex":
      case "number":
        return this.newNumber(t);
      case "leftParen": {
        if (this.parenDepth >= MAX_PAREN_DEPTH) this.errorf("max expression depth exceeded");
        this.parenDepth++;
        try {
          return this.pipeline("parenthesized pipeline", "rightParen");
        } finally {
          this.parenDepth--;
        }
      }
      case "string":
      case "rawString":
        return { t: "string", pos: t.pos, quoted: t.val, text: this.unquoteOrFail(t.val) };
    }
    this.backup();
    return null;
  }

  private newNumber(t: Token): NumberNode {
    const base = { t: "number" as const, pos: t.pos, text: t.val, isRune: false };
    if (t.typ === "charConst") {
      const r = unquoteChar(t.val, 1, "'");
      if (!r) this.errorf("invalid syntax");
      if (t.val.slice(r.next) !== "'") this.errorf(`malformed character constant: ${t.val}`);
      return { ...base, isRune: true, isInt: true, isFloat: true, int: r.value, float: r.value };
    }
    if (t.typ === "complex" || t.val.endsWith("i")) {
      this.errorf(`complex constants are not supported: ${goQuote(t.val)}`);
    }
    const i = parseGoInt(t.val);
    if (i !== undefined) return { ...base, isInt: true, isFloat: true, int: i, float: i };
    const f = parseGoFloat(t.val);
    if (f === undefined) this.errorf(`illegal number syntax: ${goQuote(t.val)}`);
    if (!/[.eEpP]/.test(t.val)) this.errorf(`integer overflow: ${goQuote(t.val)}`);
    const isInt = Number.isInteger(f) && Math.abs(f) < 2 ** 63;
    return { ...base, isInt, isFloat: true, int: isInt ? f : 0, float: f };
  }
}

function isEmptyTree(list: readonly Node[]): boolean {
  return list.every((n) => n.t === "text" && n.text.trim() === "");
}

// ---------------------------------------------------------------------------------------------
// Functions

/** An error a function returns: Go reports it as "error calling NAME: MSG". */
class FuncError extends Error {}

/** How an argument is evaluated: Go's parameter type of the function. */
type ParamType = "any" | "value" | "string" | "int" | "[]string";

interface FuncSpec {
  params: readonly ParamType[];
  variadic?: ParamType;
  fn: (args: unknown[], x: Exec) => unknown;
}

function basicKind(v: unknown): "bool" | "int" | "float" | "string" | "invalid" {
  const k = kindOf(v);
  return k === "bool" || k === "int" || k === "float" || k === "string" ? k : "invalid";
}

/** Valid after indirectInterface: neither undefined nor a nil interface. */
function isValid(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function reflectKind(v: unknown): string {
  const k = kindOf(v);
  return k === "nil" ? "invalid" : k;
}

function eq(arg1: unknown, rest: readonly unknown[]): boolean {
  if (rest.length === 0) throw new FuncError("missing argument for comparison");
  const k1 = basicKind(arg1);
  for (const arg of rest) {
    const k2 = basicKind(arg);
    let t = false;
    if (k1 !== k2) {
      if (isValid(arg1) && isValid(arg)) {
        throw new FuncError(`incompatible types for comparison: ${typeName(arg1)} and ${typeName(arg)}`);
      }
    } else if (k1 === "int" || k1 === "float") {
      t = num(arg1) === num(arg);
    } else if (k1 !== "invalid") {
      t = arg1 === arg;
    } else {
      const r1 = reflectKind(arg1);
      const r2 = reflectKind(arg);
      if (r1 !== r2 && r1 !== "invalid" && r2 !== "invalid") {
        throw new FuncError(
          `non-comparable types ${formatValue(arg1)}: ${typeName(arg1)}, ${typeName(arg)}: ${formatValue(arg)}`,
        );
      }
      const n1 = !isValid(arg1) || arg1 instanceof GoNil;
      const n2 = !isValid(arg) || arg instanceof GoNil;
      if (n1 || n2) t = n1 === n2;
      else if (r2 !== "struct")
        throw new FuncError(`non-comparable type ${formatValue(arg)}: ${typeName(arg)}`);
      else t = arg1 === arg;
    }
    if (t) return true;
  }
  return false;
}

function lt(a: unknown, b: unknown): boolean {
  const k1 = basicKind(a);
  if (k1 === "invalid") throw new FuncError("invalid type for comparison");
  const k2 = basicKind(b);
  if (k2 === "invalid") throw new FuncError("invalid type for comparison");
  if (k1 !== k2) throw new FuncError(`incompatible types for comparison: ${typeName(a)} and ${typeName(b)}`);
  if (k1 === "bool") throw new FuncError("invalid type for comparison");
  if (k1 === "string") return compareGoStrings(a as string, b as string) < 0;
  return num(a) < num(b);
}

function le(a: unknown, b: unknown): boolean {
  return lt(a, b) || eq(a, [b]);
}

function indexArg(ix: unknown, cap: number): number {
  const k = kindOf(ix);
  if (k === "invalid" || k === "nil") throw new FuncError("cannot index slice/array with nil");
  if (k !== "int") throw new FuncError(`cannot index slice/array with type ${typeName(ix)}`);
  const x = ix as number;
  if (x < 0 || x > cap) throw new FuncError(`index out of range: ${x}`);
  return x;
}

function indexFn(args: unknown[]): unknown {
  let item = args[0];
  if (!isValid(item)) throw new FuncError("index of untyped nil");
  for (const ix of args.slice(1)) {
    if (!isValid(item)) throw new FuncError("index of nil pointer");
    switch (kindOf(item)) {
      case "slice": {
        const items = sliceItems(item);
        const x = indexArg(ix, items.length);
        if (x === items.length) throw new FuncError("reflect: slice index out of range");
        item = items[x] ?? null;
        break;
      }
      case "string": {
        const b = utf8Bytes(item as string);
        const x = indexArg(ix, b.length);
        if (x === b.length) throw new FuncError("reflect: string index out of range");
        item = b[x];
        break;
      }
      case "map": {
        if (!isValid(ix)) throw new FuncError("value is nil; should be of type string");
        if (typeof ix !== "string") throw new FuncError(`value has type ${typeName(ix)}; should be string`);
        const v = mapGet(item, ix);
        item = v === undefined ? mapZero(item) : v;
        break;
      }
      default:
        throw new FuncError(`can't index item of type ${typeName(item)}`);
    }
  }
  return item;
}

function sliceFn(args: unknown[]): unknown {
  const item = args[0];
  const idxs = args.slice(1);
  if (!isValid(item)) throw new FuncError("slice of untyped nil");
  if (idxs.length > 3) throw new FuncError(`too many slice indexes: ${idxs.length}`);
  const k = kindOf(item);
  let cap: number;
  let bytes: Uint8Array | undefined;
  if (k === "string") {
    if (idxs.length === 3) throw new FuncError("cannot 3-index slice a string");
    bytes = utf8Bytes(item as string);
    cap = bytes.length;
  } else if (k === "slice") {
    cap = sliceItems(item).length;
  } else {
    throw new FuncError(`can't slice item of type ${typeName(item)}`);
  }
  const idx = [0, cap, cap];
  idxs.forEach((ix, i) => {
    idx[i] = indexArg(ix, cap);
  });
  if (idx[0]! > idx[1]!) throw new FuncError(`invalid slice index: ${idx[0]} > ${idx[1]}`);
  if (idxs.length === 3 && idx[1]! > idx[2]!)
    throw new FuncError(`invalid slice index: ${idx[1]} > ${idx[2]}`);
  if (bytes) return utf8Decode(bytes.subarray(idx[0], idx[1]));
  return sliceItems(item).slice(idx[0], idx[1]);
}

function lenFn([v]: unknown[]): number {
  switch (kindOf(v)) {
    case "nil":
      throw new FuncError("len of nil pointer");
    case "invalid":
      throw new FuncError("reflect: call of reflect.Value.Type on zero Value");
    case "string":
      return utf8Len(v as string);
    case "slice":
      return sliceItems(v).length;
    case "map":
      return mapKeys(v).length;
    default:
      throw new FuncError(`len of type ${typeName(v)}`);
  }
}

function truncateFn(s: string, n: number): string {
  if (ASCII_PRINTABLE.test(s)) {
    if (s.length < n) return s;
  } else if (utf8Len(s) < n) {
    return s;
  }
  if (n < 0) throw new FuncError(`runtime error: slice bounds out of range [:${n}]`);
  return ASCII_PRINTABLE.test(s) ? s.slice(0, n) : utf8Decode(utf8Bytes(s).subarray(0, n));
}

function padFn(s: string, prefix: number, suffix: number): string {
  if (s === "") return s;
  if (prefix < 0 || suffix < 0) throw new FuncError("strings: negative Repeat count");
  return " ".repeat(prefix) + s + " ".repeat(suffix);
}

const BUILTINS: Readonly<Record<string, FuncSpec>> = {
  and: { params: ["value"], variadic: "value", fn: () => undefined },
  or: { params: ["value"], variadic: "value", fn: () => undefined },
  call: { params: ["value"], variadic: "value", fn: () => undefined },
  html: { params: [], variadic: "any", fn: (a) => htmlEscape(evalArgs(a)) },
  index: { params: ["value"], variadic: "value", fn: indexFn },
  slice: { params: ["value"], variadic: "value", fn: sliceFn },
  js: { params: [], variadic: "any", fn: (a) => jsEscape(evalArgs(a)) },
  len: { params: ["value"], fn: lenFn },
  not: { params: ["value"], fn: ([a]) => !truth(a) },
  print: { params: [], variadic: "any", fn: (a) => sprint(a) },
  printf: { params: ["string"], variadic: "any", fn: ([f, ...a]) => sprintf(f as string, a) },
  println: { params: [], variadic: "any", fn: (a) => sprintln(a) },
  urlquery: { params: [], variadic: "any", fn: (a) => queryEscape(evalArgs(a)) },
  eq: { params: ["value"], variadic: "value", fn: ([a, ...rest]) => eq(a, rest) },
  ne: { params: ["value", "value"], fn: ([a, b]) => !eq(a, [b]) },
  lt: { params: ["value", "value"], fn: ([a, b]) => lt(a, b) },
  le: { params: ["value", "value"], fn: ([a, b]) => le(a, b) },
  gt: { params: ["value", "value"], fn: ([a, b]) => !le(a, b) },
  ge: { params: ["value", "value"], fn: ([a, b]) => !lt(a, b) },
};

/** docker/cli templates.basicFunctions. */
const DOCKER_FUNCS: Readonly<Record<string, FuncSpec>> = {
  json: { params: ["any"], fn: ([v], x) => dockerJSON(v, x.escapeHTML) },
  split: {
    params: ["string", "string"],
    fn: ([s, sep]) => (sep === "" ? [...(s as string)] : (s as string).split(sep as string)),
  },
  join: { params: ["[]string", "string"], fn: ([a, sep]) => (sliceItems(a) as string[]).join(sep as string) },
  title: { params: ["string"], fn: ([s]) => goTitle(s as string) },
  lower: { params: ["string"], fn: ([s]) => goLower(s as string) },
  upper: { params: ["string"], fn: ([s]) => goUpper(s as string) },
  pad: { params: ["string", "int", "int"], fn: ([s, p, q]) => padFn(s as string, p as number, q as number) },
  truncate: { params: ["string", "int"], fn: ([s, n]) => truncateFn(s as string, n as number) },
};

/** docker/cli templates.HeaderFunctions: they leave a table's header cells as they are. */
const HEADER_FUNCS: Readonly<Record<string, FuncSpec>> = {
  json: { params: ["string"], fn: ([v]) => v },
  split: { params: ["string", "string"], fn: ([v]) => v },
  join: { params: ["string", "string"], fn: ([v]) => v },
  title: { params: ["string"], fn: ([v]) => v },
  lower: { params: ["string"], fn: ([v]) => v },
  upper: { params: ["string"], fn: ([v]) => v },
  truncate: { params: ["string", "int"], fn: ([v]) => v },
};

type FuncTable = Readonly<Record<string, FuncSpec>>;
const ROW_FUNCS: FuncTable = { ...BUILTINS, ...DOCKER_FUNCS };
const TABLE_HEADER_FUNCS: FuncTable = { ...ROW_FUNCS, ...HEADER_FUNCS };
const FUNC_NAMES: ReadonlySet<string> = new Set(Object.keys(ROW_FUNCS));

// ---------------------------------------------------------------------------------------------
// Execution (text/template/exec.go)

const MISSING = Symbol("missing");
const BREAK = Symbol("break");
const CONTINUE = Symbol("continue");
const MAX_EXEC_DEPTH = 1000;

interface Compiled {
  text: string;
  root: Node[];
  trees: ReadonlyMap<string, Node[]>;
  missingKey: "default" | "zero" | "error";
  escapeHTML: boolean;
}

class Exec {
  out = "";
  private node: AnyNode | null = null;
  private vars: { name: string; value: unknown }[];
  private depth = 0;
  private name = "";
  readonly escapeHTML: boolean;

  constructor(
    private readonly c: Compiled,
    private readonly funcs: FuncTable,
    data: unknown,
  ) {
    this.vars = [{ name: "$", value: data }];
    this.escapeHTML = c.escapeHTML;
  }

  run(data: unknown): string {
    this.walkList(data, this.c.root);
    return this.out;
  }

  private at(n: AnyNode): void {
    this.node = n;
  }

  private errorf(msg: string): never {
    const n = this.node;
    if (!n) throw new StrataError("TEMPLATE_ERROR", `template: ${this.name}: ${msg}`);
    const text = this.c.text;
    const before = text.slice(0, n.pos);
    const nl = before.lastIndexOf("\n");
    const col = utf8Len(nl < 0 ? before : before.slice(nl + 1));
    let line = 1;
    for (let k = before.indexOf("\n"); k >= 0; k = before.indexOf("\n", k + 1)) line++;
    throw new StrataError(
      "TEMPLATE_ERROR",
      `template: :${line}:${col}: executing ${goQuote(this.name)} at <${nodeString(n)}>: ${msg}`,
    );
  }

  private varValue(name: string): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--)
      if (this.vars[i]!.name === name) return this.vars[i]!.value;
    this.errorf(`undefined variable: ${name}`);
  }

  private setVar(name: string, value: unknown): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i]!.name === name) {
        this.vars[i]!.value = value;
        return;
      }
    }
    this.errorf(`undefined variable: ${name}`);
  }

  private setTopVar(n: number, value: unknown): void {
    this.vars[this.vars.length - n]!.value = value;
  }

  private walkList(dot: unknown, list: readonly Node[]): void {
    for (const n of list) this.walk(dot, n);
  }

  private walk(dot: unknown, n: Node): void {
    this.at(n);
    switch (n.t) {
      case "text":
        this.out += n.text;
        return;
      case "action": {
        const v = this.evalPipeline(dot, n.pipe);
        if (n.pipe.decl.length === 0) {
          this.at(n);
          this.out += formatValue(v);
        }
        return;
      }
      case "if":
      case "with": {
        const mark = this.vars.length;
        const v = this.evalPipeline(dot, n.pipe);
        if (truth(v)) this.walkList(n.t === "with" ? v : dot, n.list);
        else if (n.elseList) this.walkList(dot, n.elseList);
        this.vars.length = mark;
        return;
      }
      case "range":
        this.walkRange(dot, n);
        return;
      case "template":
        this.walkTemplate(dot, n);
        return;
      case "break":
        throw BREAK;
      case "continue":
        throw CONTINUE;
      default:
        this.errorf(`unknown node: ${nodeString(n)}`);
    }
  }

  private walkRange(dot: unknown, r: BranchNode): void {
    this.at(r);
    const mark0 = this.vars.length;
    try {
      const val = this.evalPipeline(dot, r.pipe);
      const mark = this.vars.length;
      const decl = r.pipe.decl;
      const one = (index: unknown, elem: unknown): void => {
        if (decl.length > 0) {
          if (r.pipe.isAssign) this.setVar(decl[0]!.ident[0]!, decl.length > 1 ? index : elem);
          else this.setTopVar(1, elem);
        }
        if (decl.length > 1) {
          if (r.pipe.isAssign) this.setVar(decl[1]!.ident[0]!, elem);
          else this.setTopVar(2, index);
        }
        try {
          this.walkList(elem, r.list);
        } catch (e) {
          if (e !== CONTINUE) throw e;
        } finally {
          this.vars.length = mark;
        }
      };
      let ran = false;
      switch (kindOf(val)) {
        case "slice":
          sliceItems(val).forEach((e, i) => {
            ran = true;
            one(i, e ?? null);
          });
          break;
        case "map":
          for (const k of mapKeys(val)) {
            ran = true;
            one(k, mapGet(val, k));
          }
          break;
        case "int":
          if (decl.length > 1)
            this.errorf(`can't use ${formatValue(val)} to iterate over more than one variable`);
          for (let i = 0; i < (val as number); i++) {
            ran = true;
            one(undefined, i);
          }
          break;
        case "invalid":
        case "nil":
          break;
        default:
          this.errorf(`range can't iterate over ${formatValue(val)}`);
      }
      if (!ran && r.elseList) this.walkList(dot, r.elseList);
    } catch (e) {
      if (e !== BREAK) throw e;
    } finally {
      this.vars.length = mark0;
    }
  }

  private walkTemplate(dot: unknown, t: TemplateNode): void {
    this.at(t);
    const tree = this.c.trees.get(t.name);
    if (!tree) this.errorf(`template ${goQuote(t.name)} not defined`);
    if (this.depth >= MAX_EXEC_DEPTH) this.errorf(`exceeded maximum template depth (${MAX_EXEC_DEPTH})`);
    const newDot = t.pipe ? this.evalPipeline(dot, t.pipe) : undefined;
    const { vars, name } = this;
    this.vars = [{ name: "$", value: newDot }];
    this.name = t.name;
    this.depth++;
    try {
      this.walkList(newDot, tree);
    } finally {
      this.vars = vars;
      this.name = name;
      this.depth--;
    }
  }

  private evalPipeline(dot: unknown, pipe: PipeNode): unknown {
    this.at(pipe);
    let value: unknown = MISSING;
    for (const cmd of pipe.cmds) value = this.evalCommand(dot, cmd, value);
    for (const v of pipe.decl) {
      if (pipe.isAssign) this.setVar(v.ident[0]!, value);
      else this.vars.push({ name: v.ident[0]!, value });
    }
    return value;
  }

  private notAFunction(args: readonly Operand[] | null, final: unknown): void {
    if ((args && args.length > 1) || final !== MISSING) {
      this.errorf(`can't give argument to non-function ${nodeString(args![0]!)}`);
    }
  }

  private evalCommand(dot: unknown, cmd: CommandNode, final: unknown): unknown {
    const first = cmd.args[0]!;
    switch (first.t) {
      case "field":
        return this.evalFieldNode(dot, first, cmd.args, final);
      case "chain":
        return this.evalChainNode(dot, first, cmd.args, final);
      case "ident":
        return this.evalFunction(dot, first, cmd, cmd.args, final);
      case "pipe":
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first);
      case "variable":
        return this.evalVariableNode(first, cmd.args, final);
    }
    this.at(first);
    this.notAFunction(cmd.args, final);
    switch (first.t) {
      case "bool":
        return first.value;
      case "dot":
        return dot;
      case "nil":
        this.errorf("nil is not a command");
        break;
      case "number":
        return this.idealConstant(first);
      case "string":
        return first.text;
    }
  }

  private idealConstant(n: NumberNode): unknown {
    this.at(n);
    const isHexInt = /^[+-]?0[xX]/.test(n.text) && !/[pP]/.test(n.text);
    if (n.isFloat && !isHexInt && !n.isRune && /[.eEpP]/.test(n.text)) {
      return Number.isInteger(n.float) ? new GoFloat(n.float) : n.float;
    }
    if (n.isInt) return n.int;
    this.errorf(`${n.text} overflows int`);
  }

  private evalFieldNode(
    dot: unknown,
    f: FieldNode,
    args: readonly Operand[] | null,
    final: unknown,
  ): unknown {
    this.at(f);
    return this.evalFieldChain(dot, f.ident, args, final);
  }

  private evalChainNode(
    dot: unknown,
    c: ChainNode,
    args: readonly Operand[] | null,
    final: unknown,
  ): unknown {
    this.at(c);
    if (c.node.t === "nil") this.errorf(`indirection through explicit nil in ${nodeString(c)}`);
    const pipe = this.evalArg(dot, null, c.node);
    return this.evalFieldChain(pipe, c.field, args, final);
  }

  private evalVariableNode(v: VariableNode, args: readonly Operand[] | null, final: unknown): unknown {
    this.at(v);
    const value = this.varValue(v.ident[0]!);
    if (v.ident.length === 1) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(value, v.ident.slice(1), args, final);
  }

  private evalFieldChain(
    receiver: unknown,
    ident: readonly string[],
    args: readonly Operand[] | null,
    final: unknown,
  ): unknown {
    const n = ident.length;
    for (let i = 0; i < n - 1; i++) receiver = this.evalField(ident[i]!, null, MISSING, receiver);
    return this.evalField(ident[n - 1]!, args, final, receiver);
  }

  private evalField(
    name: string,
    args: readonly Operand[] | null,
    final: unknown,
    receiver: unknown,
  ): unknown {
    const hasArgs = (args !== null && args.length > 1) || final !== MISSING;
    switch (kindOf(receiver)) {
      case "invalid":
        if (this.c.missingKey === "error") this.errorf(`nil data; no entry for key ${goQuote(name)}`);
        return undefined;
      case "nil":
        this.errorf(`nil pointer evaluating interface {}.${name}`);
        break;
      case "map": {
        if (hasArgs) this.errorf(`${name} is not a method but has arguments`);
        const v = mapGet(receiver, name);
        if (v !== undefined) return v;
        if (this.c.missingKey === "zero") return mapZero(receiver);
        if (this.c.missingKey === "error") this.errorf(`map has no entry for key ${goQuote(name)}`);
        return undefined;
      }
      case "struct": {
        const f = structGet(receiver as Obj, name);
        if (f.ok) {
          if (hasArgs) this.errorf(`${name} has arguments but cannot be invoked as function`);
          return f.value === undefined ? null : f.value;
        }
        break;
      }
    }
    this.errorf(`can't evaluate field ${name} in type ${typeName(receiver)}`);
  }

  private evalFunction(
    dot: unknown,
    node: IdentNode,
    cmd: AnyNode,
    args: readonly Operand[] | null,
    final: unknown,
  ): unknown {
    this.at(node);
    const spec = Object.hasOwn(this.funcs, node.name) ? this.funcs[node.name] : undefined;
    if (!spec) this.errorf(`${goQuote(node.name)} is not a defined function`);
    return this.evalCall(dot, spec, node.name, cmd, args, final);
  }

  private evalCall(
    dot: unknown,
    spec: FuncSpec,
    name: string,
    node: AnyNode,
    allArgs: readonly Operand[] | null,
    final: unknown,
  ): unknown {
    const args = allArgs ? allArgs.slice(1) : [];
    const numIn = args.length + (final !== MISSING ? 1 : 0);
    const numFixed = spec.variadic ? spec.params.length : args.length;
    if (spec.variadic) {
      if (numIn < numFixed) {
        this.errorf(`wrong number of args for ${name}: want at least ${numFixed} got ${args.length}`);
      }
    } else if (numIn !== spec.params.length) {
      this.errorf(`wrong number of args for ${name}: want ${spec.params.length} got ${numIn}`);
    }
    if (spec === BUILTINS.and || spec === BUILTINS.or) {
      let v: unknown;
      for (const a of args) {
        v = this.evalArg(dot, "value", a);
        if (truth(v) === (name === "or")) return v;
      }
      if (final !== MISSING) v = final;
      return v;
    }
    const argv: unknown[] = [];
    let i = 0;
    for (; i < numFixed && i < args.length; i++) argv.push(this.evalArg(dot, spec.params[i]!, args[i]!));
    if (spec.variadic) for (; i < args.length; i++) argv.push(this.evalArg(dot, spec.variadic, args[i]!));
    if (final !== MISSING) {
      let t = spec.variadic ?? spec.params[spec.params.length - 1]!;
      if (spec.variadic && numIn - 1 < numFixed) t = spec.params[numIn - 1]!;
      argv.push(this.validateType(final, t));
    }
    if (spec === BUILTINS.call) {
      const callee = argv[0];
      const calleeName = args.length > 0 ? nodeString(args[0]!) : formatValue(final);
      this.at(node);
      if (!isValid(callee)) this.errorf("error calling call: call of nil");
      this.errorf(`error calling call: non-function ${calleeName} of type ${typeName(callee)}`);
    }
    try {
      return spec.fn(argv, this);
    } catch (e) {
      if (!(e instanceof FuncError)) throw e;
      this.at(node);
      this.errorf(`error calling ${name}: ${e.message}`);
    }
  }

  private validateType(value: unknown, typ: ParamType | null): unknown {
    switch (typ) {
      case null:
      case "value":
        return value;
      case "any":
        return value === undefined ? null : value;
      case "string":
        if (typeof value === "string") return value;
        if (value === undefined) this.errorf("invalid value; expected string");
        this.errorf(`wrong type for value; expected string; got ${typeName(value)}`);
        break;
      case "int":
        if (kindOf(value) === "int") return value;
        if (value === undefined) this.errorf("invalid value; expected int");
        this.errorf(`wrong type for value; expected int; got ${typeName(value)}`);
        break;
      case "[]string":
        if (value === undefined) return NIL_SLICE;
        if (kindOf(value) === "slice" && typeName(value) === "[]string") return value;
        this.errorf(`wrong type for value; expected []string; got ${typeName(value)}`);
    }
  }

  private evalArg(dot: unknown, typ: ParamType | null, n: Operand): unknown {
    this.at(n);
    switch (n.t) {
      case "dot":
        return this.validateType(dot, typ);
      case "nil":
        if (typ === "any") return null;
        if (typ === "value" || typ === null) return undefined;
        if (typ === "[]string") return NIL_SLICE;
        this.errorf(`cannot assign nil to ${typ}`);
        break;
      case "field":
        return this.validateType(this.evalFieldNode(dot, n, [n], MISSING), typ);
      case "variable":
        return this.validateType(this.evalVariableNode(n, null, MISSING), typ);
      case "pipe":
        return this.validateType(this.evalPipeline(dot, n), typ);
      case "ident":
        return this.validateType(this.evalFunction(dot, n, n, null, MISSING), typ);
      case "chain":
        return this.validateType(this.evalChainNode(dot, n, null, MISSING), typ);
    }
    switch (typ) {
      case "string":
        if (n.t === "string") return n.text;
        this.errorf(`expected string; found ${nodeString(n)}`);
        break;
      case "int":
        if (n.t === "number" && n.isInt) return n.int;
        this.errorf(`expected integer; found ${nodeString(n)}`);
        break;
      case "[]string":
        this.errorf(`can't handle ${nodeString(n)} for arg of type []string`);
        break;
      default:
        if (n.t === "bool") return n.value;
        if (n.t === "number") return this.idealConstant(n);
        return n.text;
    }
  }
}

class GoTemplate implements Template {
  constructor(private readonly c: Compiled) {}

  execute(data: unknown): string {
    return new Exec(this.c, ROW_FUNCS, data).run(data);
  }

  /** Docker's table header: the row template over the header map with HeaderFunctions; an
   *  error ends the header where it happened, as docker/cli ignores it. */
  executeHeader(headers: unknown): string {
    const x = new Exec(this.c, TABLE_HEADER_FUNCS, headers);
    try {
      return x.run(headers);
    } catch (e) {
      if (e instanceof StrataError) return x.out;
      throw e;
    }
  }
}

/**
 * Parse `text` once (Docker's templates.Parse: text/template with Docker's functions); the result
 * executes against any number of values. Throws StrataError TEMPLATE_ERROR on a parse error.
 */
export function parseTemplate(text: string, options: TemplateOptions = {}): Template {
  return compile(text, options);
}

function compile(text: string, options: TemplateOptions): GoTemplate {
  const toks = new Lexer(text).run();
  const p = new Parser(text, toks, FUNC_NAMES);
  const root = p.parse();
  return new GoTemplate({
    text,
    root,
    trees: p.trees,
    missingKey: options.missingKey ?? "default",
    escapeHTML: options.jsonEscapeHTML ?? false,
  });
}

/** fmt.Sprintf with Go's verbs and flags over template-style values. */
export function goSprintf(format: string, ...args: unknown[]): string {
  return sprintf(
    format,
    args.map((a) => (a === undefined ? null : a)),
  );
}

// ---------------------------------------------------------------------------------------------
// Tabwriter (docker/cli's copy of text/tabwriter) and Docker's table formatter

export interface AlignOptions {
  /** Minimal cell width including padding (docker/cli's formatter: 10). */
  minWidth?: number;
  /** Width of a tab when padChar is "\t". */
  tabWidth?: number;
  /** Added to a cell's width to make the column width (docker/cli: 3). */
  padding?: number;
  /** " " (docker/cli) or "\t". */
  padChar?: string;
}

interface Cell {
  text: string;
  width: number;
}

const WIDE_RANGES: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x23e9, 0x23ec],
  [0x23f0, 0x23f0],
  [0x23f3, 0x23f3],
  [0x25fd, 0x25fe],
  [0x2614, 0x2615],
  [0x2648, 0x2653],
  [0x267f, 0x267f],
  [0x2693, 0x2693],
  [0x26a1, 0x26a1],
  [0x26aa, 0x26ab],
  [0x26bd, 0x26be],
  [0x26c4, 0x26c5],
  [0x26ce, 0x26ce],
  [0x26d4, 0x26d4],
  [0x26ea, 0x26ea],
  [0x26f2, 0x26f3],
  [0x26f5, 0x26f5],
  [0x26fa, 0x26fa],
  [0x26fd, 0x26fd],
  [0x2705, 0x2705],
  [0x270a, 0x270b],
  [0x2728, 0x2728],
  [0x274c, 0x274c],
  [0x274e, 0x274e],
  [0x2753, 0x2755],
  [0x2757, 0x2757],
  [0x2795, 0x2797],
  [0x27b0, 0x27b0],
  [0x27bf, 0x27bf],
  [0x2b1b, 0x2b1c],
  [0x2b50, 0x2b50],
  [0x2b55, 0x2b55],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4],
  [0x17000, 0x18aff],
  [0x1b000, 0x1b2ff],
  [0x1f004, 0x1f004],
  [0x1f0cf, 0x1f0cf],
  [0x1f18e, 0x1f18e],
  [0x1f191, 0x1f19a],
  [0x1f200, 0x1f202],
  [0x1f210, 0x1f23b],
  [0x1f240, 0x1f248],
  [0x1f250, 0x1f251],
  [0x1f260, 0x1f265],
  [0x1f300, 0x1f320],
  [0x1f32d, 0x1f335],
  [0x1f337, 0x1f37c],
  [0x1f37e, 0x1f393],
  [0x1f3a0, 0x1f3ca],
  [0x1f3cf, 0x1f3d3],
  [0x1f3e0, 0x1f3f0],
  [0x1f3f4, 0x1f3f4],
  [0x1f3f8, 0x1f43e],
  [0x1f440, 0x1f440],
  [0x1f442, 0x1f4fc],
  [0x1f4ff, 0x1f53d],
  [0x1f54b, 0x1f54e],
  [0x1f550, 0x1f567],
  [0x1f57a, 0x1f57a],
  [0x1f595, 0x1f596],
  [0x1f5a4, 0x1f5a4],
  [0x1f5fb, 0x1f64f],
  [0x1f680, 0x1f6c5],
  [0x1f6cc, 0x1f6cc],
  [0x1f6d0, 0x1f6d2],
  [0x1f6d5, 0x1f6d7],
  [0x1f6dc, 0x1f6df],
  [0x1f6eb, 0x1f6ec],
  [0x1f6f4, 0x1f6fc],
  [0x1f7e0, 0x1f7eb],
  [0x1f7f0, 0x1f7f0],
  [0x1f90c, 0x1f93a],
  [0x1f93c, 0x1f945],
  [0x1f947, 0x1f9ff],
  [0x1fa70, 0x1faff],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

const ZERO_WIDTH_RE = /^[\p{Mn}\p{Me}\p{Cf}]$/u;

/** go-runewidth's RuneWidth (not East Asian): 0 for controls and marks, 2 for wide runes. */
function runeWidth(r: number): number {
  if (r < 0x20 || (r >= 0x7f && r <= 0x9f) || r === 0xad) return 0;
  if (r < 0x300) return 1;
  if ((r >= 0xd800 && r <= 0xdfff) || r === 0xfffe || r === 0xffff) return 0;
  if (ZERO_WIDTH_RE.test(String.fromCodePoint(r))) return 0;
  let lo = 0;
  let hi = WIDE_RANGES.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = WIDE_RANGES[mid]!;
    if (r < a) hi = mid - 1;
    else if (r > b) lo = mid + 1;
    else return 2;
  }
  return 1;
}

/** Made on first use: creating a segmenter loads ICU's break rules (~10 ms at start-up). */
let graphemes: Intl.Segmenter | undefined;

/**
 * Terminal columns of `s` as docker/cli's tabwriter counts them (go-runewidth's StringWidth):
 * per grapheme cluster, the width of its first rune that has one; wide East Asian runes and
 * emoji count 2.
 */
export function displayWidth(s: string): number {
  if (ASCII_PRINTABLE.test(s)) return s.length;
  let w = 0;
  graphemes ??= new Intl.Segmenter(undefined, { granularity: "grapheme" });
  for (const { segment } of graphemes.segment(s)) {
    for (const ch of segment) {
      const cw = runeWidth(ch.codePointAt(0)!);
      if (cw > 0) {
        w += cw;
        break;
      }
    }
  }
  return w;
}

interface TabConfig {
  minWidth: number;
  tabWidth: number;
  padding: number;
  padChar: string;
}

function tabConfig(o: AlignOptions): TabConfig {
  return {
    minWidth: o.minWidth ?? 10,
    tabWidth: o.tabWidth ?? 1,
    padding: o.padding ?? 3,
    padChar: o.padChar ?? " ",
  };
}

/**
 * The Elastic Tabstops formatting of text/tabwriter: `lines` are lists of cells, each but the last
 * tab-terminated (the last is trailing text outside any column). A column block is a run of
 * adjacent lines that have a cell in that column; its width is the widest cell plus padding, at
 * least minWidth. Returns the formatted lines.
 */
function formatCells(lines: readonly Cell[][], cfg: TabConfig): string[] {
  const out: string[] = [];
  const widths: number[] = [];
  let cur = "";
  const padding = (textw: number, cellw: number): string => {
    if (cfg.padChar === "\t") {
      if (cfg.tabWidth === 0) return "";
      const w = Math.ceil(cellw / cfg.tabWidth) * cfg.tabWidth;
      return "\t".repeat(Math.ceil((w - textw) / cfg.tabWidth));
    }
    return cfg.padChar.repeat(Math.max(cellw - textw, 0));
  };
  const writeLines = (line0: number, line1: number): void => {
    for (let i = line0; i < line1; i++) {
      const line = lines[i]!;
      line.forEach((c, j) => {
        cur += c.text;
        if (j < widths.length) cur += padding(c.width, widths[j]!);
      });
      out.push(cur);
      cur = "";
    }
  };
  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    for (let t = line0; t < line1; t++) {
      if (column >= lines[t]!.length - 1) continue;
      writeLines(line0, t);
      line0 = t;
      let width = cfg.minWidth;
      for (; t < line1; t++) {
        const line = lines[t]!;
        if (column >= line.length - 1) break;
        const w = line[column]!.width + cfg.padding;
        if (w > width) width = w;
      }
      widths.push(width);
      format(line0, t);
      widths.pop();
      line0 = t;
      t--;
    }
    writeLines(line0, line1);
  };
  format(0, lines.length);
  return out;
}

function toCells(texts: readonly string[]): Cell[] {
  return texts.map((text) => ({ text, width: displayWidth(text) }));
}

/**
 * Align rows of cells into columns as Docker's default tables do (text/tabwriter, by default
 * with docker/cli's settings: minwidth 10, padding 3, padchar ' '). Each row's last cell is
 * trailing text and is not padded. Returns the lines, each ending in "\n".
 */
export function alignColumns(lines: readonly (readonly string[])[], options: AlignOptions = {}): string {
  const formatted = formatCells(
    lines.map((l) => toCells(l.length ? l : [""])),
    tabConfig(options),
  );
  return formatted.map((l) => `${l}\n`).join("");
}

/**
 * Filter `text` through a tabwriter.Writer and Flush: cells end at '\t' or '\v', lines at '\n'
 * (or '\f', which also ends every column).
 */
export function tabwrite(text: string, options: AlignOptions = {}): string {
  const cfg = tabConfig(options);
  const sections = text.split("\f");
  return sections
    .map((section, i) => {
      const body = i < sections.length - 1 ? `${section}\n` : section;
      const rawLines = body.split("\n");
      const lines = rawLines.map((l, k) => {
        const cells = l.split(/[\t\v]/);
        if (k === rawLines.length - 1 && cells[cells.length - 1] === "") cells.pop();
        return toCells(cells);
      });
      return formatCells(lines, cfg).join("\n");
    })
    .join("");
}

/**
 * Docker's formatter.Context.Write for `--format`: "table ..." renders a header row (the template
 * over `headers`, field name to column title, with Docker's header functions) and one row per
 * value, aligned by the tabwriter (minwidth 10, padding 3); "json" is `{{json .}}`; any other
 * format renders each row on its own line. As in docker/cli, spaces around the format are
 * trimmed and a literal `\t` or `\n` in it means a tab or a newline. Errors are Docker's:
 * "template parsing error: template: ...". Header fields missing from `headers` print
 * `<no value>`, as Go does for a map without the key.
 */
export function formatTable(
  format: string,
  rows: readonly unknown[],
  headers: Readonly<Record<string, string>> = {},
  options: TemplateOptions = {},
): string {
  const isTable = format.startsWith("table");
  let f = isTable ? format.slice("table".length) : format === "json" ? "{{json .}}" : format;
  f = f.replace(/^ +| +$/g, "").replace(/\\[tn]/g, (m) => (m === "\\t" ? "\t" : "\n"));
  const wrap = (e: unknown): never => {
    if (e instanceof StrataError)
      throw new StrataError("TEMPLATE_ERROR", `template parsing error: ${e.message}`);
    throw e;
  };
  let tpl: GoTemplate;
  try {
    tpl = compile(f, options);
  } catch (e) {
    return wrap(e);
  }
  let body = "";
  for (const row of rows) {
    try {
      body += `${tpl.execute(row)}\n`;
    } catch (e) {
      wrap(e);
    }
  }
  if (!isTable) return body;
  return tabwrite(`${tpl.executeHeader({ ...headers })}\n${body}`);
}
