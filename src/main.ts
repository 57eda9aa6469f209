#!/usr/bin/env node
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * `run` needs a container supervisor, a second Node process (runtime/supervisor.ts). Started
 * here, before the CLI's own modules load, its start-up overlaps the CLI's instead of
 * following it. It waits in standby for its container on fd 4 (runtime/supervisor.ts) and
 * exits when this process ends without handing it one. Its own session: it outlives the CLI.
 * Every handle is unref'd: only a command that takes it (engine start) waits for it.
 */
function supervisorStandby(argv: string[], i: number): ChildProcess | undefined {
  const cmd = argv[i] === "container" ? argv[i + 1] : argv[i];
  if (cmd !== "run") return undefined;
  // Next to this file in the bundle (dist/bin/); absent when run from sources.
  const script = fileURLToPath(new URL("./supervisor.js", import.meta.url));
  if (!existsSync(script)) return undefined;
  try {
    const child = spawn(process.execPath, [script, "--standby"], {
      detached: true,
      stdio: ["pipe", "pipe", "pipe", "pipe", "pipe"],
      cwd: "/",
    });
    child.on("error", () => {});
    child.unref();
    for (const s of child.stdio) (s as { unref?: () => void } | null)?.unref?.();
    return child;
  } catch {
    return undefined;
  }
}

/**
 * `build DIR`: list the context with find now, on the other core, while the CLI loads. The
 * context is guessed (the last argument after the command that is a directory); the build
 * command uses the listing only when it names that same directory.
 */
async function contextListingEarly(
  argv: string[],
  i: number,
): Promise<Map<string, Promise<Buffer>> | undefined> {
  const at =
    argv[i] === "build"
      ? i
      : ["image", "builder", "buildx"].includes(argv[i]!) && argv[i + 1] === "build"
        ? i + 1
        : -1;
  if (at < 0) return undefined;
  const dir = argv
    .slice(at + 1)
    .filter((a) => !a.startsWith("-"))
    .reverse()
    .find((a) => statSync(a, { throwIfNoEntry: false })?.isDirectory());
  if (!dir) return undefined;
  // util/find.js alone (a small chunk), not util's index: the listing starts before the rest loads.
  const { findListing } = await import("./util/find.js");
  return new Map([[path.resolve(dir), findListing(dir)]]);
}

const argv = process.argv.slice(2);
// Where the command is: after the global options (only --root takes a value).
let command = 0;
while (command < argv.length && argv[command]!.startsWith("-")) command += argv[command] === "--root" ? 2 : 1;
const supervisor = supervisorStandby(argv, command);
const listings = await contextListingEarly(argv, command);
const { run } = await import("./cli/index.js");

// A closed pipe (`strata images | head`) ends the command quietly, as docker does.
for (const stream of [process.stdout, process.stderr])
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });

run(argv, undefined, {
  supervisorStandby: supervisor,
  contextListings: listings,
  only: argv[command] === "build" ? "build" : undefined,
}).then(
  (status) => {
    process.exitCode = status;
  },
  (e) => {
    process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
