import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants as fsConstants, promises as fsp, statSync } from "node:fs";
import path from "node:path";
import { StrataError } from "../util/index.js";
import { generateSpec, type SpecOptions } from "./spec.js";

export interface RunOptions {
  spec: SpecOptions;
  /** Directory for the bundle (config.json); removed afterwards. */
  bundleDir: string;
  /** Receives the process's stdout and stderr as they come. */
  onOutput?: (chunk: Buffer, stream: "stdout" | "stderr") => void;
  stdin?: NodeJS.ReadableStream;
  signal?: AbortSignal;
  /** Runtime binary: runc by default (crun 1.8 refuses hybrid cgroup v1 hosts). */
  runtime?: string;
  stateRoot?: string;
}

export interface RunResult {
  exitCode: number;
  /** The runtime's own error, when the process could not be started. */
  runtimeError?: string;
}

/** Which OCI runtime to use: $STRATA_RUNTIME, else runc, else crun; undefined when none is installed. */
export function findRuntime(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = env.STRATA_RUNTIME ? [env.STRATA_RUNTIME] : ["runc", "crun"];
  // A PATH walk as the shell's `command -v` does it, without starting a shell per lookup.
  const dirs = (env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":");
  for (const c of candidates) {
    for (const file of c.includes("/") ? [c] : dirs.filter(Boolean).map((d) => path.join(d, c))) {
      try {
        accessSync(file, fsConstants.X_OK);
        if (statSync(file).isFile()) return path.resolve(file);
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/**
 * Run one process to completion in a root filesystem through the OCI runtime
 * (`runc run`, foreground, no terminal): stdout and stderr stream to `onOutput`,
 * the result is the process's exit code.
 */
export async function runProcess(o: RunOptions): Promise<RunResult> {
  const runtime = o.runtime ?? findRuntime();
  if (!runtime)
    throw new StrataError(
      "UNSUPPORTED",
      "no OCI runtime found: RUN needs runc or crun (apt-get install runc)",
    );
  if (process.getuid?.() !== 0)
    throw new StrataError("UNSUPPORTED", "RUN needs root (overlayfs mounts and namespaces)");
  // Canceled before it started: do not start it.
  o.signal?.throwIfAborted();
  await fsp.mkdir(o.bundleDir, { recursive: true });
  await fsp.writeFile(path.join(o.bundleDir, "config.json"), JSON.stringify(generateSpec(o.spec)));
  const id = `strata-${randomBytes(8).toString("hex")}`;
  const stateRoot = o.stateRoot ?? "/run/strata/runc";
  await fsp.mkdir(stateRoot, { recursive: true });
  const child = spawn(runtime, ["--root", stateRoot, "run", "--bundle", o.bundleDir, id], {
    stdio: [o.stdin ? "pipe" : "ignore", "pipe", "pipe"],
  });
  if (o.stdin && child.stdin) o.stdin.pipe(child.stdin);
  const runtimeErr: Buffer[] = [];
  child.stdout!.on("data", (c: Buffer) => o.onOutput?.(c, "stdout"));
  child.stderr!.on("data", (c: Buffer) => {
    runtimeErr.push(c);
    if (runtimeErr.length > 64) runtimeErr.shift();
    o.onOutput?.(c, "stderr");
  });
  // `runc kill` fails until runc has created the container: keep trying until the process is gone.
  let closed = false;
  child.on("close", () => {
    closed = true;
  });
  const onAbort = () => {
    if (closed) return;
    spawnSync(runtime, ["--root", stateRoot, "kill", id, "KILL"], { stdio: "ignore" });
    setTimeout(onAbort, 100);
  };
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const code: number = await new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (c, sig) => resolve(c ?? (sig ? 128 + 9 : 1)));
    });
    const text = Buffer.concat(runtimeErr).toString();
    // runc reports a failed exec itself; Docker maps "not found" to 127 and "not executable" to 126.
    const m =
      /exec: "([^"]+)": (executable file not found in \$PATH|no such file or directory|permission denied)/.exec(
        text,
      );
    if (m) return { exitCode: m[2] === "permission denied" ? 126 : 127, runtimeError: m[0] };
    return { exitCode: code };
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    spawnSync(runtime, ["--root", stateRoot, "delete", "-f", id], { stdio: "ignore" });
    await fsp.rm(o.bundleDir, { recursive: true, force: true });
  }
}
