/**
 * The per-container supervisor (Docker's shim): a small detached process that runs the
 * container through the OCI runtime (`runc run`, so the runtime reports the exit status),
 * holds its stdio, writes json-file logs, records the exit code in `state.json`, and
 * cleans up (network namespace, slirp4netns, the rootfs mount, the whole container with
 * `--rm`). It survives the CLI that started it.
 *
 * Started as `node supervisor.js <containerDir> [attached]`, or ahead of time as
 * `node supervisor.js --standby` (see startSupervisorStandby: the CLI starts it first thing
 * for `run`, so Node's start-up here overlaps the CLI's own) and then told on fd 4 one JSON
 * line `{"dir":…,"attached":bool}` (EOF instead: nothing to run, it exits 0). It reads
 * `<containerDir>/supervisor.json` (SupervisorConfig) and reports on fd 3 one JSON line:
 * `{"started":true,"pid":N}` once the container's process runs, or `{"error":"…","exitCode":N}`
 * when it could not start. Its own exit status is the container's.
 *
 * Files it writes in the container dir (version 1):
 *   state.json          SupervisorState, replaced atomically on every change
 *   container-json.log  json-file log lines {"log","stream","time"}; rotated to .1, .2 … with max-size
 *   runc.log            the runtime's own log (JSON lines)
 *
 * Only node builtins are imported: it starts once per container, so it must start fast.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import net from "node:net";
import path from "node:path";

export interface PortBinding {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: "tcp" | "udp";
}

export interface SupervisorConfig {
  id: string;
  runtime: string;
  runtimeRoot: string;
  bundle: string;
  logPath: string;
  /** Rotate the log when it reaches this many bytes (0: never), keeping `logMaxFile` files. */
  logMaxSize: number;
  logMaxFile: number;
  tty: boolean;
  /** Keep stdin open (`-i`); only meaningful when attached. */
  openStdin: boolean;
  /** `bridge`: a netns at /var/run/netns/<netns> with slirp4netns; the others need nothing here. */
  network: { mode: "bridge" | "host" | "none"; netns?: string; ports: PortBinding[] };
  /** The rootfs mount to release when the container exits. */
  unmount?: string;
  /** `--rm`: directories to delete after the exit (container dir, snapshot). */
  autoRemove: boolean;
  removeDirs: string[];
  /** `--restart`: no, always, unless-stopped, on-failure (maxRetries 0: no limit). */
  restart?: { name: string; maxRetries: number };
}

export interface SupervisorState {
  status: "running" | "restarting" | "exited";
  pid: number;
  supervisorPid: number;
  /** /proc/<pid>/stat start time of the supervisor: tells a live supervisor from a reused pid. */
  supervisorStart: string;
  startedAt: string;
  finishedAt?: string;
  exitCode?: number;
  error?: string;
  /** Restarts by the restart policy since this supervisor started the container. */
  restartCount?: number;
}

export const SUPERVISOR_STATE = "state.json";
/** Created in the container dir by stop/kill/rm -f before they signal: no restart after this exit. */
export const STOP_REQUESTED = "stop-requested";
export const SUPERVISOR_CONFIG = "supervisor.json";

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** When the current (last) run started, from the state file. */
function lastStart(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(path.join(dir, SUPERVISOR_STATE), "utf8")) as SupervisorState).startedAt;
  } catch {
    return undefined;
  }
}

function writeState(dir: string, st: SupervisorState): void {
  const file = path.join(dir, SUPERVISOR_STATE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(st));
  renameSync(tmp, file);
}

/** json-file logger with Docker's line splitting (a message per line, 16 KiB partials). */
class JsonFileLog {
  private fd: number;
  private size: number;
  private pending: Record<string, string> = { stdout: "", stderr: "" };

  constructor(
    private readonly file: string,
    private readonly maxSize: number,
    private readonly maxFile: number,
  ) {
    this.fd = openSync(file, "a", 0o640);
    this.size = fstatSync(this.fd).size;
  }

