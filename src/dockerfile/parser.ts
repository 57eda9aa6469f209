/**
 * The Dockerfile parser: text → AST, BuildKit's grammar (moby/buildkit
 * `frontend/dockerfile/parser`). One node per instruction, with its flags, its arguments split
 * the way that instruction splits them, its heredocs and its line range. Nothing is expanded and
 * unknown instructions are kept (they are rejected later, by `parseInstructions`).
 *
 * Pure: the input is a string or the bytes of the file.
 */

import { type Directive, DirectiveParser } from "./directives.js";
import { DEFAULT_DOCKERFILE_NAME, ReasonError, syntaxError } from "./errors.js";
import { type Heredoc, heredocsFromLine } from "./heredoc.js";
import type { EscapeToken } from "./shell.js";
import { goQuote, isSpace, splitWhitespace, splitWhitespace2, trimLeftSpace, trimSpace } from "./text.js";

/** One instruction of the AST (BuildKit `parser.Node`, flattened). */
export interface Node {
  /** The instruction word as written: `RUN`, `run`, `Copy`, or an unknown word. */
  value: string;
  /** The instruction word in lower case (`run`); the key for every later lookup. */
  command: string;
  /** The leading `--flag[=value]` words, quotes and escapes processed, unvalidated. */
  flags: string[];
  /**
   * The arguments as this instruction splits them (see the README's table). For ONBUILD this is
   * empty and `child` holds the wrapped instruction; an unknown instruction has one empty string.
   */
  args: string[];
  /** ONBUILD's wrapped instruction. */
  child?: Node;
  /** True when the arguments were given in JSON (exec) form. */
  json: boolean;
  /** The heredocs of a RUN, COPY or ADD (also under ONBUILD); empty otherwise. */
  heredocs: Heredoc[];
  /** The logical line after joining continuations (comments and empty lines removed). */
  original: string;
  /** 1-based line of the instruction word. */
  startLine: number;
  /** 1-based line where the instruction (or its last heredoc) ends. */
  endLine: number;
  /** The comment lines directly above the instruction, `#` and blanks removed. */
  comments: string[];
}

/** A warning of the parser itself: today only BuildKit's empty continuation line. */
export interface ParseWarning {
  /** Stable name, as the lint rule that reports it (`NoEmptyContinuation`). */
  rule: string;
  short: string;
  detail: string;
  url: string;
  line: number;
}

/** The whole parse: the instructions in file order plus what the parser learned on the way. */
export interface ParseResult {
  /** The file name used in messages (`Dockerfile` unless given). */
  file: string;
  children: Node[];
  /** Line range of the AST root: first instruction start to last instruction end. */
  startLine: number;
  endLine: number;
  escapeToken: EscapeToken;
  directives: Directive[];
  warnings: ParseWarning[];
}

/** Options of parseDockerfile. */
export interface ParseOptions {
  /** The file name to use in error messages, e.g. `Dockerfile.dev`. */
  file?: string;
}

/** BuildKit (Go's bufio.Scanner) refuses a physical line longer than this many bytes. */
export const MAX_LINE_BYTES = 65535;

/** Where BuildKit documents the empty-continuation-line warning. */
export const EMPTY_CONTINUATION_URL = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/";

const HEREDOC_INSTRUCTIONS = new Set(["add", "copy", "run"]);

// ---------------------------------------------------------------------------------------------
// Input checks

