import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Writable } from "node:stream";
import type { Image, Layer } from "../image/index.js";
import { type LayerIndex, TarScanner } from "../layer/index.js";
import {
  chainIds,
  type Digest,
  diffIdsOf as diffIdsOfConfig,
  type ImageConfig,
  MediaType,
  type Parsed,
  parseDigest,
  parseManifest,
} from "../oci/index.js";
import { atomicWriteFile, exists, StrataError } from "../util/index.js";
import { ContentStore } from "./content.js";
import {
  type CompressedVariant,
  type ImageRecord,
  type LayerRecord,
  layoutIndex,
  type MetaDoc,
  MetaStore,
} from "./meta.js";

export interface PutImageInput {
  config: Parsed<ImageConfig>;
  /** One record per rootfs.diff_ids entry; the blobs must already be in the store. */
  layers: LayerRecord[];
  /** Full references to point at this image. */
  tags?: string[];
  repoDigests?: string[];
}

export interface PutImageResult {
  record: ImageRecord;
  /** Image IDs that lost a tag to this one. */
  retagged: Digest[];
}

export interface RemovedBlobs {
  images: Digest[];
  /** Layer chain IDs whose last reference went (what Docker prints as Deleted: lines). */
  layers: Digest[];
  reclaimed: number;
}

/**
 * The local store: content plus image metadata, laid out as an OCI image layout.
 *
 *   <root>/oci-layout              {"imageLayoutVersion":"1.0.0"}
 *   <root>/index.json              tagged images (derived from meta/)
 *   <root>/blobs/sha256/…          configs, manifests, uncompressed layers (by diffId), compressed variants
 *   <root>/ingest/                 partial writes
 *   <root>/meta/images.json        image records, tags, layers
 */
export interface LayerIngestOptions {
  expectedDiffId?: Digest;
  what?: string;
  signal?: AbortSignal;
  tees?: Writable[];
  /**
   * For a tar Strata writes itself from entries it already knows (the builder's COPY):
   * its index and content size, so the bytes are hashed and stored without parsing the
   * tar again. Anything read from outside goes through the scanner.
   */
  known?: { index: LayerIndex; contentSize: number };
  /** stageLayer only: fsync at commit rather than before returning (see IngestOptions). */
  deferSync?: boolean;
}

export class Store {
  readonly content: ContentStore;
  readonly meta: MetaStore;

  /**
   * More GC roots (blob digests) from the layers above: the engine lists what containers
   * use, so removal and sweeps keep their images' configs and layers.
   */
  extraRoots?: () => Promise<Set<string>>;

  private constructor(readonly root: string) {
    this.content = new ContentStore(root);
    this.meta = new MetaStore(root);
  }

  static async open(root: string): Promise<Store> {
    const s = new Store(path.resolve(root));
    await fsp.mkdir(s.root, { recursive: true });
    await s.content.init();
    await s.meta.init();
    const layout = path.join(s.root, "oci-layout");
    if (!(await exists(layout))) await atomicWriteFile(layout, '{"imageLayoutVersion":"1.0.0"}');
    const index = path.join(s.root, "index.json");
    if (!(await exists(index))) await atomicWriteFile(index, layoutIndex(await s.meta.read()));
    await s.content.cleanIngest();
    return s;
  }

  /**
   * Ingest an uncompressed layer tar: hashed, scanned for hostile entries and sized in
   * one pass. Returns the record to pass to putImage.
   */
  async ingestLayer(
    tar: AsyncIterable<Buffer> | NodeJS.ReadableStream,
    opts: LayerIngestOptions = {},
  ): Promise<LayerRecord> {
    const staged = await this.stageLayer(tar, opts);
    await staged.commit();
    return staged.record;
  }

