/**
 * `.dockerignore`: reading the file (moby/patternmatcher `ignorefile.ReadAll`), deciding which
 * paths of a build context it excludes (moby/patternmatcher `PatternMatcher`), and choosing which
 * ignore file applies to a build (BuildKit `frontend/dockerui`).
 *
 * Matching reproduces patternmatcher exactly, quirks included: a pattern is classified as an
 * exact, prefix (`dir/**`), suffix (`**` then `/name`, or `**name`) or regular-expression match, and the
 * last kind is the RE2 expression patternmatcher builds, evaluated here with RE2's semantics
 * (brackets, `\` escapes such as `\d` or `\x41`, `^` as an anchor). A pattern that passes the
 * `filepath.Match` syntax check but whose expression does not compile fails each time it is
 * evaluated, not when the matcher is built, as upstream. Expressions run on a lazily built DFA
 * (RE2's approach): no backtracking, so a path costs at most its length × the expression's size,
 * and typically its length.
 *
 * Pure: no file system access. The context walker lives in build/.
 */

import { StrataError } from "../util/index.js";
import { trimSpace } from "./text.js";

// ---------------------------------------------------------------------------------------------
// Reading the file

/** `bufio.Scanner`'s default limit: a line (with its newline) must fit in 64 KiB. */
const MAX_LINE_BYTES = 64 * 1024;

/**
 * Reads `.dockerignore` text into a pattern list, as `ignorefile.ReadAll` (used by docker/cli,
 * moby and BuildKit): a UTF-8 BOM is dropped; lines whose first character is `#` are comments;
 * lines are trimmed and blank ones skipped; a leading `!` is kept and the text after it trimmed;
 * the rest is cleaned like `path.Clean` and loses one leading `/`. A lone `!` is returned as `!`:
 * it only fails when a {@link PatternMatcher} is built. `null`/`undefined` (no file) give `[]`.
 */
export function readDockerignore(input: string | Uint8Array | null | undefined): string[] {
  if (input === null || input === undefined) return [];
  const text = typeof input === "string" ? input : new TextDecoder().decode(input);
  const lines = text.split("\n");
  // bufio.ScanLines returns the last line only when it is not empty.
  if (lines[lines.length - 1] === "") lines.pop();
  const patterns: string[] = [];
  lines.forEach((raw, index) => {
    if (raw.length * 3 + 1 >= MAX_LINE_BYTES && new TextEncoder().encode(raw).length + 1 > MAX_LINE_BYTES) {
      throw new StrataError("INVALID_ARGUMENT", `bufio.Scanner: token too long (line ${index + 1})`);
    }
    let line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (index === 0 && line.startsWith("\uFEFF")) line = line.slice(1);
    if (line.startsWith("#")) return;
    let pattern = trimSpace(line);
    if (pattern === "") return;
    const invert = pattern.startsWith("!");
    if (invert) pattern = trimSpace(pattern.slice(1));
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith("/")) pattern = pattern.slice(1);
    }
    patterns.push(invert ? `!${pattern}` : pattern);
  });
  return patterns;
}

/** A path that path.Clean would change: `.`/`..` elements, doubled or trailing slashes (a lone `/` is clean). */
const NOT_CLEAN = /(?:^|\/)\.\.?(?:\/|$)|\/\/|.\/$/;

/** Go's `path.Clean`: the shortest equivalent path, lexically. */
function cleanPath(path: string): string {
  if (path === "") return ".";
  // Most paths are clean already (a walker's or find's output): no work for those.
  if (!NOT_CLEAN.test(path)) return path;
  const rooted = path.startsWith("/");
  const n = path.length;
  // The output, one character per element; `dotdot` is the length `..` cannot backtrack past.
  const out: string[] = [];
  let r = 0;
  let dotdot = 0;
  if (rooted) {
    out.push("/");
    r = 1;
    dotdot = 1;
  }
  while (r < n) {
    if (path[r] === "/") {
      r++;
    } else if (path[r] === "." && (r + 1 === n || path[r + 1] === "/")) {
      r++;
    } else if (path[r] === "." && path[r + 1] === "." && (r + 2 === n || path[r + 2] === "/")) {
      r += 2;
      if (out.length > dotdot) {
        // Remove the last element and the separator before it.
        let removed = out.pop();
        while (out.length > dotdot && removed !== "/") removed = out.pop();
      } else if (!rooted) {
        if (out.length > 0) out.push("/");
        out.push(".", ".");
        dotdot = out.length;
      }
    } else {
      if ((rooted && out.length !== 1) || (!rooted && out.length !== 0)) out.push("/");
      for (; r < n && path[r] !== "/"; r++) out.push(path[r]!);
    }
  }
  return out.length === 0 ? "." : out.join("");
}

/** Go's `path.Dir`. */
function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  // Without the slash itself, a clean parent stays on cleanPath's fast path.
  return i <= 0 ? cleanPath(path.slice(0, i + 1)) : cleanPath(path.slice(0, i));
}

// ---------------------------------------------------------------------------------------------
// Choosing the ignore file

/** Where an ignore file lives: next to the Dockerfile, or at the root of the build context. */
export interface DockerignoreSource {
  location: "dockerfile" | "context";
  /** Slash-separated path relative to that location's root. */
  path: string;
}

