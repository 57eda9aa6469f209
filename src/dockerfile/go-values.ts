/**
 * Parsers for the value syntaxes BuildKit borrows from Go's standard library and small Go
 * packages: `time.ParseDuration`, `strconv.ParseBool/ParseInt/ParseUint`, `go-units`
 * `RAMInBytes` and a one-line CSV record (`go-csvvalue`). Same accepted forms and the same
 * error texts, so that flag errors read as BuildKit's do. All throw ReasonError.
 */

import { ReasonError } from "./errors.js";
import { goQuote } from "./text.js";

const NS = 1;
const US = 1000 * NS;
const MS = 1000 * US;
const SEC = 1000 * MS;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const UNITS: Record<string, number> = {
  ns: NS,
  us: US,
  "\u00b5s": US,
  "\u03bcs": US,
  ms: MS,
  s: SEC,
  m: MIN,
  h: HOUR,
};
const MAX_DURATION = 2 ** 63 - 1;

/** Go's `time.ParseDuration`, in nanoseconds (`1m30s` → 90e9). */
export function parseGoDuration(s: string): number {
  const orig = s;
  const invalid = () => new ReasonError(`time: invalid duration ${goQuote(orig)}`);
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw invalid();
  let total = 0;
  while (s !== "") {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s)!;
    const intPart = m[1]!;
    const frac = m[2];
    if (intPart === "" && (frac === undefined || frac === "")) throw invalid();
    s = s.slice(m[0].length);
    let i = 0;
    while (i < s.length && s[i] !== "." && !(s[i]! >= "0" && s[i]! <= "9")) i++;
    const unit = s.slice(0, i);
    s = s.slice(i);
    if (unit === "") throw new ReasonError(`time: missing unit in duration ${goQuote(orig)}`);
    const mul = UNITS[unit];
    if (mul === undefined) {
      throw new ReasonError(`time: unknown unit ${goQuote(unit)} in duration ${goQuote(orig)}`);
    }
    let v = Number(intPart || "0") * mul;
    if (frac) v += Math.floor(Number(`0.${frac}`) * mul);
    total += v;
    if (total > MAX_DURATION) throw invalid();
  }
  return neg ? -total : total;
}

/** Go's `time.Duration.String()` for the durations BuildKit prints (`1ms`, `30s`, `1m30s`). */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return "0s";
  const sign = ns < 0 ? "-" : "";
  let u = Math.abs(ns);
  if (u < SEC) {
    if (u < US) return `${sign}${u}ns`;
    if (u < MS) return `${sign}${trimFloat(u / US)}µs`;
    return `${sign}${trimFloat(u / MS)}ms`;
  }
  let out = "";
  const h = Math.floor(u / HOUR);
  u -= h * HOUR;
  const m = Math.floor(u / MIN);
  u -= m * MIN;
  if (h > 0) out += `${h}h`;
  if (h > 0 || m > 0) out += `${m}m`;
  out += `${trimFloat(u / SEC)}s`;
  return sign + out;
}

function trimFloat(x: number): string {
  return String(Number(x.toFixed(9)));
}

/** Go's `strconv.ParseBool`. */
export function parseGoBool(s: string): boolean | undefined {
  switch (s) {
    case "1":
    case "t":
    case "T":
    case "TRUE":
    case "true":
    case "True":
      return true;
    case "0":
    case "f":
    case "F":
    case "FALSE":
    case "false":
    case "False":
      return false;
  }
  return undefined;
}

/** Go's `strconv.ParseInt(s, 10, bits)` / `ParseUint(s, base, bits)`, error text included. */
export function parseGoInt(s: string, opts: { base?: 8 | 10; bits: number; unsigned?: boolean }): number {
  const fn = opts.unsigned ? "ParseUint" : "ParseInt";
  const syntax = () => new ReasonError(`strconv.${fn}: parsing ${goQuote(s)}: invalid syntax`);
  let t = s;
  let neg = false;
  if (!opts.unsigned && (t.startsWith("+") || t.startsWith("-"))) {
    neg = t[0] === "-";
    t = t.slice(1);
  }
  const digits = opts.base === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!digits.test(t)) throw syntax();
  const v = BigInt(opts.base === 8 ? `0o${t}` : t) * (neg ? -1n : 1n);
  const bits = BigInt(opts.bits);
  const max = opts.unsigned ? (1n << bits) - 1n : (1n << (bits - 1n)) - 1n;
  const min = opts.unsigned ? 0n : -(1n << (bits - 1n));
  if (v > max || v < min) throw new ReasonError(`strconv.${fn}: parsing ${goQuote(s)}: value out of range`);
  return Number(v);
}

