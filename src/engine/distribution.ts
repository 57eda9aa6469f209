import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { TarScanner } from "../layer/index.js";
import {
  type Digest,
  diffIdsOf,
  type ImageConfig,
  layerCompression,
  type Parsed,
  parsePlatform,
} from "../oci/index.js";
import {
  DOCKER_HUB_INDEX_SERVER,
  familiarName,
  familiarString,
  isNameOnly,
  parseNormalizedNamed,
  type Reference,
  referenceString,
  repositoryName,
  splitDomain,
  withDefaultTag,
} from "../reference/index.js";
import type {
  AuthConfig,
  Client,
  ClientOptions,
  DockerConfig,
  KnownBlob,
  LayerSink,
  ProgressEvent,
  ProgressSink,
  PushedLayer,
  PushLayer,
  RemoteImage,
  RemoteLayer,
  SearchResult,
} from "../registry/client/index.js";

/**
 * The registry client, loaded on first use: it brings node's http, https and tls, worker
 * threads and the push and pull code, none of which `build` or `run` needs at start-up.
 */
let registryClient: Promise<typeof import("../registry/client/index.js")> | undefined;
const rc = () => (registryClient ??= import("../registry/client/index.js"));

import type { CompressedVariant, LayerRecord, MetaDoc, StagedBlob, Store } from "../store/index.js";
import { errorMessage, isErrno, StrataError } from "../util/index.js";
import type { ImageService } from "./images.js";

export type { ProgressEvent, SearchResult };

/**
 * Strata's own settings for registries, in a JSON file with the names of Docker's
 * daemon.json: `insecure-registries`, `max-concurrent-downloads`, `max-concurrent-uploads`,
 * and `certs-dir` (default /etc/docker/certs.d, Docker's). `keep-compressed-layers` (default
 * false) also stores a pulled layer's compressed blob, so pushing it to another registry
 * needs no recompression; it costs a second write of every layer, so it is off unless asked.
 */
export interface DistributionConfig {
  "insecure-registries"?: string[];
  "max-concurrent-downloads"?: number;
  "max-concurrent-uploads"?: number;
  "certs-dir"?: string;
  "keep-compressed-layers"?: boolean;
}

/** Check the config's known keys (others pass, as in daemon.json). */
function validateConfig(data: unknown, file: string): DistributionConfig {
  const bad = (key: string, want: string) =>
    new StrataError("INVALID_JSON", `${file}: ${key}: expected ${want}`);
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw bad("(root)", "an object");
  const c = data as Record<string, unknown>;
  const ir = c["insecure-registries"];
  if (ir !== undefined && (!Array.isArray(ir) || ir.some((x) => typeof x !== "string")))
    throw bad("insecure-registries", "an array of strings");
  for (const k of ["max-concurrent-downloads", "max-concurrent-uploads"]) {
    const v = c[k];
    if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 100))
      throw bad(k, "an integer from 1 to 100");
  }
  if (c["certs-dir"] !== undefined && typeof c["certs-dir"] !== "string") throw bad("certs-dir", "a string");
  if (c["keep-compressed-layers"] !== undefined && typeof c["keep-compressed-layers"] !== "boolean")
    throw bad("keep-compressed-layers", "a boolean");
  return c as DistributionConfig;
}

/** `$STRATA_CONFIG`, else /etc/strata/config.json as root, else `$XDG_CONFIG_HOME/strata/config.json`. */
export function strataConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATA_CONFIG) return path.resolve(env.STRATA_CONFIG);
  if (process.getuid?.() === 0) return "/etc/strata/config.json";
  return path.join(env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config"), "strata", "config.json");
}

export async function loadDistributionConfig(file: string): Promise<DistributionConfig> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (e) {
    if (isErrno(e, "ENOENT")) return {};
    throw new StrataError("INVALID_ARGUMENT", `cannot read ${file}: ${errorMessage(e)}`, { cause: e });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new StrataError("INVALID_JSON", `${file}: ${errorMessage(e)}`, { cause: e });
  }
  return validateConfig(data, file);
}

export interface DistributionOptions {
  env?: NodeJS.ProcessEnv;
}

