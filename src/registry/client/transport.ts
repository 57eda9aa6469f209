import { promises as fsp } from "node:fs";
import type http from "node:http";
import type https from "node:https";
import path from "node:path";
import type { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import tls from "node:tls";
import {
  errorMessage,
  isErrno,
  readAllLimited,
  StrataError,
  TLS_VERIFY_REASONS,
  trustedCas,
} from "../../util/index.js";
import type { ResolvedClientOptions } from "./options.js";

/** A request body: bytes, or an opener so the body can be sent again after a retry or a redirect. */
export type RequestBody = Buffer | string | (() => Promise<Readable> | Readable);

export interface HttpRequest {
  method: "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Sent only to the origin of `url`: dropped when a redirect leads to another host. */
  authorization?: string;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The response body; the caller consumes it or calls dump(). */
  body: Readable & { dump(opts?: { limit?: number }): Promise<void> };
  /** The URL that answered, after redirects. */
  url: string;
  header(name: string): string | undefined;
  /** The body as text, at most `limit` bytes (error bodies, small JSON). */
  text(limit?: number): Promise<string>;
  dump(): Promise<void>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** Go's spelling of an HTTP method in url.Error messages ("Get", "Head"). */
export function goMethod(m: string): string {
  return m.charAt(0) + m.slice(1).toLowerCase();
}

/** Network errors worth another try: the connection dropped, was refused, or timed out. */
export function isTransientNetworkError(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return (
    code !== undefined &&
    [
      "ECONNRESET",
      "ECONNREFUSED",
      "EPIPE",
      "ETIMEDOUT",
      "EAI_AGAIN",
      "ECONNABORTED",
      "EHOSTUNREACH",
      "ENETUNREACH",
      // node's http: the connection closed before the whole answer came.
      "ERR_STREAM_PREMATURE_CLOSE",
    ].includes(code)
  );
}

/** Is this a TLS failure (verification, or a plain-HTTP server answering a TLS client)? */
export function isTlsError(e: unknown): boolean {
  const code = (e as { code?: string })?.code ?? "";
  return (
    code in TLS_VERIFY_REASONS ||
    code === "EPROTO" ||
    code.startsWith("ERR_SSL") ||
    code.startsWith("ERR_TLS")
  );
}

/** Wrap a failed request the way Go's url.Error reads: `Get "https://…/v2/": <reason>`. */
export function requestError(method: string, url: string, e: unknown): StrataError {
  if (e instanceof StrataError) return e;
  const code = (e as { code?: string })?.code ?? "";
  const reason = TLS_VERIFY_REASONS[code]
    ? `${TLS_VERIFY_REASONS[code]} (${errorMessage(e)})`
    : errorMessage(e);
  const kind = isTlsError(e) ? "TLS_ERROR" : "REGISTRY_UNAVAILABLE";
  return new StrataError(kind, `${goMethod(method)} "${url}": ${reason}`, { cause: e });
}

interface TlsFiles {
  ca?: string[];
  cert?: string;
  key?: string;
}

/** What requests go through: node's http(s) module and a keep-alive agent for one origin. */
interface Origin {
  request: typeof http.request;
  agent: http.Agent;
}

/** A socket that sat idle this long (no bytes either way) while a request waited is dead. */
function timeoutError(what: string, ms: number): Error {
  return Object.assign(new Error(`${what} timed out after ${ms / 1000} s`), { code: "ETIMEDOUT" });
}

/**
 * HTTP for the registry client over node's http and https modules (their native parser:
 * nothing to compile at start-up): one keep-alive agent per origin with the TLS settings
 * Docker would use for that host (CA roots and client certificates from
 * `<certsDir>/<host>/`, verification off only for insecure registries), manual redirects
 * that never carry the registry's Authorization to another origin, and bounded retries.
 */
export class Transport {
  private readonly origins = new Map<string, Promise<Origin>>();
  private readonly insecureTls = new Set<string>();

  constructor(readonly opts: ResolvedClientOptions) {}

  /** Allow TLS without verification to `host` (an insecure registry reached over https). */
  skipVerify(host: string): void {
    this.insecureTls.add(host);
  }

  private origin(url: URL): Promise<Origin> {
    const key = `${url.protocol}//${url.host}`;
    let o = this.origins.get(key);
    if (!o) {
      o = this.makeOrigin(url);
      this.origins.set(key, o);
      o.catch(() => this.origins.delete(key));
    }
    return o;
  }

  private async makeOrigin(url: URL): Promise<Origin> {
    const common = {
      keepAlive: true,
      // Enough sockets for 5 uploads or 3 downloads plus HEADs and token requests at once.
      maxSockets: 16,
      // Free sockets are closed after 30 s idle (the registry may close them sooner: a
      // request on a socket it closed fails as a dropped connection and is retried).
      timeout: 30_000,
    };
    if (url.protocol !== "https:") {
      const http = await import("node:http");
      return { request: http.request, agent: new http.Agent(common) };
    }
    const https = await import("node:https");
    const tlsOpts: https.AgentOptions = { ...common };
    const files = await this.certFiles(url.host);
    const insecure = this.insecureTls.has(url.host);
    // Nothing is verified for an insecure registry: an empty CA list spares node building a
    // store of every root and extra CA (30-90 ms) for the HTTPS attempt it gets before plain
    // HTTP, as with docker.
    const ca = insecure ? [] : trustedCas(tls.rootCertificates, files.ca);
    const client = files.cert && files.key ? { cert: files.cert, key: files.key } : {};
    if (insecure) tlsOpts.rejectUnauthorized = false;
    // One secure context for the origin: given `ca` per connection, node would build the
    // CA store again for every socket.
    if (ca || client.cert) tlsOpts.secureContext = tls.createSecureContext({ ca, ...client });
    return { request: https.request as typeof http.request, agent: new https.Agent(tlsOpts) };
  }

  /** Docker's certs.d: `*.crt` are CA roots, `x.cert` + `x.key` a client certificate. */
  private async certFiles(host: string): Promise<TlsFiles> {
    const dir = path.join(this.opts.certsDir, host);
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort();
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return {};
      throw new StrataError("TLS_ERROR", `cannot read ${dir}: ${errorMessage(e)}`, { cause: e });
    }
    const out: TlsFiles = {};
    for (const n of names) {
      const p = path.join(dir, n);
      if (n.endsWith(".crt")) (out.ca ??= []).push(await fsp.readFile(p, "utf8"));
      else if (n.endsWith(".cert")) {
        const keyName = `${n.slice(0, -5)}.key`;
        if (!names.includes(keyName))
          throw new StrataError("TLS_ERROR", `missing key ${keyName} for client certificate ${n} in ${dir}`);
        out.cert = await fsp.readFile(p, "utf8");
        out.key = await fsp.readFile(path.join(dir, keyName), "utf8");
      } else if (n.endsWith(".key")) {
        const certName = `${n.slice(0, -4)}.cert`;
        if (!names.includes(certName))
          throw new StrataError("TLS_ERROR", `missing client certificate ${certName} for key ${n} in ${dir}`);
      }
    }
    return out;
  }

  /** One request and its response head; the body streams. */
  private async exchange(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: Buffer | string | Readable | undefined,
    signal: AbortSignal | undefined,
  ): Promise<HttpResponse> {
    const { request, agent } = await this.origin(url);
    const t = this.opts.timeouts;
    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        reject(e);
      };
      // One abort listener per request, removed when the exchange is over (node's own `signal`
      // option keeps its listener until the request closes, which warns past 10 requests).
      const req = request(url, { method, headers, agent });
      if (signal) {
        if (signal.aborted) req.destroy(signal.reason);
        const onAbort = () => req.destroy(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        req.once("close", () => signal.removeEventListener("abort", onAbort));
      }
      let connectTimer: NodeJS.Timeout | undefined;
      req.on("socket", (s) => {
        if ((s as { connecting?: boolean }).connecting) {
          connectTimer = setTimeout(() => req.destroy(timeoutError("connect", t.connectMs)), t.connectMs);
          s.once("connect", () => clearTimeout(connectTimer));
        }
      });
      // Idle time on the socket: waiting for the answer's head, then between body bytes.
      req.setTimeout(Math.max(t.headersMs, t.bodyMs), () =>
        req.destroy(timeoutError(`${goMethod(method)} ${url.pathname}`, Math.max(t.headersMs, t.bodyMs))),
      );
      req.on("error", (e) => {
        clearTimeout(connectTimer);
        fail(e);
      });
      req.on("response", (res) => {
        clearTimeout(connectTimer);
        settled = true;
        resolve(wrapResponse(res, url.toString(), method));
      });
      if (body === undefined) req.end();
      else if (typeof body === "string" || Buffer.isBuffer(body)) req.end(body);
      else {
        body.on("error", (e) => req.destroy(e));
        req.on("error", () => body.destroy());
        body.pipe(req);
      }
    });
  }

  /** One try, following redirects. Network failures are thrown as they are (see send()). */
  async once(req: HttpRequest): Promise<HttpResponse> {
    let url = new URL(req.url);
    const origin = url.origin;
    let method = req.method;
    let body = req.body;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { "User-Agent": this.opts.userAgent, ...req.headers };
      if (req.authorization && url.origin === origin) headers.Authorization = req.authorization;
      if (body === undefined) delete headers["Content-Type"];
      const payload = typeof body === "function" ? await body() : body;
      const response = await this.exchange(url, method, headers, payload, req.signal);
      const location = response.header("location");
      if (!REDIRECTS.has(response.status) || !location) return response;
      await response.dump();
      if (hop + 1 >= MAX_REDIRECTS)
        throw new StrataError(
          "REGISTRY_ERROR",
          `${goMethod(req.method)} "${req.url}": stopped after ${MAX_REDIRECTS} redirects`,
        );
      url = new URL(location, url);
      if (response.status === 303 && method !== "HEAD") {
        method = "GET";
        body = undefined;
      }
    }
  }

  /**
   * Send with retries: 408, 429 and 5xx answers and dropped or refused connections are
   * tried again after a growing delay (Retry-After honoured, capped), at most
   * `retry.attempts` times and within `retry.totalMs`. Other answers are returned.
   */
  async send(req: HttpRequest, opts: { retry?: boolean; what?: string } = {}): Promise<HttpResponse> {
    const r = this.opts.retry;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      let delay: number | undefined;
      let failure: unknown;
      try {
        const res = await this.once(req);
        if (opts.retry === false || !isRetryableStatus(res.status)) return res;
        delay = retryAfterMs(res.header("retry-after"));
        failure = new StrataError(
          "REGISTRY_UNAVAILABLE",
          `${goMethod(req.method)} "${req.url}": ${res.status} ${await describeBody(res)}`,
        );
        if (attempt >= r.attempts) return res;
      } catch (e) {
        if (req.signal?.aborted) throw e;
        if (opts.retry === false || !isTransientNetworkError(e) || attempt >= r.attempts)
          throw requestError(req.method, req.url, e);
        failure = e;
      }
      const wait = Math.min(delay ?? backoffMs(attempt, r.baseDelayMs), r.maxDelayMs);
      if (Date.now() + wait - started > r.totalMs) {
        throw requestError(req.method, req.url, failure);
      }
      this.opts.onProgress?.({
        status: `Retrying ${opts.what ?? `${req.method} ${new URL(req.url).pathname}`} in ${Math.ceil(wait / 1000)} second${Math.ceil(wait / 1000) === 1 ? "" : "s"}: ${errorMessage(failure)}`,
      });
      await sleep(wait, req.signal);
    }
  }

  /** Close every connection (idle keep-alive sockets are unreferenced and never hold the process). */
  async close(): Promise<void> {
    const all = [...this.origins.values()];
    this.origins.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => undefined))?.agent.destroy()));
  }
}

