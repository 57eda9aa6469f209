import { decompressor, peekCompression } from "../layer/index.js";
import {
  type ContainerConfig,
  hostPlatform,
  type ImageConfig,
  type Parsed,
  parseImageConfig,
} from "../oci/index.js";
import type { LayerRecord, Store } from "../store/index.js";
import { StrataError } from "../util/index.js";

export interface ImportOptions {
  /** Container config built from `--change` instructions. */
  config?: ContainerConfig;
  /** `-m`: the history comment (Docker's default is "Imported from <source>"). */
  message?: string;
  /** What the tar came from, for the default comment ("-" for stdin). */
  sourceName?: string;
  now?: Date;
  signal?: AbortSignal;
}

/**
 * `import`: a root filesystem tar (plain, gzip) becomes a one-layer image with no history
 * but one entry. The tar is stored as given (its digest is the diff ID, as Docker's
 * tar-split keeps it), after every entry was checked against breakout rules in the
 * same pass that hashes it.
 */
export async function importRootfs(
  store: Store,
  input: AsyncIterable<Buffer> | NodeJS.ReadableStream,
  opts: ImportOptions = {},
): Promise<{ config: Parsed<ImageConfig>; layers: LayerRecord[] }> {
  const { compression, stream } = await peekCompression(input as AsyncIterable<Buffer>);
  const dec = decompressor(compression);
  let layer: LayerRecord;
  try {
    layer = await store.ingestLayer(dec ? stream.pipe(dec) : stream, { what: "import", signal: opts.signal });
  } catch (e) {
    if (e instanceof StrataError) throw e;
    throw new StrataError("INVALID_ARCHIVE", `import: invalid tar stream: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const now = (opts.now ?? new Date()).toISOString();
  const p = hostPlatform();
  const comment = opts.message ?? `Imported from ${opts.sourceName ?? "-"}`;
  const cfg: Record<string, unknown> = {
    architecture: p.architecture,
    ...(p.variant ? { variant: p.variant } : {}),
    comment,
    config: opts.config ?? {},
    created: now,
    history: [{ created: now, comment }],
    os: p.os,
    rootfs: { type: "layers", diff_ids: [layer.diffId] },
  };
  return { config: parseImageConfig(JSON.stringify(cfg)), layers: [layer] };
}
