export * from "./content.js";
export * from "./meta.js";
export * from "./store.js";