function wrapResponse(res: http.IncomingMessage, url: string, method: string): HttpResponse {
  const headers = res.headers as Record<string, string | string[] | undefined>;
  const body = res as unknown as HttpResponse["body"];
  const dump = async (limit = 256 * 1024) => {
    // Even a complete answer (a HEAD's) must be read to its end: only then does the socket go
    // back to the agent's pool.
    if (res.readableEnded || res.destroyed) return;
    // Reading a big answer to its end only to keep the socket costs more than a new connection.
    const len = Number(headers["content-length"] ?? 0);
    if (len > limit && !res.complete && method !== "HEAD") return void res.destroy();
    let seen = 0;
    res.on("data", (c: Buffer) => {
      seen += c.length;
      if (seen > limit) res.destroy();
    });
    res.resume();
    await finished(res).catch(() => {});
  };
  body.dump = (o?: { limit?: number }) => dump(o?.limit);
  return {
    status: res.statusCode ?? 0,
    headers,
    body,
    url,
    header(name: string) {
      const v = headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(", ") : v;
    },
    async text(limit = 64 * 1024) {
      try {
        return (await readAllLimited(body as AsyncIterable<Buffer>, limit, `response from ${url}`)).toString(
          "utf8",
        );
      } catch {
        body.destroy();
        return "";
      }
    },
    dump: () => dump(),
  };
}

