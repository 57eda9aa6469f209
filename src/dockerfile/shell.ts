/**
 * BuildKit's shell-word lexer (`frontend/dockerfile/shell/lex.go`): quote and escape
 * processing, `$VAR` / `${VAR...}` expansion and splitting into words, for the arguments of
 * ENV, ARG, LABEL, COPY, ADD, WORKDIR, FROM, EXPOSE, USER, ... Same grammar, same results and
 * the same error texts as BuildKit, with three deliberate differences:
 *
 * - Input size, output size, nesting depth and glob-matching work are bounded (see
 *   {@link ShellLexLimits}); BuildKit has no limits, we fail with `TOO_LARGE` instead of
 *   running out of stack or memory.
 * - `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/rep}` patterns are matched by a dynamic
 *   programme over (pattern position, text position) that reproduces the match RE2 picks for
 *   the regular expression BuildKit builds (leftmost-first, `*` greedy or lazy, `?` and `*`
 *   never crossing `\n`), in time proportional to pattern length × value length.
 * - {@link ShellLex.processWords}: since BuildKit v0.15 (commit 4c935cf, "optimize memory
 *   usage on env processing") the word buffer is shared with nested `${VAR:-word}` scans and
 *   reset by them, so `ProcessWords("a${X:-b}c")` returns `["bc"]` there. That is an
 *   accidental regression (it drops user text silently); we keep the behaviour BuildKit had
 *   before it and still intends: `["abc"]`. No upstream test vector depends on it.
 */

import { StrataError } from "../util/index.js";
import { goQuote } from "./text.js";

/** Variables visible to an expansion. Keys are case-sensitive (Linux semantics). */
export type Env = Map<string, string>;

/** The `# escape=` directive's choice. */
export type EscapeToken = "\\" | "`";

/** Safety bounds; BuildKit has none, so every default is far above what a real Dockerfile needs. */
export interface ShellLexLimits {
  /** Longest input word, in UTF-16 code units. Default 8 MiB (a large heredoc still fits). */
  maxInputLength: number;
  /** Longest result of one expansion (or of the whole word), in UTF-16 code units. Default 64 MiB. */
  maxOutputLength: number;
  /**
   * Deepest nesting of `${VAR:-${VAR:-...}}` (and `${VAR#...}`, `${VAR/...}`). Default 256: real
   * Dockerfiles nest a few levels; each level costs three stack frames, and Node's default stack
   * holds about 1,500 levels, so 256 leaves room for the caller's own frames.
   */
  maxDepth: number;
  /**
   * Largest (pattern length + 1) × (value length + 1) one `#`/`%`/`/` glob match may cost. Default
   * 2^28: about a quarter of a second in the worst case.
   */
  maxPatternWork: number;
}

export const DEFAULT_SHELL_LEX_LIMITS: Readonly<ShellLexLimits> = Object.freeze({
  maxInputLength: 8 * 1024 * 1024,
  maxOutputLength: 64 * 1024 * 1024,
  maxDepth: 256,
  maxPatternWork: 2 ** 28,
});

/** The modes of BuildKit's `shell.Lex` (`RawQuotes`, `RawEscapes`, `SkipUnsetEnv`, `SkipProcessQuotes`). */
export interface ShellLexOptions {
  /** Keep the quote characters in the result (`"a b"` stays `"a b"`, still one word). */
  rawQuotes?: boolean;
  /** Keep escape characters in the result (`a\ b` stays `a\ b`). */
  rawEscapes?: boolean;
  /** Leave references to unset variables as they were written (`$X`, `${X}`, `${X:-w}`). */
  skipUnsetEnv?: boolean;
  /** Treat quotes as ordinary characters. */
  skipProcessQuotes?: boolean;
  limits?: Partial<ShellLexLimits>;
}

export interface ProcessWordResult {
  result: string;
  /** Variables that were looked up and are set (possibly to ""). */
  used: Set<string>;
  /** Variables that were looked up and are not set. */
  unmatched: Set<string>;
}

export interface ProcessWordsResult {
  result: string[];
  used: Set<string>;
  unmatched: Set<string>;
}

/**
 * Shell-word lexer. The mode fields may be changed between calls (the Dockerfile parser flips
 * `rawQuotes` between two passes, as BuildKit does); each call is independent, so one instance may
 * serve concurrent callers.
 */
