import { isDockerHub } from "../../reference/index.js";
import { errorMessage, readAllLimited, StrataError } from "../../util/index.js";
import { registryError } from "./errors.js";
import type { RegistryClient } from "./registry.js";

/** One result of Docker Hub's `/v1/search` API. */
export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

/** Docker Hub serves search from its index host, not from the registry host. */
const DOCKER_HUB_SEARCH = "https://index.docker.io";

/**
 * `GET /v1/search?q=&n=` on an index: Docker Hub's index server for docker.io, else the
 * registry itself (Strata's registry serves it), reached as the registry is (https, or http
 * for an insecure one), with the registry's Basic credentials when there are some.
 */
export async function searchIndex(
  client: RegistryClient,
  term: string,
  limit: number,
  opts: { signal?: AbortSignal } = {},
): Promise<SearchResult[]> {
  const base = isDockerHub(client.domain) ? DOCKER_HUB_SEARCH : await client.base(opts.signal);
  const url = new URL(`${base}/v1/search`);
  url.searchParams.set("q", term);
  url.searchParams.set("n", String(limit));
  const creds = await client.credentials();
  const authorization =
    creds?.username !== undefined || creds?.password !== undefined
      ? `Basic ${Buffer.from(`${creds.username ?? ""}:${creds.password ?? ""}`).toString("base64")}`
      : undefined;
  const res = await client.transport.send({
    method: "GET",
    url: url.toString(),
    authorization,
    signal: opts.signal,
  });
  if (res.status !== 200) throw await registryError(res, "GET");
  let doc: { results?: unknown };
  try {
    doc = JSON.parse(
      (await readAllLimited(res.body as AsyncIterable<Buffer>, 16 << 20, "search response")).toString("utf8"),
    );
  } catch (e) {
    throw new StrataError("REGISTRY_ERROR", `GET "${url}": invalid search response: ${errorMessage(e)}`, {
      cause: e,
    });
  }
  if (!Array.isArray(doc.results)) return [];
  return doc.results.flatMap((r: Record<string, unknown>) =>
    typeof r?.name === "string"
      ? [
          {
            name: r.name,
            description: typeof r.description === "string" ? r.description : "",
            star_count: typeof r.star_count === "number" ? r.star_count : 0,
            is_official: r.is_official === true,
            is_automated: r.is_automated === true,
          },
        ]
      : [],
  );
}
