export * from "./engine.js";
export * from "./images.js";
export * from "./changes.js";
export * from "./distribution.js";
export * from "./builder.js";
export type { ProgressSink } from "../build/index.js";
export * from "./containers.js";
