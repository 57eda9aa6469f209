import { isStrataError } from "../../util/index.js";

/** The distribution spec's error codes, plus Docker's older ones we still send. */
export type OciErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DIGEST_INVALID"
  | "MANIFEST_BLOB_UNKNOWN"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "SIZE_INVALID"
  | "UNAUTHORIZED"
  | "DENIED"
  | "UNSUPPORTED"
  | "TOOMANYREQUESTS"
  | "TAG_INVALID"
  | "PAGINATION_NUMBER_INVALID"
  | "UNKNOWN";

/** An error answered as `{"errors":[{code,message,detail}]}` with a status and extra headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: OciErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

/**
 * The edge where StrataError kinds become HTTP (STYLE §13). Anything unexpected is a 500
 * whose body says nothing about the server's insides; the log line keeps the real message.
 */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (isStrataError(e)) {
    const m = e.message;
    switch (e.code) {
      case "BLOB_NOT_FOUND":
        return new HttpError(404, "BLOB_UNKNOWN", "blob unknown to registry");
      case "MANIFEST_NOT_FOUND":
        return new HttpError(404, "MANIFEST_UNKNOWN", "manifest unknown", {}, m);
      case "REPOSITORY_NOT_FOUND":
        return new HttpError(404, "NAME_UNKNOWN", "repository name not known to registry", {}, m);
      case "UPLOAD_NOT_FOUND":
        return new HttpError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry");
      case "UPLOAD_RANGE_INVALID":
        return new HttpError(416, "BLOB_UPLOAD_INVALID", m);
      case "DIGEST_MISMATCH":
      case "INVALID_DIGEST":
        return new HttpError(400, "DIGEST_INVALID", m);
      case "SIZE_MISMATCH":
        return new HttpError(400, "SIZE_INVALID", m);
      case "INVALID_JSON":
        return new HttpError(400, "MANIFEST_INVALID", m);
      case "TOO_LARGE":
        return new HttpError(413, "SIZE_INVALID", m);
      case "MANIFEST_REFERENCE_MISSING":
        return new HttpError(400, "MANIFEST_BLOB_UNKNOWN", m);
      case "UNSUPPORTED":
        return new HttpError(405, "UNSUPPORTED", m);
      case "UNAUTHENTICATED":
        return new HttpError(401, "UNAUTHORIZED", m);
      case "PERMISSION_DENIED":
        return new HttpError(403, "DENIED", m);
      default:
        break;
    }
  }
  return new HttpError(500, "UNKNOWN", "internal server error");
}
