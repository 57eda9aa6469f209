export * from "./errors.js";
export * from "./exec.js";
export * from "./find.js";
export * from "./format.js";
export * from "./fs.js";
export * from "./lock.js";
export * from "./streams.js";
export * from "./template.js";
