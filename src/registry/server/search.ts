import { type Digest, isIndexType, parseAnyManifest, parseDigest } from "../../oci/index.js";
import { readAllLimited } from "../../util/index.js";
import type { ResolvedConfig } from "./config.js";
import type { Registry } from "./registry.js";

/** One result in Docker Hub's `/v1/search` JSON. */
export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

export interface SearchResponse {
  num_pages: number;
  num_results: number;
  page_size: number;
  page: number;
  query: string;
  results: SearchResult[];
}

const DESCRIPTION_LABEL = "org.opencontainers.image.description";

/**
 * `GET /v1/search`: repositories whose name (or description) contains the term, in Docker
 * Hub's JSON. Descriptions, stars and the official flag come from the config; a repository
 * without a configured description gets the `org.opencontainers.image.description` label of
 * its `latest` (else first) tag's image config. Labels are cached by manifest digest.
 */
export class Search {
  private readonly labelCache = new Map<string, string>();

  constructor(
    private readonly registry: Registry,
    private readonly entries: ResolvedConfig["search"],
  ) {}

  async search(
    term: string,
    n: number,
    page: number,
    visible: (repo: string) => boolean,
  ): Promise<SearchResponse> {
    const needle = term.toLowerCase();
    const matches: SearchResult[] = [];
    for (const name of await this.registry.repositories()) {
      if (!visible(name)) continue;
      const cfg = this.entries[name];
      const description = cfg?.description ?? (await this.labelDescription(name));
      if (needle && !name.includes(needle) && !description.toLowerCase().includes(needle)) continue;
      matches.push({
        name,
        description,
        star_count: cfg?.stars ?? 0,
        is_official: cfg?.official ?? false,
        is_automated: false,
      });
    }
    // Hub orders by relevance; we put exact and official matches first, then by stars and name.
    matches.sort(
      (a, b) =>
        Number(b.name === needle) - Number(a.name === needle) ||
        Number(b.is_official) - Number(a.is_official) ||
        b.star_count - a.star_count ||
        (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
    const start = (page - 1) * n;
    return {
      num_pages: Math.max(1, Math.ceil(matches.length / n)),
      num_results: matches.length,
      page_size: n,
      page,
      query: term,
      results: matches.slice(start, start + n),
    };
  }

  private async labelDescription(name: string): Promise<string> {
    try {
      const tags = await this.registry.listTags(name);
      const tag = tags.includes("latest") ? "latest" : tags[0];
      if (!tag) return "";
      let m = await this.registry.getManifest(name, tag);
      const hit = this.labelCache.get(m.digest);
      if (hit !== undefined) return hit;
      const top = m.digest;
      if (isIndexType(m.mediaType)) {
        const idx = parseAnyManifest(m.raw);
        const first = idx.kind === "index" ? idx.doc.value.manifests[0] : undefined;
        if (!first) return "";
        m = await this.registry.getManifest(name, first.digest);
      }
      const parsed = parseAnyManifest(m.raw);
      if (parsed.kind !== "manifest") return "";
      const configDigest: Digest = parseDigest(parsed.doc.value.config.digest);
      if (!(await this.registry.statBlob(name, configDigest))) return "";
      const raw = await readAllLimited(
        await this.registry.openBlob(configDigest),
        1024 * 1024,
        "image config",
      );
      const cfg = JSON.parse(raw.toString("utf8")) as { config?: { Labels?: Record<string, unknown> } };
      const label = cfg.config?.Labels?.[DESCRIPTION_LABEL];
      const description = typeof label === "string" ? label : "";
      if (this.labelCache.size > 10_000) this.labelCache.clear();
      this.labelCache.set(top, description);
      return description;
    } catch {
      // A repository whose latest image cannot be read still appears, without a description.
      return "";
    }
  }
}
