import { type Digest, digestAlgorithm, digestHex } from "../../oci/index.js";

/**
 * The registry's storage layout, version 1. Every path is a StorageDriver path.
 *
 * ```
 * /strata-registry.json                               {"layoutVersion":1}
 * /blobs/<alg>/<hex[0:2]>/<hex>                       blob bytes, stored once for all repositories
 * /repositories/<name>/
 *   _layers/<alg>/<hex>                               link: the blob is readable in <name>
 *   _manifests/revisions/<alg>/<hex>                  link: manifest in <name>; JSON {"mediaType"}
 *   _manifests/tags/<tag>                             the digest the tag points to
 *   _referrers/<alg>/<subject hex>/<alg>-<hex>        descriptor JSON of a manifest whose subject
 *                                                     is <subject>
 *   _uploads/<uuid>/data                              bytes received so far (append only)
 *   _uploads/<uuid>/startedat                         ISO time the session started (gc purges old)
 * ```
 *
 * Repository components never start with `_` (the name grammar), so `_layers` and friends
 * cannot collide with nested repository names. A repository exists once it has `_manifests`.
 *
 * Migration: there is one version. A future layout bumps `layoutVersion`; `serve` refuses a
 * root with a newer version and migrates older ones before listening.
 */
export const LAYOUT_VERSION = 1;
export const LAYOUT_FILE = "/strata-registry.json";

export const paths = {
  blob: (d: Digest) => `/blobs/${digestAlgorithm(d)}/${digestHex(d).slice(0, 2)}/${digestHex(d)}`,
  blobsRoot: () => "/blobs",
  reposRoot: () => "/repositories",
  repo: (name: string) => `/repositories/${name}`,
  layerLink: (name: string, d: Digest) =>
    `/repositories/${name}/_layers/${digestAlgorithm(d)}/${digestHex(d)}`,
  layersDir: (name: string) => `/repositories/${name}/_layers`,
  manifestsDir: (name: string) => `/repositories/${name}/_manifests`,
  revision: (name: string, d: Digest) =>
    `/repositories/${name}/_manifests/revisions/${digestAlgorithm(d)}/${digestHex(d)}`,
  revisionsDir: (name: string) => `/repositories/${name}/_manifests/revisions`,
  tag: (name: string, tag: string) => `/repositories/${name}/_manifests/tags/${tag}`,
  tagsDir: (name: string) => `/repositories/${name}/_manifests/tags`,
  referrersOf: (name: string, subject: Digest) =>
    `/repositories/${name}/_referrers/${digestAlgorithm(subject)}/${digestHex(subject)}`,
  referrer: (name: string, subject: Digest, d: Digest) =>
    `/repositories/${name}/_referrers/${digestAlgorithm(subject)}/${digestHex(subject)}/${digestAlgorithm(d)}-${digestHex(d)}`,
  referrersDir: (name: string) => `/repositories/${name}/_referrers`,
  uploadsDir: (name: string) => `/repositories/${name}/_uploads`,
  upload: (name: string, id: string) => `/repositories/${name}/_uploads/${id}`,
  uploadData: (name: string, id: string) => `/repositories/${name}/_uploads/${id}/data`,
  uploadStarted: (name: string, id: string) => `/repositories/${name}/_uploads/${id}/startedat`,
};

/** Upload session IDs are UUIDs we mint; anything else in a URL is rejected before touching disk. */
export const UPLOAD_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
