export { buildProgram, run, VERSION } from "./program.js";
export type { Io } from "./output.js";
