import { type ErrorCode, StrataError } from "../../util/index.js";
import { goMethod, type HttpResponse, httpStatusText, parseErrorBody } from "./transport.js";

const BY_REGISTRY_CODE: Record<string, ErrorCode> = {
  MANIFEST_UNKNOWN: "MANIFEST_NOT_FOUND",
  NAME_UNKNOWN: "REPOSITORY_NOT_FOUND",
  BLOB_UNKNOWN: "BLOB_NOT_FOUND",
  BLOB_UPLOAD_UNKNOWN: "UPLOAD_NOT_FOUND",
  UNAUTHORIZED: "UNAUTHENTICATED",
  DENIED: "PERMISSION_DENIED",
  TOOMANYREQUESTS: "RATE_LIMITED",
  MANIFEST_BLOB_UNKNOWN: "MANIFEST_REFERENCE_MISSING",
  DIGEST_INVALID: "DIGEST_MISMATCH",
  SIZE_INVALID: "SIZE_MISMATCH",
};

function byStatus(status: number): ErrorCode {
  if (status === 401) return "UNAUTHENTICATED";
  if (status === 403) return "PERMISSION_DENIED";
  if (status === 429) return "RATE_LIMITED";
  if (status >= 500) return "REGISTRY_UNAVAILABLE";
  return "REGISTRY_ERROR";
}

/** What a HEAD answer (no body) means, in the words Docker uses. */
function statusWords(status: number): string {
  switch (status) {
    case 401:
      return "unauthorized";
    case 403:
      return "denied";
    case 404:
      return "not found";
    case 429:
      return "toomanyrequests: too many requests";
    default:
      return httpStatusText(status);
  }
}

/**
 * Turn an error answer into a StrataError: the spec's error code decides the Strata code,
 * and the message reads like Docker's (`Head "…": unauthorized: authentication required`).
 * Consumes the response body.
 */
export async function registryError(
  res: HttpResponse,
  method: string,
  prefix?: string,
): Promise<StrataError> {
  const text = method === "HEAD" ? "" : await res.text(64 * 1024);
  if (method === "HEAD") await res.dump();
  const entries = parseErrorBody(text);
  const first = entries[0];
  const code = (first && BY_REGISTRY_CODE[first.code]) ?? byStatus(res.status);
  const detail = entries.length
    ? entries.map((e) => `${e.code.toLowerCase().replace(/_/g, " ")}: ${e.message}`).join("; ")
    : text.trim()
      ? `${statusWords(res.status)}: ${text.trim().split("\n")[0]!.slice(0, 200)}`
      : statusWords(res.status);
  const where = prefix ?? `${goMethod(method)} "${res.url}"`;
  return new StrataError(code, `${where}: ${detail}`);
}