  write(stream: "stdout" | "stderr", chunk: Buffer): void {
    let text = this.pending[stream] + chunk.toString("utf8");
    let i = text.indexOf("\n");
    while (i >= 0) {
      this.emit(stream, text.slice(0, i + 1));
      text = text.slice(i + 1);
      i = text.indexOf("\n");
    }
    while (text.length >= 16 * 1024) {
      this.emit(stream, text.slice(0, 16 * 1024));
      text = text.slice(16 * 1024);
    }
    this.pending[stream] = text;
  }

  flush(): void {
    for (const s of ["stdout", "stderr"] as const) {
      if (this.pending[s]) this.emit(s, this.pending[s]);
      this.pending[s] = "";
    }
  }

  private emit(stream: string, log: string): void {
    const line = `${JSON.stringify({ log, stream, time: new Date().toISOString() })}\n`;
    const buf = Buffer.from(line);
    if (this.maxSize > 0 && this.size + buf.length > this.maxSize && this.size > 0) this.rotate();
    writeSync(this.fd, buf);
    this.size += buf.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    const keep = Math.max(this.maxFile, 1);
    if (keep === 1) rmSync(this.file, { force: true });
    else {
      for (let n = keep - 1; n >= 1; n--) {
        const from = n === 1 ? this.file : `${this.file}.${n - 1}`;
        if (existsSync(from)) renameSync(from, `${this.file}.${n}`);
      }
    }
    this.fd = openSync(this.file, "a", 0o640);
    this.size = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

/**
 * A runtime command line run under util-linux `script`, which gives it a pseudo-terminal
 * as stdio and relays it to ours: runc, asked for a terminal in the foreground, needs one
 * on its own stdio (the alternative, --console-socket, passes the terminal's fd over a
 * unix socket, which Node cannot receive). The process's exit status is script's (-e).
 * Known wart: output the process writes before runc has cleared ONLCR on the container's
 * terminal gets a second CR from script's (`\r\r\n`).
 */
export function ttyWrapped(cmd: string, args: string[]): [string, string[]] {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  return [
    "script",
    ["-q", "-e", "-f", "-E", "never", "-c", [cmd, ...args].map(quote).join(" "), "/dev/null"],
  ];
}

/** Docker's exit codes for a process the runtime could not exec. */
export function startFailure(runcLog: string): { message: string; exitCode: number } | undefined {
  const lines = runcLog
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as { level?: string; msg?: string };
      } catch {
        return { level: "error", msg: l };
      }
    })
    .filter((e) => e.level === "error" || e.level === "fatal");
  const msg = lines.map((e) => e.msg ?? "").find((m) => m.length > 0);
  if (!msg) return undefined;
  const detail = msg.replace(/^runc run failed: /, "");
  let exitCode = 125;
  if (/exec: "[^"]*": (executable file not found in \$PATH|no such file or directory)/.test(detail))
    exitCode = 127;
  else if (/exec: "[^"]*": permission denied|exec format error/.test(detail)) exitCode = 126;
  return {
    message: `failed to create shim task: OCI runtime create failed: runc create failed: ${detail}: unknown`,
    exitCode,
  };
}

function checkPortFree(p: PortBinding): Promise<void> {
  if (p.proto !== "tcp") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          e.code === "EADDRINUSE"
            ? `driver failed programming external connectivity: Bind for ${p.hostIp}:${p.hostPort} failed: port is already allocated`
            : `driver failed programming external connectivity: listen ${p.hostIp}:${p.hostPort}: ${e.message}`,
        ),
      ),
    );
    srv.listen({ port: p.hostPort, host: p.hostIp, exclusive: true }, () => srv.close(() => resolve()));
  });
}

function slirpRequest(sock: string, req: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let data = "";
    c.on("connect", () => c.end(JSON.stringify(req)));
    c.on("data", (d) => {
      data += d.toString();
    });
    c.on("error", reject);
    c.on("close", () => {
      try {
        resolve(JSON.parse(data) as Record<string, unknown>);
      } catch {
        reject(new Error(`slirp4netns API: unreadable answer ${JSON.stringify(data)}`));
      }
    });
  });
}

