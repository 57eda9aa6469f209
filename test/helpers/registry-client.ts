/**
 * Helpers for the registry-client tests: Debian's CNCF distribution on a fixed port and root
 * (so it can be killed and restarted), a fault-injecting proxy that sits in front of a real
 * registry (throttle, corrupt, fail, redirect — and record what clients sent), a server on
 * another loopback address that records the headers it gets, Docker-archive builders for
 * layered images, and a client environment (DOCKER_CONFIG, STRATA_CONFIG) per test.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fsp, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Transform } from "node:stream";
import tar from "tar-stream";
import { distributionConfig, freePort, request } from "./registry-servers.js";

export function sha256(b: Buffer | string): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

/**
 * This machine's first non-loopback IPv4 address: TLS tests serve there, because Strata
 * (like docker) treats a loopback registry as insecure and would not verify it.
 */
export function outsideAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return undefined;
}

export function tmp(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `strata-rc-${prefix}-`));
}

export interface Distribution {
  url: string;
  host: string;
  port: number;
  root: string;
  logs(): string;
  /** SIGKILL, wait for exit. */
  kill(): Promise<void>;
  /** Start again on the same port and root. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Debian's docker-registry (CNCF distribution 2.8) with a generated config; optional htpasswd. */
export async function startDistribution(
  opts: {
    htpasswd?: string;
    port?: number;
    root?: string;
    /** Listen on this IPv4 address (default 127.0.0.1). */
    address?: string;
    /** Serve HTTPS with this certificate; with `clientCas`, require client certificates signed by them. */
    tls?: { cert: string; key: string; clientCas?: string[] };
  } = {},
): Promise<Distribution> {
  const dir = tmp("cncf");
  const root = opts.root ?? path.join(dir, "root");
  const port = opts.port ?? (await freePort());
  const address = opts.address ?? "127.0.0.1";
  const cfg = path.join(dir, "config.yml");
  writeFileSync(
    cfg,
    distributionConfig({ root, addr: `${address}:${port}`, htpasswd: opts.htpasswd, tls: opts.tls }),
  );
  const url = `${opts.tls ? "https" : "http"}://${address}:${port}`;
  const log: string[] = [];
  let proc: ChildProcess | undefined;
  const start = async () => {
    const p = spawn("docker-registry", ["serve", cfg], { stdio: ["ignore", "pipe", "pipe"] });
    proc = p;
    p.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
    p.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`docker-registry exited: ${log.join("")}`);
      try {
        // A registry that wants client certificates refuses the probe's handshake: a listening port is enough.
        if (opts.tls?.clientCas) await tcpProbe(address, port);
        else await request("GET", `${url}/v2/`, { timeoutMs: 2000 });
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${log.join("")}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const waitExit = (p: ChildProcess) =>
    p.exitCode !== null || p.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((r) => p.once("exit", () => r()));
  await start();
  return {
    url,
    host: `${address}:${port}`,
    port,
    root,
    logs: () => log.join(""),
    async kill() {
      if (proc) {
        proc.kill("SIGKILL");
        await waitExit(proc);
      }
    },
    restart: start,
    async stop() {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        await waitExit(proc);
      }
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

function tcpProbe(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port }, () => {
      sock.destroy();
      resolve();
    });
    sock.on("error", reject);
  });
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** The upstream's answer, when the request was passed through. */
  status?: number;
  responseHeaders?: http.IncomingHttpHeaders;
}

/** What the fault proxy does with one request. */
export type ProxyAction =
  | { kind: "pass"; throttleBytesPerSec?: number; corrupt?: boolean }
  | {
      kind: "respond";
      status: number;
      headers?: Record<string, string>;
      body?: string | Buffer;
      chunked?: boolean;
    }
  | { kind: "redirect"; location: string; status?: number }
  /** Cut the client's connection without an answer (after reading `afterBytes` of its body). */
  | { kind: "drop"; afterBytes?: number };