export interface PullOptions {
  allTags?: boolean;
  /** `os/arch[/variant]`; the host's by default. */
  platform?: string;
  maxConcurrentDownloads?: number;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface PullResult {
  /** What Docker prints last: the canonical reference (`docker.io/library/busybox:latest`). */
  canonical: string;
  images: { id: Digest; digest: Digest; reference: string }[];
}

export interface PushOptions {
  allTags?: boolean;
  maxConcurrentUploads?: number;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface PushResult {
  /** `repository:tag` pushed, with the manifest digest and size. */
  pushed: { tag: string; digest: Digest; size: number }[];
  canonical: string;
}

export interface LoginResult {
  /** The key the credentials are stored under (`https://index.docker.io/v1/` or `host:port`). */
  serverAddress: string;
  /** Where they went: a helper, or the config file in plain text (Docker warns then). */
  storedIn: { helper: string } | { file: string };
}

export interface SearchOptions {
  limit?: number;
  filters?: Record<string, string[]>;
  signal?: AbortSignal;
}

/** docker/cli's splitReposSearchTerm: the index a search term names, and the rest. */
export function splitSearchTerm(term: string): { index: string; remote: string } {
  const slash = term.indexOf("/");
  if (slash < 0) return { index: "docker.io", remote: term };
  const first = term.slice(0, slash);
  if (!first.includes(".") && !first.includes(":") && first !== "localhost")
    return { index: "docker.io", remote: term };
  const index = first === "index.docker.io" ? "docker.io" : first;
  return { index, remote: term.slice(slash + 1) };
}

/** The server a `login`/`logout` argument names: Docker Hub's index server by default. */
export async function loginServer(server: string | undefined): Promise<{ key: string; domain: string }> {
  const { convertToHostname } = await rc();
  if (
    !server ||
    server === "docker.io" ||
    server === "index.docker.io" ||
    convertToHostname(server) === "index.docker.io"
  )
    return { key: DOCKER_HUB_INDEX_SERVER, domain: "docker.io" };
  const host = convertToHostname(server);
  return { key: host, domain: host };
}

/**
 * pull, push, login, logout and search: the policy that ties the registry client to the
 * store. A pull stages every layer (verified compressed bytes streamed through gunzip into
 * the store's ingest, the compressed blob kept beside them) and commits only when the whole
 * image verified; a push compresses what has no compressed form yet and remembers it.
 */
export class DistributionService {
  private readonly env: NodeJS.ProcessEnv;
  private configPromise?: Promise<DistributionConfig>;

  constructor(
    readonly store: Store,
    readonly images: ImageService,
    opts: DistributionOptions = {},
  ) {
    this.env = opts.env ?? process.env;
  }

  config(): Promise<DistributionConfig> {
    this.configPromise ??= loadDistributionConfig(strataConfigFile(this.env));
    return this.configPromise;
  }

  /** Docker's config.json (credentials), from `$DOCKER_CONFIG` or ~/.docker. */
  async dockerConfig(): Promise<DockerConfig> {
    const { DockerConfig, dockerConfigDir } = await rc();
    return new DockerConfig(dockerConfigDir(this.env), { env: this.env });
  }

  private async client(extra: Partial<ClientOptions> = {}): Promise<Client> {
    const cfg = await this.config();
    const { Client } = await rc();
    return new Client({
      insecureRegistries: cfg["insecure-registries"],
      certsDir: cfg["certs-dir"],
      maxConcurrentDownloads: cfg["max-concurrent-downloads"],
      maxConcurrentUploads: cfg["max-concurrent-uploads"],
      credentials: await this.dockerConfig(),
      ...Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)),
    });
  }

