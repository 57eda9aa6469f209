import type { Digest } from "../oci/index.js";
import { isStrataError } from "../util/index.js";
import { grammar } from "./grammar.js";
import {
  type AnyReference,
  type DigestReference,
  isNamed,
  isNameOnly,
  makeReference,
  type ParseOptions,
  parseReference,
  parseReferenceDigest,
  REFERENCE_ERRORS,
  type Reference,
  referenceError,
  referenceString,
  repositoryName,
} from "./reference.js";

/** The domain that names Docker Hub in canonical references. */
export const DEFAULT_DOMAIN = "docker.io";
/** Docker Hub's old "Docker Index" domain; normalised to DEFAULT_DOMAIN. */
export const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
/** The Docker Hub namespace of official images: `ubuntu` is `library/ubuntu`. */
export const OFFICIAL_REPO_PREFIX = "library/";
/** The tag used when a reference has neither tag nor digest. */
export const DEFAULT_TAG = "latest";

/**
 * Split a familiar name into domain and remainder the way the Docker CLI does
 * (splitDockerDomain). The first `/`-separated part is a domain when it is `localhost`,
 * contains `.` or `:`, or has an upper-case letter (namespaces are lower case); else the
 * domain is docker.io. `index.docker.io` becomes docker.io, and single-component Docker
 * Hub names get `library/`. The remainder keeps any `:tag` and `@digest`; nothing here
 * is validated.
 */
export function splitDockerDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf("/");
  if (slash < 0) return { domain: DEFAULT_DOMAIN, remainder: OFFICIAL_REPO_PREFIX + name };
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (first === "localhost") [domain, remainder] = [first, rest];
  else if (first === LEGACY_DEFAULT_DOMAIN) [domain, remainder] = [DEFAULT_DOMAIN, rest];
  else if (/[.:]/.test(first) || first.toLowerCase() !== first) [domain, remainder] = [first, rest];
  else [domain, remainder] = [DEFAULT_DOMAIN, name];
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/**
 * Parse a name as typed at the Docker CLI into its canonical form, like
 * reference.ParseNormalizedNamed: `ubuntu` is docker.io/library/ubuntu, `user/app` is
 * docker.io/user/app. No default tag is added (see parseDockerRef / withDefaultTag).
 * A 64-character hex string is refused, as it is an image ID (see parseAnyReference).
 *
 * @throws StrataError INVALID_REFERENCE, for example `invalid reference format:
 *   repository name (library/Foo) must be lowercase`
 */
export function parseNormalizedNamed(s: string, opts: ParseOptions = {}): Reference {
  if (grammar.identifier.test(s)) {
    throw referenceError(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const { domain, remainder } = splitDockerDomain(s);
  const colon = remainder.indexOf(":");
  const remote = colon < 0 ? remainder : remainder.slice(0, colon);
  if (remote.toLowerCase() !== remote) {
    throw referenceError(`${REFERENCE_ERRORS.invalidFormat}: repository name (${remote}) must be lowercase`);
  }
  return parseReference(`${domain}/${remainder}`, opts);
}

/**
 * Parse a reference that must already be canonical (reference.ParseNamed):
 * `docker.io/library/foo` passes, `foo` and `docker.io/foo` fail with
 * "repository name must be canonical".
 */
export function parseNamed(s: string, opts: ParseOptions = {}): Reference {
  const r = parseNormalizedNamed(s, opts);
  if (referenceString(r) !== s) throw referenceError(REFERENCE_ERRORS.nameNotCanonical);
  return r;
}

/** Add the tag `latest` when the reference has neither tag nor digest (TagNameOnly). */
export function withDefaultTag(r: Reference): Reference {
  return isNameOnly(r) ? makeReference(r.domain, r.path, DEFAULT_TAG) : r;
}

/**
 * Normalise as Docker does before pulling or looking up an image (ParseDockerRef):
 * parseNormalizedNamed, then `:latest` when there is neither tag nor digest, and only
 * the digest when there are both (the digest decides what is pulled).
 */
export function parseDockerRef(s: string, opts: ParseOptions = {}): Reference {
  const r = parseNormalizedNamed(s, opts);
  if (r.tag !== undefined && r.digest !== undefined)
    return makeReference(r.domain, r.path, undefined, r.digest);
  return withDefaultTag(r);
}

/**
 * Parse anything `docker` accepts where an image is expected (ParseAnyReference): a
 * 64-character hex ID is the sha256 digest `sha256:<id>`, a valid `algorithm:hex` digest
 * is a digest-only reference, anything else goes through parseNormalizedNamed.
 * Short ID prefixes are names here; resolving them is the image store's business.
 */
export function parseAnyReference(s: string, opts: ParseOptions = {}): AnyReference {
  if (grammar.identifier.test(s)) return { digest: `sha256:${s}` as Digest };
  const digest = tryDigest(s, opts);
  if (digest !== undefined) return { digest } satisfies DigestReference;
  return parseNormalizedNamed(s, opts);
}

function tryDigest(s: string, opts: ParseOptions): Digest | undefined {
  try {
    return parseReferenceDigest(s, opts);
  } catch (e) {
    if (isStrataError(e, "INVALID_REFERENCE")) return undefined;
    throw e;
  }
}

/**
 * The name as Docker shows it (FamiliarName): docker.io/ is dropped, and for Docker
 * Hub so is `library/` when nothing nested follows it. Other domains are kept whole:
 * `ubuntu`, `user/app`, `localhost:5000/app`, `library/foo/bar`.
 */
export function familiarName(r: Reference): string {
  if (r.domain !== DEFAULT_DOMAIN) return repositoryName(r);
  if (r.path.startsWith(OFFICIAL_REPO_PREFIX)) {
    const rest = r.path.slice(OFFICIAL_REPO_PREFIX.length);
    if (!rest.includes("/")) return rest;
  }
  return r.path;
}

/** The familiar name with `:tag` and `@digest` (FamiliarString); a digest alone as is. */
export function familiarString(r: AnyReference): string {
  if (!isNamed(r)) return r.digest;
  let s = familiarName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}
