import { createHash } from "node:crypto";
import { setMaxListeners } from "node:events";
import { type Readable, Transform } from "node:stream";
import {
  type Descriptor,
  type Digest,
  digestOf,
  type ImageConfig,
  layerCompression,
  MediaType,
  type Parsed,
} from "../../oci/index.js";
import { splitDomain } from "../../reference/index.js";
import { isStrataError, StrataError } from "../../util/index.js";
import { DeflatePool, parallelGzip } from "./gzip.js";
import { Limiter } from "./limiter.js";
import { noProgress, type ProgressSink, ProgressThrottle, update } from "./progress.js";
import type { RepositoryClient } from "./registry.js";
import { isTransientNetworkError, sleep } from "./transport.js";

/** A compressed form of a layer seen before: pushed or pulled, maybe stored locally. */
export interface KnownBlob {
  digest: Digest;
  size: number;
  mediaType: string;
  /** Full repository names (`host/path`) that are known to hold this blob. */
  sources?: string[];
}

/** One layer to push, as the consumer (engine/) describes it from its store. */
export interface PushLayer {
  diffId: Digest;
  /** Bytes of the uncompressed tar (the `Pushing` progress total when compressing now). */
  size: number;
  /** Compressed forms known for this layer, most useful first. */
  known: KnownBlob[];
  /** Open a known compressed form whose bytes are stored locally; undefined when they are not. */
  openKnown(digest: Digest): Promise<Readable | undefined>;
  /** Open the uncompressed tar, to be compressed now. The caller of openTar consumes or destroys it. */
  openTar(): Promise<Readable>;
}

export type PushOutcome = "exists" | "mounted" | "pushed";

export interface PushedLayer {
  diffId: Digest;
  /** The descriptor written into the manifest (Docker gzip media type). */
  descriptor: Descriptor;
  outcome: PushOutcome;
  /** The blob was compressed during this push (its digest is new to the consumer). */
  compressedNow: boolean;
  /** Mounted from this repository path. */
  mountedFrom?: string;
}

export interface PushImageInput {
  config: Parsed<ImageConfig>;
  /** In rootfs.diff_ids order. */
  layers: PushLayer[];
  /** The tag to put the manifest under; absent pushes by digest only. */
  tag?: string;
}

export interface PushImageOptions {
  /** Uploads at once (Docker's max-concurrent-uploads, 5). */
  concurrency: number;
  /** Bytes per PATCH for blobs compressed on the fly (raised to the registry's OCI-Chunk-Min-Length). */
  chunkSize: number;
  /**
   * The compressor for layers without a usable compressed form: by default gzip level 1 on
   * every core (ParallelGzip), with incompressible blocks stored.
   */
  compress?: () => Transform;
  onProgress?: ProgressSink;
  /** Worker threads for the default compressor; pushImage makes one for its own use when absent. */
  deflatePool?: DeflatePool;
  /** Told as soon as a layer is done (so the consumer can record what it learnt). */
  onLayer?: (l: PushedLayer) => void;
  signal?: AbortSignal;
}

export interface PushImageResult {
  digest: Digest;
  size: number;
  manifest: Buffer;
  mediaType: string;
  layers: PushedLayer[];
}

/** Docker's short ID of a layer in push output: the diff ID's first 12 hex digits. */
export function pushId(diffId: Digest): string {
  return diffId.slice(diffId.indexOf(":") + 1, diffId.indexOf(":") + 13);
}

/** The most attempts Docker makes to mount a layer from other repositories. */
const MAX_MOUNT_ATTEMPTS = 3;
/** Tries per layer upload when the connection drops for good mid-way (the upload restarts). */
const LAYER_ATTEMPTS = 3;

/**
 * Push an image: every layer at once up to the limit (skipped when the repository has a
 * known compressed form, mounted from another repository of the same registry when one is
 * known to hold it, else uploaded — monolithic from stored bytes, chunked while compressing),
 * then the config, then a Docker schema 2 manifest under the tag. Reports Docker's
 * statuses: `Preparing`, `Waiting`, `Pushing`, `Pushed`, `Layer already exists`,
 * `Mounted from …`.
 */
