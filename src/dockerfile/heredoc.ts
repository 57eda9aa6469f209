/**
 * Heredocs (`<<EOF`, `<<-EOF`, `<<'EOF'`, `3<<EOF`) in RUN, COPY and ADD, as BuildKit's parser
 * finds them: the instruction line is split into shell words with quotes and escapes kept raw,
 * every word that looks like `[n]<<[-]WORD` names a heredoc, and the body lines that follow the
 * instruction, up to a line equal to WORD, are its content.
 *
 * The word splitting here is a reduced copy of BuildKit's shell lexer in the modes the parser uses
 * (no variables are set and unset ones are kept as written). It does no expansion; expansion of
 * instruction arguments lives in `shell.ts`.
 */

import { ReasonError } from "./errors.js";
import { isSpace } from "./text.js";

/** A heredoc attached to an instruction. */
export interface Heredoc {
  /** The terminator word, quotes removed. */
  name: string;
  /** The body lines, each with its newline; not chomped even when `chomp` is set. */
  content: string;
  /** False when any part of the word was quoted: the body is then used without expansion. */
  expand: boolean;
  /** True for `<<-`: leading tabs are removed from the body and the terminator line. */
  chomp: boolean;
  /** The digits before `<<` (`3<<EOF`), 0 when absent. */
  fileDescriptor: number;
}

const EOF = "";

interface LexOptions {
  rawQuotes: boolean;
  rawEscapes: boolean;
}

/** A tiny scanner over code points. */
class Scanner {
  private readonly chars: string[];
  private pos = 0;
  constructor(text: string) {
    this.chars = Array.from(text);
  }
  peek(offset = 0): string {
    return this.chars[this.pos + offset] ?? EOF;
  }
  next(): string {
    const c = this.chars[this.pos] ?? EOF;
    if (c !== EOF) this.pos++;
    return c;
  }
}

class Words {
  words: string[] = [];
  inWord = false;
  constructor(readonly buf: { s: string }) {}
  addChar(ch: string): void {
    if (isSpace(ch) && this.inWord) {
      if (this.buf.s.length !== 0) {
        this.words.push(this.buf.s);
        this.buf.s = "";
        this.inWord = false;
      }
    } else if (!isSpace(ch)) {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.buf.s += ch;
    this.inWord = true;
  }
  addString(str: string): void {
    for (const ch of str) this.addChar(ch);
  }
  addRawString(str: string): void {
    this.buf.s += str;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.buf.s.length > 0) {
      this.words.push(this.buf.s);
      this.buf.s = "";
      this.inWord = false;
    }
    return this.words;
  }
}

function isNameStart(ch: string): boolean {
  return /^[\p{L}\p{Nd}_]$/u.test(ch);
}

/**
 * BuildKit's `shell.Lex` with escape `\`, `SkipUnsetEnv` and an empty environment: splits `text`
 * into words; `$VAR` and `${…}` stay as written. Throws ReasonError on unbalanced quotes or a bad
 * `${…}`.
 */
class RawLexer {
  private readonly sc: Scanner;
  // BuildKit shares one words buffer between nested calls; keep that for identical splitting.
  private readonly shared = { s: "" };
  private rawEscapes: boolean;
  private depth = 0;

  constructor(
    text: string,
    private readonly opts: LexOptions,
  ) {
    this.sc = new Scanner(text);
    this.rawEscapes = opts.rawEscapes;
  }

  words(): string[] {
    return this.processStopOn(EOF, this.rawEscapes).words;
  }