export function isRetryableStatus(s: number): boolean {
  return s === 408 || s === 429 || s === 500 || s === 502 || s === 503 || s === 504;
}

/** Exponential backoff with ±20% jitter so parallel transfers do not retry in lockstep. */
export function backoffMs(attempt: number, base: number): number {
  const d = base * 2 ** (attempt - 1);
  return Math.round(d * (0.8 + Math.random() * 0.4));
}

/** `Retry-After` in seconds or as an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The registry's error text from a response, as Docker prints it ("manifest unknown: manifest unknown"). */
export async function describeBody(res: HttpResponse): Promise<string> {
  const text = await res.text(64 * 1024);
  const parsed = parseErrorBody(text);
  if (parsed.length)
    return parsed.map((e) => `${e.code.toLowerCase().replace(/_/g, " ")}: ${e.message}`).join("; ");
  return text.trim().split("\n")[0]?.slice(0, 200) || httpStatusText(res.status);
}

export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/** The distribution spec's error envelope `{"errors":[{code,message,detail}]}`, or []. */
export function parseErrorBody(text: string): RegistryErrorEntry[] {
  try {
    const doc = JSON.parse(text) as { errors?: unknown; details?: unknown };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors
      .filter((e): e is { code: string; message?: unknown; detail?: unknown } => typeof e?.code === "string")
      .map((e) => ({
        code: e.code,
        message: typeof e.message === "string" ? e.message : "",
        detail: e.detail,
      }));
  } catch {
    return [];
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Payload Too Large",
  416: "Range Not Satisfiable",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export function httpStatusText(s: number): string {
  return `${s} ${STATUS_TEXT[s] ?? "Unknown"}`.trim();
}
