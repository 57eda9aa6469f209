/**
 * A private dockerd for tests: its own data root, exec root, pidfile and unix socket, no
 * iptables and no bridge, stopped (SIGTERM, then SIGKILL) by `stop()`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Dockerd {
  host: string;
  /** Run the docker CLI against this daemon with its own client config dir. */
  docker(args: string[], opts?: { input?: string }): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
  logs(): string;
}

/** Debian's CLI matches Debian's 20.10 daemon; the v28 CLI at /usr/local/bin also works. */
const DOCKER_CLI = "/usr/bin/docker";

export async function startDockerd(opts: { insecureRegistries?: string[] } = {}): Promise<Dockerd> {
  // Short paths: unix socket paths are limited to 108 bytes.
  const dir = mkdtempSync("/tmp/sdk-");
  const sock = path.join(dir, "d.sock");
  const args = [
    `--data-root=${dir}/data`,
    `--exec-root=${dir}/exec`,
    `--pidfile=${dir}/docker.pid`,
    `-H`,
    `unix://${sock}`,
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
    `--containerd-namespace=strata-test-${path.basename(dir)}`,
    `--containerd-plugins-namespace=strata-test-p-${path.basename(dir)}`,
    ...(opts.insecureRegistries ?? []).map((r) => `--insecure-registry=${r}`),
  ];
  const proc: ChildProcess = spawn("dockerd", args, { stdio: ["ignore", "pipe", "pipe"] });
  const log: string[] = [];
  proc.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
  proc.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
  const configDir = path.join(dir, "client");
  mkdirSync(configDir);
  const host = `unix://${sock}`;
  const docker = (a: string[], o: { input?: string } = {}) =>
    new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      const child = execFile(
        DOCKER_CLI,
        ["-H", host, ...a],
        { env: { ...process.env, DOCKER_CONFIG: configDir }, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) reject(Object.assign(err, { stdout, stderr, message: `${err.message}\n${stderr}` }));
          else resolve({ stdout, stderr });
        },
      );
      child.stdin?.end(o.input ?? "");
    });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 20_000);
      await new Promise((r) => proc.once("exit", r));
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`dockerd exited: ${log.join("")}`);
    try {
      await run(DOCKER_CLI, ["-H", host, "version"], { timeout: 5_000 });
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`dockerd did not start: ${log.join("").slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return { host, docker, stop, logs: () => log.join("") };
}

/** A one-layer busybox image as a rootfs tar (busybox-static from the host) for `docker import`. */
export async function busyboxRootfsTar(): Promise<string> {
  const dir = mkdtempSync("/tmp/sbb-");
  const root = path.join(dir, "rootfs");
  mkdirSync(path.join(root, "bin"), { recursive: true });
  await run("cp", ["/bin/busybox", path.join(root, "bin/busybox")]);
  chmodSync(path.join(root, "bin/busybox"), 0o755);
  for (const applet of ["sh", "echo", "cat", "ls"]) symlinkSync("busybox", path.join(root, "bin", applet));
  const tar = path.join(dir, "busybox.tar");
  await run("tar", ["-C", root, "-cf", tar, "."]);
  return tar;
}
