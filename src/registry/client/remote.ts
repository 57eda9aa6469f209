import type { Readable } from "node:stream";
import {
  type Compression,
  type Descriptor,
  type Digest,
  diffIdsOf,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  type Index,
  layerCompression,
  type Manifest,
  normalizePlatform,
  type Parsed,
  type Platform,
  parseAnyManifest,
  parseImageConfig,
  platformMatches,
  selectPlatform,
} from "../../oci/index.js";
import { familiarName, familiarString, type Reference } from "../../reference/index.js";
import { isStrataError, StrataError } from "../../util/index.js";
import type { RawManifest, RepositoryClient } from "./registry.js";

/** One layer of a remote image: its compressed descriptor and the diff ID the config names. */
export interface RemoteLayer {
  readonly descriptor: Descriptor;
  readonly diffId: Digest;
  /** Compression by media type; undefined for a media type that is not a layer. */
  readonly compression: Compression | undefined;
  /** Docker's short layer ID in pull output: the first 12 hex digits of the blob digest. */
  readonly shortId: string;
  /** Stream the compressed blob, verified (see RepositoryClient.openBlob). The caller consumes or destroys it. */
  open(opts?: { signal?: AbortSignal; onBytes?: (received: number) => void }): Readable;
}

/** An index (or Docker manifest list) as fetched: bytes, digest, and the platforms it offers. */
export interface RemoteIndex {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly index: Parsed<Index>;
  platforms(): Platform[];
}

/**
 * An image in a registry, opened lazily: the manifest and config are fetched and validated
 * when the view is made; layer bytes move only when a layer is opened.
 */
export interface RemoteImage {
  readonly repository: RepositoryClient;
  /** The reference that was resolved. */
  readonly reference: Reference;
  /**
   * The digest the reference resolved to: the index's when it named an index (what Docker
   * prints as `Digest:` and records in RepoDigests), else the manifest's.
   */
  readonly digest: Digest;
  readonly manifestDigest: Digest;
  readonly manifest: Parsed<Manifest>;
  readonly manifestMediaType: string;
  readonly index?: RemoteIndex;
  /** The config digest: Docker's image ID. */
  readonly id: Digest;
  readonly config: Parsed<ImageConfig>;
  readonly layers: readonly RemoteLayer[];
}

export interface ResolveOptions {
  /** The platform to pick from an index; the host's when absent. */
  platform?: Platform;
  /** The platform was asked for (--platform): a single-platform image of another platform is an error. */
  platformExplicit?: boolean;
  signal?: AbortSignal;
}

/** Docker's wording when a reference finds nothing (distribution/errors.go notFoundError). */
function notFound(ref: Reference, e: StrataError): StrataError {
  const cause = e.message.replace(/^[A-Z][a-z]+ "[^"]*": /, "");
  if (e.code === "MANIFEST_NOT_FOUND")
    return new StrataError("MANIFEST_NOT_FOUND", `manifest for ${familiarString(ref)} not found: ${cause}`, {
      cause: e,
    });
  if (e.code === "REPOSITORY_NOT_FOUND")
    return new StrataError("REPOSITORY_NOT_FOUND", `repository ${familiarName(ref)} not found: ${cause}`, {
      cause: e,
    });
  if (e.code === "PERMISSION_DENIED")
    return new StrataError(
      "PERMISSION_DENIED",
      `pull access denied for ${familiarName(ref)}, repository does not exist or may require 'docker login': ${cause}`,
      { cause: e },
    );
  return e;
}

export function indexView(digest: Digest, mediaType: string, index: Parsed<Index>): RemoteIndex {
  return {
    digest,
    mediaType,
    index,
    platforms: () => index.value.manifests.flatMap((m) => (m.platform ? [m.platform] : [])),
  };
}

/**
 * Resolve a reference to one image: fetch what it names (manifest or index, 4 MiB at most,
 * digest checked), pick the platform from an index, fetch the config and check that it
 * matches the manifest's layers.
 */
export async function resolveImage(
  repo: RepositoryClient,
  ref: Reference,
  opts: ResolveOptions = {},
): Promise<RemoteImage> {
  const want = normalizePlatform(opts.platform ?? hostPlatform());
  const tagOrDigest = ref.digest ?? ref.tag ?? "latest";
  let top: RawManifest;
  try {
    top = await repo.manifest(tagOrDigest, { signal: opts.signal });
  } catch (e) {
    if (isStrataError(e)) throw notFound(ref, e);
    throw e;
  }
  let doc = parseAnyManifest(top.raw, top.mediaType || undefined);
  let index: RemoteIndex | undefined;
  let current = top;
  for (let depth = 0; doc.kind === "index"; depth++) {
    if (depth >= 4) throw new StrataError("UNSUPPORTED", `${familiarString(ref)}: indexes nested too deep`);
    const idx = indexView(current.digest, current.mediaType, doc.doc);
    index ??= idx;
    const candidates = doc.doc.value.manifests.filter((m) => m.platform);
    const chosen =
      selectPlatform(candidates, want) ?? (candidates.length === 0 ? doc.doc.value.manifests[0] : undefined);
    if (!chosen) {
      const have = [
        ...new Set(
          idx
            .platforms()
            .filter((p) => p.os !== "unknown")
            .map((p) => formatPlatform(normalizePlatform(p))),
        ),
      ];
      throw new StrataError(
        "PLATFORM_MISMATCH",
        `no matching manifest for ${formatPlatform(want)} in the manifest list entries (available: ${have.join(", ") || "none"})`,
      );
    }
    current = await repo.manifest(chosen.digest, { signal: opts.signal });
    doc = parseAnyManifest(current.raw, current.mediaType || chosen.mediaType);
  }
  const manifest = doc.doc;
  const cfgDesc = manifest.value.config as Descriptor;
  const config = parseImageConfig(await repo.smallBlob(cfgDesc, { signal: opts.signal }));
  if (config.digest !== cfgDesc.digest)
    throw new StrataError(
      "DIGEST_MISMATCH",
      `config ${cfgDesc.digest}: digest mismatch: got ${config.digest}`,
    );
  if (!index && opts.platformExplicit) {
    const actual = normalizePlatform({
      os: config.value.os,
      architecture: config.value.architecture,
      variant: config.value.variant,
    });
    if (!platformMatches(want, actual))
      throw new StrataError(
        "PLATFORM_MISMATCH",
        `image with reference ${familiarString(ref)} was found but does not match the specified platform: wanted ${formatPlatform(want)}, actual: ${formatPlatform(actual)}`,
      );
  }
  const diffIds = diffIdsOf(config.value);
  const layerDescs = manifest.value.layers as Descriptor[];
  if (diffIds.length !== layerDescs.length)
    throw new StrataError(
      "INVALID_JSON",
      `${familiarString(ref)}: the manifest has ${layerDescs.length} layers but the config names ${diffIds.length} diff IDs`,
    );
  const layers: RemoteLayer[] = layerDescs.map((d, i) => ({
    descriptor: d,
    diffId: diffIds[i]!,
    compression: layerCompression(d.mediaType),
    shortId: d.digest.slice(d.digest.indexOf(":") + 1, d.digest.indexOf(":") + 13),
    open: (o = {}) => repo.openBlob(d, o),
  }));
  return {
    repository: repo,
    reference: ref,
    digest: index?.digest ?? current.digest,
    manifestDigest: current.digest,
    manifest,
    manifestMediaType: manifest.value.mediaType ?? current.mediaType,
    index,
    id: config.digest,
    config,
    layers,
  };
}
