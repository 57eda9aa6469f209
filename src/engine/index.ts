export type { ProgressSink } from "../build/index.js";
export * from "./builder.js";
export * from "./changes.js";
export * from "./containers.js";
export * from "./distribution.js";
export * from "./engine.js";
export * from "./images.js";