/**
 * The ignore files BuildKit looks for, in order of precedence: `<Dockerfile path>.dockerignore`
 * in the Dockerfile's directory tree (`sub/app.Dockerfile` → `sub/app.Dockerfile.dockerignore`),
 * then `.dockerignore` at the context root.
 */
export function dockerignoreCandidates(dockerfilePath = "Dockerfile"): DockerignoreSource[] {
  const name = dockerfilePath === "" ? "Dockerfile" : dockerfilePath;
  return [
    { location: "dockerfile", path: `${name}.dockerignore` },
    { location: "context", path: ".dockerignore" },
  ];
}

/**
 * BuildKit's rule for which ignore file applies: the Dockerfile-specific one when it exists
 * (even when empty), otherwise the context's `.dockerignore`, otherwise none. Pure: `exists`
 * says which files are there.
 */
export function chooseDockerignore(
  dockerfilePath: string | undefined,
  exists: (source: DockerignoreSource) => boolean,
): DockerignoreSource | undefined {
  return dockerignoreCandidates(dockerfilePath).find((c) => exists(c));
}

// ---------------------------------------------------------------------------------------------
// Patterns

/** Go's `filepath.ErrBadPattern`. */
function badPattern(pattern: string): StrataError {
  const shown =
    pattern.length > 200 ? `${JSON.stringify(pattern.slice(0, 200))}...` : JSON.stringify(pattern);
  return new StrataError("INVALID_ARGUMENT", `syntax error in pattern: ${shown}`);
}

enum MatchType {
  Exact,
  Prefix,
  Suffix,
  Regexp,
}

interface Pattern {
  /** Cleaned, without the `!`. */
  readonly text: string;
  readonly exclusion: boolean;
  readonly dirs: number;
  readonly type: MatchType;
  /** For Regexp: the RE2 source, and the compiled expression or undefined when it does not compile. */
  readonly source: string;
  readonly regexp: Re2Matcher | undefined;
}

const MATCH_TYPE_NAMES = ["exact", "prefix", "suffix", "regexp"] as const;

/** One pattern of a matcher, after cleaning, and how patternmatcher evaluates it. */
export interface DockerignorePattern {
  /** The cleaned pattern without its `!`. */
  readonly pattern: string;
  /** True for an exception (`!pattern`), which re-includes what earlier patterns excluded. */
  readonly exclusion: boolean;
  /**
   * exact: the path equals the pattern. prefix (`dir/**`): the path starts with the pattern
   * minus `**`. suffix (`**` then `/x`, or `**x`): the path ends with the pattern minus `**`, or
   * for the first form equals `x`. regexp: the RE2 expression in `regexp`.
   */
  readonly matchType: "exact" | "prefix" | "suffix" | "regexp";
  /** The RE2 expression patternmatcher builds, for matchType regexp. */
  readonly regexp?: string;
}

/** What a directory's evaluation tells its children (patternmatcher's `MatchInfo`). */
export interface MatchInfo {
  /** Per pattern: did it match this directory (or, transitively, one of its parents)? */
  readonly parentMatched: Uint8Array;
}

const PATTERN_CHARS = /[*[\]?^\\]/;

/**
 * Decides which paths of a build context a `.dockerignore` pattern list excludes. Paths are
 * slash-separated and relative to the context root. Later patterns win: a path is excluded when
 * the last pattern that applies to it (to the path itself or to one of its parent directories)
 * is a normal pattern, and kept when it is an exception.
 */
export class PatternMatcher {
  private readonly pats: Pattern[] = [];
  private readonly hasExclusions: boolean = false;
  private readonly onlyPrefixExceptions: boolean = true;