export interface FaultProxy {
  url: string;
  host: string;
  requests: RecordedRequest[];
  /** Bytes of response bodies sent to clients so far, per request URL path. */
  sent: Map<string, number>;
  /** Decide per request; default: pass. */
  rule: (r: RecordedRequest) => ProxyAction;
  close(): Promise<void>;
}

/**
 * A FAULT-INJECTING TEST PROXY in front of a real registry (it implements no registry
 * protocol itself): it forwards every request unchanged (Host header included, so the
 * registry's Location headers point back at the proxy) and records it; its `rule` may
 * throttle or corrupt a response body, answer itself (a 503, an oversized document) or
 * redirect. When the upstream dies mid-body, the client's connection is cut too.
 */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const requests: RecordedRequest[] = [];
  const sent = new Map<string, number>();
  const proxy: FaultProxy = {
    url: "",
    host: "",
    requests,
    sent,
    rule: () => ({ kind: "pass" }),
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const rec: RecordedRequest = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      headers: { ...req.headers },
    };
    requests.push(rec);
    const action = proxy.rule(rec);
    if (action.kind === "respond") {
      req.resume();
      const body = action.body === undefined ? Buffer.alloc(0) : Buffer.from(action.body);
      if (action.chunked) {
        res.writeHead(action.status, { "Transfer-Encoding": "chunked", ...action.headers });
        for (let i = 0; i < body.length; i += 64 * 1024) res.write(body.subarray(i, i + 64 * 1024));
        res.end();
        return;
      }
      res.writeHead(action.status, { "Content-Length": String(body.length), ...action.headers });
      res.end(body);
      return;
    }
    if (action.kind === "drop") {
      let seen = 0;
      const cut = () => req.socket.destroy();
      if (!action.afterBytes) return cut();
      req.on("data", (c: Buffer) => {
        seen += c.length;
        if (seen >= action.afterBytes!) cut();
      });
      req.on("end", cut);
      return;
    }
    if (action.kind === "redirect") {
      req.resume();
      res.writeHead(action.status ?? 307, { Location: action.location, "Content-Length": "0" });
      res.end();
      return;
    }
    const out = http.request(
      {
        hostname: up.hostname,
        port: up.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: false,
      },
      (ures) => {
        rec.status = ures.statusCode;
        rec.responseHeaders = ures.headers;
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        const key = (req.url ?? "").split("?")[0]!;
        let body: NodeJS.ReadableStream = ures;
        if (action.throttleBytesPerSec || action.corrupt)
          body = ures.pipe(shaper(action.throttleBytesPerSec, action.corrupt));
        body.on("data", (c: Buffer) => sent.set(key, (sent.get(key) ?? 0) + c.length));
        ures.on("error", () => res.destroy());
        ures.on("aborted", () => res.destroy());
        ures.on("close", () => {
          if (!ures.complete) res.destroy();
        });
        body.pipe(res);
      },
    );
    out.on("error", () => {
      if (!res.headersSent) {
        res.writeHead(502, { "Content-Length": "0" });
        res.end();
      } else res.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  proxy.url = `http://127.0.0.1:${port}`;
  proxy.host = `127.0.0.1:${port}`;
  proxy.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}

/** Pass bytes at most `rate` per second, and (with `corrupt`) flip one bit of the first chunk. */
function shaper(rate: number | undefined, corrupt: boolean | undefined): Transform {
  let flipped = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      let c = chunk;
      if (corrupt && !flipped && c.length > 0) {
        c = Buffer.from(c);
        c[Math.floor(c.length / 2)]! ^= 0x01;
        flipped = true;
      }
      if (!rate) return cb(null, c);
      // Send in slices of 64 KiB at the given rate.
      const slice = 64 * 1024;
      let off = 0;
      const step = () => {
        if (off >= c.length) return cb();
        const part = c.subarray(off, off + slice);
        off += part.length;
        this.push(part);
        setTimeout(step, (part.length / rate) * 1000);
      };
      step();
    },
  });
}

