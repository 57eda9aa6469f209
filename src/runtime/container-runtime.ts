import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { StrataError, tlsFreeEnv } from "../util/index.js";
import { SUPERVISOR_CONFIG, type SupervisorConfig, ttyWrapped } from "./supervisor.js";

/** Where runc keeps its state for Strata's containers (tmpfs: gone after a reboot, as containers are). */
export const CONTAINER_RUNTIME_ROOT = "/run/strata/containers";

/** The supervisor's script, next to this module in dist/. */
export const SUPERVISOR_SCRIPT = fileURLToPath(new URL("./supervisor.js", import.meta.url));

export interface StartedSupervisor {
  child: ChildProcess;
  /** The container's process id once it runs (0 when it exited before the report). */
  pid: number;
}

/**
 * Start a container's supervisor, detached from the caller (its own session), and wait for
 * its report: the container's process runs, or it failed to start (StrataError with the
 * runtime's message and Docker's exit status in `exitCode`). With `attach`, the
 * supervisor's stdio are pipes to the caller, who reads the container's output live.
 */
export async function startSupervisor(
  containerDir: string,
  cfg: SupervisorConfig,
  opts: { attach: boolean; standby?: ChildProcess },
): Promise<StartedSupervisor> {
  const { promises: fsp } = await import("node:fs");
  const path = await import("node:path");
  await fsp.writeFile(path.join(containerDir, SUPERVISOR_CONFIG), JSON.stringify(cfg));
  let child = opts.standby && takeStandby(opts.standby, containerDir, opts.attach);
  if (!child) {
    // A detached supervisor's own errors go to supervisor.log in the container's directory.
    const errFd = opts.attach ? undefined : openSync(path.join(containerDir, "supervisor.log"), "a");
    child = spawn(process.execPath, [SUPERVISOR_SCRIPT, containerDir, ...(opts.attach ? ["attached"] : [])], {
      detached: true,
      stdio: [opts.attach ? "pipe" : "ignore", opts.attach ? "pipe" : "ignore", errFd ?? "pipe", "pipe"],
      cwd: "/",
      env: tlsFreeEnv(), // it opens no TLS connection
    });
    if (errFd !== undefined) closeSync(errFd);
  }
  const report = child.stdio[3] as NodeJS.ReadableStream;
  let spawnError: string | undefined;
  const text = await new Promise<string>((resolve) => {
    let buf = "";
    report.on("data", (c: Buffer) => {
      buf += c.toString();
    });
    report.on("end", () => resolve(buf));
    report.on("error", () => resolve(buf));
    child.on("error", (e) => {
      spawnError = e.message;
      resolve(buf);
    });
  });
  const line = text.split("\n").find(Boolean);
  let msg: { started?: boolean; pid?: number; error?: string; exitCode?: number } = {};
  try {
    msg = line ? JSON.parse(line) : {};
  } catch {
    msg = { error: `supervisor: ${line}` };
  }
  if (!msg.started) {
    if (!msg.error) {
      const exit = await new Promise<string>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null)
          resolve(`exit status ${child.exitCode ?? child.signalCode}`);
        else child.once("exit", (c, sig) => resolve(`exit status ${c ?? sig}`));
        setTimeout(() => resolve("still running"), 2000).unref();
      });
      const log = await fsp.readFile(path.join(containerDir, "supervisor.log"), "utf8").catch(() => "");
      msg.error = `the container supervisor exited before the container started (${spawnError ?? exit})${log ? `: ${log.trim().split("\n").slice(-3).join(" ")}` : ""}`;
    }
    const err = new StrataError(
      "CONTAINER_START_FAILED",
      msg.error ?? "the container supervisor exited before the container started",
    ) as StrataError & { exitCode: number };
    err.exitCode = msg.exitCode ?? 125;
    throw err;
  }
  if (!opts.attach) {
    // Detached: the supervisor lives on alone; nothing of it may keep this process running.
    for (const s of child.stdio) (s as Socket | null)?.destroy();
    child.unref();
  }
  return { child, pid: msg.pid ?? 0 };
}

/**
 * A standby supervisor (`node supervisor.js --standby`, started by the CLI's entry point
 * before it loads anything else, in its own session with five pipes and every handle
 * unref'd) is given its container: one line on its fd 4. Undefined when it is gone
 * (the caller then spawns a supervisor the usual way).
 */
function takeStandby(standby: ChildProcess, containerDir: string, attach: boolean): ChildProcess | undefined {
  const order = standby.stdio[4] as Socket | null | undefined;
  if (standby.exitCode !== null || standby.signalCode !== null || !order || order.destroyed) return undefined;
  order.on("error", () => {}); // gone meanwhile: its report stream ends empty and says so
  order.end(`${JSON.stringify({ dir: containerDir, attached: attach })}\n`);
  // Its report (fd 3) and, attached, its stdio and exit are what this process now waits for.
  standby.ref();
  for (const s of standby.stdio) (s as Socket | null)?.ref?.();
  return standby;
}