function slirpSocket(id: string): string {
  return `/run/strata/slirp/${id.slice(0, 16)}.sock`;
}

/** Start slirp4netns on the netns and publish the ports; resolves once it is ready. */
async function startSlirp(dir: string, netnsPath: string, ports: PortBinding[]): Promise<ChildProcess> {
  // Unix socket paths are limited to 107 bytes: a short one under /run, not the container dir.
  const sock = slirpSocket(path.basename(dir));
  mkdirSync(path.dirname(sock), { recursive: true });
  rmSync(sock, { force: true });
  const child = spawn(
    "slirp4netns",
    [
      "--configure",
      "--mtu=65520",
      "--disable-host-loopback",
      "--netns-type=path",
      "--ready-fd=3",
      "--exit-fd=4",
      "--api-socket",
      sock,
      netnsPath,
      "tap0",
    ],
    { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
  );
  const err: Buffer[] = [];
  child.stderr!.on("data", (c: Buffer) => err.push(c));
  await new Promise<void>((resolve, reject) => {
    const ready = child.stdio[3] as NodeJS.ReadableStream;
    ready.once("data", () => resolve());
    child.once("error", (e) =>
      reject(new Error(`bridge network needs slirp4netns (apt-get install slirp4netns): ${e.message}`)),
    );
    child.once("exit", (code, sig) =>
      reject(
        new Error(
          `slirp4netns failed (exit status ${code ?? sig}): ${Buffer.concat(err).toString().trim() || "no message"}`,
        ),
      ),
    );
  });
  for (const p of ports) {
    const r = await slirpRequest(sock, {
      execute: "add_hostfwd",
      arguments: {
        proto: p.proto,
        host_addr: p.hostIp,
        host_port: p.hostPort,
        guest_port: p.containerPort,
      },
    });
    if (r.error)
      throw new Error(
        `driver failed programming external connectivity: Bind for ${p.hostIp}:${p.hostPort} failed: ${JSON.stringify(r.error)}`,
      );
  }
  return child;
}

async function main(dir: string, attached: boolean): Promise<number> {
  const cfg = JSON.parse(readFileSync(path.join(dir, SUPERVISOR_CONFIG), "utf8")) as SupervisorConfig;
  const report = (msg: Record<string, unknown>) => {
    try {
      writeSync(3, `${JSON.stringify(msg)}\n`);
      closeSync(3);
    } catch {
      // the starter went away: nothing to tell
    }
  };
  // attached: stdio are the starting CLI's pipes (foreground run, start -a).
  const supervisorStart = processStartTime(process.pid) ?? "";
  const startedAt = new Date().toISOString();
  let slirp: ChildProcess | undefined;
  const netnsPath = cfg.network.netns ? `/var/run/netns/${cfg.network.netns}` : undefined;

  const cleanup = () => {
    if (slirp && slirp.exitCode === null) slirp.kill("SIGKILL");
    if (slirp) rmSync(slirpSocket(cfg.id), { force: true });
    if (cfg.network.netns) spawnSync("ip", ["netns", "delete", cfg.network.netns], { stdio: "ignore" });
    // `runc run` deletes its container when the process exits; a leftover (runc killed) is deleted here.
    if (existsSync(path.join(cfg.runtimeRoot, cfg.id)))
      spawnSync(cfg.runtime, ["--root", cfg.runtimeRoot, "delete", "-f", cfg.id], { stdio: "ignore" });
    if (cfg.unmount) {
      const r = spawnSync("umount", [cfg.unmount], { stdio: "ignore" });
      if (r.status !== 0) spawnSync("umount", ["-l", cfg.unmount], { stdio: "ignore" });
    }
  };
  const finish = (exitCode: number, error?: string, restartCount = 0): number => {
    cleanup();
    if (cfg.autoRemove) for (const d of cfg.removeDirs) rmSync(d, { recursive: true, force: true });
    else
      writeState(dir, {
        status: "exited",
        pid: 0,
        supervisorPid: process.pid,
        supervisorStart,
        startedAt: lastStart(dir) ?? startedAt,
        finishedAt: new Date().toISOString(),
        exitCode,
        restartCount,
        ...(error ? { error } : {}),
      });
    return exitCode;
  };

  try {
    if (cfg.network.mode === "bridge") {
      for (const p of cfg.network.ports) await checkPortFree(p);
      const add = spawnSync("ip", ["netns", "add", cfg.network.netns!], { encoding: "utf8" });
      if (add.status !== 0) throw new Error(`creating the network namespace: ${add.stderr.trim()}`);
      slirp = await startSlirp(dir, netnsPath!, cfg.network.ports);
    }
  } catch (e) {
    const message = (e as Error).message;
    report({ error: message, exitCode: 125 });
    return finish(125, message);
  }

  const log = new JsonFileLog(cfg.logPath, cfg.logMaxSize, cfg.logMaxFile);
  const runcLog = path.join(dir, "runc.log");
  const pidFile = path.join(dir, "init.pid");
  const stopMarker = path.join(dir, STOP_REQUESTED);
  let runc: ChildProcess | undefined;
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const)
    process.on(sig, () => {
      // runc run proxies the signals it receives to the container's process.
      if (runc && runc.exitCode === null) runc.kill(sig);
    });

  /** One `runc run`: resolves once the process has exited (pid 0: it never started). */
  const runOnce = async (first: boolean): Promise<{ pid: number; code: number }> => {
    rmSync(runcLog, { force: true });
    rmSync(pidFile, { force: true });
    const args = [
      "--root",
      cfg.runtimeRoot,
      "--log",
      runcLog,
      "--log-format",
      "json",
      "run",
      "--bundle",
      cfg.bundle,
      "--pid-file",
      pidFile,
      cfg.id,
    ];
    const stdin = first && attached && cfg.openStdin;
    // -t: runc wants a terminal on its own stdio, which `script` gives it; that terminal's
    // input stays open (an EOF would reach the container as a ^D) unless -i attaches ours.
    const child = cfg.tty
      ? spawn(...ttyWrapped(cfg.runtime, args), { stdio: ["pipe", "pipe", "pipe"] })
      : spawn(cfg.runtime, args, { stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"] });
    runc = child;
    if (child.stdin) {
      if (stdin) process.stdin.pipe(child.stdin);
      child.stdin.on("error", () => {});
    }
    const out = (stream: "stdout" | "stderr", chunk: Buffer) => {
      log.write(cfg.tty ? "stdout" : stream, chunk);
      if (attached) {
        const dest = stream === "stdout" ? process.stdout : process.stderr;
        if (dest.writable) dest.write(chunk);
      }
    };
    child.stdout!.on("data", (c: Buffer) => out("stdout", c));
    child.stderr!.on("data", (c: Buffer) => out("stderr", c));
    let done = false;
    const exited = new Promise<number>((resolve) => {
      child.on("error", () => resolve(125));
      child.on("close", (code, sig) => resolve(code ?? 128 + (sig === "SIGKILL" ? 9 : 15)));
    }).finally(() => {
      done = true;
    });
    let pid = 0;
    while (!done) {
      if (existsSync(pidFile)) {
        pid = Number(readFileSync(pidFile, "utf8").trim()) || 0;
        if (pid > 0) break;
      }
      await new Promise((r) => setTimeout(r, 3));
    }
    if (pid > 0) {
      writeState(dir, {
        status: "running",
        pid,
        supervisorPid: process.pid,
        supervisorStart,
        startedAt: new Date().toISOString(),
        restartCount,
      });
      if (first) report({ started: true, pid });
    }
    const code = await exited;
    if (child.stdin && stdin) process.stdin.unpipe(child.stdin);
    return { pid, code };
  };

  let restartCount = 0;
  let first = true;
  let code: number;
  let error: string | undefined;
  for (;;) {
    const r = await runOnce(first);
    code = r.code;
    if (r.pid === 0 || code !== 0) {
      const failure = startFailure(readFileSafe(runcLog));
      if (failure && (r.pid === 0 || !existsSync(pidFile))) {
        code = failure.exitCode;
        error = failure.message;
        if (first) report({ error: failure.message, exitCode: failure.exitCode });
        break;
      }
      if (r.pid === 0 && first) report({ started: true, pid: 0 });
    }
    first = false;
    const delay = restartDelay(cfg.restart, code, restartCount, existsSync(stopMarker));
    if (delay === undefined) break;
    restartCount++;
    writeState(dir, {
      status: "restarting",
      pid: 0,
      supervisorPid: process.pid,
      supervisorStart,
      startedAt: lastStart(dir) ?? startedAt,
      finishedAt: new Date().toISOString(),
      exitCode: code,
      restartCount,
    });
    // Docker's back-off; a stop (or rm -f) in the meantime cancels the restart.
    const until = Date.now() + delay;
    while (Date.now() < until && !existsSync(stopMarker)) await new Promise((r) => setTimeout(r, 20));
    if (existsSync(stopMarker)) break;
  }
  rmSync(stopMarker, { force: true });
  log.close();
  return finish(code, error, restartCount);
}

/**
 * Docker's restart policies (moby restartmanager): `always` and `unless-stopped` restart
 * after any exit, `on-failure[:N]` after a non-zero one (at most N times), never after a
 * stop. The delay starts at 100 ms and doubles with each restart.
 * Undefined: do not restart.
 */
export function restartDelay(
  policy: { name: string; maxRetries: number } | undefined,
  exitCode: number,
  restartCount: number,
  stopRequested: boolean,
): number | undefined {
  if (!policy || stopRequested) return undefined;
  const again =
    policy.name === "always" ||
    policy.name === "unless-stopped" ||
    (policy.name === "on-failure" &&
      exitCode !== 0 &&
      (policy.maxRetries <= 0 || restartCount < policy.maxRetries));
  if (!again) return undefined;
  return Math.min(100 * 2 ** restartCount, 60_000);
}

function readFileSafe(f: string): string {
  try {
    return readFileSync(f, "utf8");
  } catch {
    return "";
  }
}

/** A standby supervisor's order: one line on fd 4, or undefined at EOF (the CLI needed none). */
function readOrder(): Promise<{ dir: string; attached: boolean } | undefined> {
  return new Promise((resolve) => {
    const input = new net.Socket({ fd: 4, readable: true, writable: false });
    let buf = "";
    input.on("data", (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      input.destroy();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as { dir: string; attached: boolean });
      } catch {
        resolve(undefined);
      }
    });
    input.on("error", () => resolve(undefined));
    input.on("end", () => resolve(undefined));
  });
}

async function entry(): Promise<number> {
  // The starter's pipes may close under us (the CLI exits after `run -d`, or is killed).
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  let dir = process.argv[2]!;
  let attached = process.argv[3] === "attached";
  if (dir === "--standby") {
    const order = await readOrder();
    if (!order) return 0;
    ({ dir, attached } = order);
  }
  try {
    return await main(dir, attached);
  } catch (e) {
    // Detached, nobody reads stderr: the supervisor's own failure goes next to the container.
    const text = `strata supervisor: ${(e as Error).stack}\n`;
    if (attached) process.stderr.write(text);
    else
      try {
        writeFileSync(path.join(dir, "supervisor.log"), text, { flag: "a" });
      } catch {
        // the container's directory is gone: nowhere to write
      }
    return 125;
  }
}

if (process.argv[1] && /supervisor\.[jt]s$/.test(process.argv[1]) && process.argv[2]) {
  entry().then((code) => process.exit(code));
}