  /** `pull NAME[:TAG|@DIGEST]` and `pull -a NAME`. */
  async pull(name: string, opts: PullOptions = {}): Promise<PullResult> {
    const emit = opts.onProgress ?? (await rc()).noProgress;
    let ref = parseRef(name);
    if (opts.allTags && (ref.tag || ref.digest))
      throw new StrataError("INVALID_ARGUMENT", "tag can't be used with --all-tags/-a");
    if (!opts.allTags) {
      if (isNameOnly(ref)) ref = withDefaultTag(ref);
      if (ref.tag && ref.digest) ref = { domain: ref.domain, path: ref.path, digest: ref.digest };
    }
    const platform = opts.platform ? parsePlatform(opts.platform) : undefined;
    const cfg = await this.config();
    const client = await this.client({
      maxConcurrentDownloads: opts.maxConcurrentDownloads,
      onProgress: emit,
    });
    try {
      const repo = client.registry(ref.domain).repository(ref.path);
      const targets: Reference[] = opts.allTags
        ? (await repo.tags({ signal: opts.signal }))
            .sort()
            .map((t) => ({ domain: ref.domain, path: ref.path, tag: t }))
        : [ref];
      if (opts.allTags && targets.length === 0)
        throw new StrataError("MANIFEST_NOT_FOUND", `repository ${familiarName(ref)} has no tags`);
      let updated = false;
      const images: PullResult["images"] = [];
      for (const target of targets) {
        const image = await (await rc()).resolveImage(repo, target, {
          platform,
          platformExplicit: platform !== undefined,
          signal: opts.signal,
        });
        // Docker says it once the manifest is in hand (a missing tag prints only the error).
        emit({ id: target.digest ?? target.tag, status: `Pulling from ${ref.path}` });
        const r = await this.pullImage(image, target, {
          concurrency: client.opts.maxConcurrentDownloads,
          keepCompressed: cfg["keep-compressed-layers"] ?? false,
          emit,
          signal: opts.signal,
        });
        emit({ status: `Digest: ${image.digest}` });
        updated ||= r.updated;
        images.push({ id: image.id, digest: image.digest, reference: referenceString(target) });
      }
      const shown = familiarString(ref);
      emit({
        status: updated
          ? `Status: Downloaded newer image for ${shown}`
          : `Status: Image is up to date for ${shown}`,
      });
      return { canonical: referenceString(ref), images };
    } finally {
      await client.close();
    }
  }

  /** Fetch what is missing of one image, verify all of it, then commit and record it. */
  private async pullImage(
    image: RemoteImage,
    target: Reference,
    o: { concurrency: number; keepCompressed: boolean; emit: ProgressSink; signal?: AbortSignal },
  ): Promise<{ updated: boolean }> {
    const store = this.store;
    const repoName = repositoryName(target);
    const group = store.content.newGroup();
    const before = await store.meta.read();
    const sink = new StoreLayerSink(store, before, group, o.keepCompressed, repoName);
    try {
      await (await rc()).pullLayers(image, sink, {
        concurrency: o.concurrency,
        onProgress: o.emit,
        signal: o.signal,
      });
      const layers: LayerRecord[] = image.layers.map((l) => {
        const variant: CompressedVariant = {
          mediaType: l.descriptor.mediaType,
          digest: l.descriptor.digest as Digest,
          size: l.descriptor.size,
          sources: [repoName],
        };
        const rec = sink.records.get(l.diffId) ?? before.layers[l.diffId];
        if (!rec) throw new StrataError("INTERNAL", `layer ${l.diffId} neither pulled nor present`);
        const keep = l.compression === "none" ? [] : [variant];
        return { ...rec, compressed: [...(rec.compressed ?? []), ...keep] };
      });
      await sink.commit();
      const repoDigest = `${repoName}@${image.digest}`;
      const tag = target.tag
        ? referenceString({ domain: target.domain, path: target.path, tag: target.tag })
        : undefined;
      const now = await store.meta.read();
      const updated = tag
        ? now.tags[tag] !== image.id
        : !now.images[image.id]?.repoDigests.includes(repoDigest);
      await store.putImage({
        config: image.config,
        layers,
        tags: tag ? [tag] : [],
        repoDigests: [repoDigest],
      });
      return { updated };
    } finally {
      await sink.discard();
    }
  }