  /** Throws StrataError INVALID_ARGUMENT for a lone `!` or a pattern `filepath.Match` rejects. */
  constructor(patterns: readonly string[]) {
    for (const raw of patterns) {
      let p = trimSpace(raw);
      if (p === "") continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p.startsWith("!")) {
        if (p.length === 1) throw new StrataError("INVALID_ARGUMENT", 'illegal exclusion pattern: "!"');
        exclusion = true;
        p = p.slice(1);
        this.hasExclusions = true;
      }
      if (!globSyntaxOk(p)) throw badPattern(p);
      const { type, source } = classify(p);
      let regexp: Re2Matcher | undefined;
      if (type === MatchType.Regexp) {
        try {
          regexp = new Re2Matcher(source);
        } catch (e) {
          if (!(e instanceof Re2SyntaxError)) throw e;
          regexp = undefined;
        }
      }
      this.pats.push({ text: p, exclusion, dirs: p.split("/").length, type, source, regexp });
      if (exclusion && PATTERN_CHARS.test(withoutTrailingGlob(p))) this.onlyPrefixExceptions = false;
    }
  }

  /** The active patterns, in order. */
  patterns(): DockerignorePattern[] {
    return this.pats.map((p) => {
      const info: DockerignorePattern = {
        pattern: p.text,
        exclusion: p.exclusion,
        matchType: MATCH_TYPE_NAMES[p.type],
      };
      return p.type === MatchType.Regexp ? { ...info, regexp: p.source } : info;
    });
  }

  /** True when some pattern is an exception (`!...`). */
  exclusions(): boolean {
    return this.hasExclusions;
  }

  /**
   * patternmatcher's package-level `Matches` (deprecated upstream, still what docker/cli uses to
   * check the Dockerfile and `.dockerignore` themselves): the path is cleaned first, `.` is never
   * excluded, and a pattern is also tried against the parent prefix with as many components as
   * the pattern has.
   */
  matches(file: string): boolean {
    const path = cleanPath(file);
    if (path === ".") return false;
    const parentPath = dirOf(path);
    const parentDirs = parentPath.split("/");
    let matched = false;
    for (const p of this.pats) {
      if (p.exclusion !== matched) continue;
      let match = matchPattern(p, path);
      if (!match && parentPath !== "." && p.dirs <= parentDirs.length) {
        match = matchPattern(p, parentDirs.slice(0, p.dirs).join("/"));
      }
      if (match) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * `MatchesOrParentMatches`: is the path excluded? A pattern applies when it matches the path or
   * any of its leading directories. The path is used as given (not cleaned). Throws StrataError
   * INVALID_ARGUMENT when an evaluated pattern's expression does not compile.
   */
  matchesOrParentMatches(file: string): boolean {
    let matched = false;
    const parentPath = dirOf(file);
    for (const p of this.pats) {
      if (p.exclusion !== matched) continue;
      let match = matchPattern(p, file);
      if (!match && parentPath !== ".") match = matchesSomePrefix(p, parentPath);
      if (match) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * `MatchesUsingParentResults`: the incremental form used while walking a tree (BuildKit's
   * fsutil walker, moby's archive). `parent` is the info returned for the parent directory, or
   * undefined at the top (then parent prefixes are checked as in matchesOrParentMatches). A
   * pattern that matched the parent applies to the child without being evaluated again.
   */
  matchesUsingParentResults(file: string, parent?: MatchInfo): { matched: boolean; info: MatchInfo } {
    const parentMatched = parent?.parentMatched;
    const haveParent = parentMatched !== undefined && parentMatched.length !== 0;
    if (haveParent && parentMatched.length !== this.pats.length) {
      throw new StrataError("INTERNAL", "wrong number of values in parentMatched");
    }
    const info = new Uint8Array(this.pats.length);
    let matched = false;
    for (let i = 0; i < this.pats.length; i++) {
      const p = this.pats[i]!;
      let match = haveParent && parentMatched[i] === 1;
      if (!match) {
        if (p.exclusion !== matched) continue;
        match = matchPattern(p, file);
        if (!match && !haveParent) {
          const parentPath = dirOf(file);
          if (parentPath !== ".") match = matchesSomePrefix(p, parentPath);
        }
      }
      if (match) {
        info[i] = 1;
        matched = !p.exclusion;
      }
    }
    return { matched, info: { parentMatched: info } };
  }

  /**
   * Could an exception pattern re-include something inside the excluded directory `dir`? False
   * means the walker may skip the directory without reading it. BuildKit's (fsutil's) rule: with
   * no exceptions, never; when every exception is a plain path (optionally ending in `/*` or
   * `/**`), only if one lies under `dir`; when an exception has wildcards, always (no pruning).
   */
  mayMatchInside(dir: string): boolean {
    if (!this.hasExclusions) return false;
    if (!this.onlyPrefixExceptions) return true;
    const dirSlash = `${dir}/`;
    return this.pats.some((p) => p.exclusion && `${withoutTrailingGlob(p.text)}/`.startsWith(dirSlash));
  }
}

/** fsutil's `patternWithoutTrailingGlob`. */
function withoutTrailingGlob(p: string): string {
  let s = p;
  if (s.endsWith("/**")) s = s.slice(0, -3);
  if (s.endsWith("/*")) s = s.slice(0, -2);
  return s;
}

/** Does `p` match one of the leading directories of `parentPath` (`a`, `a/b`, ... of `a/b/c`)? */
function matchesSomePrefix(p: Pattern, parentPath: string): boolean {
  let from = 0;
  for (;;) {
    const slash = parentPath.indexOf("/", from);
    const prefix = slash < 0 ? parentPath : parentPath.slice(0, slash);
    if (matchPattern(p, prefix)) return true;
    if (slash < 0) return false;
    from = slash + 1;
  }
}

function matchPattern(p: Pattern, path: string): boolean {
  switch (p.type) {
    case MatchType.Exact:
      return path === p.text;
    case MatchType.Prefix:
      return path.startsWith(p.text.slice(0, -2));
    case MatchType.Suffix: {
      const suffix = p.text.slice(2);
      if (path.endsWith(suffix)) return true;
      return suffix.startsWith("/") && path === suffix.slice(1);
    }
    case MatchType.Regexp:
      if (p.regexp === undefined) throw badPattern(p.text);
      return p.regexp.test(path);
  }
}

/** Characters patternmatcher escapes because they are special to RE2 but not to filepath.Match. */
const SHOULD_ESCAPE = new Set([".", "+", "(", ")", "|", "{", "}", "$"]);

/**
 * patternmatcher's `compile` for the `/` separator: the match type, and for Regexp the RE2
 * source it builds (kept byte for byte, since its quirks are Docker's behaviour).
 */
function classify(pattern: string): { type: MatchType; source: string } {
  let src = "^";
  let type = MatchType.Exact;
  const cps = Array.from(pattern);
  // Go's text/scanner skips a byte-order mark at the start of its input.
  let k = cps[0] === "\uFEFF" ? 1 : 0;
  const peek = () => (k < cps.length ? cps[k]! : "");
  for (let i = 0; k < cps.length; i++) {
    const ch = cps[k++]!;
    if (ch === "*") {
      if (peek() === "*") {
        k++;
        if (peek() === "/") k++;
        if (peek() === "") {
          if (type === MatchType.Exact) type = MatchType.Prefix;
          else {
            src += ".*";
            type = MatchType.Regexp;
          }
        } else {
          src += "(.*/)?";
          type = MatchType.Regexp;
        }
        if (i === 0) type = MatchType.Suffix;
      } else {
        src += "[^/]*";
        type = MatchType.Regexp;
      }
    } else if (ch === "?") {
      src += "[^/]";
      type = MatchType.Regexp;
    } else if (SHOULD_ESCAPE.has(ch)) {
      src += `\\${ch}`;
    } else if (ch === "\\") {
      if (peek() !== "") {
        src += `\\${cps[k++]}`;
        type = MatchType.Regexp;
      } else {
        src += "\\";
      }
    } else if (ch === "[" || ch === "]") {
      src += ch;
      type = MatchType.Regexp;
    } else {
      src += ch;
    }
  }
  if (type === MatchType.Regexp) src += "$";
  return { type, source: src };
}

/**
 * The syntax check of Go's `filepath.Match(pattern, ".")` on Unix, which patternmatcher uses to
 * reject bad patterns: every chunk between stars must be well formed (`[` classes closed, with at
 * least one range, no `-` or `]` where a character is expected; `\` followed by something).
 */
function globSyntaxOk(pattern: string): boolean {
  let p = pattern;
  while (p.length > 0) {
    let s = 0;
    while (s < p.length && p[s] === "*") s++;
    p = p.slice(s);
    let inRange = false;
    let j = 0;
    for (; j < p.length; j++) {
      const c = p[j];
      if (c === "\\") {
        if (j + 1 < p.length) j++;
      } else if (c === "[") inRange = true;
      else if (c === "]") inRange = false;
      else if (c === "*" && !inRange) break;
    }
    if (!chunkSyntaxOk(p.slice(0, j))) return false;
    p = p.slice(j);
  }
  return true;
}

function chunkSyntaxOk(chunk: string): boolean {
  const n = chunk.length;
  // Go's getEsc: one class character, possibly escaped; something must follow it.
  const classChar = (i: number): number => {
    if (i >= n || chunk[i] === "-" || chunk[i] === "]") return -1;
    if (chunk[i] === "\\") {
      i++;
      if (i >= n) return -1;
    }
    i += chunk.codePointAt(i)! > 0xffff ? 2 : 1;
    return i >= n ? -1 : i;
  };
  let i = 0;
  while (i < n) {
    const c = chunk[i];
    if (c === "[") {
      i++;
      if (i < n && chunk[i] === "^") i++;
      let ranges = 0;
      for (;;) {
        if (i < n && chunk[i] === "]" && ranges > 0) {
          i++;
          break;
        }
        i = classChar(i);
        if (i < 0) return false;
        if (chunk[i] === "-") {
          i = classChar(i + 1);
          if (i < 0) return false;
        }
        ranges++;
      }
    } else if (c === "\\") {
      i++;
      if (i >= n) return false;
      i++;
    } else {
      i++;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// RE2 (the subset of Go's regexp/syntax with Perl flags that patternmatcher's output can reach)

class Re2SyntaxError extends Error {}

const ASSERT_BEGIN = 0;
const ASSERT_END = 1;
const ASSERT_WORD = 2;
const ASSERT_NOT_WORD = 3;

type Re2Node =
  | { k: "set"; set: CharSet }
  | { k: "empty" }
  | { k: "cat"; subs: Re2Node[] }
  | { k: "alt"; subs: Re2Node[] }
  | { k: "rep"; op: "*" | "+" | "?"; sub: Re2Node }
  | { k: "assert"; kind: number };

/** A set of code points: ranges and Unicode properties, possibly negated. */
class CharSet {
  private readonly ranges: number[] = [];
  private readonly props: { re: RegExp; sign: boolean }[] = [];
  private negated = false;
  private ascii: Uint8Array | undefined;

  /** The one code point of a set made by `of(c)` and never changed since, for literal prefixes. */
  single: number | undefined;

  static of(lo: number, hi = lo): CharSet {
    const set = new CharSet().addRange(lo, hi);
    if (lo === hi) set.single = lo;
    return set;
  }

  addRange(lo: number, hi: number): this {
    this.ranges.push(lo, hi);
    return this;
  }

  addRanges(flat: readonly number[], sign: boolean): this {
    const r = sign ? flat : complementRanges(flat);
    for (let i = 0; i < r.length; i += 2) this.ranges.push(r[i]!, r[i + 1]!);
    return this;
  }

  addProp(re: RegExp, sign: boolean): this {
    this.props.push({ re, sign });
    return this;
  }

  negate(): this {
    this.negated = !this.negated;
    this.single = undefined;
    return this;
  }

  /** Precomputes the ASCII table; call once the set is complete. */
  seal(): this {
    const t = new Uint8Array(128);
    for (let c = 0; c < 128; c++) t[c] = this.slowHas(c) ? 1 : 0;
    this.ascii = t;
    return this;
  }

  has(c: number): boolean {
    if (c < 128 && this.ascii !== undefined) return this.ascii[c] === 1;
    return this.slowHas(c);
  }

  private slowHas(c: number): boolean {
    let hit = false;
    for (let i = 0; i < this.ranges.length && !hit; i += 2) {
      if (c >= this.ranges[i]! && c <= this.ranges[i + 1]!) hit = true;
    }
    if (!hit && this.props.length > 0) {
      const s = String.fromCodePoint(c);
      for (const p of this.props) {
        if (p.re.test(s) === p.sign) {
          hit = true;
          break;
        }
      }
    }
    return hit !== this.negated;
  }
}

const MAX_RUNE = 0x10ffff;

function complementRanges(flat: readonly number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  let next = 0;
  for (const [lo, hi] of pairs) {
    if (lo > next) out.push(next, lo - 1);
    next = Math.max(next, hi + 1);
  }
  if (next <= MAX_RUNE) out.push(next, MAX_RUNE);
  return out;
}

/** Perl classes (ASCII only in RE2). */
const PERL_GROUPS: Record<string, number[]> = {
  d: [0x30, 0x39],
  s: [0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x20],
  w: [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a],
};

/** POSIX classes inside brackets. */
const POSIX_GROUPS: Record<string, number[]> = {
  alnum: [0x30, 0x39, 0x41, 0x5a, 0x61, 0x7a],
  alpha: [0x41, 0x5a, 0x61, 0x7a],
  ascii: [0x00, 0x7f],
  blank: [0x09, 0x09, 0x20, 0x20],
  cntrl: [0x00, 0x1f, 0x7f, 0x7f],
  digit: [0x30, 0x39],
  graph: [0x21, 0x7e],
  lower: [0x61, 0x7a],
  print: [0x20, 0x7e],
  punct: [0x21, 0x2f, 0x3a, 0x40, 0x5b, 0x60, 0x7b, 0x7e],
  space: [0x09, 0x0d, 0x20, 0x20],
  upper: [0x41, 0x5a],
  word: [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a],
  xdigit: [0x30, 0x39, 0x41, 0x46, 0x61, 0x66],
};

/** A Unicode class name RE2 accepts, as a JS property test. Go's `C` excludes unassigned code points. */
function unicodeProperty(name: string): RegExp | undefined {
  if (name === "Any") return /^[\s\S]$/u;
  if (name === "C") return /^[\p{Cc}\p{Cf}\p{Co}\p{Cs}]$/u;
  if (!/^[A-Za-z_]+$/.test(name)) return undefined;
  for (const src of [`^\\p{gc=${name}}$`, `^\\p{sc=${name}}$`]) {
    try {
      return new RegExp(src, "u");
    } catch {
      // not a category or a script of that name
    }
  }
  return undefined;
}

function isAlnumAscii(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function unhex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Parses RE2 syntax (Go `regexp/syntax`, Perl flags) into a tree. */
class Re2Parser {
  private i = 0;
  private readonly cps: number[];
  private posixEnds: Int32Array | undefined;

  constructor(source: string) {
    this.cps = Array.from(source, (ch) => ch.codePointAt(0)!);
  }

  private at(k: number): number {
    return k < this.cps.length ? this.cps[k]! : -1;
  }

  private text(from: number, to: number): string {
    let s = "";
    for (let k = from; k < to; k++) s += String.fromCodePoint(this.cps[k]!);
    return s;
  }

  /** Position of the first `:]` at or after `from`, or -1 (precomputed once, so long inputs stay linear). */
  private posixEnd(from: number): number {
    if (this.posixEnds === undefined) {
      const ends = new Int32Array(this.cps.length + 1).fill(-1);
      for (let k = this.cps.length - 2; k >= 0; k--) {
        ends[k] = this.cps[k] === 0x3a && this.cps[k + 1] === 0x5d ? k : ends[k + 1]!;
      }
      this.posixEnds = ends;
    }
    return from < this.posixEnds.length ? this.posixEnds[from]! : -1;
  }

  parse(): Re2Node {
    // Frames of open groups: finished alternatives and the current concatenation.
    const frames: { alts: Re2Node[]; cat: Re2Node[] }[] = [{ alts: [], cat: [] }];
    let lastWasRepeat = false;
    while (this.i < this.cps.length) {
      const c = this.cps[this.i]!;
      const frame = frames[frames.length - 1]!;
      let repeat = false;
      switch (c) {
        case 0x28: // (
          if (this.at(this.i + 1) === 0x3f) throw new Re2SyntaxError("unsupported group flags");
          frames.push({ alts: [], cat: [] });
          this.i++;
          break;
        case 0x29: {
          // )
          if (frames.length === 1) throw new Re2SyntaxError("unexpected )");
          frames.pop();
          frames[frames.length - 1]!.cat.push(finishAlt(frame));
          this.i++;
          break;
        }
        case 0x7c: // |
          frame.alts.push(catOf(frame.cat));
          frame.cat = [];
          this.i++;
          break;
        case 0x2a: // *
        case 0x2b: // +
        case 0x3f: {
          // ?
          if (lastWasRepeat) throw new Re2SyntaxError("invalid nested repetition operator");
          const sub = frame.cat.pop();
          if (sub === undefined) throw new Re2SyntaxError("missing argument to repetition operator");
          frame.cat.push({ k: "rep", op: c === 0x2a ? "*" : c === 0x2b ? "+" : "?", sub });
          this.i++;
          if (this.at(this.i) === 0x3f) this.i++; // non-greedy: same language
          repeat = true;
          break;
        }
        case 0x5e: // ^
          frame.cat.push({ k: "assert", kind: ASSERT_BEGIN });
          this.i++;
          break;
        case 0x24: // $
          frame.cat.push({ k: "assert", kind: ASSERT_END });
          this.i++;
          break;
        case 0x2e: // .
          frame.cat.push({ k: "set", set: CharSet.of(0x0a).negate().seal() });
          this.i++;
          break;
        case 0x5b: // [
          frame.cat.push({ k: "set", set: this.parseClass() });
          break;
        case 0x5c: // \
          this.parseBackslash(frame.cat);
          break;
        default:
          frame.cat.push({ k: "set", set: CharSet.of(c).seal() });
          this.i++;
      }
      lastWasRepeat = repeat;
    }
    if (frames.length !== 1) throw new Re2SyntaxError("missing closing )");
    return finishAlt(frames[0]!);
  }

  private parseBackslash(cat: Re2Node[]): void {
    const c1 = this.at(this.i + 1);
    switch (c1) {
      case 0x41: // \A
        cat.push({ k: "assert", kind: ASSERT_BEGIN });
        this.i += 2;
        return;
      case 0x7a: // \z
        cat.push({ k: "assert", kind: ASSERT_END });
        this.i += 2;
        return;
      case 0x62: // \b
        cat.push({ k: "assert", kind: ASSERT_WORD });
        this.i += 2;
        return;
      case 0x42: // \B
        cat.push({ k: "assert", kind: ASSERT_NOT_WORD });
        this.i += 2;
        return;
      case 0x43: // \C
        throw new Re2SyntaxError("invalid escape sequence: \\C");
      case 0x51: {
        // \Q...\E: literal text
        this.i += 2;
        while (this.i < this.cps.length) {
          if (this.cps[this.i] === 0x5c && this.at(this.i + 1) === 0x45) {
            this.i += 2;
            return;
          }
          cat.push({ k: "set", set: CharSet.of(this.cps[this.i]!).seal() });
          this.i++;
        }
        return;
      }
    }
    const set = new CharSet();
    if (this.parseUnicodeClass(set) || this.parsePerlClass(set)) {
      cat.push({ k: "set", set: set.seal() });
      return;
    }
    cat.push({ k: "set", set: CharSet.of(this.parseEscape()).seal() });
  }

  /** `\pL`, `\PL`, `\p{Name}`, `\p{^Name}` at the current position; false if not there. */
  private parseUnicodeClass(set: CharSet): boolean {
    if (this.at(this.i) !== 0x5c) return false;
    const p = this.at(this.i + 1);
    if (p !== 0x70 && p !== 0x50) return false;
    let sign = p === 0x70;
    let k = this.i + 2;
    const c = this.at(k);
    if (c < 0) throw new Re2SyntaxError("invalid character class range");
    let name: string;
    if (c !== 0x7b) {
      name = String.fromCodePoint(c);
      k++;
    } else {
      const close = this.cps.indexOf(0x7d, k);
      if (close < 0) throw new Re2SyntaxError("invalid character class range");
      name = this.text(k + 1, close);
      k = close + 1;
    }
    if (name.startsWith("^")) {
      sign = !sign;
      name = name.slice(1);
    }
    const re = unicodeProperty(name);
    if (re === undefined) throw new Re2SyntaxError(`invalid character class range: ${name}`);
    set.addProp(re, sign);
    this.i = k;
    return true;
  }

  private parsePerlClass(set: CharSet): boolean {
    if (this.at(this.i) !== 0x5c) return false;
    const c = this.at(this.i + 1);
    if (c < 0) return false;
    const name = String.fromCodePoint(c);
    const group = PERL_GROUPS[name.toLowerCase()];
    if (group === undefined || !/^[dswDSW]$/.test(name)) return false;
    set.addRanges(group, name === name.toLowerCase());
    this.i += 2;
    return true;
  }

  /** Go's `parseEscape`: one escaped character at `\`. */
  private parseEscape(): number {
    const start = this.i;
    this.i++;
    if (this.i >= this.cps.length) throw new Re2SyntaxError("trailing backslash at end of expression");
    const c = this.cps[this.i++]!;
    if (c < 0x80 && !isAlnumAscii(c)) return c;
    const isOctal = (k: number) => this.at(k) >= 0x30 && this.at(k) <= 0x37;
    if ((c >= 0x31 && c <= 0x37 && isOctal(this.i)) || c === 0x30) {
      let r = c - 0x30;
      for (let n = 1; n < 3 && isOctal(this.i); n++) r = r * 8 + this.cps[this.i++]! - 0x30;
      return r;
    }
    if (c === 0x78) {
      // \x
      const d = this.at(this.i);
      if (d === 0x7b) {
        this.i++;
        let r = 0;
        let digits = 0;
        for (;;) {
          const h = this.at(this.i++);
          if (h === 0x7d) break;
          const v = unhex(h);
          if (v < 0) throw this.invalidEscape(start);
          r = r * 16 + v;
          if (r > MAX_RUNE) throw this.invalidEscape(start);
          digits++;
        }
        if (digits === 0) throw this.invalidEscape(start);
        return r;
      }
      const x = unhex(this.at(this.i));
      const y = unhex(this.at(this.i + 1));
      if (x < 0 || y < 0) throw this.invalidEscape(start);
      this.i += 2;
      return x * 16 + y;
    }
    switch (c) {
      case 0x61:
        return 0x07; // \a
      case 0x66:
        return 0x0c; // \f
      case 0x6e:
        return 0x0a; // \n
      case 0x72:
        return 0x0d; // \r
      case 0x74:
        return 0x09; // \t
      case 0x76:
        return 0x0b; // \v
    }
    throw this.invalidEscape(start);
  }

  private invalidEscape(start: number): Re2SyntaxError {
    return new Re2SyntaxError(`invalid escape sequence: ${this.text(start, this.i)}`);
  }

  /** Go's `parseClass`, at `[`. */
  private parseClass(): CharSet {
    const set = new CharSet();
    this.i++;
    if (this.at(this.i) === 0x5e) {
      set.negate();
      this.i++;
    }
    let first = true;
    while (this.i >= this.cps.length || this.cps[this.i] !== 0x5d || first) {
      first = false;
      // POSIX [:name:] (its ":]" is searched in the rest of the expression, as Go does).
      if (this.cps.length - this.i > 2 && this.cps[this.i] === 0x5b && this.cps[this.i + 1] === 0x3a) {
        const end = this.posixEnd(this.i + 2);
        if (end >= 0) {
          let name = this.text(this.i + 2, end);
          const sign = !name.startsWith("^");
          if (!sign) name = name.slice(1);
          const group = POSIX_GROUPS[name];
          if (group === undefined) throw new Re2SyntaxError(`invalid character class range: [:${name}:]`);
          set.addRanges(group, sign);
          this.i = end + 2;
          continue;
        }
      }
      if (this.parseUnicodeClass(set) || this.parsePerlClass(set)) continue;
      const lo = this.parseClassChar();
      let hi = lo;
      if (this.cps.length - this.i >= 2 && this.cps[this.i] === 0x2d && this.cps[this.i + 1] !== 0x5d) {
        this.i++;
        hi = this.parseClassChar();
        if (hi < lo) throw new Re2SyntaxError("invalid character class range");
      }
      set.addRange(lo, hi);
    }
    this.i++; // ]
    return set.seal();
  }

  private parseClassChar(): number {
    if (this.i >= this.cps.length) throw new Re2SyntaxError("missing closing ]");
    if (this.cps[this.i] === 0x5c) return this.parseEscape();
    return this.cps[this.i++]!;
  }
}

function catOf(nodes: Re2Node[]): Re2Node {
  if (nodes.length === 0) return { k: "empty" };
  if (nodes.length === 1) return nodes[0]!;
  return { k: "cat", subs: nodes };
}

function finishAlt(frame: { alts: Re2Node[]; cat: Re2Node[] }): Re2Node {
  const last = catOf(frame.cat);
  if (frame.alts.length === 0) return last;
  return { k: "alt", subs: [...frame.alts, last] };
}

// NFA (Thompson) and a lazily built DFA over it.

const ST_SET = 0;
const ST_SPLIT = 1;
const ST_ASSERT = 2;
const ST_MATCH = 3;

/**
 * Bounds on the DFA cache of one expression (states, and NFA state ids held by their kernels);
 * beyond either the cache is dropped and rebuilt as needed, like RE2's. Memory stays bounded; the
 * worst case then costs what RE2's NFA simulation costs, O(path length × expression size).
 */
const MAX_DFA_STATES = 2000;
const MAX_DFA_KERNEL_IDS = 1 << 20;

interface DState {
  readonly kernel: Int32Array;
  readonly atStart: boolean;
  readonly prevWord: boolean;
  /** Per ASCII character: -1 unknown, else (next state id + 1) * 2 + (1 if a match ends before it). */
  readonly ascii: Int32Array;
  readonly other: Map<number, number>;
  /** -1 unknown, 0 or 1: does a match end at the end of the text? */
  acceptAtEnd: number;
}

function isWordChar(c: number): boolean {
  return isAlnumAscii(c) || c === 0x5f;
}

/**
 * The text of the single-character literals of `subs` from index `from` going in direction `step`
 * (+1 forwards, -1 backwards), up to the first node that is not one.
 */
function literalRun(subs: Re2Node[], from: number, step: 1 | -1): string {
  const cps: number[] = [];
  for (let i = from; i >= 0 && i < subs.length; i += step) {
    const n = subs[i]!;
    if (n.k !== "set" || n.set.single === undefined) break;
    cps.push(n.set.single);
  }
  if (step === -1) cps.reverse();
  return cps.map((c) => String.fromCodePoint(c)).join("");
}

/** A compiled RE2 expression; `test` is Go's `MatchString` (a match anywhere, per the anchors). */
class Re2Matcher {
  private readonly type: number[] = [];
  private readonly out: number[] = [];
  private readonly out2: number[] = [];
  private readonly sets: (CharSet | undefined)[] = [];
  private readonly start: number;
  private readonly anchored: boolean;
  private dstates: DState[] = [];
  private index = new Map<string, number>();
  private kernelIds = 0;
  private readonly mark: Int32Array;
  private generation = 0;
  /** Literal text every match must start / end with (from `^abc...` / `...xyz$`): a cheap pre-check. */
  private readonly prefix: string;
  private readonly suffix: string;

  constructor(source: string) {
    const tree = new Re2Parser(source).parse();
    const match = this.add(ST_MATCH, -1, -1, undefined);
    this.start = this.build(tree, match);
    this.mark = new Int32Array(this.type.length);
    const subs = tree.k === "cat" ? tree.subs : [tree];
    const first = subs[0];
    this.anchored = first?.k === "assert" && first.kind === ASSERT_BEGIN;
    this.prefix = this.anchored ? literalRun(subs, 1, 1) : "";
    const last = subs[subs.length - 1];
    const endAnchored = last?.k === "assert" && last.kind === ASSERT_END;
    this.suffix = endAnchored ? literalRun(subs, subs.length - 2, -1) : "";
  }

  private add(type: number, out: number, out2: number, set: CharSet | undefined): number {
    this.type.push(type);
    this.out.push(out);
    this.out2.push(out2);
    this.sets.push(set);
    return this.type.length - 1;
  }

  /** Builds the states of `node` followed by state `next`; returns the entry state. */
  private build(node: Re2Node, next: number): number {
    switch (node.k) {
      case "set":
        return this.add(ST_SET, next, -1, node.set);
      case "empty":
        return next;
      case "assert":
        return this.add(ST_ASSERT, next, node.kind, undefined);
      case "cat": {
        let s = next;
        for (let i = node.subs.length - 1; i >= 0; i--) s = this.build(node.subs[i]!, s);
        return s;
      }
      case "alt": {
        let s = this.build(node.subs[node.subs.length - 1]!, next);
        for (let i = node.subs.length - 2; i >= 0; i--)
          s = this.add(ST_SPLIT, this.build(node.subs[i]!, next), s, undefined);
        return s;
      }
      case "rep": {
        if (node.op === "?") return this.add(ST_SPLIT, this.build(node.sub, next), next, undefined);
        const split = this.add(ST_SPLIT, -1, next, undefined);
        const body = this.build(node.sub, split);
        this.out[split] = body;
        return node.op === "*" ? split : body;
      }
    }
  }

  test(text: string): boolean {
    if (!text.startsWith(this.prefix) || !text.endsWith(this.suffix)) return false;
    let d = this.startState();
    const n = text.length;
    for (let i = 0; i < n; ) {
      let c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        c = text.codePointAt(i)!;
        i += c > 0xffff ? 2 : 1;
      } else {
        i++;
      }
      let code = c < 128 ? d.ascii[c]! : (d.other.get(c) ?? -1);
      if (code < 0) code = this.step(d, c);
      if ((code & 1) === 1) return true;
      const nextId = (code >> 1) - 1;
      if (nextId < 0) return false;
      d = this.dstates[nextId]!;
    }
    if (d.acceptAtEnd < 0) d.acceptAtEnd = this.closure(d, true, false).match ? 1 : 0;
    return d.acceptAtEnd === 1;
  }

  private startState(): DState {
    return this.dstates[this.stateId(Int32Array.of(this.start), true, false)]!;
  }

  private stateId(kernel: Int32Array, atStart: boolean, prevWord: boolean): number {
    const key = `${atStart ? 1 : 0}${prevWord ? 1 : 0}:${kernel.join(",")}`;
    const found = this.index.get(key);
    if (found !== undefined) return found;
    if (this.dstates.length >= MAX_DFA_STATES || this.kernelIds + kernel.length > MAX_DFA_KERNEL_IDS) {
      this.dstates = [];
      this.index = new Map();
      this.kernelIds = 0;
    }
    this.kernelIds += kernel.length;
    const id = this.dstates.length;
    this.dstates.push({
      kernel,
      atStart,
      prevWord,
      ascii: new Int32Array(128).fill(-1),
      other: new Map(),
      acceptAtEnd: -1,
    });
    this.index.set(key, id);
    return id;
  }

  /** Computes and caches the transition of `d` on `c`. */
  private step(d: DState, c: number): number {
    const word = isWordChar(c);
    const { states, match } = this.closure(d, false, word);
    let code: number;
    if (match) {
      code = 1;
    } else {
      const next: number[] = [];
      for (const s of states) {
        if (this.sets[s]!.has(c)) next.push(this.out[s]!);
      }
      if (!this.anchored) next.push(this.start);
      if (next.length === 0) {
        code = 0;
      } else {
        const kernel = Int32Array.from(new Set(next)).sort();
        const before = this.dstates.length;
        const id = this.stateId(kernel, false, word);
        // The cache may have been dropped; `d` is then no longer in it and needs no update.
        if (this.dstates.length < before) return (id + 1) * 2;
        code = (id + 1) * 2;
      }
    }
    if (c < 128) d.ascii[c] = code;
    else d.other.set(c, code);
    return code;
  }

  /** Follows empty transitions from `d`'s kernel; returns the character states and whether MATCH is reached. */
  private closure(d: DState, atEnd: boolean, nextWord: boolean): { states: number[]; match: boolean } {
    const gen = ++this.generation;
    if (gen === 0x7fffffff) {
      this.mark.fill(0);
      this.generation = 1;
    }
    const g = this.generation;
    const states: number[] = [];
    let match = false;
    const stack = Array.from(d.kernel);
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (this.mark[s] === g) continue;
      this.mark[s] = g;
      switch (this.type[s]) {
        case ST_SET:
          states.push(s);
          break;
        case ST_MATCH:
          match = true;
          break;
        case ST_SPLIT:
          stack.push(this.out2[s]!, this.out[s]!);
          break;
        case ST_ASSERT: {
          const kind = this.out2[s];
          const ok =
            kind === ASSERT_BEGIN
              ? d.atStart
              : kind === ASSERT_END
                ? atEnd
                : kind === ASSERT_WORD
                  ? d.prevWord !== nextWord
                  : d.prevWord === nextWord;
          if (ok) stack.push(this.out[s]!);
          break;
        }
      }
    }
    return { states, match };
  }
}
