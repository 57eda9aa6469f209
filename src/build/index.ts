export * from "./builder.js";
export * from "./checksum.js";
export * from "./context.js";
export * from "./context-find.js";
export * from "./copy.js";
export * from "./progress.js";
