import { type Digest, parseDigest } from "../oci/index.js";
import { isStrataError, StrataError } from "../util/index.js";
import { grammar } from "./grammar.js";

/** The longest path (the name without its domain) a reference may have. */
export const NAME_TOTAL_LENGTH_MAX = 255;

/**
 * The messages of distribution/reference's error values, which Docker prints as they
 * are. Every reference error is a StrataError with code INVALID_REFERENCE; match on
 * the code, and use these only to tell the cases apart.
 */
export const REFERENCE_ERRORS = {
  invalidFormat: "invalid reference format",
  tagInvalidFormat: "invalid tag format",
  digestInvalidFormat: "invalid digest format",
  nameContainsUppercase: "repository name must be lowercase",
  nameEmpty: "repository name must have at least one component",
  nameTooLong: `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`,
  nameNotCanonical: "repository name must be canonical",
} as const;

/**
 * A named reference: `[domain/]path[:tag][@digest]`. `domain` is "" when the string
 * had none (only possible from parseReference/withName; normalised references always
 * have one). An absent tag or digest is an absent property. Values are never mutated:
 * withTag and friends return new objects.
 */
export interface Reference {
  readonly domain: string;
  readonly path: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

/** A reference that is only a digest, such as an image ID given to `docker rmi`. */
export interface DigestReference {
  readonly digest: Digest;
}

/** What parseAnyReference returns: a named reference, or a digest alone. */
export type AnyReference = Reference | DigestReference;

export interface ParseOptions {
  /**
   * The digest algorithms to accept (go-digest's "registered" algorithms). By default
   * every algorithm `parseDigest` knows (sha256 and sha512), as the Docker daemon does.
   * Others fail with "unsupported digest algorithm".
   */
  readonly digestAlgorithms?: readonly string[];
}

/** go-digest's DigestRegexp, used to tell a malformed digest from an unsupported one. */
const GO_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function referenceError(message: string, cause?: unknown): StrataError {
  return new StrataError("INVALID_REFERENCE", message, cause === undefined ? undefined : { cause });
}

/** True for a named reference, false for a digest-only one. */
export function isNamed(r: AnyReference): r is Reference {
  return "path" in r;
}

/**
 * Validate a digest taken from a reference as go-digest's `Parse` does, reporting its
 * messages ("invalid checksum digest format", "... length", "unsupported digest
 * algorithm") as INVALID_REFERENCE errors whose cause is the INVALID_DIGEST error.
 */
export function parseReferenceDigest(s: string, opts: ParseOptions = {}): Digest {
  const algorithms = opts.digestAlgorithms;
  if (algorithms !== undefined && !algorithms.includes(s.slice(0, Math.max(0, s.indexOf(":"))))) {
    throw referenceError(
      GO_DIGEST.test(s) ? "unsupported digest algorithm" : "invalid checksum digest format",
    );
  }
  try {
    return parseDigest(s);
  } catch (e) {
    if (!isStrataError(e, "INVALID_DIGEST")) throw e;
    throw referenceError(goDigestMessage(s, e.message), e);
  }
}

/**
 * go-digest checks the length of the hex part before its case, so an upper-case hex
 * string of the wrong length is "invalid checksum digest length" there, where
 * `parseDigest` reports the case first. Ask again with the hex lower-cased to tell.
 */
function goDigestMessage(s: string, message: string): string {
  if (message !== "invalid checksum digest format") return message;
  const i = s.indexOf(":");
  const lowered = s.slice(0, i + 1) + s.slice(i + 1).toLowerCase();
  if (lowered === s) return message;
  try {
    parseDigest(lowered);
  } catch (e) {
    if (isStrataError(e, "INVALID_DIGEST") && e.message === "invalid checksum digest length")
      return e.message;
  }
  return message;
}

/** Build a reference object, leaving absent parts out. */
export function makeReference(domain: string, path: string, tag?: string, digest?: Digest): Reference {
  const r: { domain: string; path: string; tag?: string; digest?: Digest } = { domain, path };
  if (tag !== undefined && tag !== "") r.tag = tag;
  if (digest !== undefined && (digest as string) !== "") r.digest = digest;
  return r;
}

/**
 * Parse a reference exactly as written, like reference.Parse: no docker.io, no
 * `library/`, no default tag. When the text has a `/`, whatever comes before the first
 * `/` is the domain if the grammar allows it as one (so `foo/bar` has the domain
 * `foo`); `test.com:5000` is the name `test.com` with the tag `5000`.
 *
 * @throws StrataError INVALID_REFERENCE with distribution/reference's message
 */
export function parseReference(s: string, opts: ParseOptions = {}): Reference {
  if (s === "") throw referenceError(REFERENCE_ERRORS.nameEmpty);
  const m = grammar.reference.exec(s);
  if (m === null) {
    const lower = s.toLowerCase();
    // Valid once lower-cased: the only fault is an upper-case letter in the path.
    if (lower !== s && grammar.reference.test(lower))
      throw referenceError(REFERENCE_ERRORS.nameContainsUppercase);
    throw referenceError(REFERENCE_ERRORS.invalidFormat);
  }
  const name = m[1]!;
  const nm = grammar.name.exec(name);
  const domain = nm?.[1] ?? "";
  const path = nm?.[2] ?? name;
  if (path.length > NAME_TOTAL_LENGTH_MAX) throw referenceError(REFERENCE_ERRORS.nameTooLong);
  const digest = m[3] === undefined ? undefined : parseReferenceDigest(m[3], opts);
  return makeReference(domain, path, m[2], digest);
}

/**
 * A name-only reference from `[domain/]path` (reference.WithName). Like parseReference
 * it does not normalise; unlike it, a tag or digest is an error.
 */
export function withName(name: string): Reference {
  const m = grammar.name.exec(name);
  if (m === null) throw referenceError(REFERENCE_ERRORS.invalidFormat);
  const path = m[2]!;
  if (path.length > NAME_TOTAL_LENGTH_MAX) throw referenceError(REFERENCE_ERRORS.nameTooLong);
  return makeReference(m[1] ?? "", path);
}

/** Check a tag against the grammar. @throws INVALID_REFERENCE "invalid tag format" */
export function validateTag(tag: string): string {
  if (!grammar.tag.test(tag)) throw referenceError(REFERENCE_ERRORS.tagInvalidFormat);
  return tag;
}

/** The reference with its tag set (or replaced); a digest is kept (reference.WithTag). */
export function withTag(r: Reference, tag: string): Reference {
  return makeReference(r.domain, r.path, validateTag(tag), r.digest);
}

/**
 * The reference with its digest set (or replaced); a tag is kept (reference.WithDigest).
 * Like upstream, only the reference grammar is checked here (`algorithm:hex`, 32 or
 * more hex digits), not the length for the algorithm: parse digests from outside with
 * `parseDigest` first.
 */
export function withDigest(r: Reference, digest: string): Reference {
  if (!grammar.digest.test(digest)) throw referenceError(REFERENCE_ERRORS.digestInvalidFormat);
  return makeReference(r.domain, r.path, r.tag, digest as Digest);
}

/** The name alone, without tag or digest (reference.TrimNamed). */
export function trimNamed(r: Reference): Reference {
  return makeReference(r.domain, r.path);
}

/** True when the reference has neither tag nor digest (reference.IsNameOnly). */
export function isNameOnly(r: Reference): boolean {
  return r.tag === undefined && r.digest === undefined;
}

/** `domain/path`, or just `path` when there is no domain (Named.Name()). */
export function repositoryName(r: Reference): string {
  return r.domain === "" ? r.path : `${r.domain}/${r.path}`;
}

/** The reference as text, `name[:tag][@digest]` (String()); a digest-only one is its digest. */
export function referenceString(r: AnyReference): string {
  if (!isNamed(r)) return r.digest;
  let s = repositoryName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/**
 * Split a name into domain and path with the raw grammar (splitDomain): the part before
 * the first `/` is the domain when it can be one. A name that does not parse comes back
 * whole as the path, with an empty domain.
 */
export function splitDomain(name: string): { domain: string; path: string } {
  const m = grammar.name.exec(name);
  if (m === null) return { domain: "", path: name };
  return { domain: m[1] ?? "", path: m[2]! };
}
