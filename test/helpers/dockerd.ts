import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, rmSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const pexec = promisify(execFile);
/** Debian's docker CLI matches Debian's dockerd (20.10). */
export const DOCKER_CLI = existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";

export interface Dockerd {
  host: string;
  docker(
    args: string[],
    opts?: { input?: Buffer | string; maxBuffer?: number },
  ): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/**
 * Start a private dockerd (its own data root, exec root and socket) for interop tests;
 * Debian's dockerd runs here with --iptables=false --bridge=none.
 */
export async function startDockerd(opts: { insecureRegistries?: string[] } = {}): Promise<Dockerd> {
  const dir = mkdtempSync("/tmp/sd-");
  const sock = path.join(dir, "d.sock");
  const log = openSync(path.join(dir, "dockerd.log"), "a");
  const args = [
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
    "--data-root",
    path.join(dir, "data"),
    "--exec-root",
    path.join(dir, "x"),
    "--pidfile",
    path.join(dir, "pid"),
    "-H",
    `unix://${sock}`,
    "--containerd-namespace",
    `strata-${path.basename(dir)}`,
    "--containerd-plugins-namespace",
    `strata-p-${path.basename(dir)}`,
    ...(opts.insecureRegistries ?? []).flatMap((r) => ["--insecure-registry", r]),
  ];
  const proc: ChildProcess = spawn("dockerd", args, { stdio: ["ignore", log, log], detached: false });
  const host = `unix://${sock}`;
  const docker: Dockerd["docker"] = async (a, o = {}) => {
    const p = pexec(DOCKER_CLI, ["-H", host, ...a], {
      maxBuffer: o.maxBuffer ?? 256 * 1024 * 1024,
      encoding: "utf8",
    });
    if (o.input !== undefined) p.child.stdin?.end(o.input);
    return p;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null)
      throw new Error(`dockerd exited early (${proc.exitCode}); see ${dir}/dockerd.log`);
    try {
      await docker(["version", "--format", "{{.Server.Version}}"]);
      break;
    } catch {
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`dockerd did not start within 60 s; see ${dir}/dockerd.log`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    host,
    docker,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise<void>((r) => {
          const t = setTimeout(() => {
            proc.kill("SIGKILL");
            r();
          }, 15_000);
          proc.on("exit", () => {
            clearTimeout(t);
            r();
          });
        });
      }
      await pexec("sh", [
        "-c",
        `grep ' ${dir}' /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l`,
      ]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
