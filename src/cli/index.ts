export type { Io } from "./output.js";
export { buildProgram, run, VERSION } from "./program.js";
