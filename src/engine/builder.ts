import { createWriteStream, promises as fsp } from "node:fs";
import path from "node:path";
import { saveArchive } from "../archive/index.js";
import {
  type BaseImage,
  Builder,
  type BuildRequest,
  type ImageResolver,
  type ProgressSink,
} from "../build/index.js";
import { type Digest, diffIdsOf, type Platform } from "../oci/index.js";
import { parseNormalizedNamed, referenceString } from "../reference/index.js";
import type { ImageRecord, Store } from "../store/index.js";
import { runTool, StrataError } from "../util/index.js";
import type { ImageService } from "./images.js";

export type BuildOutput =
  | { type: "image" }
  | { type: "docker" | "oci" | "tar"; dest: string }
  | { type: "local"; dest: string };

export interface BuildImageRequest extends BuildRequest {
  tags: string[];
  outputs?: BuildOutput[];
}

/** Fetches an image into the store from its registry (engine/ connects the distribution service). */
export type Puller = (ref: string, platform: Platform, signal?: AbortSignal) => Promise<void>;

/**
 * Resolves FROM and COPY --from images: from the local store, pulling an image that is not
 * there (and, with `--pull`, pulling first to re-resolve the tag) as BuildKit does.
 */
class StoreResolver implements ImageResolver {
  constructor(
    private readonly store: Store,
    private readonly images: ImageService,
    private readonly puller?: Puller,
  ) {}

  async resolve(
    ref: string,
    opts: { pull: boolean; platform: Platform; signal?: AbortSignal },
  ): Promise<BaseImage> {
    if (opts.pull && this.puller) await this.fetch(ref, opts);
    try {
      return await this.local(ref);
    } catch (e) {
      if (!(e instanceof StrataError && e.code === "IMAGE_NOT_FOUND") || !this.puller || opts.pull) throw e;
      await this.fetch(ref, opts);
      return this.local(ref);
    }
  }

  private async fetch(ref: string, opts: { platform: Platform; signal?: AbortSignal }): Promise<void> {
    try {
      await this.puller!(ref, opts.platform, opts.signal);
    } catch (e) {
      // BuildKit's words for a base image it cannot get.
      throw new StrataError(
        e instanceof StrataError ? e.code : "IMAGE_NOT_FOUND",
        `failed to resolve source metadata for ${canonicalName(ref)}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  private async local(ref: string): Promise<BaseImage> {
    const doc = await this.store.meta.read();
    let rec: ImageRecord;
    try {
      rec = this.images.resolve(doc, ref);
    } catch (e) {
      if (e instanceof StrataError && e.code === "IMAGE_NOT_FOUND")
        throw new StrataError("IMAGE_NOT_FOUND", `${canonicalName(ref)}: not found`);
      throw e;
    }
    const config = await this.store.config(rec.id);
    const layers = diffIdsOf(config.value).map((d) => {
      const l = doc.layers[d];
      if (!l) throw new StrataError("STORE_CORRUPT", `layer ${d} of ${ref} has no record`);
      return l;
    });
    return { id: rec.id, config, layers };
  }
}

/** `docker.io/library/busybox:latest` for `busybox`, or the text as given when it does not parse. */
function canonicalName(ref: string): string {
  try {
    const r = parseNormalizedNamed(ref);
    return referenceString(r.tag || r.digest ? r : { ...r, tag: "latest" });
  } catch {
    return ref;
  }
}

/** `build`: runs the builder, then records the image and writes the requested outputs. */
export class BuildService {
  constructor(
    private readonly store: Store,
    private readonly images: ImageService,
    private readonly puller?: Puller,
  ) {}

  async build(req: BuildImageRequest, progress: ProgressSink) {
    const tags = req.tags.map((t) => {
      const r = parseNormalizedNamed(t);
      if (r.digest) throw new StrataError("INVALID_REFERENCE", `invalid reference format: ${t}`);
      return referenceString(r.tag ? r : { ...r, tag: "latest" });
    });
    const builder = new Builder(this.store, new StoreResolver(this.store, this.images, this.puller));
    const res = await builder.build(req, progress);
    if (req.checkOnly) return { id: undefined, config: undefined, warnings: [], checks: res.checks };
    const v = res.exportVertex;
    const outputs = req.outputs?.length ? req.outputs : [{ type: "image" as const }];
    let id = res.config.digest;
    for (const out of outputs) {
      if (out.type === "image") {
        const put = await this.store.putImage({ config: res.config, layers: res.layers, tags });
        id = put.record.id;
        progress.log(v, `writing image ${id} done`);
        for (const t of tags) progress.log(v, `naming to ${t} done`);
      } else if (out.type === "docker" || out.type === "oci") {
        await this.store.putImage({ config: res.config, layers: res.layers, tags });
        const image = await this.store.image(res.config.digest);
        const rec = image.record;
        const raw = await this.store.content.readSmall(rec.manifest);
        const dest = path.resolve(out.dest);
        await saveArchive(
          [{ image, manifest: { raw, digest: rec.manifest }, tags }],
          createWriteStream(dest),
        );
        progress.log(v, `sending tarball done`);
      } else {
        await this.exportFilesystem(
          res.layers.map((l) => l.diffId),
          out as { type: "local" | "tar"; dest: string },
        );
        progress.log(v, `copying files done`);
      }
    }
    progress.done(v);
    return { id, config: res.config, warnings: res.warnings, checks: res.checks };
  }

  /**
   * type=local / type=tar: the final filesystem. Each layer's deletions (whiteouts, opaque
   * directories, known from its index) are applied before it is extracted without them.
   */
  private async exportFilesystem(diffIds: Digest[], out: { type: "local" | "tar"; dest: string }) {
    const dest = path.resolve(out.dest);
    const dir =
      out.type === "local" ? dest : await fsp.mkdtemp(path.join(path.dirname(dest), ".strata-export-"));
    await fsp.mkdir(dir, { recursive: true });
    try {
      for (const d of diffIds) {
        const idx = await this.store.layerIndex(d);
        for (const w of idx.whiteouts) await fsp.rm(path.join(dir, w), { recursive: true, force: true });
        for (const o of idx.opaque) {
          const entries = await fsp.readdir(path.join(dir, o)).catch(() => [] as string[]);
          for (const e of entries) await fsp.rm(path.join(dir, o, e), { recursive: true, force: true });
        }
        await runTool("tar", ["-x", "-f", "-", "-C", dir, "--numeric-owner", "-p", "--exclude=.wh.*"], {
          input: await this.store.content.open(d),
        });
      }
      if (out.type === "tar")
        await runTool("tar", ["-c", "-f", dest, "-C", dir, "--numeric-owner", "--sort=name", "."]);
    } finally {
      if (out.type === "tar") await fsp.rm(dir, { recursive: true, force: true });
    }
  }
}