export async function pushImage(
  repo: RepositoryClient,
  input: PushImageInput,
  opts: PushImageOptions,
): Promise<PushImageResult> {
  const ownPool = !opts.compress && !opts.deflatePool ? new DeflatePool() : undefined;
  if (ownPool) opts = { ...opts, deflatePool: ownPool };
  const emit = opts.onProgress ?? noProgress;
  const abort = new AbortController();
  // Every request and stream of the operation listens on it: more than node's default of 10.
  setMaxListeners(256, abort.signal);
  const onOuterAbort = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  try {
    // Docker lists layers from the top one down.
    const unique = new Map<string, PushLayer>();
    for (const l of [...input.layers].reverse()) if (!unique.has(l.diffId)) unique.set(l.diffId, l);
    for (const l of unique.values()) emit(update(pushId(l.diffId), "Preparing"));
    const limiter = new Limiter(opts.concurrency);
    const results = new Map<string, PushedLayer>();
    let first: unknown;
    const jobs = [...unique.values()].map((l) => {
      if (limiter.full()) emit(update(pushId(l.diffId), "Waiting"));
      return limiter
        .run(async () => {
          if (abort.signal.aborted) throw abort.signal.reason;
          const r = await pushLayer(repo, l, opts, emit, abort.signal);
          results.set(l.diffId, r);
          opts.onLayer?.(r);
        })
        .catch((e) => {
          first ??= e;
          abort.abort(e);
        });
    });
    await Promise.all(jobs);
    if (first !== undefined) throw first;

    const cfg = input.config;
    if ((await repo.blobExists(cfg.digest, { signal: abort.signal })) === undefined) {
      const session = await repo.startUpload({ signal: abort.signal });
      if (session.mounted)
        throw new StrataError("INTERNAL", "upload session mounted without a mount request");
      await repo.finishUpload(
        session.location,
        cfg.digest,
        { data: cfg.raw, size: cfg.raw.length },
        { signal: abort.signal },
      );
    }
    const layers = input.layers.map((l) => results.get(l.diffId)!);
    const manifestDoc = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, size: cfg.raw.length, digest: cfg.digest },
      layers: layers.map((l) => ({
        mediaType: l.descriptor.mediaType,
        size: l.descriptor.size,
        digest: l.descriptor.digest,
      })),
    };
    // docker/distribution's schema2 manifests are json.MarshalIndent(m, "", "   ").
    const manifest = Buffer.from(JSON.stringify(manifestDoc, null, 3));
    const digest = await repo.putManifest(
      input.tag ?? digestOf(manifest),
      manifest,
      MediaType.DockerManifest,
      {
        signal: abort.signal,
      },
    );
    return { digest, size: manifest.length, manifest, mediaType: MediaType.DockerManifest, layers };
  } finally {
    opts.signal?.removeEventListener("abort", onOuterAbort);
    await ownPool?.close();
  }
}

function dockerLayerType(mt: string): string {
  const c = layerCompression(mt);
  if (c === "gzip") return MediaType.DockerLayerGzip;
  if (c === "none") return MediaType.DockerLayer;
  return mt;
}

async function pushLayer(
  repo: RepositoryClient,
  l: PushLayer,
  opts: PushImageOptions,
  emit: ProgressSink,
  signal: AbortSignal,
): Promise<PushedLayer> {
  const id = pushId(l.diffId);
  const gz = l.known.filter((k) => layerCompression(k.mediaType) === "gzip");
  const here = `${repo.registry.domain}/${repo.path}`;
  // Forms this repository is known to hold first, then the others (it may have them too).
  const ordered = [
    ...gz.filter((k) => k.sources?.includes(here)),
    ...gz.filter((k) => !k.sources?.includes(here)),
  ].slice(0, 4);
  const describe = (k: KnownBlob, size = k.size): Descriptor =>
    ({ mediaType: dockerLayerType(k.mediaType), digest: k.digest, size }) as Descriptor;
  for (const k of ordered) {
    const size = await repo.blobExists(k.digest, { signal });
    if (size !== undefined) {
      emit(update(id, "Layer already exists"));
      return {
        diffId: l.diffId,
        descriptor: describe(k, size || k.size),
        outcome: "exists",
        compressedNow: false,
      };
    }
  }
  let session: { location: string; chunkMin: number } | undefined;
  const candidates: { k: KnownBlob; from: string }[] = [];
  for (const k of gz)
    for (const s of k.sources ?? []) {
      const { domain, path } = splitDomain(s);
      if (domain === repo.registry.domain && path !== repo.path) candidates.push({ k, from: path });
    }
  for (const { k, from } of candidates.slice(0, MAX_MOUNT_ATTEMPTS)) {
    try {
      const r = await repo.startUpload({ mount: { digest: k.digest, from }, signal });
      if (r.mounted) {
        emit(update(id, `Mounted from ${from}`));
        return {
          diffId: l.diffId,
          descriptor: describe(k),
          outcome: "mounted",
          compressedNow: false,
          mountedFrom: from,
        };
      }
      session ??= r;
    } catch (e) {
      // A mount the registry refuses (no access to the source) is not fatal: upload instead.
      if (!isStrataError(e) || !["PERMISSION_DENIED", "UNAUTHENTICATED", "REGISTRY_ERROR"].includes(e.code))
        throw e;
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await upload(repo, l, gz, session, opts, emit, signal);
      emit(update(id, "Pushed"));
      return r;
    } catch (e) {
      session = undefined;
      const cause = (e as { cause?: unknown }).cause ?? e;
      const transient =
        isTransientNetworkError(cause) || (isStrataError(e) && e.code === "REGISTRY_UNAVAILABLE");
      if (!transient || attempt >= LAYER_ATTEMPTS || signal.aborted) throw e;
      emit(update(id, `Retrying in ${attempt} second${attempt === 1 ? "" : "s"}`));
      await sleep(attempt * 1000, signal);
    }
  }
}

