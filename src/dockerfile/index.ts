export * from "./directives.js";
export * from "./errors.js";
export { formatGoDuration, parseGoDuration } from "./go-values.js";
export * from "./heredoc.js";
export * from "./instructions.js";
export * from "./parser.js";
export * from "./run-mounts.js";
export * from "./shell.js";
export { goQuote } from "./text.js";
