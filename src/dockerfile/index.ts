export * from "./directives.js";
export * from "./errors.js";
export * from "./heredoc.js";
export * from "./parser.js";
export { goQuote } from "./text.js";