/** A plain HTTP server on another loopback address that serves blobs and records every request's headers. */
export async function startHeaderRecorder(
  blobs: Map<string, Buffer>,
  address = "127.0.0.2",
): Promise<{ url: string; requests: RecordedRequest[]; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? "GET", url: req.url ?? "/", headers: { ...req.headers } });
    const digest = (req.url ?? "").split("/").pop()?.split("?")[0] ?? "";
    const b = blobs.get(digest);
    if (!b) {
      res.writeHead(404, { "Content-Length": "0" });
      return res.end();
    }
    res.writeHead(200, { "Content-Length": String(b.length), "Content-Type": "application/octet-stream" });
    res.end(req.method === "HEAD" ? undefined : b);
  });
  await new Promise<void>((r) => server.listen(0, address, () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${address}:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A tar (uncompressed) of the given files, deterministic. */
export async function tarOf(files: Record<string, string | Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files))
    pack.entry({ name, mtime: new Date(0), mode: 0o644, uid: 0, gid: 0 }, content);
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/**
 * A `docker save` archive (manifest.json, config, one tar per layer) of an image whose
 * layers are the given tars, tagged `tag`: loadable by `strata load` and `docker load`.
 */
export async function dockerArchive(
  layers: Buffer[],
  opts: { tag: string; cmd?: string[]; architecture?: string },
): Promise<{ archive: Buffer; id: string; diffIds: string[] }> {
  const diffIds = layers.map((l) => sha256(l));
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.architecture ?? "amd64",
      os: "linux",
      config: { Cmd: opts.cmd ?? ["sh"], Env: ["PATH=/bin:/usr/bin"] },
      created: "2024-01-01T00:00:00Z",
      history: layers.map((_, i) => ({ created: "2024-01-01T00:00:00Z", created_by: `layer ${i}` })),
      rootfs: { type: "layers", diff_ids: diffIds },
    }),
  );
  const id = sha256(config);
  const files: Record<string, Buffer> = {};
  files[`${id.slice(7)}.json`] = config;
  const layerPaths = diffIds.map((d) => `${d.slice(7)}/layer.tar`);
  layers.forEach((l, i) => {
    files[layerPaths[i]!] = l;
  });
  files["manifest.json"] = Buffer.from(
    JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: [opts.tag], Layers: layerPaths }]),
  );
  return { archive: await tarOf(files), id, diffIds };
}

export interface ClientEnv {
  dir: string;
  /** DOCKER_CONFIG and STRATA_CONFIG for the strata child process. */
  env: NodeJS.ProcessEnv;
  dockerConfig: string;
  strataConfig: string;
  writeStrataConfig(cfg: Record<string, unknown>): void;
}

/** A private Docker client config dir and Strata config file. */
export function clientEnv(cfg: Record<string, unknown> = {}): ClientEnv {
  const dir = tmp("env");
  const dockerConfig = path.join(dir, "docker");
  mkdirSync(dockerConfig, { recursive: true });
  const strataConfig = path.join(dir, "strata.json");
  const write = (c: Record<string, unknown>) => writeFileSync(strataConfig, JSON.stringify(c));
  write(cfg);
  return {
    dir,
    env: { DOCKER_CONFIG: dockerConfig, STRATA_CONFIG: strataConfig },
    dockerConfig,
    strataConfig,
    writeStrataConfig: write,
  };
}

/** Apache htpasswd (bcrypt) file for the given users. */
export function htpasswdFile(dir: string, users: Record<string, string>): string {
  const file = path.join(dir, "htpasswd");
  let first = true;
  for (const [u, p] of Object.entries(users)) {
    execFileSync("htpasswd", [...(first ? ["-c"] : []), "-B", "-b", "-C", "5", file, u, p], {
      stdio: "ignore",
    });
    first = false;
  }
  return file;
}

/** Every blob file under a strata store root (to prove a failed pull added none). */
export async function storeBlobs(root: string): Promise<string[]> {
  const dir = path.join(root, "blobs", "sha256");
  return (await fsp.readdir(dir).catch(() => [] as string[])).sort();
}

export async function ingestFiles(root: string): Promise<string[]> {
  return (await fsp.readdir(path.join(root, "ingest")).catch(() => [] as string[])).sort();
}