  private processStopOn(stop: string, rawEscapes: boolean): { result: string; words: string[] } {
    // Nesting comes only from `${…}`; a line is at most 64 KiB, but keep recursion shallow.
    if (++this.depth > 64) throw new ReasonError("heredoc word nested too deeply");
    let result = "";
    this.shared.s = "";
    const words = new Words(this.shared);
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      while (this.sc.peek() !== EOF) {
        const ch = this.sc.peek();
        if (stop !== EOF && ch === stop) {
          this.sc.next();
          return { result, words: words.getWords() };
        }
        if (ch === "$") {
          const tmp = this.processDollar();
          result += tmp;
          words.addString(tmp);
        } else if (ch === "<") {
          const tmp = this.processPossibleHeredoc();
          result += tmp;
          words.addRawString(tmp);
        } else if (ch === "'") {
          const tmp = this.processSingleQuote();
          result += tmp;
          words.addRawString(tmp);
        } else if (ch === '"') {
          const tmp = this.processDoubleQuote();
          result += tmp;
          words.addRawString(tmp);
        } else {
          let c = this.sc.next();
          if (c === "\\") {
            if (this.rawEscapes) {
              words.addRawChar(c);
              result += c;
            }
            c = this.sc.next();
            if (c === EOF) break;
            words.addRawChar(c);
          } else {
            words.addChar(c);
          }
          result += c;
        }
      }
      if (stop !== EOF)
        throw new ReasonError(`unexpected end of statement while looking for matching ${stop}`);
      return { result, words: words.getWords() };
    } finally {
      this.rawEscapes = saved;
      this.depth--;
    }
  }

  private processSingleQuote(): string {
    let result = "";
    const open = this.sc.next();
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const c = this.sc.next();
      if (c === EOF)
        throw new ReasonError("unexpected end of statement while looking for matching single-quote");
      if (c === "'") {
        if (this.opts.rawQuotes) result += c;
        return result;
      }
      result += c;
    }
  }

  private processDoubleQuote(): string {
    let result = "";
    const open = this.sc.next();
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const p = this.sc.peek();
      if (p === EOF)
        throw new ReasonError("unexpected end of statement while looking for matching double-quote");
      if (p === '"') {
        const c = this.sc.next();
        if (this.opts.rawQuotes) result += c;
        return result;
      }
      if (p === "$") {
        result += this.processDollar();
        continue;
      }
      let c = this.sc.next();
      if (c === "\\") {
        if (this.rawEscapes) result += c;
        const n = this.sc.peek();
        if (n === EOF) continue;
        if (n === '"' || n === "$" || n === "\\") c = this.sc.next();
      }
      result += c;
    }
  }

  private processName(): string {
    let name = "";
    while (this.sc.peek() !== EOF) {
      const ch = this.sc.peek();
      if (name.length === 0 && /^\p{Nd}$/u.test(ch)) {
        while (this.sc.peek() !== EOF && /^\p{Nd}$/u.test(this.sc.peek())) name += this.sc.next();
        return name;
      }
      if (name.length === 0 && "@*#?-$!0".includes(ch)) return this.sc.next();
      if (!isNameStart(ch)) break;
      name += this.sc.next();
    }
    return name;
  }

  private processDollar(): string {
    this.sc.next();
    if (this.sc.peek() !== "{") {
      const name = this.processName();
      return name === "" ? "$" : `$${name}`;
    }
    this.sc.next();
    const p = this.sc.peek();
    if (p === EOF) throw new ReasonError("syntax error: missing '}'");
    if (p === "{" || p === "}" || p === ":") throw new ReasonError("syntax error: bad substitution");
    const name = this.processName();
    let ch = this.sc.next();
    let chs = ch;
    switch (ch) {
      case "}":
        return `\${${name}}`;
      case ":":
      case "+":
      case "-":
      case "?":
      case "#":
      case "%": {
        const nullIsUnset = ch === ":";
        if (nullIsUnset) {
          ch = this.sc.next();
          chs += ch;
        }
        const raw = ch === "#" || ch === "%";
        if (nullIsUnset && raw) throw new ReasonError(`unsupported modifier (${chs}) in substitution`);
        const word = this.stopOnOrMissing("}", raw, "syntax error: missing '}'");
        return `\${${name}${chs}${word}}`;
      }
      case "/": {
        if (this.sc.peek() === "/") this.sc.next();
        const pattern = this.stopOnOrMissing("/", true, "syntax error: missing '/' in $" + "{}");
        const replacement = this.stopOnOrMissing("}", true, "syntax error: missing '}'");
        return `\${${name}/${pattern}/${replacement}}`;
      }
      default:
        throw new ReasonError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  private stopOnOrMissing(stop: string, raw: boolean, missing: string): string {
    try {
      return this.processStopOn(stop, raw).result;
    } catch (e) {
      if (e instanceof ReasonError && this.sc.peek() === EOF) throw new ReasonError(missing);
      throw e;
    }
  }

  private processPossibleHeredoc(): string {
    this.sc.next();
    if (this.sc.peek() !== "<") return "<";
    this.sc.next();
    let result = "<<";
    // `<<-` followed by blanks is kept in one word with its terminator, like `<< WORD`, so that
    // `RUN <<- EOF` names the heredoc EOF (the shared test vectors expect it; BuildKit's lexer
    // would split it into `<<-` and `EOF` and find no heredoc).
    if (this.sc.peek() === "-" && isHeredocBlank(this.sc.peek(1))) {
      result += this.sc.next();
    }
    while (isHeredocBlank(this.sc.peek())) result += this.sc.next();
    return result;
  }
}

function isHeredocBlank(ch: string): boolean {
  return ch === "\t" || ch === "\r" || ch === " ";
}

/** Splits a line the way the heredoc finder does (quotes and escapes kept). */
function rawWords(text: string, opts: LexOptions): string[] {
  return new RawLexer(text, opts).words();
}

// Go's `^(\d*)<<(-?)\s*([^<]*)$`, where \s is ASCII whitespace without VT.
const HEREDOC_RE = /^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$/;

/**
 * Parses one word as a heredoc marker (BuildKit `ParseHeredoc`): `<<EOF`, `<<-'EOF'`, `3<<EOF`.
 * Returns undefined when the word is not a heredoc; throws ReasonError on an unterminated quote.
 */
export function parseHeredocWord(word: string): Omit<Heredoc, "content"> | undefined {
  const m = HEREDOC_RE.exec(word);
  if (!m) return undefined;
  const rest = m[3]!;
  if (rest.length === 0) return undefined;
  const words = rawWords(rest, { rawQuotes: false, rawEscapes: false });
  if (words.length !== 1) return undefined;
  const wordsRaw = rawWords(rest, { rawQuotes: true, rawEscapes: false });
  if (wordsRaw.length !== words.length) {
    throw new ReasonError(`internal lexing of heredoc produced inconsistent results: ${rest}`);
  }
  const name = words[0]!;
  const quotes = (s: string) => (s.match(/['"]/g) ?? []).length;
  return {
    name,
    expand: quotes(name) === quotes(wordsRaw[0]!),
    chomp: m[2] === "-",
    fileDescriptor: m[1] === "" ? 0 : Number(m[1]),
  };
}

/** Like parseHeredocWord, but treats an error as "not a heredoc" (BuildKit `MustParseHeredoc`). */
export function mustParseHeredocWord(word: string): Omit<Heredoc, "content"> | undefined {
  try {
    return parseHeredocWord(word);
  } catch (e) {
    if (e instanceof ReasonError) return undefined;
    throw e;
  }
}

/**
 * The heredocs named in a whole instruction line, in order (BuildKit `heredocsFromLine`). A line
 * whose quotes do not balance names none.
 */
export function heredocsFromLine(line: string): Omit<Heredoc, "content">[] {
  let words: string[];
  try {
    words = rawWords(line, { rawQuotes: true, rawEscapes: true });
  } catch (e) {
    if (e instanceof ReasonError) return [];
    throw e;
  }
  const out: Omit<Heredoc, "content">[] = [];
  for (const w of words) {
    const h = parseHeredocWord(w);
    if (h) out.push(h);
  }
  return out;
}

/** Removes the leading tabs of every line (used for `<<-` heredocs). */
export function chompHeredocContent(content: string): string {
  return content
    .split("\n")
    .map((l) => l.replace(/^\t+/, ""))
    .join("\n");
}
