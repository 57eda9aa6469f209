import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { Command, CommanderError, Option } from "commander";
import type { Engine } from "../engine/index.js";
import { errorMessage, type QuickListing } from "../util/index.js";
import { registerBuildCommands } from "./commands/build.js";
import { registerContainerCommands } from "./commands/containers.js";
import { registerDistributionCommands } from "./commands/distribution.js";
import { registerImageCommands } from "./commands/images.js";
import { registerRegistryCommands } from "./commands/registry.js";
import type { Context } from "./context.js";
import { defaultIo, ExitError, type Io } from "./output.js";

export const VERSION = "0.1.0";

/** Build the `strata` program. Every command mirrors the docker command of the same name. */
export interface RunOptions {
  /** A container supervisor started in standby by the entry point (see main.ts). */
  supervisorStandby?: ChildProcess;
  /** Build contexts the entry point started listing (util's quickListing), by absolute path. */
  contextListings?: Map<string, Promise<QuickListing>>;
  /** Register only this command's group: the entry point sets it for `build`. */
  only?: "build";
}

export function buildProgram(io: Io, opts: RunOptions = {}): { program: Command; ctx: Context } {
  const program = new Command("strata");
  let engine: Promise<Engine> | undefined;
  let standby = opts.supervisorStandby;
  const ctx: Context = {
    io,
    contextListing: (dir) => opts.contextListings?.get(path.resolve(dir)),
    takeSupervisorStandby: () => {
      const s = standby;
      standby = undefined;
      return s;
    },
    engine: () => {
      // Loaded on first use: `--help` and `--version` never pay for the engine's modules.
      engine ??= import("../engine/index.js").then((m) => m.Engine.open({ root: program.opts().root }));
      return engine;
    },
  };
  program
    .description("A container image engine: build, store, ship and run OCI and Docker images")
    .version(VERSION, "-v, --version", "Print version information and quit")
    .addOption(
      new Option("--root <dir>", "Root of the image store (default $STRATA_ROOT, /var/lib/strata as root)"),
    )
    .helpOption("-h, --help", "Print usage")
    .showSuggestionAfterError(true)
    // Global options come before the command (as docker's): `run IMAGE CMD -x` keeps -x for CMD.
    .enablePositionalOptions(true);
  // `build` is the command run most often in a loop (CI, watch): it registers only its own
  // group (~5 ms of commander set-up saved); every other invocation sees all commands.
  if (opts.only === "build") registerBuildCommands(program, ctx);
  else {
    registerImageCommands(program, ctx);
    registerDistributionCommands(program, ctx);
    registerBuildCommands(program, ctx);
    registerContainerCommands(program, ctx);
    registerRegistryCommands(program);
  }
  configureErrors(program, io);
  return { program, ctx };
}

/** Docker prints usage errors as `unknown flag: --x\nSee 'docker images --help'.` and exits 125. */
function configureErrors(cmd: Command, io: Io): void {
  cmd.exitOverride();
  cmd.configureOutput({
    writeOut: (s) => io.out.write(s),
    writeErr: (s) => io.err.write(s),
    outputError: () => {},
  });
  for (const sub of cmd.commands) configureErrors(sub, io);
}

/** The (sub)command argv names, for usage messages: `strata image ls`. */
function commandFor(program: Command, argv: string[]): Command {
  let cmd = program;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--root") i++;
    if (a.startsWith("-")) continue;
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) break;
    cmd = sub;
  }
  return cmd;
}

function commandPath(cmd: Command | null): string {
  const names: string[] = [];
  for (let c = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Run the CLI; resolves to the exit status. */
export async function run(argv: string[], io: Io = defaultIo(), opts: RunOptions = {}): Promise<number> {
  const { program } = buildProgram(io, opts);
  const current = commandFor(program, argv);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0)
        return 0;
      if (e.code === "commander.help") return 0;
      const msg = e.message.replace(/^error: /, "");
      const unknown = /unknown option '([^']+)'/.exec(msg);
      const where = commandPath(current);
      if (unknown) {
        io.err.write(`unknown flag: ${unknown[1]}\nSee '${where} --help'.\n`);
        return 125;
      }
      if (e.code === "commander.unknownCommand") {
        const name = /unknown command '([^']+)'/.exec(msg)?.[1] ?? "";
        io.err.write(`strata: '${name}' is not a strata command.\nSee 'strata --help'\n`);
        return 1;
      }
      io.err.write(`${msg}\nSee '${where} --help'.\n`);
      return e.code === "commander.missingArgument" || e.code === "commander.excessArguments" ? 1 : 125;
    }
    if (e instanceof ExitError) {
      if (!e.printed) io.err.write(`Error: ${e.message}\n`);
      return e.status;
    }
    io.err.write(`Error: ${errorMessage(e)}\n`);
    if (process.env.STRATA_DEBUG && e instanceof Error) io.err.write(`${e.stack}\n`);
    return 1;
  }
}
