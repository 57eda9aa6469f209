/**
 * The views every image source implements (the local store, a tarball, a registry): small
 * metadata is parsed when a view is opened; layer bytes move only when a stream is asked
 * for. Views are immutable.
 */
import type { Digest, ImageConfig, Parsed } from "../oci/index.js";

export interface Layer {
  /** Digest of the uncompressed tar. */
  readonly diffId: Digest;
  /** Bytes of the uncompressed tar. */
  readonly size: number;
  /** Open the uncompressed tar. The caller consumes or destroys the stream. */
  open(opts?: { signal?: AbortSignal }): Promise<NodeJS.ReadableStream & AsyncIterable<Buffer>>;
}

export interface Image {
  /** The config digest (Docker's image ID). */
  readonly id: Digest;
  readonly config: Parsed<ImageConfig>;
  /** In rootfs.diff_ids order. */
  readonly layers: readonly Layer[];
}

/** Check the invariants every image source must keep: layers match rootfs.diff_ids, id = config digest. */
export function validateImage(img: Image): string[] {
  const problems: string[] = [];
  if (img.id !== img.config.digest)
    problems.push(`id ${img.id} is not the config digest ${img.config.digest}`);
  const want = img.config.value.rootfs.diff_ids;
  if (want.length !== img.layers.length)
    problems.push(`config has ${want.length} diff_ids but the image has ${img.layers.length} layers`);
  want.forEach((d, i) => {
    if (img.layers[i] && img.layers[i]!.diffId !== d)
      problems.push(`layer ${i}: diffId ${img.layers[i]!.diffId}, config says ${d}`);
  });
  return problems;
}