  /** `push NAME[:TAG]` and `push -a NAME`. */
  async push(name: string, opts: PushOptions = {}): Promise<PushResult> {
    const emit = opts.onProgress ?? (await rc()).noProgress;
    let ref = parseRef(name);
    if (ref.digest) throw new StrataError("INVALID_ARGUMENT", "cannot push a digest reference");
    if (opts.allTags && ref.tag)
      throw new StrataError("INVALID_ARGUMENT", "tag can't be used with --all-tags/-a");
    if (!opts.allTags && isNameOnly(ref)) ref = withDefaultTag(ref);
    const repoName = repositoryName(ref);
    const doc = await this.store.meta.read();
    const tags = Object.keys(doc.tags)
      .filter((t) => {
        const r = parseNormalizedNamed(t);
        return repositoryName(r) === repoName && (opts.allTags || r.tag === ref.tag);
      })
      .sort();
    if (!tags.length)
      throw new StrataError("IMAGE_NOT_FOUND", `An image does not exist locally with the tag: ${repoName}`);
    emit({ status: `The push refers to repository [${repoName}]` });
    // Every repository of this registry known to hold one of the layers: mount candidates.
    const mountFrom = new Set<string>();
    for (const t of tags) {
      const img = doc.images[doc.tags[t]!];
      if (!img) continue;
      const cfg = await this.localConfig(img.id);
      for (const diffId of diffIdsOf(cfg.value))
        for (const v of doc.layers[diffId]?.compressed ?? [])
          for (const s of v.sources ?? []) {
            const { domain, path: p } = splitDomain(s);
            if (domain === ref.domain && p !== ref.path) mountFrom.add(p);
          }
    }
    const client = await this.client({ maxConcurrentUploads: opts.maxConcurrentUploads, onProgress: emit });
    const pushed: PushResult["pushed"] = [];
    try {
      const repo = client
        .registry(ref.domain)
        .repository(ref.path, { push: true, mountFrom: [...mountFrom].slice(0, 10) });
      for (const t of tags) {
        const tag = parseNormalizedNamed(t).tag!;
        const id = doc.tags[t]!;
        const config = await this.localConfig(id);
        const layers: PushLayer[] = diffIdsOf(config.value).map((d) => this.pushLayer(doc, d, repoName));
        const learnt: PushedLayer[] = [];
        try {
          const r = await (await rc()).pushImage(
            repo,
            { config, layers, tag },
            {
              concurrency: client.opts.maxConcurrentUploads,
              chunkSize: client.opts.chunkSize,
              onProgress: emit,
              onLayer: (p) => learnt.push(p),
              signal: opts.signal,
            },
          );
          const repoDigest = `${repoName}@${r.digest}`;
          // Nothing to write when a push changed nothing (every layer was there, same digest).
          if (!doc.images[id]?.repoDigests.includes(repoDigest))
            await this.store.addRepoDigest(id, repoDigest);
          emit({ status: `${tag}: digest: ${r.digest} size: ${r.size}` });
          pushed.push({ tag, digest: r.digest, size: r.size });
        } finally {
          // What was learnt survives a failed push: the next one skips the compression.
          const known = (p: PushedLayer) =>
            doc.layers[p.diffId]?.compressed?.some(
              (v) => v.digest === p.descriptor.digest && v.sources?.includes(repoName),
            ) ?? false;
          await this.store.recordLayerVariants(
            learnt
              .filter((p) => !known(p))
              .map((p) => ({
                diffId: p.diffId,
                variant: {
                  mediaType: p.descriptor.mediaType,
                  digest: p.descriptor.digest as Digest,
                  size: p.descriptor.size,
                  sources: [repoName],
                },
              })),
          );
        }
      }
      return { pushed, canonical: referenceString(ref) };
    } finally {
      await client.close();
    }
  }

  /**
   * An image's config from the store. It was validated when it came in and the blob is named
   * by its digest, so it is only parsed here (the CLI does not load the schema validator).
   */
  private async localConfig(id: Digest): Promise<Parsed<ImageConfig>> {
    const raw = await this.store.content.readSmall(id);
    return { value: JSON.parse(raw.toString("utf8")) as ImageConfig, raw, digest: id };
  }

  /** Describe one stored layer to the push primitive: its known compressed forms and openers. */
  private pushLayer(doc: MetaDoc, diffId: Digest, repoName: string): PushLayer {
    const rec = doc.layers[diffId];
    const known: KnownBlob[] = (rec?.compressed ?? [])
      .filter((v) => layerCompression(v.mediaType) === "gzip")
      .sort(
        (a, b) =>
          Number(b.sources?.includes(repoName) ?? false) - Number(a.sources?.includes(repoName) ?? false),
      )
      .map((v) => ({ digest: v.digest, size: v.size, mediaType: v.mediaType, sources: v.sources }));
    const content = this.store.content;
    return {
      diffId,
      size: rec?.size ?? 0,
      known,
      openKnown: async (d) =>
        (await content.has(d)) ? ((await content.open(d)) as unknown as Readable) : undefined,
      openTar: async () => (await content.open(diffId)) as unknown as Readable,
    };
  }

  /**
   * `login [SERVER]`: check the credentials against the registry's `/v2/` (and its token
   * service), then store them like docker does. Without a username and password the stored
   * ones are checked ("Authenticating with existing credentials...").
   */
  async login(
    server: string | undefined,
    auth: AuthConfig | undefined,
    opts: { signal?: AbortSignal } = {},
  ): Promise<LoginResult> {
    const { key, domain } = await loginServer(server);
    const config = await this.dockerConfig();
    const creds = auth ?? (await config.get(key));
    if (!creds)
      throw new StrataError(
        "UNAUTHENTICATED",
        `no stored credentials for ${key}: give --username and a password`,
      );
    const client = await this.client();
    let identityToken: string | undefined;
    try {
      ({ identityToken } = await client.registry(domain, creds).checkLogin(opts.signal));
    } finally {
      await client.close();
    }
    // A registry that hands out a refresh token gets that kept instead of the password, as docker does.
    const keep = auth && identityToken ? { username: auth.username, identityToken } : auth;
    const storedIn = keep ? await config.store(key, keep) : { file: config.file };
    return { serverAddress: key, storedIn };
  }