export class ShellLex {
  readonly escapeToken: EscapeToken;
  rawQuotes: boolean;
  rawEscapes: boolean;
  skipUnsetEnv: boolean;
  skipProcessQuotes: boolean;
  readonly limits: Readonly<ShellLexLimits>;

  constructor(escapeToken: EscapeToken = "\\", options: ShellLexOptions = {}) {
    if (escapeToken !== "\\" && escapeToken !== "`") {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `invalid escape token '${String(escapeToken)}' does not match \` or \\`,
      );
    }
    this.escapeToken = escapeToken;
    this.rawQuotes = options.rawQuotes ?? false;
    this.rawEscapes = options.rawEscapes ?? false;
    this.skipUnsetEnv = options.skipUnsetEnv ?? false;
    this.skipProcessQuotes = options.skipProcessQuotes ?? false;
    this.limits = Object.freeze({ ...DEFAULT_SHELL_LEX_LIMITS, ...options.limits });
  }

  /**
   * Expands one word: quotes and escapes are processed, variables replaced, whitespace kept.
   * BuildKit's `ProcessWordWithMatches`. Throws StrataError INVALID_ARGUMENT with BuildKit's
   * message (`failed to process "${x": syntax error: missing '}'`), or TOO_LARGE over a limit.
   */
  processWord(word: string, env: Env): ProcessWordResult {
    const sw = new ShellWord(this, word, env);
    const { result } = sw.run(false);
    return { result, used: sw.used, unmatched: sw.unmatched };
  }

  /**
   * Expands and splits into words at unquoted whitespace, including whitespace that comes out of
   * an unquoted variable. Quoted text, even empty, never splits; an empty quoted string alone
   * gives no word. BuildKit's `ProcessWords`.
   */
  processWords(word: string, env: Env): ProcessWordsResult {
    const sw = new ShellWord(this, word, env);
    const { words } = sw.run(true);
    return { result: words ?? [], used: sw.used, unmatched: sw.unmatched };
  }
}

/**
 * BuildKit's `EnvsFromSlice`: `KEY=VALUE` strings to an environment. The key is the text before
 * the first `=`; `KEY` alone sets KEY to ""; a later entry for the same key wins.
 */