  /**
   * A layer written to the ingest area and checked, not yet a blob: `commit` makes it one
   * (with its index), `discard` removes it. For work done ahead of knowing whether it is
   * needed (the builder's COPY hashes and packs in one pass, then looks the key up).
   */
  async stageLayer(
    tar: AsyncIterable<Buffer> | NodeJS.ReadableStream,
    opts: LayerIngestOptions = {},
  ): Promise<{ record: LayerRecord; commit(): Promise<void>; discard(): Promise<void> }> {
    const scanner = opts.known
      ? undefined
      : new TarScanner({ what: opts.what ?? "layer", collectIndex: true });
    const r = await this.content.stage(tar, {
      expected: opts.expectedDiffId ? { digest: opts.expectedDiffId } : undefined,
      tees: [...(scanner ? [scanner] : []), ...(opts.tees ?? [])],
      what: opts.what ?? "layer",
      signal: opts.signal,
      deferSync: opts.deferSync,
    });
    const scan = scanner ? scanner.result() : opts.known!;
    // The index is saved now: steps that run before the commit read it (an index whose blob
    // never comes is inert).
    if (scan.index) await this.saveLayerIndex(r.digest, scan.index);
    return {
      record: { diffId: r.digest, size: r.size, contentSize: scan.contentSize },
      commit: () => r.commit(),
      discard: () => r.discard(),
    };
  }

  private layerIndexPath(diffId: Digest): string {
    return path.join(this.root, "meta", "layers", `${diffId.slice(diffId.indexOf(":") + 1)}.json`);
  }

  private async saveLayerIndex(diffId: Digest, index: LayerIndex): Promise<void> {
    await fsp.mkdir(path.join(this.root, "meta", "layers"), { recursive: true });
    await atomicWriteFile(this.layerIndexPath(diffId), JSON.stringify(index), { sync: false });
  }

  /**
   * What a layer's tree holds (directories, files, whiteouts): recorded when the layer was
   * ingested, or computed once by scanning the blob for layers that came another way.
   */
  async layerIndex(diffId: Digest): Promise<LayerIndex> {
    try {
      return JSON.parse(await fsp.readFile(this.layerIndexPath(diffId), "utf8")) as LayerIndex;
    } catch {
      const scanner = new TarScanner({ what: `layer ${diffId}`, collectIndex: true });
      const { pipeline } = await import("node:stream/promises");
      await pipeline(await this.content.open(diffId), scanner);
      const index = scanner.result().index!;
      await this.saveLayerIndex(diffId, index);
      return index;
    }
  }