  /** Are credentials for this server (Docker Hub by default) stored in Docker's config or a helper? */
  async hasStoredCredentials(server: string | undefined): Promise<boolean> {
    return (await (await this.dockerConfig()).get((await loginServer(server)).key)) !== undefined;
  }

  /** `logout [SERVER]`: the server as docker names it, and whether credentials were removed. */
  async logout(server: string | undefined): Promise<{ serverAddress: string; removed: boolean }> {
    const { key } = await loginServer(server);
    const removed = await (await this.dockerConfig()).erase(key);
    return { serverAddress: key, removed };
  }

  /** `search TERM`: Docker Hub's /v1/search, or the registry the term names. */
  async search(term: string, opts: SearchOptions = {}): Promise<SearchResult[]> {
    const limit = opts.limit ?? 25;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      throw new StrataError("INVALID_ARGUMENT", `limit ${limit} is outside the range of [1, 100]`);
    const filters = opts.filters ?? {};
    for (const [k, vs] of Object.entries(filters)) {
      if (!["stars", "is-official", "is-automated"].includes(k))
        throw new StrataError("INVALID_ARGUMENT", `invalid filter '${k}'`);
      for (const v of vs) {
        if (k === "stars" && !/^\d+$/.test(v))
          throw new StrataError("INVALID_ARGUMENT", `invalid filter 'stars=${v}'`);
        if (k !== "stars" && !["true", "false", "1", "0"].includes(v.toLowerCase()))
          throw new StrataError("INVALID_ARGUMENT", `invalid filter '${k}=${v}'`);
      }
    }
    const { index, remote } = splitSearchTerm(term);
    const q =
      index === "docker.io" && remote.startsWith("library/") ? remote.slice("library/".length) : remote;
    const client = await this.client();
    try {
      const results = await (await rc()).searchIndex(client.registry(index), q, limit, {
        signal: opts.signal,
      });
      const minStars = Math.max(0, ...(filters.stars ?? []).map(Number));
      const bool = (vs: string[] | undefined) =>
        vs?.length ? ["true", "1"].includes(vs[vs.length - 1]!.toLowerCase()) : undefined;
      const official = bool(filters["is-official"]);
      const automated = bool(filters["is-automated"]);
      return results.filter(
        (r) =>
          r.star_count >= minStars &&
          (official === undefined || r.is_official === official) &&
          (automated === undefined || r.is_automated === automated),
      );
    } finally {
      await client.close();
    }
  }
}

