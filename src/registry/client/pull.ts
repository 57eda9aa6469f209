import { setMaxListeners } from "node:events";
import type { Readable } from "node:stream";
import { StrataError } from "../../util/index.js";
import { Limiter, SingleFlight } from "./limiter.js";
import { noProgress, type ProgressSink, ProgressThrottle, update } from "./progress.js";
import type { RemoteImage, RemoteLayer } from "./remote.js";

/**
 * Where pulled layers go: the consumer (engine/, over the store) declares what it has and
 * takes each layer's verified compressed stream. The client knows nothing of the store.
 */
export interface LayerSink {
  /** True when the layer (by diff ID) is already stored locally: it is not downloaded. */
  has(layer: RemoteLayer): Promise<boolean>;
  /**
   * Consume one layer's compressed bytes (verified by the stream itself: a bad digest fails
   * it before it ends) and resolve once the layer is safely staged. Not visible to anyone
   * until the consumer commits the whole image.
   */
  write(layer: RemoteLayer, compressed: Readable, opts: { signal: AbortSignal }): Promise<void>;
}

export interface PullLayersOptions {
  /** Downloads at once (Docker's max-concurrent-downloads, 3). */
  concurrency: number;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface PullLayersResult {
  /** Layers fetched (the rest already existed). */
  downloaded: RemoteLayer[];
  existing: RemoteLayer[];
}

/**
 * Fetch the layers an image needs with bounded concurrency, reporting Docker's statuses:
 * `Already exists` or `Pulling fs layer`, `Waiting` for a slot, `Downloading` with bytes,
 * `Verifying Checksum`, `Download complete`, then `Extracting` and `Pull complete` in
 * layer order. The first failure cancels the others and is thrown once all have settled.
 */
export async function pullLayers(
  image: RemoteImage,
  sink: LayerSink,
  opts: PullLayersOptions,
): Promise<PullLayersResult> {
  const emit = opts.onProgress ?? noProgress;
  const abort = new AbortController();
  // Every request and stream of the operation listens on it: more than node's default of 10.
  setMaxListeners(256, abort.signal);
  const onOuterAbort = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  try {
    const layers = image.layers;
    const present = await Promise.all(layers.map((l) => sink.has(l)));
    const shown = new Set<string>();
    const existing: RemoteLayer[] = [];
    const missing: RemoteLayer[] = [];
    layers.forEach((l, i) => {
      if (present[i]) existing.push(l);
      else missing.push(l);
      if (shown.has(l.shortId)) return;
      shown.add(l.shortId);
      emit(update(l.shortId, present[i] ? "Already exists" : "Pulling fs layer"));
    });
    for (const l of missing) {
      if (l.compression === undefined)
        throw new StrataError(
          "UNSUPPORTED",
          `layer ${l.descriptor.digest}: unsupported media type ${l.descriptor.mediaType}`,
        );
    }
    const limiter = new Limiter(opts.concurrency);
    const flight = new SingleFlight<void>();
    // "Pull complete" in layer order, as Docker registers layers bottom-up.
    const done = new Map<string, boolean>();
    let nextToReport = 0;
    const order = [...new Set(missing.map((l) => l.shortId))];
    const reportInOrder = () => {
      while (nextToReport < order.length && done.get(order[nextToReport]!)) {
        const id = order[nextToReport++]!;
        const l = missing.find((m) => m.shortId === id)!;
        emit({
          id,
          status: "Extracting",
          progress: { current: l.descriptor.size, total: l.descriptor.size },
        });
        emit(update(id, "Pull complete"));
      }
    };
    let first: unknown;
    const jobs = missing.map((l) => {
      if (limiter.full() && !flight.has(l.descriptor.digest)) emit(update(l.shortId, "Waiting"));
      return flight
        .do(l.descriptor.digest, () =>
          limiter.run(async () => {
            if (abort.signal.aborted) throw abort.signal.reason;
            const throttle = new ProgressThrottle(emit, l.shortId, "Downloading", l.descriptor.size);
            const stream = l.open({ signal: abort.signal, onBytes: (n) => throttle.update(n) });
            stream.once("end", () => {
              emit(update(l.shortId, "Verifying Checksum"));
              emit(update(l.shortId, "Download complete"));
            });
            try {
              await sink.write(l, stream, { signal: abort.signal });
            } catch (e) {
              stream.destroy();
              throw e;
            }
            done.set(l.shortId, true);
            reportInOrder();
          }),
        )
        .catch((e) => {
          first ??= e;
          abort.abort(e);
        });
    });
    await Promise.all(jobs);
    if (first !== undefined) throw first;
    return { downloaded: missing, existing };
  } finally {
    opts.signal?.removeEventListener("abort", onOuterAbort);
  }
}
