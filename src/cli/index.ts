export type { Io } from "./output.js";
export { buildProgram, type RunOptions, run, VERSION } from "./program.js";
