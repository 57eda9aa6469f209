import { createHash } from "node:crypto";
import { StrataError } from "../util/index.js";

/** `algorithm:encoded`, validated. A string so it is cheap to use as a map key. */
export type Digest = string & { readonly __digest: unique symbol };

const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const KNOWN: Record<string, number> = { sha256: 64, sha512: 128 };

/**
 * Parse and validate a digest with go-digest's rules: the grammar, then for known
 * algorithms exactly the right number of lower-case hex characters. Unknown algorithms
 * are rejected as Docker does ("unsupported digest algorithm") unless `allowUnknown`.
 */
export function parseDigest(s: string, opts: { allowUnknown?: boolean } = {}): Digest {
  const i = s.indexOf(":");
  if (i <= 0 || i + 1 >= s.length) throw new StrataError("INVALID_DIGEST", "invalid checksum digest format");
  const alg = s.slice(0, i);
  const enc = s.slice(i + 1);
  if (!DIGEST_RE.test(s)) throw new StrataError("INVALID_DIGEST", "invalid checksum digest format");
  const len = KNOWN[alg];
  if (len === undefined) {
    if (opts.allowUnknown) return s as Digest;
    throw new StrataError("INVALID_DIGEST", "unsupported digest algorithm");
  }
  // go-digest's order: the length first, then the encoding's alphabet.
  if (enc.length !== len) throw new StrataError("INVALID_DIGEST", "invalid checksum digest length");
  if (!/^[a-f0-9]*$/.test(enc)) throw new StrataError("INVALID_DIGEST", "invalid checksum digest format");
  return s as Digest;
}

export function isDigest(s: string): s is Digest {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function digestAlgorithm(d: Digest): string {
  return d.slice(0, d.indexOf(":"));
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(":") + 1);
}

export function digestFromHex(hex: string, algorithm = "sha256"): Digest {
  return parseDigest(`${algorithm}:${hex}`);
}

/** Digest of bytes held in memory (small documents only: manifests, configs). */
export function digestOf(data: Uint8Array | string, algorithm = "sha256"): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}` as Digest;
}

/** The chain ID of a layer stack (OCI config spec): H(chain(n-1) + " " + diffId(n)). */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : digestOf(`${prev} ${d}`));
  }
  return out;
}

/** Short form used in tables: the first 12 hex characters. */
export function shortId(d: string): string {
  const hex = d.includes(":") ? d.slice(d.indexOf(":") + 1) : d;
  return hex.slice(0, 12);
}
