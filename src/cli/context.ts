import type { ChildProcess } from "node:child_process";
import type { Engine } from "../engine/index.js";
import type { QuickListing } from "../util/index.js";
import type { Io } from "./output.js";

/** What every command gets: its I/O and a lazily opened engine (root from the global flags). */
export interface Context {
  io: Io;
  engine(): Promise<Engine>;
  /**
   * A container supervisor the entry point started in standby for `run` (or undefined);
   * taking it hands it over, so only one container gets it.
   */
  takeSupervisorStandby(): ChildProcess | undefined;
  /** find's listing of a build context the entry point started early, if it guessed this directory. */
  contextListing(dir: string): Promise<QuickListing> | undefined;
}
