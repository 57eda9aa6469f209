export * from "./import.js";
export * from "./load.js";
export * from "./save.js";