export function envFromSlice(list: readonly string[]): Env {
  const env: Env = new Map();
  for (const e of list) {
    const i = e.indexOf("=");
    if (i < 0) env.set(e, "");
    else env.set(e.slice(0, i), e.slice(i + 1));
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Implementation

const EOF = -1;
const TAB = 0x09;
const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const DQUOTE = 0x22;
const DOLLAR = 0x24;
const PERCENT = 0x25;
const SQUOTE = 0x27;
const STAR = 0x2a;
const PLUS = 0x2b;
const MINUS = 0x2d;
const SLASH = 0x2f;
const COLON = 0x3a;
const LT = 0x3c;
const QUESTION = 0x3f;
const BACKSLASH = 0x5c;
const UNDERSCORE = 0x5f;
const HASH = 0x23;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const BOM = 0xfeff;

/** An error with BuildKit's inner message; the caller adds `failed to process "<word>": `. */
class LexError extends Error {}

function tooLarge(what: string): StrataError {
  return new StrataError("TOO_LARGE", what);
}

/** Go's `string(rune)`: EOF (-1) becomes U+FFFD. */
function runeStr(c: number): string {
  return c < 0 ? "\uFFFD" : String.fromCodePoint(c);
}

/** Go's `unicode.IsSpace`. */
function isGoSpace(c: number): boolean {
  if (c <= 0xff) return c === SPACE || (c >= TAB && c <= CR) || c === 0x85 || c === 0xa0;
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

const RE_LETTER = /^\p{L}$/u;
const RE_DIGIT = /^\p{Nd}$/u;

/** Go's `unicode.IsLetter`. */
function isGoLetter(c: number): boolean {
  if (c < 0x80) return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  return RE_LETTER.test(String.fromCodePoint(c));
}

/** Go's `unicode.IsDigit`. */
function isGoDigit(c: number): boolean {
  if (c < 0x80) return c >= 0x30 && c <= 0x39;
  return RE_DIGIT.test(String.fromCodePoint(c));
}

/** POSIX special parameters, never set in a Dockerfile. */
function isSpecialParam(c: number): boolean {
  switch (c) {
    case 0x40: // @
    case STAR:
    case HASH:
    case QUESTION:
    case MINUS:
    case DOLLAR:
    case 0x21: // !
    case 0x30: // 0
      return true;
  }
  return false;
}

/** Whitespace allowed between `<<` and a heredoc word. */
function isHeredocSpace(c: number): boolean {
  return c === TAB || c === CR || c === SPACE;
}

/** The longest source quoted into an error message, so a huge word does not make a huge message. */
const MAX_QUOTED_SOURCE = 4096;

/** Collects words the way BuildKit's `wordsStruct` does. */
class Words {
  private buf = "";
  private words: string[] = [];
  private inWord = false;

  addChar(c: number): void {
    if (isGoSpace(c)) {
      if (this.inWord && this.buf.length !== 0) {
        this.words.push(this.buf);
        this.buf = "";
        this.inWord = false;
      }
    } else {
      this.addRawChar(c);
    }
  }

  addRawChar(c: number): void {
    this.buf += String.fromCodePoint(c);
    this.inWord = true;
  }

  addString(s: string): void {
    for (let i = 0; i < s.length; ) {
      const c = s.codePointAt(i)!;
      i += c > 0xffff ? 2 : 1;
      this.addChar(c);
    }
  }

  addRawString(s: string): void {
    this.buf += s;
    this.inWord = true;
  }

  get(): string[] {
    if (this.buf.length > 0) {
      this.words.push(this.buf);
      this.buf = "";
      this.inWord = false;
    }
    return this.words;
  }
}

/** The state of one call: a scanner over the source word plus the variables looked up. */
class ShellWord {
  readonly used = new Set<string>();
  readonly unmatched = new Set<string>();
  private pos = 0;
  private readonly escape: number;
  private readonly limits: Readonly<ShellLexLimits>;

  constructor(
    private readonly lex: ShellLex,
    private readonly src: string,
    private readonly env: Env,
  ) {
    this.escape = lex.escapeToken.charCodeAt(0);
    this.limits = lex.limits;
  }

  run(collectWords: boolean): { result: string; words: string[] | undefined } {
    if (this.src.length > this.limits.maxInputLength) {
      throw tooLarge(
        `word of ${this.src.length} characters is over the limit of ${this.limits.maxInputLength} for variable expansion`,
      );
    }
    // Go's text/scanner skips a byte-order mark at the very start of its input.
    if (this.src.charCodeAt(0) === BOM) this.pos = 1;
    try {
      return this.processStopOn(EOF, this.lex.rawEscapes, collectWords, 0);
    } catch (e) {
      if (e instanceof LexError) {
        throw new StrataError("INVALID_ARGUMENT", `failed to process ${this.quotedSource()}: ${e.message}`);
      }
      if (e instanceof RangeError && /call stack/i.test(e.message)) {
        throw tooLarge(`failed to process ${this.quotedSource()}: variable expansion nested too deeply`);
      }
      throw e;
    }
  }

  private quotedSource(): string {
    if (this.src.length <= MAX_QUOTED_SOURCE) return goQuote(this.src);
    return `${goQuote(this.src.slice(0, MAX_QUOTED_SOURCE))}...`;
  }

  private peek(): number {
    const { src, pos } = this;
    if (pos >= src.length) return EOF;
    const c = src.charCodeAt(pos);
    return c >= 0xd800 && c <= 0xdbff ? src.codePointAt(pos)! : c;
  }

  private next(): number {
    const c = this.peek();
    if (c !== EOF) this.pos += c > 0xffff ? 2 : 1;
    return c;
  }

  private checkOutput(s: string): void {
    if (s.length > this.limits.maxOutputLength) {
      throw tooLarge(
        `variable expansion result is over the limit of ${this.limits.maxOutputLength} characters`,
      );
    }
  }

  /** Is `c` one of the characters processStopOn hands to a special function? */
  private isSpecial(c: number, stopChar: number): boolean {
    if (c === DOLLAR || c === LT || c === this.escape || c === stopChar) return true;
    return !this.lex.skipProcessQuotes && (c === SQUOTE || c === DQUOTE);
  }

  /**
   * Processes the word up to `stopChar` (consumed) or the end. `raw` is BuildKit's temporary
   * `rawEscapes`. Words are only collected at the top level of ProcessWords.
   */
  private processStopOn(
    stopChar: number,
    raw: boolean,
    collectWords: boolean,
    depth: number,
  ): { result: string; words: string[] | undefined } {
    if (depth > this.limits.maxDepth) {
      throw tooLarge(`variable expansion nested deeper than ${this.limits.maxDepth} levels`);
    }
    let result = "";
    const words = collectWords ? new Words() : undefined;
    const quotes = !this.lex.skipProcessQuotes;
    const src = this.src;

    for (;;) {
      const ch = this.peek();
      if (ch === EOF) break;
      if (stopChar !== EOF && ch === stopChar) {
        this.next();
        return { result, words: words?.get() };
      }
      if (ch === DOLLAR) {
        const tmp = this.processDollar(depth);
        result += tmp;
        this.checkOutput(result);
        words?.addString(tmp);
        continue;
      }
      if (ch === LT || (quotes && (ch === SQUOTE || ch === DQUOTE))) {
        const tmp =
          ch === LT
            ? this.processPossibleHeredoc()
            : ch === SQUOTE
              ? this.processSingleQuote()
              : this.processDoubleQuote(raw, depth);
        result += tmp;
        this.checkOutput(result);
        words?.addRawString(tmp);
        continue;
      }
      if (ch !== this.escape && words === undefined) {
        // Fast path: a run of ordinary characters.
        const start = this.pos;
        let end = start + 1;
        while (end < src.length && !this.isSpecial(src.charCodeAt(end), stopChar)) end++;
        result += src.slice(start, end);
        this.pos = end;
        continue;
      }
      let c = this.next();
      if (c === this.escape) {
        if (raw) {
          words?.addRawChar(c);
          result += String.fromCodePoint(c);
        }
        // The escape character escapes the next one; at the end of the word it is dropped.
        c = this.next();
        if (c === EOF) break;
        words?.addRawChar(c);
      } else {
        words?.addChar(c);
      }
      result += String.fromCodePoint(c);
    }
    if (stopChar !== EOF) {
      throw new LexError(`unexpected end of statement while looking for matching ${runeStr(stopChar)}`);
    }
    return { result, words: words?.get() };
  }

  private processSingleQuote(): string {
    // Everything up to the next single quote is literal; a single quote cannot be escaped.
    this.next();
    const end = this.src.indexOf("'", this.pos);
    if (end < 0) {
      this.pos = this.src.length;
      throw new LexError("unexpected end of statement while looking for matching single-quote");
    }
    const body = this.src.slice(this.pos, end);
    this.pos = end + 1;
    return this.lex.rawQuotes ? `'${body}'` : body;
  }

  private processDoubleQuote(raw: boolean, depth: number): string {
    // Literal except `$` expansions; the escape character escapes only `"`, `$` and itself.
    this.next();
    let result = this.lex.rawQuotes ? '"' : "";
    for (;;) {
      const p = this.peek();
      if (p === EOF) {
        throw new LexError("unexpected end of statement while looking for matching double-quote");
      }
      if (p === DQUOTE) {
        this.next();
        if (this.lex.rawQuotes) result += '"';
        return result;
      }
      if (p === DOLLAR) {
        result += this.processDollar(depth);
        this.checkOutput(result);
        continue;
      }
      let c = this.next();
      if (c === this.escape) {
        if (raw) result += String.fromCodePoint(c);
        const q = this.peek();
        if (q === EOF) continue;
        if (q === DQUOTE || q === DOLLAR || q === this.escape) c = this.next();
      }
      result += String.fromCodePoint(c);
    }
  }

  private processPossibleHeredoc(): string {
    this.next();
    if (this.peek() !== LT) return "<";
    this.next();
    let space = "";
    while (isHeredocSpace(this.peek())) space += String.fromCodePoint(this.next());
    return `<<${space}`;
  }

  /** A nested scan up to `stop`; an error at the end of the input becomes `missing`. */
  private nested(stop: number, raw: boolean, depth: number, missing: string): string {
    try {
      return this.processStopOn(stop, raw, false, depth + 1).result;
    } catch (e) {
      if (e instanceof LexError && this.peek() === EOF) throw new LexError(missing);
      throw e;
    }
  }

  private processDollar(depth: number): string {
    this.next(); // $

    if (this.peek() !== LBRACE) {
      const name = this.processName();
      if (name === "") return "$";
      const [value, set] = this.getEnv(name);
      if (!set && this.lex.skipUnsetEnv) return `$${name}`;
      return value;
    }

    this.next(); // {
    const first = this.peek();
    if (first === EOF) throw new LexError("syntax error: missing '}'");
    if (first === LBRACE || first === RBRACE || first === COLON) {
      throw new LexError("syntax error: bad substitution");
    }
    const name = this.processName();
    let ch = this.next();
    let chs = runeStr(ch);

    if (ch === RBRACE) {
      const [value, set] = this.getEnv(name);
      if (!set && this.lex.skipUnsetEnv) return `\${${name}}`;
      return value;
    }

    if (ch === SLASH) return this.processReplace(name, depth);

    let nullIsUnset = false;
    if (ch === COLON) {
      nullIsUnset = true;
      ch = this.next();
      chs += runeStr(ch);
    } else if (ch !== PLUS && ch !== MINUS && ch !== QUESTION && ch !== HASH && ch !== PERCENT) {
      throw new LexError(`unsupported modifier (${chs}) in substitution`);
    }

    const rawEscapes = ch === HASH || ch === PERCENT;
    if (nullIsUnset && rawEscapes) throw new LexError(`unsupported modifier (${chs}) in substitution`);
    let word = this.nested(RBRACE, rawEscapes, depth, "syntax error: missing '}'");

    const [value, set] = this.getEnv(name);
    if (this.lex.skipUnsetEnv && !set) return `\${${name}${chs}${word}}`;

    const unsetOrNull = !set || (nullIsUnset && value === "");
    switch (ch) {
      case MINUS:
        return unsetOrNull ? word : value;
      case PLUS:
        return unsetOrNull ? "" : word;
      case QUESTION:
        if (!set) throw new LexError(`${name}: ${word !== "" ? word : "is not allowed to be unset"}`);
        if (nullIsUnset && value === "") {
          throw new LexError(`${name}: ${word !== "" ? word : "is not allowed to be empty"}`);
        }
        return value;
      case PERCENT:
      case HASH: {
        // `%`/`#` remove the shortest match, `%%`/`##` the longest.
        let greedy = false;
        if (word.length > 0 && word.charCodeAt(0) === ch) {
          greedy = true;
          word = word.slice(1);
        }
        return ch === PERCENT ? this.trimSuffix(word, value, greedy) : this.trimPrefix(word, value, greedy);
      }
      default:
        throw new LexError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  private processReplace(name: string, depth: number): string {
    const replaceAll = this.peek() === SLASH;
    if (replaceAll) this.next();
    const pattern = this.nested(SLASH, true, depth, `syntax error: missing '/' in \${}`);
    const replacement = this.nested(RBRACE, true, depth, "syntax error: missing '}'");

    const [value, set] = this.getEnv(name);
    if (this.lex.skipUnsetEnv && !set) return `\${${name}/${pattern}/${replacement}}`;

    const toks = compileGlob(pattern, pattern);
    const text = codePoints(value);
    this.checkWork(toks.length, text.cps.length);
    const ends = globMatchEnds(toks, text.cps, true, true);
    const slice = (a: number, b: number) => value.slice(text.offs[a], text.offs[b]);
    if (!replaceAll) {
      for (let s = 0; s < ends.length; s++) {
        const e = ends[s]!;
        if (e >= 0) {
          const out = slice(0, s) + replacement + slice(e, text.cps.length);
          this.checkOutput(out);
          return out;
        }
      }
      return value;
    }
    return this.replaceAllLikeGo(ends, text.cps.length, slice, replacement);
  }

  /** Go's `Regexp.ReplaceAllString`, given the end of the leftmost-first match at every start. */
  private replaceAllLikeGo(
    ends: Int32Array,
    n: number,
    slice: (a: number, b: number) => string,
    template: string,
  ): string {
    let out = "";
    let lastMatchEnd = 0;
    let searchPos = 0;
    let scan = 0;
    while (searchPos <= n) {
      if (scan < searchPos) scan = searchPos;
      while (scan <= n && ends[scan]! < 0) scan++;
      if (scan > n) break;
      const a0 = scan;
      const a1 = ends[a0]!;
      out += slice(lastMatchEnd, a0);
      // No replacement for an empty match right after another match.
      if (a1 > lastMatchEnd || a0 === 0) out += expandTemplate(template, slice(a0, a1));
      this.checkOutput(out);
      lastMatchEnd = a1;
      const width = searchPos < n ? 1 : 0;
      if (searchPos + width > a1) searchPos += width;
      else if (searchPos + 1 > a1) searchPos++;
      else searchPos = a1;
    }
    out += slice(lastMatchEnd, n);
    this.checkOutput(out);
    return out;
  }

  private trimPrefix(pattern: string, value: string, greedy: boolean): string {
    const toks = compileGlob(pattern, pattern);
    const text = codePoints(value);
    this.checkWork(toks.length, text.cps.length);
    const end = globMatchEnds(toks, text.cps, greedy, false)[0]!;
    return end >= 0 ? value.slice(text.offs[end]) : value;
  }

  private trimSuffix(pattern: string, value: string, greedy: boolean): string {
    // Regular expressions cannot find the shortest rightmost match, so BuildKit reverses both
    // the pattern and the value and removes a prefix instead.
    const reversed = reverseShellPattern(pattern);
    const toks = compileGlob(reversed, reversed);
    const text = codePoints(value);
    const n = text.cps.length;
    this.checkWork(toks.length, n);
    const rev = new Int32Array(n);
    for (let i = 0; i < n; i++) rev[i] = text.cps[n - 1 - i]!;
    const end = globMatchEnds(toks, rev, greedy, false)[0]!;
    return end >= 0 ? value.slice(0, text.offs[n - end]) : value;
  }

  private checkWork(patternLength: number, valueLength: number): void {
    const work = (patternLength + 1) * (valueLength + 1);
    if (work > this.limits.maxPatternWork) {
      throw tooLarge(
        `pattern substitution over ${patternLength} pattern and ${valueLength} value characters is over the work limit`,
      );
    }
  }

  private processName(): string {
    // A name is letters, digits and `_`; a leading digit takes all following digits (a
    // positional parameter); a special parameter is one character.
    let name = "";
    for (;;) {
      const c = this.peek();
      if (c === EOF) break;
      if (name === "" && isGoDigit(c)) {
        while (this.peek() !== EOF && isGoDigit(this.peek())) name += String.fromCodePoint(this.next());
        return name;
      }
      if (name === "" && isSpecialParam(c)) {
        this.next();
        return String.fromCodePoint(c);
      }
      if (!isGoLetter(c) && !isGoDigit(c) && c !== UNDERSCORE) break;
      name += String.fromCodePoint(this.next());
    }
    return name;
  }

  private getEnv(name: string): [string, boolean] {
    const v = this.env.get(name);
    if (v !== undefined) {
      this.used.add(name);
      return [v, true];
    }
    this.unmatched.add(name);
    return ["", false];
  }
}

// ---------------------------------------------------------------------------------------------
// Glob patterns of ${VAR#pat}, ${VAR%pat} and ${VAR/pat/rep}

/** Pattern tokens: a code point (>= 0) is a literal. */
const TOK_ANY = -2;
const TOK_STAR = -3;

/**
 * Tokenises a shell glob as BuildKit's `convertShellPatternToRegex` reads it: `*`, `?`, and a
 * backslash escaping `*`, `?` or `\`; a backslash before `}` or `/` is dropped (it only
 * protected the character from the `${...}` scan); any other escape is an error.
 */
function compileGlob(pattern: string, shown: string): Int32Array {
  const toks: number[] = [];
  let i = pattern.charCodeAt(0) === BOM ? 1 : 0;
  const n = pattern.length;
  const at = (k: number) => (k < n ? pattern.codePointAt(k)! : EOF);
  while (i < n) {
    const c = at(i);
    i += c > 0xffff ? 2 : 1;
    if (c === STAR) toks.push(TOK_STAR);
    else if (c === QUESTION) toks.push(TOK_ANY);
    else if (c === BACKSLASH) {
      const p = at(i);
      if (p === RBRACE || p === SLASH) continue;
      if (p !== EOF) i += p > 0xffff ? 2 : 1;
      if (p !== STAR && p !== QUESTION && p !== BACKSLASH) {
        throw new LexError(`invalid pattern (${shown}) in substitution: invalid escape '\\${runeStr(p)}'`);
      }
      toks.push(p);
    } else {
      toks.push(c);
    }
  }
  return Int32Array.from(toks);
}

/**
 * BuildKit's `reversePattern`: reverses a glob by code point, keeping each backslash in front
 * of the character it escapes (`a\*c` → `c\*a`).
 */
function reverseShellPattern(pattern: string): string {
  const r = Array.from(pattern);
  const out = new Array<string>(r.length);
  const last = r.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = r[i]!;
    const o = last - i;
    if (tok === "\\" && i !== last) {
      out[o - 1] = tok;
      out[o] = r[i + 1]!;
      i += 2;
    } else {
      out[o] = tok;
      i++;
    }
  }
  return out.join("");
}

/** Code points of `s`, and the UTF-16 offset of each (plus the end). */
function codePoints(s: string): { cps: Int32Array; offs: Int32Array } {
  const cps = new Int32Array(s.length);
  const offs = new Int32Array(s.length + 1);
  let n = 0;
  for (let i = 0; i < s.length; ) {
    const c = s.codePointAt(i)!;
    offs[n] = i;
    cps[n++] = c;
    i += c > 0xffff ? 2 : 1;
  }
  offs[n] = s.length;
  return { cps: cps.subarray(0, n), offs: offs.subarray(0, n + 1) };
}

/**
 * For each start position s, the end of the match RE2 would pick for the tokens at s (leftmost
 * first: a greedy `*` prefers the longest run, a lazy one the shortest), or -1. With `allStarts`
 * false only index 0 is meaningful. Dynamic programme, O(tokens × text), no recursion:
 * M(p, s) = end of the preferred match of tokens[p..] at s; columns are computed from the end of
 * the text backwards, keeping two.
 */
function globMatchEnds(toks: Int32Array, text: Int32Array, greedy: boolean, allStarts: boolean): Int32Array {
  const P = toks.length;
  const L = text.length;
  let next = new Int32Array(P + 1).fill(-1); // column s+1
  let cur = new Int32Array(P + 1);
  const ends = new Int32Array(allStarts ? L + 1 : 1);
  for (let s = L; s >= 0; s--) {
    cur[P] = s;
    const c = s < L ? text[s]! : EOF;
    const canEat = c !== EOF && c !== NL; // `.` in Go's RE2 matches anything but newline
    for (let p = P - 1; p >= 0; p--) {
      const t = toks[p]!;
      let r: number;
      if (t === TOK_STAR) {
        if (greedy) r = canEat && next[p]! >= 0 ? next[p]! : cur[p + 1]!;
        else r = cur[p + 1]! >= 0 ? cur[p + 1]! : canEat ? next[p]! : -1;
      } else if (t === TOK_ANY) {
        r = canEat ? next[p + 1]! : -1;
      } else {
        r = c === t ? next[p + 1]! : -1;
      }
      cur[p] = r;
    }
    if (allStarts) ends[s] = cur[0]!;
    else if (s === 0) ends[0] = cur[0]!;
    const tmp = next;
    next = cur;
    cur = tmp;
  }
  return ends;
}

/**
 * Go's `Regexp.Expand` for a pattern without groups: `$$` is `$`, `$0`/`${0}` the whole match,
 * any other `$name`/`${name}` empty, and a malformed `$` stays literal.
 */
function expandTemplate(template: string, match: string): string {
  if (!template.includes("$")) return template;
  let out = "";
  let t = template;
  for (;;) {
    const k = t.indexOf("$");
    if (k < 0) break;
    out += t.slice(0, k);
    t = t.slice(k + 1);
    if (t.startsWith("$")) {
      out += "$";
      t = t.slice(1);
      continue;
    }
    const ref = extractTemplateRef(t);
    if (ref === undefined) {
      out += "$";
      continue;
    }
    t = ref.rest;
    if (ref.num === 0) out += match;
  }
  return out + t;
}

function extractTemplateRef(str: string): { num: number; rest: string } | undefined {
  let s = str;
  const brace = s.startsWith("{");
  if (brace) s = s.slice(1);
  let i = 0;
  while (i < s.length) {
    const c = s.codePointAt(i)!;
    if (!isGoLetter(c) && !isGoDigit(c) && c !== UNDERSCORE) break;
    i += c > 0xffff ? 2 : 1;
  }
  if (i === 0) return undefined;
  const name = s.slice(0, i);
  if (brace) {
    if (i >= s.length || s[i] !== "}") return undefined;
    i++;
  }
  let num = 0;
  for (let k = 0; k < name.length; k++) {
    const d = name.charCodeAt(k);
    if (d < 0x30 || d > 0x39 || num >= 1e8) {
      num = -1;
      break;
    }
    num = num * 10 + d - 0x30;
  }
  if (name[0] === "0" && name.length > 1) num = -1;
  return { num, rest: s.slice(i) };
}