function runtimeOrThrow(runtime: string | undefined): string {
  if (!runtime)
    throw new StrataError("UNSUPPORTED", "no OCI runtime found: containers need runc (apt-get install runc)");
  return runtime;
}

/** `runc kill ID SIGNAL`; false when the container is not running in the runtime. */
export function runtimeKill(runtime: string | undefined, id: string, signal: string, all = false): boolean {
  const r = spawnSync(
    runtimeOrThrow(runtime),
    ["--root", CONTAINER_RUNTIME_ROOT, "kill", ...(all ? ["--all"] : []), id, signal.replace(/^SIG/, "")],
    { encoding: "utf8" },
  );
  return r.status === 0;
}

/** `runc delete -f ID`: kills what is left and forgets the container in the runtime. */
export function runtimeDelete(runtime: string | undefined, id: string): void {
  spawnSync(runtimeOrThrow(runtime), ["--root", CONTAINER_RUNTIME_ROOT, "delete", "-f", id], {
    stdio: "ignore",
  });
}

/** Host pids of the container's processes (`runc ps --format json`). */
export function runtimePids(runtime: string | undefined, id: string): number[] {
  const r = spawnSync(
    runtimeOrThrow(runtime),
    ["--root", CONTAINER_RUNTIME_ROOT, "ps", "--format", "json", id],
    {
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new StrataError("IO_ERROR", `runc ps: ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout || "[]") as number[] | null) ?? [];
}

export interface ExecOptions {
  runtime: string | undefined;
  id: string;
  /** Path of a process.json (OCI process). */
  processFile: string;
  tty: boolean;
  /** The caller's stdin is a terminal (with `tty`, runc then uses it directly). */
  stdinIsTTY?: boolean;
  detach: boolean;
  stdin?: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * `runc exec --process FILE ID`: resolves to the process's exit status (Docker's 126/127 on
 * exec failure). With a terminal, runc needs one on its own stdio: the caller's when that is
 * a terminal, else one that util-linux `script` provides (see ttyWrapped).
 */
export async function runtimeExec(o: ExecOptions): Promise<{ exitCode: number; error?: string }> {
  const args = ["--root", CONTAINER_RUNTIME_ROOT, "exec", "--process", o.processFile];
  if (o.detach) args.push("--detach");
  args.push(o.id);
  const runtime = runtimeOrThrow(o.runtime);
  if (o.tty && !o.stdinIsTTY) {
    const [cmd, wrapped] = ttyWrapped(runtime, args);
    const child = spawn(cmd, wrapped, { stdio: ["pipe", "pipe", "pipe"] });
    // Its stdin stays open until it exits: an EOF would reach the process as a ^D.
    child.stdin!.on("error", () => {});
    child.stdout!.on("data", (c: Buffer) => o.stdout.write(c));
    child.stderr!.on("data", (c: Buffer) => o.stderr.write(c));
    const code: number = await new Promise((resolve) => {
      child.on("error", () => resolve(126));
      child.on("close", (c) => resolve(c ?? 137));
    });
    return { exitCode: code };
  }
  const useInherit = o.tty;
  const child = spawn(runtime, args, {
    stdio: useInherit ? "inherit" : [o.stdin ? "pipe" : "ignore", "pipe", "pipe"],
  });
  if (!useInherit) {
    if (o.stdin && child.stdin) {
      o.stdin.pipe(child.stdin);
      child.stdin.on("error", () => {});
    }
    child.stdout!.on("data", (c: Buffer) => o.stdout.write(c));
    const errTail: Buffer[] = [];
    child.stderr!.on("data", (c: Buffer) => {
      errTail.push(c);
      if (errTail.length > 32) errTail.shift();
      const s = c.toString();
      if (!/unable to start container process|runc exec failed/.test(s)) o.stderr.write(c);
    });
    const code: number = await new Promise((resolve) => {
      child.on("error", () => resolve(126));
      child.on("close", (c) => resolve(c ?? 137));
    });
    if (o.stdin) o.stdin.unpipe(child.stdin!);
    const text = Buffer.concat(errTail).toString();
    // runc logs `msg="exec failed: … exec: \"name\": …"` (logfmt escapes the quotes).
    const m =
      /exec: \\?"((?:[^"\\]|\\[^"])+)\\?": (executable file not found in \$PATH|no such file or directory|permission denied)/.exec(
        text,
      );
    if (m && /unable to start container process/.test(text))
      return {
        exitCode: m[2] === "permission denied" ? 126 : 127,
        error: `OCI runtime exec failed: exec failed: unable to start container process: exec: "${m[1]}": ${m[2]}: unknown`,
      };
    return { exitCode: code };
  }
  const code: number = await new Promise((resolve) => {
    child.on("error", () => resolve(126));
    child.on("close", (c) => resolve(c ?? 137));
  });
  return { exitCode: code };
}