/** Returns the byte offset of the first invalid UTF-8 sequence, or -1. */
function firstInvalidUtf8(b: Uint8Array): number {
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else {
      return i;
    }
    if (i + need >= n) return i;
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

function lineOfOffset(b: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (b[i] === 0x0a) line++;
  return line;
}

function lineOfIndex(s: string, index: number): number {
  let line = 1;
  let p = s.indexOf("\n");
  while (p >= 0 && p < index) {
    line++;
    p = s.indexOf("\n", p + 1);
  }
  return line;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Decodes and checks the input: UTF-8 only, no NUL bytes. */
function decodeInput(input: string | Uint8Array, file: string): string {
  let text: string;
  if (typeof input === "string") {
    const m = LONE_SURROGATE.exec(input);
    if (m) {
      throw syntaxError(
        "invalid UTF-8: the text holds an unpaired UTF-16 surrogate; a Dockerfile must be UTF-8 text",
        lineOfIndex(input, m.index),
        undefined,
        file,
      );
    }
    text = input;
  } else {
    const bad = firstInvalidUtf8(input);
    if (bad >= 0) {
      throw syntaxError(
        `invalid UTF-8 byte sequence at byte offset ${bad}; a Dockerfile must be UTF-8 text`,
        lineOfOffset(input, bad),
        undefined,
        file,
      );
    }
    text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(input);
  }
  const nul = text.indexOf("\0");
  if (nul >= 0) {
    throw syntaxError(
      "the Dockerfile contains a NUL byte; a Dockerfile must be text",
      lineOfIndex(text, nul),
      undefined,
      file,
    );
  }
  return text;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Physical lines with their `\n` kept (BuildKit's `scanLines`), with the line-size limit. */
class LineReader {
  private pos = 0;
  /** How many lines have been returned. */
  lineNo = 0;
  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  next(): string | undefined {
    if (this.pos >= this.text.length) return undefined;
    const nl = this.text.indexOf("\n", this.pos);
    const end = nl < 0 ? this.text.length : nl + 1;
    const line = this.text.slice(this.pos, end);
    this.pos = end;
    this.lineNo++;
    const content = nl < 0 ? line : line.slice(0, -1);
    // A UTF-16 unit is at most 3 UTF-8 bytes, so short lines need no counting.
    if (content.length * 3 > MAX_LINE_BYTES && utf8Length(content) > MAX_LINE_BYTES) {
      throw syntaxError(
        `dockerfile line greater than max allowed size of ${MAX_LINE_BYTES}`,
        this.lineNo,
        undefined,
        this.file,
      );
    }
    return line;
  }
}

// ---------------------------------------------------------------------------------------------
// Line handling

/** Go's `bytes.TrimRight(s, "\r\n")`. */
function trimNewline(s: string): string {
  let j = s.length;
  while (j > 0 && (s[j - 1] === "\n" || s[j - 1] === "\r")) j--;
  return s.slice(0, j);
}

function isComment(line: string): boolean {
  const t = trimLeftSpace(line);
  return t.length > 0 && t[0] === "#";
}

function isEmptyContinuationLine(line: string): boolean {
  return trimLeftSpace(trimNewline(line)).length === 0;
}

function continuationRegex(esc: EscapeToken): RegExp {
  // `([^\\])\\[ \t]*$|^\\[ \t]*$`: a trailing escape character not itself escaped.
  return esc === "\\" ? /([^\\])\\[ \t]*$|^\\[ \t]*$/ : /([^`])`[ \t]*$|^`[ \t]*$/;
}

/** Removes a trailing continuation character; `end` is true when the instruction ends here. */
function trimContinuation(line: string, re: RegExp): { line: string; end: boolean } {
  const m = re.exec(line);
  if (!m) return { line, end: true };
  return { line: line.slice(0, m.index) + (m[1] ?? ""), end: false };
}

// ---------------------------------------------------------------------------------------------
// Splitting one logical line

/** BuildKit `extractBuilderFlags`: leading `--` words, returning them and the rest of the line. */
function extractBuilderFlags(line: string, esc: EscapeToken): { rest: string; flags: string[] } {
  const IN_SPACES = 0;
  const IN_WORD = 1;
  const IN_QUOTE = 2;
  const words: string[] = [];
  let phase = IN_SPACES;
  let word = "";
  let quote = "";
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    let ch = pos < line.length ? line[pos]! : "";
    if (phase === IN_SPACES) {
      if (pos === line.length) break;
      if (isSpace(ch)) continue;
      if (ch !== "-" || pos + 1 === line.length || line[pos + 1] !== "-") {
        return { rest: line.slice(pos), flags: words };
      }
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === line.length) {
      if (word !== "--" && (blankOK || word.length > 0)) words.push(word);
      break;
    }
    if (phase === IN_WORD) {
      if (isSpace(ch)) {
        phase = IN_SPACES;
        if (word === "--") return { rest: line.slice(pos), flags: words };
        if (blankOK || word.length > 0) words.push(word);
        word = "";
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
        continue;
      }
      if (ch === esc) {
        if (pos + 1 === line.length) continue;
        pos++;
        ch = line[pos]!;
      }
      word += ch;
      continue;
    }
    // IN_QUOTE
    if (ch === quote) {
      phase = IN_WORD;
      continue;
    }
    if (ch === esc) {
      if (pos + 1 === line.length) {
        phase = IN_WORD;
        continue;
      }
      pos++;
      ch = line[pos]!;
    }
    word += ch;
  }
  return { rest: "", flags: words };
}

/** BuildKit `splitCommand`: the instruction word, its flags and the trimmed rest. */
function splitCommand(line: string, esc: EscapeToken): { cmd: string; flags: string[]; args: string } {
  const parts = splitWhitespace2(trimSpace(line));
  let flags: string[] = [];
  let args = "";
  if (parts.length === 2) {
    const r = extractBuilderFlags(parts[1]!, esc);
    flags = r.flags;
    args = r.rest;
  }
  return { cmd: parts[0]!, flags, args: trimSpace(args) };
}

/**
 * BuildKit `parseWords`: splits on unquoted whitespace, keeping quotes and escapes in the words.
 * Used for ENV/LABEL (`k=v` form) and ARG.
 */
export function parseWords(rest: string, esc: EscapeToken = "\\"): string[] {
  const IN_SPACES = 0;
  const IN_WORD = 1;
  const IN_QUOTE = 2;
  const words: string[] = [];
  let phase = IN_SPACES;
  let quote = "";
  let blankOK = false;
  let word = "";
  for (let pos = 0; pos <= rest.length; pos++) {
    let ch = pos < rest.length ? rest[pos]! : "";
    if (phase === IN_SPACES) {
      if (pos === rest.length) break;
      if (isSpace(ch)) continue;
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === rest.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === IN_WORD) {
      if (isSpace(ch)) {
        phase = IN_SPACES;
        if (blankOK || word.length > 0) words.push(word);
        word = "";
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
      }
      if (ch === esc) {
        if (pos + 1 === rest.length) continue;
        word += ch;
        pos++;
        ch = rest[pos]!;
      }
      word += ch;
      continue;
    }
    // IN_QUOTE
    if (ch === quote) phase = IN_WORD;
    if (ch === esc && quote !== "'") {
      if (pos + 1 === rest.length) {
        phase = IN_WORD;
        continue;
      }
      pos++;
      word += ch;
      ch = rest[pos]!;
    }
    word += ch;
  }
  return words;
}

const NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only";
// Go's encoding/json refuses nesting deeper than this, which makes the text "not JSON".
const MAX_JSON_DEPTH = 10000;

function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "[" || c === "{") {
      if (++depth > max) return true;
    } else if (c === "]" || c === "}") depth--;
  }
  return false;
}

const LONE_SURROGATES_G = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Exec form: the text is a JSON array of strings. Returns undefined when it is not JSON at all
 * (the caller falls back to the shell form); throws when it is a JSON array holding a non-string.
 */
export function parseJSONArray(rest: string): string[] | undefined {
  const t = trimLeftSpace(rest);
  if (!t.startsWith("[")) return undefined;
  if (jsonDepthExceeds(t, MAX_JSON_DEPTH)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  const out: string[] = [];
  for (const e of v) {
    if (typeof e !== "string") throw new ReasonError(NOT_STRING_ARRAY);
    // Go decodes an unpaired \u surrogate escape (four hex digits) as U+FFFD.
    out.push(e.replace(LONE_SURROGATES_G, "\uFFFD"));
  }
  return out;
}

interface Parsed {
  args: string[];
  json?: boolean;
  child?: Node;
}

type LineParser = (rest: string, esc: EscapeToken, ctx: NodeContext) => Parsed;

interface NodeContext {
  depth: number;
}

const parseIgnore: LineParser = () => ({ args: [""] });

function parseStringsWhitespaceDelimited(rest: string): Parsed {
  if (rest === "") return { args: [] };
  return { args: splitWhitespace(rest) };
}

const parseString: LineParser = (rest) => ({ args: rest === "" ? [] : [rest] });

const parseMaybeJSON: LineParser = (rest) => {
  if (rest === "") return { args: [] };
  const arr = parseJSONArray(rest);
  if (arr) return { args: arr, json: true };
  return { args: [rest] };
};

const parseMaybeJSONToList: LineParser = (rest) => {
  const arr = parseJSONArray(rest);
  if (arr) return { args: arr, json: true };
  return parseStringsWhitespaceDelimited(rest);
};

function parseNameVal(rest: string, key: string, esc: EscapeToken): Parsed {
  const words = parseWords(rest, esc);
  if (words.length === 0) return { args: [] };
  if (!words[0]!.includes("=")) {
    const parts = splitWhitespace2(rest);
    if (parts.length < 2) throw new ReasonError(`${key} must have two arguments`);
    return { args: [parts[0]!, parts[1]!, ""] };
  }
  const args: string[] = [];
  for (const w of words) {
    const eq = w.indexOf("=");
    if (eq < 0) {
      throw new ReasonError(`Syntax error - can't find = in ${goQuote(w)}. Must be of the form: name=value`);
    }
    args.push(w.slice(0, eq), w.slice(eq + 1), "=");
  }
  return { args };
}

const parseHealthConfig: LineParser = (rest, esc, ctx) => {
  let sep = 0;
  while (sep < rest.length && !isSpace(rest[sep]!)) sep++;
  let next = sep;
  while (next < rest.length && isSpace(rest[next]!)) next++;
  if (sep === 0) return { args: [] };
  const cmd = parseMaybeJSON(rest.slice(next), esc, ctx);
  return { args: [rest.slice(0, sep), ...cmd.args], json: cmd.json };
};

const parseSubCommand: LineParser = (rest, esc, ctx) => {
  if (rest === "") return { args: [] };
  // ONBUILD ONBUILD … is refused later; bound the recursion here for hostile input.
  if (ctx.depth > 8) throw new ReasonError("ONBUILD nested too deeply");
  return { args: [], child: newNodeFromLine(rest, esc, [], { depth: ctx.depth + 1 }) };
};

const DISPATCH: Record<string, LineParser> = {
  add: parseMaybeJSONToList,
  arg: (rest, esc) => ({ args: parseWords(rest, esc) }),
  cmd: parseMaybeJSON,
  copy: parseMaybeJSONToList,
  entrypoint: parseMaybeJSON,
  env: (rest, esc) => parseNameVal(rest, "ENV", esc),
  expose: (rest) => parseStringsWhitespaceDelimited(rest),
  from: (rest) => parseStringsWhitespaceDelimited(rest),
  healthcheck: parseHealthConfig,
  label: (rest, esc) => parseNameVal(rest, "LABEL", esc),
  maintainer: parseString,
  onbuild: parseSubCommand,
  run: parseMaybeJSON,
  shell: parseMaybeJSON,
  stopsignal: parseString,
  user: parseString,
  volume: parseMaybeJSONToList,
  workdir: parseString,
};

/** All instruction words BuildKit knows, lower case. */
export const INSTRUCTIONS: readonly string[] = Object.keys(DISPATCH).sort();

function newNodeFromLine(line: string, esc: EscapeToken, comments: string[], ctx: NodeContext): Node {
  const { cmd, flags, args } = splitCommand(line, esc);
  const command = cmd.toLowerCase();
  const fn = Object.hasOwn(DISPATCH, command) ? DISPATCH[command]! : parseIgnore;
  const parsed = fn(args, esc, ctx);
  const node: Node = {
    value: cmd,
    command,
    flags,
    args: parsed.args,
    json: parsed.json ?? false,
    heredocs: [],
    original: line,
    startLine: 0,
    endLine: 0,
    comments,
  };
  if (parsed.child) node.child = parsed.child;
  return node;
}

function canContainHeredoc(node: Node): boolean {
  const n = node.command === "onbuild" && node.child ? node.child : node;
  return HEREDOC_INSTRUCTIONS.has(n.command) && !n.json;
}

function setLines(node: Node, start: number, end: number): void {
  node.startLine = start;
  node.endLine = end;
  if (node.child) setLines(node.child, start, end);
}

// ---------------------------------------------------------------------------------------------
// The parse loop

/**
 * Parses a Dockerfile into its AST (BuildKit `parser.Parse`).
 *
 * Throws DockerfileParseError (`Dockerfile:<line>: <reason>`) for text that does not parse:
 * invalid UTF-8, a NUL byte, a line over 65535 bytes, a bad directive, an unterminated heredoc,
 * a JSON array holding a non-string, `ENV key` without value, or no instruction at all.
 */
export function parseDockerfile(input: string | Uint8Array, opts: ParseOptions = {}): ParseResult {
  const file = opts.file ?? DEFAULT_DOCKERFILE_NAME;
  const text = decodeInput(input, file);
  const reader = new LineReader(text, file);
  const directiveParser = new DirectiveParser();
  const directives: Directive[] = [];
  let esc: EscapeToken = "\\";
  let contRe = continuationRegex(esc);
  const children: Node[] = [];
  const warnings: ParseWarning[] = [];
  let comments: string[] = [];

  /** BuildKit `processLine`: trims, feeds the directive parser, drops comments. */
  const processLine = (
    raw: string,
    stripLeft: boolean,
    lineNo: number,
  ): { line: string; directive: boolean } => {
    let token = trimNewline(raw);
    if (stripLeft) token = trimLeftSpace(token);
    let d: Directive | undefined;
    try {
      d = directiveParser.parseLine(token);
    } catch (e) {
      if (e instanceof ReasonError) throw syntaxError(e.message, lineNo, undefined, file);
      throw e;
    }
    if (d) {
      if (d.name === "escape") {
        if (d.value !== "`" && d.value !== "\\") {
          throw syntaxError(
            `invalid escape token '${d.value}' does not match \` or \\`,
            lineNo,
            undefined,
            file,
          );
        }
        esc = d.value;
        contRe = continuationRegex(esc);
      }
      directives.push(d);
    }
    return { line: isComment(token) ? "" : token, directive: d !== undefined };
  };

  for (;;) {
    let raw = reader.next();
    if (raw === undefined) break;
    if (reader.lineNo === 1 && raw.startsWith("\uFEFF")) raw = raw.slice(1);
    if (isComment(raw)) {
      const c = trimSpace(raw.slice(1));
      if (c === "") comments = [];
      else comments.push(c);
    }
    const first = processLine(raw, true, reader.lineNo);
    if (first.directive) comments.pop();
    const startLine = reader.lineNo;
    let { line: buf, end } = trimContinuation(first.line, contRe);
    if (end && buf.length === 0) continue;

    let hasEmptyContinuation = false;
    while (!end) {
      const nextRaw = reader.next();
      if (nextRaw === undefined) break;
      const processed = processLine(nextRaw, false, reader.lineNo).line;
      if (isComment(nextRaw)) continue;
      if (isEmptyContinuationLine(processed)) {
        hasEmptyContinuation = true;
        continue;
      }
      const t = trimContinuation(processed, contRe);
      end = t.end;
      buf += t.line;
    }
    const line = buf;

    if (hasEmptyContinuation) {
      warnings.push({
        rule: "NoEmptyContinuation",
        short: `Empty continuation line found in: ${line}`,
        detail: "Empty continuation lines will become errors in a future release",
        url: EMPTY_CONTINUATION_URL,
        line: reader.lineNo,
      });
    }

    let child: Node;
    try {
      child = newNodeFromLine(line, esc, comments, { depth: 0 });
    } catch (e) {
      if (e instanceof ReasonError) throw syntaxError(e.message, startLine, reader.lineNo, file);
      throw e;
    }

    if (canContainHeredoc(child) && line.includes("<<")) {
      let found: Omit<Heredoc, "content">[];
      try {
        found = heredocsFromLine(line);
      } catch (e) {
        if (e instanceof ReasonError) throw syntaxError(e.message, startLine, reader.lineNo, file);
        throw e;
      }
      for (const h of found) {
        let content = "";
        let terminated = false;
        for (;;) {
          const body = reader.next();
          if (body === undefined) break;
          let candidate = trimNewline(body);
          if (h.chomp) candidate = candidate.replace(/^\t+/, "");
          if (candidate === h.name) {
            terminated = true;
            break;
          }
          content += body;
        }
        if (!terminated) {
          throw syntaxError(`unterminated heredoc ${JSON.stringify(h.name)}`, startLine, reader.lineNo, file);
        }
        child.heredocs.push({ ...h, content });
      }
    }

    setLines(child, startLine, reader.lineNo);
    children.push(child);
    comments = [];
  }

  if (children.length === 0) {
    throw syntaxError("file with no instructions", Math.max(1, reader.lineNo), undefined, file);
  }
  return {
    file,
    children,
    startLine: children[0]!.startLine,
    endLine: children[children.length - 1]!.endLine,
    escapeToken: esc,
    directives,
    warnings,
  };
}

/** The arguments of a node as BuildKit's `instructions` package sees them (ONBUILD flattened). */
export function nodeArgs(node: Node): string[] {
  if (node.child) return [node.child.value, ...nodeArgs(node.child)];
  return node.args;
}
