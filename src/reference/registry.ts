import { DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN } from "./normalize.js";
import type { Reference } from "./reference.js";

/**
 * The host that serves Docker Hub's registry API. References name Docker Hub as
 * docker.io, which is not the registry's own host name.
 */
export const DOCKER_HUB_REGISTRY_HOST = "registry-1.docker.io";

/** Where `docker login` keeps Docker Hub credentials (docker/cli's IndexServer). */
export const DOCKER_HUB_INDEX_SERVER = "https://index.docker.io/v1/";

/**
 * docker/cli's registry.IndexInfo: which registry ("index") a repository lives on.
 * `official` is Docker Hub; `secure` is false for loopback registries, which the client
 * may reach over plain HTTP or with an unverified certificate.
 */
export interface IndexInfo {
  readonly name: string;
  readonly official: boolean;
  readonly secure: boolean;
}

/**
 * True for the domains that mean Docker Hub: docker.io and the legacy index.docker.io
 * (docker/cli's official index). registry-1.docker.io is the host behind them, but a
 * reference that spells it is treated like any other registry, as Docker does.
 */
export function isDockerHub(domain: string): boolean {
  return domain === DEFAULT_DOMAIN || domain === LEGACY_DEFAULT_DOMAIN;
}

/** The `host[:port]` to contact for a reference's domain: Docker Hub's maps to registry-1.docker.io. */
export function registryHost(domain: string): string {
  return isDockerHub(domain) ? DOCKER_HUB_REGISTRY_HOST : domain;
}

/**
 * The registry index of a (normalised) reference, as docker/cli's NewIndexInfo computes
 * it without a daemon configuration: Docker Hub is official and secure; anything else
 * is unofficial, and insecure only when it is on a loopback address (see isLoopbackHost).
 */
export function indexInfo(r: Reference): IndexInfo {
  const name = r.domain === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : r.domain;
  if (name === DEFAULT_DOMAIN) return { name, official: true, secure: true };
  return { name, official: false, secure: !isLoopbackHost(name) };
}

/**
 * Whether `host` or `host:port` names a loopback address (docker/cli's isInsecure):
 * `localhost` in any case, IPv4 127.0.0.0/8, IPv6 ::1 and IPv4-mapped 127.x addresses.
 * Unlike docker/cli this does no DNS look-up (the module is pure), so another name that
 * resolves to a loopback address is not recognised; a caller with a resolver may check it.
 */
export function isLoopbackHost(hostOrHostPort: string): boolean {
  const host = splitHostPort(hostOrHostPort)?.host ?? hostOrHostPort;
  if (host.toLowerCase() === "localhost") return true;
  const v4 = parseIPv4(host);
  if (v4 !== undefined) return v4[0] === 127;
  const v6 = parseIPv6(host);
  if (v6 === undefined) return false;
  const mapped = v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff;
  if (mapped) return v6[6]! >> 8 === 127;
  return v6.slice(0, 7).every((g) => g === 0) && v6[7] === 1;
}

/**
 * Go's net.SplitHostPort: `host:port` or `[host]:port` (the port may be empty); undefined
 * where Go reports an error (no port, too many colons, stray brackets).
 */
export function splitHostPort(s: string): { host: string; port: string } | undefined {
  const colon = s.lastIndexOf(":");
  if (colon < 0) return undefined;
  let host: string;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || end + 1 !== colon) return undefined;
    host = s.slice(1, end);
    if (s.indexOf("[", 1) >= 0 || s.indexOf("]", end + 1) >= 0) return undefined;
  } else {
    host = s.slice(0, colon);
    if (host.includes(":") || s.includes("[") || s.includes("]")) return undefined;
  }
  return { host, port: s.slice(colon + 1) };
}

/** Dotted-decimal IPv4 as Go's net.ParseIP reads it (no leading zeros); four octets, or undefined. */
export function parseIPv4(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

/**
 * IPv6 text (RFC 4291 section 2.2, no zone) as eight 16-bit groups, or undefined. An
 * IPv4 address may end it; `::` stands for one or more zero groups.
 */
export function parseIPv6(s: string): number[] | undefined {
  const gap = s.indexOf("::");
  if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) return undefined;
  const sides = gap < 0 ? [s] : [s.slice(0, gap), s.slice(gap + 2)];
  const groups: number[][] = [];
  for (const [i, side] of sides.entries()) {
    const out: number[] = [];
    const fields = side === "" && gap >= 0 ? [] : side.split(":");
    for (const [j, f] of fields.entries()) {
      const lastField = i === sides.length - 1 && j === fields.length - 1;
      const v4 = lastField && f.includes(".") ? parseIPv4(f) : undefined;
      if (v4 !== undefined) out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      else if (/^[0-9a-fA-F]{1,4}$/.test(f)) out.push(Number.parseInt(f, 16));
      else return undefined;
    }
    groups.push(out);
  }
  const [head = [], tail = []] = groups;
  const count = head.length + tail.length;
  if (gap < 0) return count === 8 ? head : undefined;
  if (count > 7) return undefined;
  return [...head, ...new Array<number>(8 - count).fill(0), ...tail];
}