function parseRef(name: string): Reference {
  try {
    return parseNormalizedNamed(name);
  } catch (e) {
    if (
      e instanceof StrataError &&
      e.code === "INVALID_REFERENCE" &&
      !e.message.startsWith("invalid reference format")
    )
      throw new StrataError("INVALID_REFERENCE", `invalid reference format: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Bytes written to several writables in order, each chunk released only when every live
 * target took it (backpressure from the slowest). A target that fails is dropped and its
 * error kept, while the source is still read to its end: a corrupt download must be told
 * apart from a bad gzip stream, and only the source's own digest check can do that.
 */
class Fanout extends Writable {
  readonly failed = new Map<Writable, Error>();

  constructor(private readonly targets: Writable[]) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    // Network reads come in pieces of 64 KiB at most. Each write to gunzip is a trip to the
    // thread pool and back, one after the other: whole MiBs make those trips 16x fewer.
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < Fanout.BATCH) {
      cb();
      return;
    }
    this.flushPending(cb);
  }

  private static readonly BATCH = 1 << 20;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private flushPending(cb: (e?: Error | null) => void): void {
    if (this.pendingBytes === 0) {
      cb();
      return;
    }
    const chunk =
      this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const live = this.targets.filter((t) => !this.failed.has(t) && !t.destroyed);
    if (live.length === 0) {
      cb();
      return;
    }
    let pending = live.length;
    for (const t of live)
      t.write(chunk, (e) => {
        if (e) this.failed.set(t, e);
        if (--pending === 0) cb();
      });
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.flushPending((e) => {
      for (const t of this.targets) if (!this.failed.has(t) && !t.destroyed) t.end();
      cb(e);
    });
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    for (const t of this.targets) if (!t.writableFinished) t.destroy(err ?? new Error("aborted"));
    cb(err);
  }
}

/**
 * The store side of a pull: has() asks the metadata read at the start; write() streams the
 * verified compressed bytes into two staged files at once — the uncompressed tar through
 * gunzip, hashed to its diff ID and scanned for hostile entries, and (optionally) the
 * compressed blob itself. Nothing is visible until commit().
 */
class StoreLayerSink implements LayerSink {
  readonly records = new Map<Digest, LayerRecord>();
  private readonly staged: StagedBlob[] = [];

  constructor(
    private readonly store: Store,
    private readonly doc: MetaDoc,
    private readonly group: string,
    private readonly keepCompressed: boolean,
    private readonly repoName: string,
  ) {}

  async has(l: RemoteLayer): Promise<boolean> {
    return this.doc.layers[l.diffId] !== undefined && (await this.store.content.has(l.diffId));
  }

  async write(l: RemoteLayer, compressed: Readable, opts: { signal: AbortSignal }): Promise<void> {
    const content = this.store.content;
    const what = `layer ${l.shortId}`;
    const scanner = new TarScanner({ what });
    const desc = l.descriptor;
    if (l.compression === "none") {
      if (desc.digest !== l.diffId)
        throw new StrataError(
          "DIGEST_MISMATCH",
          `${what}: uncompressed layer ${desc.digest} is not the config's diff ID ${l.diffId}`,
        );
      const plain = await content.stage(compressed, {
        expected: { digest: l.diffId, size: desc.size },
        tees: [scanner],
        what,
        group: this.group,
        signal: opts.signal,
      });
      this.staged.push(plain);
      this.records.set(l.diffId, {
        diffId: l.diffId,
        size: plain.size,
        contentSize: scanner.result().contentSize,
      });
      return;
    }
    if (l.compression !== "gzip")
      throw new StrataError(
        "UNSUPPORTED",
        `${what}: ${l.compression ?? desc.mediaType} compressed layers are not supported`,
      );
    // 1 MiB output chunks: 64x fewer callbacks, writes and hash calls than zlib's default 16 KiB.
    const gunzip = createGunzip({ chunkSize: 1024 * 1024 });
    const targets: Writable[] = [gunzip];
    const stages: Promise<StagedBlob>[] = [
      content.stage(gunzip, {
        expected: { digest: l.diffId },
        tees: [scanner],
        what: `${what} (uncompressed)`,
        group: this.group,
        signal: opts.signal,
      }),
    ];
    if (this.keepCompressed) {
      const pass = new PassThrough({ highWaterMark: 1 << 20 });
      targets.push(pass);
      stages.push(
        content.stage(pass, {
          expected: { digest: desc.digest as Digest, size: desc.size },
          what,
          group: this.group,
          signal: opts.signal,
        }),
      );
    }
    const fanout = new Fanout(targets);
    const settled = await Promise.allSettled([pipeline(compressed, fanout), ...stages]);
    const blobs = settled.slice(1).flatMap((s) => (s.status === "fulfilled" ? [s.value as StagedBlob] : []));
    this.staged.push(...blobs);
    // The source's error (a digest mismatch) explains more than a stage's "premature close".
    const failure = settled.find((s) => s.status === "rejected") as PromiseRejectedResult | undefined;
    if (failure) {
      const sourceFailure =
        settled[0]!.status === "rejected" ? (settled[0] as PromiseRejectedResult).reason : undefined;
      throw sourceFailure ?? failure.reason;
    }
    const plain = blobs[0]!;
    const rec: LayerRecord = {
      diffId: l.diffId,
      size: plain.size,
      contentSize: scanner.result().contentSize,
    };
    if (this.keepCompressed)
      rec.compressed = [
        {
          mediaType: desc.mediaType,
          digest: desc.digest as Digest,
          size: desc.size,
          sources: [this.repoName],
        },
      ];
    this.records.set(l.diffId, rec);
  }

  /** Make every staged blob visible (rename into blobs/). */
  async commit(): Promise<void> {
    for (const b of this.staged) await b.commit();
  }

  /** Drop whatever was staged and not committed, including files of writers that never settled. */
  async discard(): Promise<void> {
    for (const b of this.staged) await b.discard().catch(() => {});
    await this.store.content.discardGroup(this.group);
  }
}
