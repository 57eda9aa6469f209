/**
 * Parser directives: `# syntax=…`, `# escape=…` and `# check=…` comment lines at the very top of
 * a Dockerfile (BuildKit `parser/directives.go`). Directive scanning stops at the first line that
 * is not a `key=value` comment of a known key, so a directive after an instruction, a blank line
 * or an ordinary comment is just a comment.
 */

import { ReasonError } from "./errors.js";
import { trimLeftSpace } from "./text.js";

/** A directive found at the top of a Dockerfile. `name` is lower-cased. */
export interface Directive {
  name: "syntax" | "escape" | "check";
  value: string;
  /** 1-based line of the directive. */
  line: number;
}

const VALID_DIRECTIVES = new Set(["syntax", "escape", "check"]);
// Go's regexp: `\s` is [\t\n\f\r ], `.` is anything but \n, `$` is the end of the text.
const DIRECTIVE_RE = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*([^\n]+?)[\t\n\f\r ]*$/;

/**
 * Reads directive lines one at a time, enforcing BuildKit's quirks: only at the top, each key at
 * most once (`only one escape parser directive can be used`), unknown keys end the block.
 */
export class DirectiveParser {
  private line: number;
  private readonly comment: string;
  private readonly seen = new Set<string>();
  private done = false;

  constructor(opts: { comment?: string; line?: number } = {}) {
    this.comment = opts.comment ?? "#";
    this.line = opts.line ?? 0;
  }

  /** Feeds the next physical line (without its newline); returns the directive it holds, if any. */
  parseLine(text: string): Directive | undefined {
    this.line++;
    if (this.done) return undefined;
    if (!text.startsWith(this.comment)) {
      this.done = true;
      return undefined;
    }
    const m = DIRECTIVE_RE.exec(trimLeftSpace(text.slice(this.comment.length)));
    if (!m) {
      this.done = true;
      return undefined;
    }
    const name = m[1]!.toLowerCase();
    if (!VALID_DIRECTIVES.has(name)) {
      this.done = true;
      return undefined;
    }
    if (this.seen.has(name)) throw new ReasonError(`only one ${name} parser directive can be used`);
    this.seen.add(name);
    return { name: name as Directive["name"], value: m[2]!, line: this.line };
  }

  /**
   * Scans a whole text; stops at the end of the directive block, or at a repeated directive
   * (keeping the ones before it, as BuildKit's `ParseAll` does).
   */
  parseAll(text: string): Directive[] {
    const out: Directive[] = [];
    for (const l of scanLines(text)) {
      if (this.done) break;
      let d: Directive | undefined;
      try {
        d = this.parseLine(l);
      } catch (e) {
        if (e instanceof ReasonError) break;
        throw e;
      }
      if (d) out.push(d);
    }
    return out;
  }
}

/** Go's `bufio.ScanLines`: lines without their `\n` and without one trailing `\r`. */
function scanLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

/** The result of looking for one directive. */
export interface DirectiveMatch {
  /** The first space-separated word of the value, e.g. `docker/dockerfile:1`. */
  value: string;
  /** The whole value, e.g. `docker/dockerfile:1 // comment`. */
  cmdline: string;
  /** 1-based line; 0 for the JSON form of a document without a shebang line. */
  line: number;
}

function discardBOM(text: string): string {
  return text.startsWith("\uFEFF") ? text.slice(1) : text;
}

function discardShebang(text: string): { text: string; hadShebang: boolean } {
  const nl = text.indexOf("\n");
  const first = nl < 0 ? text : text.slice(0, nl);
  if (first.startsWith("#!")) return { text: nl < 0 ? "" : text.slice(nl + 1), hadShebang: true };
  return { text, hadShebang: false };
}

function findDirective(key: string, text: string, parser: DirectiveParser): DirectiveMatch | undefined {
  for (const d of parser.parseAll(text)) {
    if (d.name === key) {
      const sp = d.value.indexOf(" ");
      return { value: sp < 0 ? d.value : d.value.slice(0, sp), cmdline: d.value, line: d.line };
    }
  }
  return undefined;
}

function lookup(key: string, input: string, anyFormat: boolean): DirectiveMatch | undefined {
  const { text, hadShebang } = discardShebang(discardBOM(input));
  const line = hadShebang ? 1 : 0;
  const hash = findDirective(key, text, new DirectiveParser({ line }));
  if (hash || !anyFormat) return hash;
  const slashes = findDirective(key, text, new DirectiveParser({ comment: "//", line }));
  if (slashes) return slashes;
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc === "object" && doc !== null && !Array.isArray(doc)) {
      const v = (doc as Record<string, unknown>)[key];
      if (typeof v === "string") return { value: v, cmdline: v, line };
    }
  } catch {
    // not a JSON document
  }
  return undefined;
}

/**
 * The `syntax` directive (BuildKit `DetectSyntax`): `# syntax=…`, or `//syntax=…`, or a whole
 * JSON document with a string `syntax` key. A first line starting with `#!` is skipped and a
 * UTF-8 byte order mark is ignored.
 */
export function detectSyntax(text: string): DirectiveMatch | undefined {
  return lookup("syntax", text, true);
}

/** Any directive by key, `#` form only (BuildKit `ParseDirective`), e.g. `check`. */
export function parseDirective(key: string, text: string): DirectiveMatch | undefined {
  return lookup(key, text, false);
}
