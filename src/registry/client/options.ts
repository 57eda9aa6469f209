import { isLoopbackHost, parseIPv4, splitHostPort } from "../../reference/index.js";
import type { CredentialSource } from "./credentials.js";
import type { ProgressSink } from "./progress.js";

export interface RetryOptions {
  /** Tries per request, the first included. */
  attempts: number;
  /** Delay before the first retry; doubles each time, with ±20% jitter. */
  baseDelayMs: number;
  /** Cap on one delay (also on a registry's Retry-After). */
  maxDelayMs: number;
  /** Give up when the next delay would end later than this after the first try. */
  totalMs: number;
}

export interface ClientOptions {
  /**
   * Registries reached over plain HTTP or TLS without verification, as Docker's
   * `insecure-registries`: `host`, `host:port` or an IPv4 CIDR. Loopback hosts are always
   * insecure (docker/cli's rule).
   */
  insecureRegistries?: readonly string[];
  /** Docker's per-registry certificate directories: `<certsDir>/<host[:port]>/{*.crt,*.cert,*.key}`. */
  certsDir?: string;
  maxConcurrentDownloads?: number;
  maxConcurrentUploads?: number;
  retry?: Partial<RetryOptions>;
  userAgent?: string;
  /** Where credentials for a registry come from (Docker's config.json and helpers). */
  credentials?: CredentialSource;
  /** Bytes per PATCH when a blob of unknown size is uploaded in chunks. */
  chunkSize?: number;
  timeouts?: { connectMs?: number; headersMs?: number; bodyMs?: number };
  /** Reports retries ("Retrying in 2 seconds") as progress lines. */
  onProgress?: ProgressSink;
}

export type ResolvedClientOptions = ReturnType<typeof resolveOptions>;

/** Every default in one place (STYLE §21). */
export function resolveOptions(o: ClientOptions = {}) {
  return {
    insecureRegistries: [...(o.insecureRegistries ?? [])],
    // Docker's location; Strata reads the same files so one setup serves both.
    certsDir: o.certsDir ?? "/etc/docker/certs.d",
    // Docker's defaults (dockerd --max-concurrent-downloads/uploads).
    maxConcurrentDownloads: positive(o.maxConcurrentDownloads, 3, "max-concurrent-downloads"),
    maxConcurrentUploads: positive(o.maxConcurrentUploads, 5, "max-concurrent-uploads"),
    retry: {
      // Five retries at 0.5, 1, 2, 4, 8 s ride out a registry restart without hanging for minutes.
      attempts: o.retry?.attempts ?? 6,
      baseDelayMs: o.retry?.baseDelayMs ?? 500,
      maxDelayMs: o.retry?.maxDelayMs ?? 8_000,
      totalMs: o.retry?.totalMs ?? 60_000,
    } satisfies RetryOptions,
    userAgent: o.userAgent ?? "strata/0.1.0",
    credentials: o.credentials,
    // Big enough that per-request overhead vanishes, small enough that 5 parallel uploads
    // with one chunk in flight and one filling stay under 100 MiB of memory.
    chunkSize: positive(o.chunkSize, 8 * 1024 * 1024, "chunk size"),
    timeouts: {
      connectMs: o.timeouts?.connectMs ?? 30_000,
      // A registry that accepted a request but says nothing for a minute is gone.
      headersMs: o.timeouts?.headersMs ?? 60_000,
      bodyMs: o.timeouts?.bodyMs ?? 60_000,
    },
    onProgress: o.onProgress,
  };
}

function positive(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${what} must be a positive integer, got ${v}`);
  return v;
}

/**
 * May `host[:port]` be reached without verified TLS? Loopback always (docker/cli), else when
 * listed as `host:port`, as `host`, or inside a listed IPv4 CIDR.
 */
export function isInsecureRegistry(host: string, insecure: readonly string[]): boolean {
  if (isLoopbackHost(host)) return true;
  const hostname = splitHostPort(host)?.host ?? host;
  for (const entry of insecure) {
    const e = entry.replace(/^https?:\/\//, "").replace(/\/+$/, "");
    if (e === host || e === hostname) return true;
    const slash = e.indexOf("/");
    if (slash > 0) {
      const net = parseIPv4(e.slice(0, slash));
      const bits = Number(e.slice(slash + 1));
      const ip = parseIPv4(hostname);
      if (net && ip && Number.isInteger(bits) && bits >= 0 && bits <= 32) {
        const toInt = (a: number[]) => ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
        const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
        if ((toInt(net) & mask) === (toInt(ip) & mask)) return true;
      }
    }
  }
  return false;
}