async function upload(
  repo: RepositoryClient,
  l: PushLayer,
  gz: KnownBlob[],
  existingSession: { location: string; chunkMin: number } | undefined,
  opts: PushImageOptions,
  emit: ProgressSink,
  signal: AbortSignal,
): Promise<PushedLayer> {
  const id = pushId(l.diffId);
  const session =
    existingSession ??
    (await (async () => {
      const r = await repo.startUpload({ signal });
      if (r.mounted) throw new StrataError("INTERNAL", "upload session mounted without a mount request");
      return r;
    })());
  // A compressed form stored locally: send it as it is, in one PUT.
  for (const k of gz) {
    let opened = await l.openKnown(k.digest);
    if (!opened) continue;
    const throttle = new ProgressThrottle(emit, id, "Pushing", k.size);
    await repo
      .finishUpload(
        session.location,
        k.digest,
        {
          size: k.size,
          data: async () => {
            // A replay (after a redirect) reads the blob again.
            const s = opened ?? (await l.openKnown(k.digest));
            opened = undefined;
            if (!s)
              throw new StrataError("BLOB_NOT_FOUND", `layer blob ${k.digest} disappeared during the push`);
            let n = 0;
            const counter = new Transform({
              highWaterMark: 1 << 20,
              transform(c: Buffer, _enc, cb) {
                throttle.update((n += c.length));
                cb(null, c);
              },
            });
            s.on("error", (e) => counter.destroy(e));
            return s.pipe(counter);
          },
        },
        { signal },
      )
      .finally(() => opened?.destroy());
    return {
      diffId: l.diffId,
      descriptor: { mediaType: dockerLayerType(k.mediaType), digest: k.digest, size: k.size } as Descriptor,
      outcome: "pushed",
      compressedNow: false,
    };
  }
  // Compress now, hashing as we go, and send the output in chunks as it comes.
  const tar = await l.openTar();
  const compressor = opts.compress ? opts.compress() : parallelGzip({ pool: opts.deflatePool });
  const throttle = new ProgressThrottle(emit, id, "Pushing", l.size);
  let read = 0;
  tar.on("data", (c: Buffer) => throttle.update((read += c.length)));
  tar.on("error", (e) => compressor.destroy(e));
  tar.pipe(compressor);
  const onAbort = () => {
    tar.destroy(signal.reason);
    compressor.destroy(signal.reason);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const chunkSize = Math.max(opts.chunkSize, session.chunkMin);
    const hash = createHash("sha256");
    let size = 0;
    let location = session.location;
    let offset = 0;
    let inflight: Promise<void> | undefined;
    const send = (chunk: Buffer[], length: number) =>
      (async () => {
        location = await sendChunk(repo, location, chunk, length, offset, signal);
        offset += length;
      })();
    // A chunk is the compressor's output buffers as they are (written with writev, never joined).
    let parts: Buffer[] = [];
    let partLen = 0;
    for await (const c of compressor as AsyncIterable<Buffer>) {
      hash.update(c);
      size += c.length;
      parts.push(c);
      partLen += c.length;
      while (partLen >= chunkSize) {
        // Exactly chunkSize bytes per PATCH; the rest starts the next chunk.
        const over = partLen - chunkSize;
        const last = parts[parts.length - 1]!;
        const chunk = over > 0 ? [...parts.slice(0, -1), last.subarray(0, last.length - over)] : parts;
        parts = over > 0 ? [last.subarray(last.length - over)] : [];
        partLen = over;
        // One chunk in flight while the next one fills.
        await inflight;
        inflight = send(chunk, chunkSize);
        inflight.catch(() => {});
      }
    }
    await inflight;
    if (partLen > 0) await send(parts, partLen);
    const digest = `sha256:${hash.digest("hex")}` as Digest;
    await repo.finishUpload(location, digest, undefined, { signal });
    return {
      diffId: l.diffId,
      descriptor: { mediaType: MediaType.DockerLayerGzip, digest, size } as Descriptor,
      outcome: "pushed",
      compressedNow: true,
    };
  } finally {
    signal.removeEventListener("abort", onAbort);
    tar.destroy();
    compressor.destroy();
  }
}

/**
 * PATCH one chunk; when the connection drops, ask the session where it stands and resend
 * (or go on, when the registry got the chunk after all). Bounded like every retry.
 */
async function sendChunk(
  repo: RepositoryClient,
  location: string,
  chunk: Buffer[],
  length: number,
  offset: number,
  signal: AbortSignal,
): Promise<string> {
  const retry = repo.registry.opts.retry;
  for (let attempt = 1; ; attempt++) {
    try {
      return await repo.patchChunk(location, chunk, offset, { signal, length });
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause ?? e;
      const transient =
        isTransientNetworkError(cause) || (isStrataError(e) && e.code === "REGISTRY_UNAVAILABLE");
      if (!transient || attempt >= retry.attempts || signal.aborted) throw e;
      const { offset: at, location: loc } = await repo.uploadOffset(location, { signal });
      if (at === offset + length) return loc;
      if (at !== offset)
        throw new StrataError(
          "REGISTRY_ERROR",
          `upload ${location}: the registry holds ${at} bytes, expected ${offset}`,
          { cause: e },
        );
      location = loc;
    }
  }
}
