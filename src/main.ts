#!/usr/bin/env node
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
// util/find.js alone (no util index): the listing starts before anything else loads.
import { quickListing, type RunningListing } from "./util/find.js";

/** The CLI bundle's file name in dist/bin, set by scripts/bundle.mjs; undefined from sources. */
declare const __STRATA_CLI__: string | undefined;

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
      // It opens no TLS connection: spare it Node's reading of the extra CA file at start-up.
      env: { ...process.env, NODE_EXTRA_CA_CERTS: undefined },
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
function contextListingEarly(argv: string[], i: number): Map<string, RunningListing> | undefined {
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
    .find((a) => {
      try {
        return statSync(a, { throwIfNoEntry: false })?.isDirectory();
      } catch {
        return false; // ENOTDIR, EACCES: not the context; the build command will say why
      }
    });
  if (!dir) return undefined;
  return new Map([[path.resolve(dir), quickListing(dir)]]);
}

type Cli = typeof import("./cli/index.js");

/**
 * The CLI: in the bundle (scripts/bundle.mjs) one CommonJS file, compiled through V8's code
 * cache, Node 22's compile cache done by hand for Node 20. Without the cache Node parses and
 * compiles ~1 MB of JavaScript on every command, a quarter of a no-change build's time.
 *
 * The cache lives in `.cache/` next to the bundle, one file per command (each caches the
 * functions its own run compiled) and per bundle (the name carries its content hash: V8
 * checks only the source's length), Node version and architecture. It is written once, at a
 * successful exit, when absent or refused by V8 (other flags, another V8); where the
 * directory is not writable there is simply no cache. STRATA_NO_COMPILE_CACHE=1 turns it off.
 */
async function loadCli(command: string | undefined): Promise<Cli> {
  if (typeof __STRATA_CLI__ !== "string") return import("./cli/index.js");
  // Loaded after find and the supervisor have started.
  const [{ default: vm }, { createHash }, { createRequire }] = await Promise.all([
    import("node:vm"),
    import("node:crypto"),
    import("node:module"),
  ]);
  // sha1 from crypto, which node has loaded already (zlib's crc32 would cost 2-3 ms to load).
  const sum = (data: Buffer) => createHash("sha1").update(data).digest();
  const here = path.dirname(fileURLToPath(import.meta.url));
  const file = path.join(here, __STRATA_CLI__);
  const source = readFileSync(file, "utf8");
  const useCache = !process.env.STRATA_NO_COMPILE_CACHE;
  const key = command && /^[a-z][a-z-]{0,31}$/.test(command) ? command : "none";
  const cacheDir = path.join(here, ".cache");
  const cacheFile = path.join(
    cacheDir,
    `${path.basename(file, ".cjs")}.${key}.${process.version}-${process.arch}.bin`,
  );
  let cachedData: Buffer | undefined;
  // The cache is code: used only from a directory and a file owned by whoever owns the
  // bundle (who could change the bundle itself) and writable by nobody else.
  const owner = statSync(file).uid;
  const trusted = (p: string) => {
    try {
      const st = lstatSync(p);
      return st.uid === owner && (st.mode & 0o022) === 0;
    } catch {
      return false;
    }
  };
  if (useCache && trusted(cacheDir) && trusted(cacheFile)) {
    try {
      // V8 does not checksum what it is given, and a damaged cache crashes it: the file
      // carries the data's length and SHA-1 (Node 22's compile cache checks a CRC-32), checked here.
      const bytes = readFileSync(cacheFile);
      const data = bytes.subarray(24);
      if (
        bytes.length >= 24 &&
        bytes.readUInt32LE(0) === data.length &&
        sum(data).equals(bytes.subarray(4, 24))
      )
        cachedData = data;
    } catch {
      // no cache yet
    }
  }
  // CommonJS's wrapper, on the first line so that line numbers stay the file's.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  const mod = { exports: {} as Cli };
  (script.runInThisContext() as (...a: unknown[]) => void).call(
    mod.exports,
    mod.exports,
    createRequire(file),
    mod,
    file,
    here,
  );
  if (useCache && (cachedData === undefined || script.cachedDataRejected)) {
    process.once("exit", (code) => {
      if (code !== 0) return;
      try {
        mkdirSync(cacheDir, { mode: 0o755 });
      } catch {
        // there already, or a read-only install
      }
      if (!trusted(cacheDir)) return;
      try {
        const tmp = `${cacheFile}.${process.pid}.${Date.now()}.tmp`;
        const data = script.createCachedData();
        const length = Buffer.alloc(4);
        length.writeUInt32LE(data.length, 0);
        writeFileSync(tmp, Buffer.concat([length, sum(data), data]), { flag: "wx", mode: 0o644 });
        renameSync(tmp, cacheFile);
      } catch {
        // A read-only install: run without the cache.
      }
    });
  }
  return mod.exports;
}

const argv = process.argv.slice(2);
// Where the command is: after the global options (only --root takes a value).
let command = 0;
while (command < argv.length && argv[command]!.startsWith("-")) command += argv[command] === "--root" ? 2 : 1;
const supervisor = supervisorStandby(argv, command);
const listings = contextListingEarly(argv, command);
const { run } = await loadCli(argv[command]);

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
})
  .then(
    (status) => {
      process.exitCode = status;
    },
    (e) => {
      process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  )
  // A build that failed before it used its listing does not wait for find to finish.
  .finally(() => {
    for (const l of listings?.values() ?? []) l.stop();
  });
