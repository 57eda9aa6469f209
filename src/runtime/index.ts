export * from "./runner.js";
export * from "./spec.js";
export * from "./user.js";
