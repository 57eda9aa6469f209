/**
 * One error type for the whole engine. Every error has a stable `code` (listed in
 * ERROR_CODES, checked unique by a test) and a `kind` that edges (cli exit codes,
 * registry HTTP status, Engine API status) translate; inner modules never know HTTP.
 */

export type ErrorKind =
  | "notFound"
  | "alreadyExists"
  | "invalidArgument"
  | "failedPrecondition"
  | "conflict"
  | "unavailable"
  | "unauthenticated"
  | "permissionDenied"
  | "dataLoss"
  | "internal";

/** Every error code, with its kind and a doc line. Never reuse a retired code. */
export const ERROR_CODES = {
  INVALID_ARGUMENT: { kind: "invalidArgument", doc: "a flag or argument is malformed" },
  INVALID_REFERENCE: { kind: "invalidArgument", doc: "an image reference does not parse" },
  INVALID_DIGEST: { kind: "invalidArgument", doc: "a digest string is malformed or of an unknown algorithm" },
  INVALID_JSON: {
    kind: "invalidArgument",
    doc: "untrusted JSON is malformed or has fields of the wrong type",
  },
  INVALID_ARCHIVE: {
    kind: "invalidArgument",
    doc: "a tarball is truncated, corrupt or not of a known format",
  },
  UNSAFE_PATH: { kind: "invalidArgument", doc: "a tar entry or link would escape its root" },
  TOO_LARGE: { kind: "invalidArgument", doc: "an input is over its size limit" },
  DIGEST_MISMATCH: { kind: "dataLoss", doc: "bytes do not hash to the digest they were announced with" },
  SIZE_MISMATCH: { kind: "dataLoss", doc: "a stream's length differs from its descriptor's size" },
  BLOB_NOT_FOUND: { kind: "notFound", doc: "no blob with that digest in the content store" },
  IMAGE_NOT_FOUND: { kind: "notFound", doc: "no image matches the reference or ID" },
  AMBIGUOUS_ID: { kind: "invalidArgument", doc: "an ID prefix matches several images" },
  IMAGE_CONFLICT: { kind: "conflict", doc: "an image cannot be removed in its current state" },
  LOCK_TIMEOUT: { kind: "unavailable", doc: "another process held the store lock for too long" },
  STORE_CORRUPT: { kind: "dataLoss", doc: "store metadata is unreadable" },
  UNSUPPORTED: { kind: "failedPrecondition", doc: "a feature or media type Strata does not support" },
  PLATFORM_MISMATCH: { kind: "notFound", doc: "no manifest in an index matches the wanted platform" },
  TEMPLATE_ERROR: { kind: "invalidArgument", doc: "a --format template does not parse or execute" },
  IO_ERROR: { kind: "internal", doc: "a file-system operation failed" },
  REPOSITORY_NOT_FOUND: { kind: "notFound", doc: "no repository of that name in the registry" },
  MANIFEST_NOT_FOUND: { kind: "notFound", doc: "no manifest with that tag or digest in the repository" },
  MANIFEST_REFERENCE_MISSING: {
    kind: "failedPrecondition",
    doc: "a manifest refers to a blob or child manifest the repository does not have",
  },
  UPLOAD_NOT_FOUND: { kind: "notFound", doc: "no blob upload session with that ID in the repository" },
  UPLOAD_RANGE_INVALID: {
    kind: "invalidArgument",
    doc: "an upload chunk does not start where the session ends",
  },
  UNAUTHENTICATED: { kind: "unauthenticated", doc: "the request needs credentials, or they are wrong" },
  PERMISSION_DENIED: { kind: "permissionDenied", doc: "the caller may not do this action on this resource" },
  RATE_LIMITED: { kind: "unavailable", doc: "too many failed logins from this client; retry later" },
  REGISTRY_UNAVAILABLE: {
    kind: "unavailable",
    doc: "a registry could not be reached, or kept failing (429, 5xx, dropped connections) after bounded retries",
  },
  REGISTRY_ERROR: {
    kind: "failedPrecondition",
    doc: "a registry answered with an error or a response Strata cannot use",
  },
  TLS_ERROR: {
    kind: "unavailable",
    doc: "a registry's TLS certificate could not be verified, or the handshake failed",
  },
  CREDENTIALS_ERROR: {
    kind: "failedPrecondition",
    doc: "Docker's config.json or a docker-credential-* helper failed",
  },
  CONTAINER_NOT_FOUND: { kind: "notFound", doc: "no container matches the name or ID" },
  CONTAINER_CONFLICT: {
    kind: "conflict",
    doc: "a container name is in use, or the container's state forbids the operation",
  },
  CONTAINER_START_FAILED: {
    kind: "failedPrecondition",
    doc: "the OCI runtime could not start the container's process (exit 125, 126 or 127 as Docker)",
  },
  CONTAINER_NOT_RUNNING: { kind: "failedPrecondition", doc: "the operation needs a running container" },
  VOLUME_NOT_FOUND: { kind: "notFound", doc: "no volume of that name" },
  VOLUME_IN_USE: { kind: "conflict", doc: "a volume is used by a container" },
  INTERNAL: { kind: "internal", doc: "a bug in Strata" },
} as const satisfies Record<string, { kind: ErrorKind; doc: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StrataError";
    this.code = code;
    this.kind = ERROR_CODES[code].kind;
  }
}

export function isStrataError(e: unknown, code?: ErrorCode): e is StrataError {
  return e instanceof StrataError && (code === undefined || e.code === code);
}

/** Node system errors carry `code` such as ENOENT. */
export function isErrno(e: unknown, code: string): e is NodeJS.ErrnoException {
  return typeof e === "object" && e !== null && (e as NodeJS.ErrnoException).code === code;
}

/** A one-line message for the user, without stack. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
