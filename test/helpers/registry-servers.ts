/**
 * Real registry processes for the registry-server tests: Strata's (`strata registry serve`
 * from the built CLI, in its own process) and CNCF distribution (Debian's `docker-registry`), plus
 * a small raw HTTP client so tests control every header (Content-Length, Content-Range).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { promises as fsp, mkdtempSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
/** The CLI as it ships (`npm run build`); tests run what users run. */
export const STRATA_CLI = path.join(REPO_ROOT, "dist/bin/main.js");

/** Is a tool on PATH? Under CI a missing tool is an error, never a skip (STYLE §22). */
export function haveTool(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.CI === "true") throw new Error(`required tool ${name} is not installed (CI=true)`);
    return false;
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `strata-${prefix}-`));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
  });
}

export interface RegistryProcess {
  kind: "strata" | "distribution";
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, for skopeo and docker references. */
  host: string;
  root: string;
  proc: ChildProcess;
  logs: () => string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill9(): Promise<void>;
}

function waitExit(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((resolve) => p.once("exit", (code) => resolve(code)));
}

function wrap(
  kind: RegistryProcess["kind"],
  url: string,
  root: string,
  proc: ChildProcess,
  log: string[],
): RegistryProcess {
  return {
    kind,
    url,
    host: new URL(url).host,
    root,
    proc,
    logs: () => log.join(""),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      const code = await waitExit(proc);
      clearTimeout(t);
      return code;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await waitExit(proc);
    },
  };
}

/**
 * Start `strata registry serve` on a free port (or `addr`) with `config` written as a JSON
 * config file. Resolves when it prints its URL.
 */
export async function startStrata(
  opts: { root?: string; config?: Record<string, unknown>; addr?: string; args?: string[] } = {},
): Promise<RegistryProcess> {
  const dir = tempDir("reg");
  const root = opts.root ?? path.join(dir, "root");
  const args = [STRATA_CLI, "registry", "serve", "--root", root, "--addr", opts.addr ?? "127.0.0.1:0"];
  if (opts.config) {
    const file = path.join(dir, "config.json");
    await fsp.writeFile(file, JSON.stringify(opts.config));
    args.push("--config", file);
  }
  args.push(...(opts.args ?? []));
  const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const log: string[] = [];
  proc.stderr!.on("data", (d: Buffer) => {
    log.push(d.toString());
    if (log.length > 5000) log.splice(0, 1000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`strata registry did not start: ${log.join("")}`)),
      30_000,
    );
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`strata registry exited with ${code}: ${log.join("")}`));
    });
  });
  return wrap("strata", url, root, proc, log);
}

/**
 * A config.yml for Debian's CNCF distribution: filesystem storage at `root`, deletes enabled,
 * no upload purging, optional htpasswd auth and TLS (with client CAs for mutual TLS).
 */
export function distributionConfig(o: {
  root: string;
  addr: string;
  htpasswd?: string;
  tls?: { cert: string; key: string; clientCas?: string[] };
}): string {
  const auth = o.htpasswd ? `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${o.htpasswd}\n` : "";
  const tls = o.tls
    ? `  tls:\n    certificate: ${o.tls.cert}\n    key: ${o.tls.key}\n${
        o.tls.clientCas ? `    clientcas:\n${o.tls.clientCas.map((c) => `      - ${c}\n`).join("")}` : ""
      }`
    : "";
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${o.root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${o.addr}
${tls}${auth}`;
}

/** Start Debian's CNCF distribution with a generated config.yml (deletes enabled). */
export async function startDistribution(
  opts: { htpasswd?: string; root?: string } = {},
): Promise<RegistryProcess> {
  const dir = tempDir("cncf");
  const root = opts.root ?? path.join(dir, "root");
  const port = await freePort();
  const cfg = path.join(dir, "config.yml");
  await fsp.writeFile(cfg, distributionConfig({ root, addr: `127.0.0.1:${port}`, htpasswd: opts.htpasswd }));
  const proc = spawn("docker-registry", ["serve", cfg], { stdio: ["ignore", "pipe", "pipe"] });
  const log: string[] = [];
  proc.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
  proc.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${log.join("")}`);
    try {
      await request("GET", `${url}/v2/`);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${log.join("")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return wrap("distribution", url, root, proc, log);
}

export interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = unknown>(): T;
  header(name: string): string | undefined;
}

/** One HTTP request with exactly the given headers (no automatic Content-Length unless body). */
export function request(
  method: string,
  url: string,
  opts: { headers?: Record<string, string | string[]>; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<Resp> {
  const u = new URL(url);
  const mod = u.protocol === "https:" ? https : http;
  const headers: Record<string, string | string[]> = { ...(opts.headers ?? {}) };
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  if (body && !Object.keys(headers).some((k) => k.toLowerCase() === "content-length"))
    headers["Content-Length"] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        headers,
        agent: false,
        rejectUnauthorized: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => {
          const b = Buffer.concat(parts);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: b,
            json: <T>() => JSON.parse(b.toString("utf8")) as T,
            header: (n: string) => {
              const v = res.headers[n.toLowerCase()];
              return Array.isArray(v) ? v.join(", ") : v;
            },
          });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** The spec's error codes in a response body (empty for a non-JSON body). */
export function errorCodes(r: Resp): string[] {
  try {
    return r.json<{ errors?: { code: string }[] }>().errors?.map((e) => e.code) ?? [];
  } catch {
    return [];
  }
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** An htpasswd file written by Apache's `htpasswd -B` (bcrypt). */
export function writeHtpasswd(file: string, users: Record<string, string>): void {
  let first = true;
  for (const [u, p] of Object.entries(users)) {
    execFileSync("htpasswd", [...(first ? ["-c"] : []), "-B", "-b", "-C", "5", file, u, p], {
      stdio: "ignore",
    });
    first = false;
  }
}