/** go-units `RAMInBytes`: `64m`, `1.5GiB`, `512k` → bytes (binary multipliers). */
export function ramInBytes(sizeStr: string): number {
  let sep = -1;
  for (let i = sizeStr.length - 1; i >= 0; i--) {
    if ("01234567890. ".includes(sizeStr[i]!)) {
      sep = i;
      break;
    }
  }
  if (sep === -1) throw new ReasonError(`invalid size: '${sizeStr}'`);
  let num: string;
  let sfx: string;
  if (sizeStr[sep] !== " ") {
    num = sizeStr.slice(0, sep + 1);
    sfx = sizeStr.slice(sep + 1);
  } else {
    num = sizeStr.slice(0, sep);
    sfx = sizeStr.slice(sep + 1);
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(num)) {
    throw new ReasonError(`strconv.ParseFloat: parsing ${goQuote(num)}: invalid syntax`);
  }
  let size = Number(num);
  if (size < 0) throw new ReasonError(`invalid size: '${sizeStr}'`);
  if (sfx.length === 0) return Math.trunc(size);
  const bad = () => new ReasonError(`invalid suffix: '${sfx.toLowerCase()}'`);
  if (sfx.length > 3) throw new ReasonError(`invalid suffix: '${sfx}'`);
  sfx = sfx.toLowerCase();
  if (sfx[0] === "b") {
    if (sfx.length > 1) throw bad();
    return Math.trunc(size);
  }
  const mul = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[sfx[0]!];
  if (mul === undefined) throw bad();
  size *= mul;
  if ((sfx.length === 2 && sfx[1] !== "b") || (sfx.length === 3 && sfx.slice(1) !== "ib")) throw bad();
  return Math.trunc(size);
}

/**
 * One CSV record (`go-csvvalue.Fields`): comma-separated, `"…"` quoting with `""` for a quote.
 * Used for `--mount` and `--device` values.
 */
export function csvFields(input: string): string[] {
  let line = input;
  if (line.endsWith("\n")) line = line.slice(0, line.endsWith("\r\n") ? -2 : -1);
  if (line.length === 0) throw new ReasonError("EOF");
  const out: string[] = [];
  let pos = 0;
  for (;;) {
    if (line.length === 0 || line[0] !== '"') {
      const i = line.indexOf(",");
      const field = i >= 0 ? line.slice(0, i) : line;
      const j = field.indexOf('"');
      if (j >= 0)
        throw new ReasonError(`parse error on line 1, column ${pos + j + 1}: bare " in non-quoted-field`);
      out.push(field);
      if (i >= 0) {
        line = line.slice(i + 1);
        pos += i + 1;
        continue;
      }
      return out;
    }
    line = line.slice(1);
    pos += 1;
    let halfOpen = false;
    for (;;) {
      const i = line.indexOf('"');
      if (i < 0) {
        throw new ReasonError(
          `parse error on line 1, column ${pos + 1}: extraneous or missing " in quoted-field`,
        );
      }
      if (!halfOpen) out.push(line.slice(0, i));
      else out[out.length - 1] += line.slice(0, i);
      halfOpen = false;
      line = line.slice(i + 1);
      pos += i + 1;
      if (line[0] === '"') {
        out[out.length - 1] += '"';
        line = line.slice(1);
        pos += 1;
        halfOpen = true;
      } else if (line[0] === ",") {
        line = line.slice(1);
        pos += 1;
        break;
      } else if (line.length === 0) {
        return out;
      } else {
        throw new ReasonError(
          `parse error on line 1, column ${pos}: extraneous or missing " in quoted-field`,
        );
      }
    }
  }
}
