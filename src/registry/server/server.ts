import { promises as fsp } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import { isIP } from "node:net";
import { StrataError } from "../../util/index.js";
import { AccessPolicy } from "./access.js";
import { FailedLogins, Htpasswd, TokenAuthority } from "./auth.js";
import { type RegistryConfig, resolveConfig } from "./config.js";
import { FsDriver } from "./fs-driver.js";
import { RegistryHandler } from "./handler.js";
import { Registry } from "./registry.js";
import { Search } from "./search.js";

export interface RunningRegistry {
  /** `http://127.0.0.1:PORT` (or https). */
  url: string;
  port: number;
  /**
   * Stop accepting connections, let in-flight requests finish (up to `graceMs`, default
   * 10 s), then close what is left. Upload sessions stay on disk and can be resumed.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
}

/** Split `host:port` / `[v6]:port` / `:port`. */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m)
    throw new StrataError("INVALID_ARGUMENT", `invalid address ${JSON.stringify(addr)}: want host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new StrataError("INVALID_ARGUMENT", `invalid port in ${addr}`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** Start `strata registry serve`. Resolves once the server listens. */
export async function startRegistryServer(config: RegistryConfig): Promise<RunningRegistry> {
  const c = resolveConfig(config);
  const { host, port } = parseAddr(c.addr);
  const authEnabled = c.htpasswd !== undefined || c.token !== undefined;
  if (!authEnabled && !isLoopback(host) && !c.insecureOpen)
    throw new StrataError(
      "INVALID_ARGUMENT",
      `refusing to serve ${c.addr} without authentication: configure auth, or pass --insecure-open`,
    );
  if (c.token && !c.token.publicKey && !c.htpasswd && c.anonymousPull.length === 0)
    c.logger("warning: token auth without an htpasswd file: only anonymous tokens can be issued");

  await fsp.mkdir(c.root, { recursive: true });
  const driver = new FsDriver(c.root);
  const registry = new Registry(driver, {
    deleteEnabled: c.deleteEnabled,
    maxManifestSize: c.limits.maxManifestSize,
    maxBlobSize: c.limits.maxBlobSize,
    manifestCacheBytes: c.limits.manifestCacheBytes,
  });
  await registry.init();

  const htpasswd = c.htpasswd ? new Htpasswd(c.htpasswd.path) : undefined;
  await htpasswd?.load();
  let tokens: TokenAuthority | undefined;
  if (c.token) {
    tokens = c.token.publicKey
      ? await TokenAuthority.external({
          issuer: c.token.issuer,
          service: c.token.service,
          publicKeyFile: c.token.publicKey,
        })
      : await TokenAuthority.own({
          issuer: c.token.issuer,
          service: c.token.service,
          expiresIn: c.token.expiresIn,
          signingKeyFile: c.token.signingKey,
          root: c.root,
        });
  }
  const policy = new AccessPolicy({
    authEnabled,
    access: c.access,
    groups: c.groups,
    anonymousPull: c.anonymousPull,
  });
  const handler = new RegistryHandler({
    config: c,
    registry,
    policy,
    htpasswd,
    tokens,
    failedLogins: new FailedLogins(c.limits.failedLogins),
    search: new Search(registry, c.search),
  });

  const serverOpts: http.ServerOptions = {
    headersTimeout: c.limits.headersTimeoutMs,
    // Whole-request deadline off: a large blob upload may take long; idle sockets are cut
    // by the inactivity timeout below instead.
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    // Node checks header/request deadlines on this interval; keep it below the timeout.
    connectionsCheckingInterval: Math.min(1_000, Math.floor(c.limits.headersTimeoutMs / 2)),
  };
  let server: http.Server;
  if (c.tls) {
    const [cert, key] = await Promise.all([fsp.readFile(c.tls.cert), fsp.readFile(c.tls.key)]);
    server = https.createServer({ ...serverOpts, cert, key }, handler.listener);
  } else server = http.createServer(serverOpts, handler.listener);
  server.timeout = c.limits.idleTimeoutMs;
  server.on("timeout", (s: Socket) => s.destroy());
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address();
  const boundPort = typeof bound === "object" && bound ? bound.port : port;
  const urlHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  const url = `${c.tls ? "https" : "http"}://${urlHost}:${boundPort}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    port: boundPort,
    close(opts = {}) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), opts.graceMs ?? 10_000);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
