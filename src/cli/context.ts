import type { Engine } from "../engine/index.js";
import type { Io } from "./output.js";

/** What every command gets: its I/O and a lazily opened engine (root from the global flags). */
export interface Context {
  io: Io;
  engine(): Promise<Engine>;
}
