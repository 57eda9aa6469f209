export * from "./compression.js";
export * from "./scan.js";
export * from "./tar-writer.js";
