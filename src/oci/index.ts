export * from "./digest.js";
export * from "./mediatypes.js";
export * from "./schema.js";
export * from "./platform.js";