  /** Record an image whose layer blobs are already committed. */
  async putImage(input: PutImageInput): Promise<PutImageResult> {
    const cfg = input.config;
    const diffIds = diffIdsOfConfig(cfg.value);
    if (diffIds.length !== input.layers.length || diffIds.some((d, i) => input.layers[i]!.diffId !== d))
      throw new StrataError(
        "INVALID_ARCHIVE",
        "image config rootfs.diff_ids do not match the image's layers",
      );
    for (const l of input.layers)
      if (!(await this.content.has(l.diffId)))
        throw new StrataError("BLOB_NOT_FOUND", `layer ${l.diffId} not found`);
    await this.content.putBytes(cfg.raw, { digest: cfg.digest });
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.raw.length },
      layers: input.layers.map((l) => ({ mediaType: MediaType.OciLayer, digest: l.diffId, size: l.size })),
    };
    const m = await this.content.putBytes(JSON.stringify(manifest));
    const now = new Date().toISOString();
    return this.meta.update((doc) => {
      const prev = doc.images[cfg.digest];
      const record: ImageRecord = {
        id: cfg.digest as Digest,
        manifest: m.digest,
        manifestSize: m.size,
        created: cfg.value.created,
        size: input.layers.reduce((n, l) => n + l.contentSize, 0),
        repoDigests: [...new Set([...(prev?.repoDigests ?? []), ...(input.repoDigests ?? [])])],
        lastTagTime: prev?.lastTagTime,
        added: prev?.added ?? now,
      };
      for (const l of input.layers) {
        const old = doc.layers[l.diffId];
        doc.layers[l.diffId] = { ...l, compressed: mergeVariants(old?.compressed, l.compressed) };
      }
      doc.images[record.id] = record;
      const retagged = new Set<Digest>();
      for (const t of input.tags ?? []) {
        const old = doc.tags[t];
        if (old && old !== record.id) retagged.add(old);
        doc.tags[t] = record.id;
        record.lastTagTime = now;
      }
      return { record, retagged: [...retagged] };
    });
  }

  /**
   * Remember compressed forms of stored layers (made by a push, or seen in a registry) under
   * the lock, merged with what is known. Layers no longer in the store are skipped.
   */
  async recordLayerVariants(entries: { diffId: Digest; variant: CompressedVariant }[]): Promise<void> {
    if (!entries.length) return;
    await this.meta.update((doc) => {
      for (const { diffId, variant } of entries) {
        const rec = doc.layers[diffId];
        if (rec) rec.compressed = mergeVariants(rec.compressed, [variant]);
      }
    });
  }

  /** Add `name@digest` to an image's RepoDigests under the lock (a push or pull recorded it). */
  async addRepoDigest(id: Digest, repoDigest: string): Promise<void> {
    await this.meta.update((doc) => {
      const rec = doc.images[id];
      if (rec && !rec.repoDigests.includes(repoDigest)) rec.repoDigests.push(repoDigest);
    });
  }

  /**
   * An image config from the store: validated when it entered, and its blob is named by
   * its digest, so reading it back needs no schema pass (the CLI's start-up cost).
   */
  async config(id: Digest): Promise<Parsed<ImageConfig>> {
    const raw = await this.content.readSmall(id);
    try {
      return { value: JSON.parse(raw.toString("utf8")) as ImageConfig, raw, digest: id };
    } catch (e) {
      throw new StrataError("STORE_CORRUPT", `image config ${id} is unreadable: ${(e as Error).message}`);
    }
  }

  /** Open an image view over the store's blobs. */
  async image(id: Digest, doc?: MetaDoc): Promise<Image & { record: ImageRecord }> {
    const meta = doc ?? (await this.meta.read());
    const record = meta.images[id];
    if (!record) throw new StrataError("IMAGE_NOT_FOUND", `No such image: ${id}`);
    const config = await this.config(record.id);
    const layers: Layer[] = diffIdsOfConfig(config.value).map((diffId) => {
      const lr = meta.layers[diffId];
      return {
        diffId,
        size: lr?.size ?? 0,
        open: () => this.content.open(diffId),
      };
    });
    return { id: record.id, config, layers, record };
  }

  async manifestOf(record: ImageRecord) {
    return parseManifest(await this.content.readSmall(record.manifest));
  }

  /**
   * Every recorded image's layers (rootfs.diff_ids), read from its config. An unreadable
   * config counts as no layers: GC must still make progress on a damaged store.
   */
  private async diffIdsByImage(doc: MetaDoc): Promise<Map<Digest, Digest[]>> {
    const out = new Map<Digest, Digest[]>();
    for (const img of Object.values(doc.images)) {
      try {
        out.set(img.id, diffIdsOfConfig((await this.config(img.id)).value));
      } catch {
        out.set(img.id, []);
      }
    }
    return out;
  }

  /** Blobs reachable from the remaining images. */
  static liveBlobs(doc: MetaDoc, configs: Map<Digest, Digest[]>): Set<string> {
    const live = new Set<string>();
    for (const c of Object.values(doc.buildCache ?? {})) {
      if (!c.diffId) continue;
      live.add(c.diffId);
      for (const v of doc.layers[c.diffId]?.compressed ?? []) live.add(v.digest);
    }
    for (const img of Object.values(doc.images)) {
      live.add(img.id);
      live.add(img.manifest);
      for (const d of configs.get(img.id) ?? []) {
        live.add(d);
        for (const v of doc.layers[d]?.compressed ?? []) live.add(v.digest);
      }
    }
    return live;
  }

  /**
   * Delete image records (inside a meta.update) and then the blobs only they used. The
   * caller has already decided policy (tags, containers); this only removes.
   */
  async removeImages(ids: Digest[]): Promise<RemovedBlobs> {
    const extra = (await this.extraRoots?.()) ?? new Set<string>();
    return this.meta.update(async (doc) => {
      const diffIdsOf = await this.diffIdsByImage(doc);
      const removed: ImageRecord[] = [];
      for (const id of ids) {
        const rec = doc.images[id];
        if (!rec) continue;
        removed.push(rec);
        delete doc.images[id];
        for (const [t, v] of Object.entries(doc.tags)) if (v === id) delete doc.tags[t];
      }
      const live = Store.liveBlobs(doc, diffIdsOf);
      for (const d of extra) {
        live.add(d);
        for (const v of doc.layers[d]?.compressed ?? []) live.add(v.digest);
      }
      let reclaimed = 0;
      const deletedLayers: Digest[] = [];
      for (const rec of removed) {
        const diffIds = diffIdsOf.get(rec.id) ?? [];
        const chains = chainIds(diffIds);
        const candidates: string[] = [rec.id, rec.manifest];
        diffIds.forEach((d, i) => {
          if (!live.has(d)) {
            const lr = doc.layers[d];
            if (lr) {
              reclaimed += lr.contentSize;
              for (const v of lr.compressed ?? []) candidates.push(v.digest);
              delete doc.layers[d];
              deletedLayers.push(chains[i]!);
            }
            candidates.push(d);
          }
        });
        for (const c of candidates) if (!live.has(c)) await this.content.delete(parseDigest(c));
      }
      return { images: removed.map((r) => r.id), layers: deletedLayers, reclaimed };
    });
  }

  /**
   * Sweep blobs no image references. Blobs younger than `graceMs` are kept: a concurrent
   * load or pull may have committed them and not yet recorded its image.
   */
  async sweep(
    opts: { graceMs?: number; layerRecords?: boolean } = {},
  ): Promise<{ removed: number; reclaimed: number }> {
    const grace = opts.graceMs ?? 15 * 60_000;
    const cutoff = Date.now() - grace;
    const extra = (await this.extraRoots?.()) ?? new Set<string>();
    if (opts.layerRecords) {
      // Forget layer records nothing references any more (build-cache layers after a prune).
      await this.meta.update(async (doc) => {
        const live = new Set<string>();
        for (const c of Object.values(doc.buildCache ?? {})) if (c.diffId) live.add(c.diffId);
        for (const d of extra) live.add(d);
        for (const ds of (await this.diffIdsByImage(doc)).values()) for (const d of ds) live.add(d);
        for (const d of Object.keys(doc.layers)) if (!live.has(d)) delete doc.layers[d];
      });
    }
    return this.meta.locked(async () => {
      const doc = await this.meta.read();
      const live = Store.liveBlobs(doc, await this.diffIdsByImage(doc));
      for (const d of extra) {
        live.add(d);
        for (const v of doc.layers[d]?.compressed ?? []) live.add(v.digest);
      }
      let removed = 0;
      let reclaimed = 0;
      for await (const b of this.content.walk()) {
        if (live.has(b.digest) || b.mtimeMs > cutoff) continue;
        if (await this.content.delete(b.digest)) {
          removed++;
          reclaimed += b.size;
        }
      }
      return { removed, reclaimed };
    });
  }
}

/** Variants by digest; a later one's fields win, but the repositories known to hold it add up. */
export function mergeVariants(a?: LayerRecord["compressed"], b?: LayerRecord["compressed"]) {
  const all = [...(a ?? []), ...(b ?? [])];
  if (!all.length) return undefined;
  const seen = new Map<string, CompressedVariant>();
  for (const v of all) {
    const old = seen.get(v.digest);
    const sources = [...new Set([...(old?.sources ?? []), ...(v.sources ?? [])])];
    seen.set(v.digest, { ...v, ...(sources.length ? { sources } : {}) });
  }
  return [...seen.values()];
}
