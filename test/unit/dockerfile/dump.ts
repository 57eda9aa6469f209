import { goQuote, type Node, type ParseResult } from "../../../src/dockerfile/index.js";

/** BuildKit's `Node.Dump()` for one instruction (the text inside its parentheses). */
export function dumpNode(n: Node): string {
  let s = n.value.toLowerCase();
  if (n.flags.length > 0) s += ` [${n.flags.map(goQuote).join(" ")}]`;
  if (n.child) s += ` (${dumpNode(n.child)})`;
  for (const a of n.args) s += ` ${goQuote(a)}`;
  return s.trim();
}

/** The whole AST dump as stored in `cases/<name>/result`, with its final newline. */
export function dump(r: ParseResult): string {
  return `${r.children.map((c) => `(${dumpNode(c)})`).join("\n")}\n`;
}
