import type { SaveItem } from "../archive/index.js";
import {
  type ContainerConfig,
  chainIds,
  type Digest,
  diffIdsOf,
  type ImageConfig,
  type Platform,
} from "../oci/index.js";
import {
  familiarMatch,
  familiarName,
  familiarString,
  parseDockerRef,
  parseNormalizedNamed,
  type Reference,
  referenceString,
} from "../reference/index.js";
import type { ImageRecord, MetaDoc, Store } from "../store/index.js";
import { isStrataError, StrataError } from "../util/index.js";

/** One row of `images`: an image under one repository:tag (or <none>). */
export interface ImageSummaryRow {
  id: Digest;
  repository: string;
  tag: string;
  digest: string;
  created?: string;
  size: number;
  labels: Record<string, string>;
  record: ImageRecord;
}

export interface ListOptions {
  all?: boolean;
  filters?: Record<string, string[]>;
  /** Positional REPOSITORY[:TAG]. */
  reference?: string;
}

export type ProgressLine = string;

/** Docker's message for a missing image by name: the reference in its familiar form with its tag. */
function noSuchImage(arg: string): StrataError {
  let shown = arg;
  try {
    const r = parseNormalizedNamed(arg);
    shown = familiarString(r.tag || r.digest ? r : { ...r, tag: "latest" });
  } catch {
    // not a reference: show as given
  }
  return new StrataError("IMAGE_NOT_FOUND", `No such image: ${shown}`);
}

const HEX_PREFIX = /^(?:sha256:)?([a-f0-9]{1,64})$/;

/**
 * The image service: every image command of the CLI (and later the Engine API) is one
 * call here, so both faces agree on what a name means and what `rmi -f` does.
 */
export class ImageService {
  /**
   * image ID -> containers using it: set by the container service, so that `rmi` and
   * `image prune` follow Docker's rules for images that containers use.
   */
  containerUsage?: () => Promise<Map<string, { id: string; running: boolean }[]>>;

  constructor(readonly store: Store) {}

  /**
   * Resolve a user's argument as Docker does: a full or short image ID, a name[:tag]
   * (default tag latest), or name@digest (a repo digest). Names win over ID prefixes.
   */
  resolve(doc: MetaDoc, arg: string): ImageRecord {
    const byId = (hex: string): ImageRecord | undefined => {
      if (hex.length === 64) return doc.images[`sha256:${hex}`];
      const hits = Object.keys(doc.images).filter((id) => id.startsWith(`sha256:${hex}`));
      if (hits.length > 1)
        throw new StrataError("AMBIGUOUS_ID", `multiple IDs found with provided prefix: ${hex}`);
      return hits.length ? doc.images[hits[0]!] : undefined;
    };
    if (arg.startsWith("sha256:")) {
      const m = HEX_PREFIX.exec(arg);
      const rec = m ? byId(m[1]!) : undefined;
      if (!rec) throw noSuchImage(arg);
      return rec;
    }
    let ref: Reference | undefined;
    try {
      ref = parseNormalizedNamed(arg);
    } catch (e) {
      const m = HEX_PREFIX.exec(arg);
      if (m) {
        const rec = byId(m[1]!);
        if (rec) return rec;
      }
      if (isStrataError(e)) throw new StrataError("INVALID_REFERENCE", `invalid reference format: ${arg}`);
      throw e;
    }
    if (ref.digest) {
      const want = `${referenceString({ ...ref, tag: undefined })}`;
      const rec = Object.values(doc.images).find((i) => i.repoDigests.includes(want));
      if (rec) return rec;
      throw noSuchImage(arg);
    }
    const full = referenceString(ref.tag ? ref : { ...ref, tag: "latest" });
    const id = doc.tags[full];
    if (id && doc.images[id]) return doc.images[id]!;
    const m = HEX_PREFIX.exec(arg);
    if (m && !ref.tag) {
      const rec = byId(m[1]!);
      if (rec) return rec;
    }
    throw noSuchImage(arg);
  }

  async get(arg: string): Promise<ImageRecord> {
    return this.resolve(await this.store.meta.read(), arg);
  }

  tagsOf(doc: MetaDoc, id: Digest): string[] {
    return Object.entries(doc.tags)
      .filter(([, v]) => v === id)
      .map(([t]) => t)
      .sort();
  }

  private async configOf(rec: ImageRecord): Promise<ImageConfig> {
    return (await this.store.config(rec.id)).value;
  }

  /** `images`: one row per repository:tag, newest first, filtered as Docker filters. */
  async list(opts: ListOptions = {}): Promise<ImageSummaryRow[]> {
    const doc = await this.store.meta.read();
    const filters = opts.filters ?? {};
    for (const k of Object.keys(filters))
      if (!["dangling", "reference", "before", "since", "label", "until"].includes(k))
        throw new StrataError("INVALID_ARGUMENT", `invalid filter '${k}'`);
    const dangling = filters.dangling?.[filters.dangling.length - 1];
    if (dangling !== undefined && !["true", "false", "1", "0"].includes(dangling.toLowerCase()))
      throw new StrataError("INVALID_ARGUMENT", `invalid filter 'dangling=${dangling}'`);
    const createdOf = (r: ImageRecord) => Date.parse(r.created ?? r.added) || 0;
    const before = filters.before?.map((a) => createdOf(this.resolve(doc, a)));
    const since = filters.since?.map((a) => createdOf(this.resolve(doc, a)));
    const until = filters.until?.map(parseUntil);
    const needLabels = !!filters.label?.length;
    const rows: ImageSummaryRow[] = [];
    const byId = new Map<string, string[]>();
    for (const [t, id] of Object.entries(doc.tags)) {
      if (!byId.has(id)) byId.set(id, []);
      byId.get(id)!.push(t);
    }
    const refFilters = [...(filters.reference ?? []), ...(opts.reference ? [opts.reference] : [])];
    for (const rec of Object.values(doc.images)) {
      const tags = (byId.get(rec.id) ?? []).sort();
      const isDangling = tags.length === 0;
      if (dangling !== undefined && ["true", "1"].includes(dangling.toLowerCase()) !== isDangling) continue;
      const c = createdOf(rec);
      if (before?.some((b) => c >= b)) continue;
      if (since?.some((s) => c <= s)) continue;
      if (until?.some((u) => c > u)) continue;
      let labels: Record<string, string> = {};
      if (needLabels) {
        labels = ((await this.configOf(rec)).config?.Labels ?? {}) as Record<string, string>;
        if (!filters.label!.every((f) => matchLabel(labels, f))) continue;
      }
      const digestFor = (name: string) => {
        const d = rec.repoDigests.find((x) => x.startsWith(`${name}@`));
        return d ? d.slice(d.indexOf("@") + 1) : "<none>";
      };
      if (isDangling) {
        if (refFilters.length) continue;
        if (rec.repoDigests.length) {
          for (const rd of rec.repoDigests) {
            const r = parseNormalizedNamed(rd);
            rows.push(row(rec, familiarName(r), "<none>", r.digest ?? "<none>", labels));
          }
        } else rows.push(row(rec, "<none>", "<none>", "<none>", labels));
        continue;
      }
      for (const t of tags) {
        const r = parseDockerRef(t);
        if (refFilters.length && !refFilters.some((p) => matchesReference(p, r))) continue;
        const name = referenceString({ ...r, tag: undefined });
        rows.push(row(rec, familiarName(r), r.tag ?? "<none>", digestFor(name), labels));
      }
    }
    rows.sort((a, b) => {
      const d = createdOf(b.record) - createdOf(a.record);
      if (d) return d;
      return a.repository < b.repository
        ? -1
        : a.repository > b.repository
          ? 1
          : a.tag < b.tag
            ? -1
            : a.tag > b.tag
              ? 1
              : 0;
    });
    return rows;
  }

  /** `tag SOURCE TARGET`. */
  async tag(source: string, target: string): Promise<void> {
    let ref: Reference;
    try {
      ref = parseNormalizedNamed(target);
    } catch (e) {
      throw new StrataError(
        "INVALID_REFERENCE",
        `invalid reference format: ${(e as Error).message.replace(/^invalid reference format: ?/, "") || target}`.replace(
          /: $/,
          "",
        ),
      );
    }
    if (ref.digest)
      throw new StrataError("INVALID_REFERENCE", "refusing to create a tag with a digest reference");
    const full = referenceString(ref.tag ? ref : { ...ref, tag: "latest" });
    await this.store.meta.update((doc) => {
      const rec = this.resolve(doc, source);
      doc.tags[full] = rec.id;
      rec.lastTagTime = new Date().toISOString();
    });
  }

  /**
   * `rmi`: for each argument, untag; delete when the last tag goes. Returns the lines
   * Docker prints, and per-argument errors (Docker goes on with the others, then exits 1).
   */
  async remove(
    args: string[],
    opts: { force?: boolean; noPrune?: boolean } = {},
  ): Promise<{ lines: string[]; errors: Error[] }> {
    const lines: string[] = [];
    const errors: Error[] = [];
    for (const arg of args) {
      try {
        const toDelete: Digest[] = [];
        const usage =
          (await this.containerUsage?.()) ?? new Map<string, { id: string; running: boolean }[]>();
        await this.store.meta.update((doc) => {
          const rec = this.resolve(doc, arg);
          const tags = this.tagsOf(doc, rec.id);
          const byName = !isIdArg(arg, rec.id);
          const users = usage.get(rec.id) ?? [];
          const running = users.find((u) => u.running);
          const stopped = users.find((u) => !u.running);
          const short = (id: string) => id.replace(/^sha256:/, "").slice(0, 12);
          if (byName) {
            // moby: removing the last reference of an image a container uses needs -f.
            if (!opts.force && users.length && tags.length + rec.repoDigests.length <= 1)
              throw new StrataError(
                "IMAGE_CONFLICT",
                `conflict: unable to remove repository reference "${arg}" (must force) - container ${short(users[0]!.id)} is using its referenced image ${short(rec.id)}`,
              );
            // Untag just this reference; delete only if it was the last one.
            const ref = parseNormalizedNamed(arg);
            if (ref.digest) {
              const want = referenceString({ ...ref, tag: undefined });
              rec.repoDigests = rec.repoDigests.filter((d) => d !== want);
              lines.push(`Untagged: ${familiarString(ref)}`);
            } else {
              const full = referenceString(ref.tag ? ref : { ...ref, tag: "latest" });
              delete doc.tags[full];
              lines.push(`Untagged: ${familiarString(parseDockerRef(full))}`);
            }
            if (this.tagsOf(doc, rec.id).length === 0 && (!ref.digest || rec.repoDigests.length === 0)) {
              // Still used by a container (running, or stopped without -f): it stays, dangling.
              if (running || (stopped && !opts.force)) return;
              for (const d of rec.repoDigests)
                lines.push(`Untagged: ${familiarString(parseNormalizedNamed(d))}`);
              toDelete.push(rec.id);
            }
            return;
          }
          if (running)
            throw new StrataError(
              "IMAGE_CONFLICT",
              `conflict: unable to delete ${short(rec.id)} (cannot be forced) - image is being used by running container ${short(running.id)}`,
            );
          const repos = new Set(tags.map((t) => referenceString({ ...parseDockerRef(t), tag: undefined })));
          if (repos.size > 1 && !opts.force)
            throw new StrataError(
              "IMAGE_CONFLICT",
              `conflict: unable to delete ${rec.id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`,
            );
          if (stopped && !opts.force)
            throw new StrataError(
              "IMAGE_CONFLICT",
              `conflict: unable to delete ${short(rec.id)} (must be forced) - image is being used by stopped container ${short(stopped.id)}`,
            );
          for (const t of tags) {
            delete doc.tags[t];
            lines.push(`Untagged: ${familiarString(parseDockerRef(t))}`);
          }
          for (const d of rec.repoDigests) lines.push(`Untagged: ${familiarString(parseNormalizedNamed(d))}`);
          toDelete.push(rec.id);
        });
        if (toDelete.length) {
          const removed = await this.store.removeImages(toDelete);
          for (const id of removed.images) lines.push(`Deleted: ${id}`);
          for (const l of removed.layers) lines.push(`Deleted: ${l}`);
        }
      } catch (e) {
        if (isStrataError(e, "IMAGE_NOT_FOUND") && opts.force) continue;
        errors.push(e as Error);
      }
    }
    return { lines, errors };
  }

  /** `image prune`: dangling images, or with `all` every image no container uses. */
  async prune(opts: { all?: boolean; filters?: Record<string, string[]> } = {}) {
    const filters = opts.filters ?? {};
    for (const k of Object.keys(filters))
      if (!["until", "label", "label!", "dangling"].includes(k))
        throw new StrataError("INVALID_ARGUMENT", `invalid filter '${k}'`);
    const until = filters.until?.map(parseUntil);
    const lines: string[] = [];
    const doc = await this.store.meta.read();
    const victims: ImageRecord[] = [];
    // Images that any container uses (running or stopped) are never pruned.
    const usage = (await this.containerUsage?.()) ?? new Map<string, unknown[]>();
    for (const rec of Object.values(doc.images)) {
      if (usage.has(rec.id)) continue;
      const tags = this.tagsOf(doc, rec.id);
      if (!opts.all && tags.length) continue;
      const c = Date.parse(rec.created ?? rec.added) || 0;
      if (until?.some((u) => c >= u)) continue;
      if (filters.label || filters["label!"]) {
        const labels = ((await this.configOf(rec)).config?.Labels ?? {}) as Record<string, string>;
        if (filters.label && !filters.label.every((f) => matchLabel(labels, f))) continue;
        if (filters["label!"]?.some((f) => matchLabel(labels, f))) continue;
      }
      victims.push(rec);
    }
    let reclaimed = 0;
    if (victims.length) {
      await this.store.meta.update((d) => {
        for (const v of victims) {
          for (const t of this.tagsOf(d, v.id)) {
            delete d.tags[t];
            lines.push(`untagged: ${familiarString(parseDockerRef(t))}`);
          }
          for (const rd of v.repoDigests) lines.push(`untagged: ${familiarString(parseNormalizedNamed(rd))}`);
        }
      });
      const removed = await this.store.removeImages(victims.map((v) => v.id));
      for (const id of removed.images) lines.push(`deleted: ${id}`);
      for (const l of removed.layers) lines.push(`deleted: ${l}`);
      reclaimed += removed.reclaimed;
    }
    const swept = await this.store.sweep();
    reclaimed += swept.reclaimed;
    return { lines, reclaimed };
  }

  /** `inspect`: Docker's ImageInspect JSON. */
  async inspect(arg: string): Promise<Record<string, unknown>> {
    const doc = await this.store.meta.read();
    const rec = this.resolve(doc, arg);
    const cfg = await this.configOf(rec);
    const tags = this.tagsOf(doc, rec.id).map((t) => familiarString(parseDockerRef(t)));
    const repoDigests = rec.repoDigests.map((d) => familiarString(parseNormalizedNamed(d)));
    const c = (cfg.config ?? {}) as ContainerConfig & Record<string, unknown>;
    const config: Record<string, unknown> = {
      Hostname: "",
      Domainname: "",
      User: c.User ?? "",
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      ...(c.ExposedPorts && Object.keys(c.ExposedPorts).length ? { ExposedPorts: c.ExposedPorts } : {}),
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: c.Env ?? null,
      Cmd: c.Cmd ?? null,
      ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
      ...(c.ArgsEscaped ? { ArgsEscaped: c.ArgsEscaped } : {}),
      Image: (c as Record<string, unknown>).Image ?? "",
      Volumes: c.Volumes && Object.keys(c.Volumes).length ? c.Volumes : null,
      WorkingDir: c.WorkingDir ?? "",
      Entrypoint: c.Entrypoint ?? null,
      OnBuild: c.OnBuild ?? null,
      Labels: c.Labels ?? null,
      ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
      ...(c.Shell ? { Shell: c.Shell } : {}),
    };
    const raw = cfg as Record<string, unknown>;
    return {
      Id: rec.id,
      RepoTags: tags,
      RepoDigests: repoDigests,
      Parent: typeof raw.parent === "string" ? raw.parent : "",
      Comment: typeof raw.comment === "string" ? raw.comment : "",
      Created: cfg.created ?? "0001-01-01T00:00:00Z",
      DockerVersion: typeof raw.docker_version === "string" ? raw.docker_version : "",
      Author: cfg.author ?? "",
      Config: config,
      Architecture: cfg.architecture,
      ...(cfg.variant ? { Variant: cfg.variant } : {}),
      Os: cfg.os,
      ...(cfg["os.version"] ? { OsVersion: cfg["os.version"] } : {}),
      Size: rec.size,
      RootFS: { Type: "layers", Layers: diffIdsOf(cfg) },
      Metadata: { LastTagTime: rec.lastTagTime ?? "0001-01-01T00:00:00Z" },
      Descriptor: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: rec.manifest,
        size: rec.manifestSize,
      },
    };
  }

  /** `history`: newest first, one row per history entry, layers matched to non-empty entries. */
  async history(arg: string) {
    const doc = await this.store.meta.read();
    const rec = this.resolve(doc, arg);
    const cfg = await this.configOf(rec);
    const diffIds = diffIdsOf(cfg);
    const hist = cfg.history ?? [];
    const rows: { id: string; created?: string; createdBy: string; size: number; comment: string }[] = [];
    let layer = 0;
    for (const h of hist) {
      let size = 0;
      if (!h.empty_layer) {
        const d = diffIds[layer++];
        size = d ? (doc.layers[d]?.contentSize ?? 0) : 0;
      }
      rows.push({
        id: "<missing>",
        created: h.created,
        createdBy: h.created_by ?? "",
        size,
        comment: h.comment ?? "",
      });
    }
    if (rows.length) rows[rows.length - 1]!.id = rec.id;
    else rows.push({ id: rec.id, created: cfg.created, createdBy: "", size: rec.size, comment: "" });
    return rows.reverse();
  }

  /** `import`: a rootfs tar becomes a one-layer image; returns its ID. */
  async import(
    input: AsyncIterable<Buffer> | NodeJS.ReadableStream,
    opts: {
      reference?: string;
      config?: ContainerConfig;
      message?: string;
      sourceName?: string;
      signal?: AbortSignal;
    },
  ): Promise<Digest> {
    let tag: string | undefined;
    if (opts.reference) {
      const r = parseNormalizedNamed(opts.reference);
      if (r.digest)
        throw new StrataError("INVALID_REFERENCE", "refusing to create a tag with a digest reference");
      tag = referenceString(r.tag ? r : { ...r, tag: "latest" });
    }
    const { importRootfs } = await import("../archive/index.js");
    const img = await importRootfs(this.store, input, opts);
    const res = await this.store.putImage({ config: img.config, layers: img.layers, tags: tag ? [tag] : [] });
    return res.record.id;
  }

  /** `load`: returns Docker's output lines. */
  async load(
    input: NodeJS.ReadableStream | string,
    opts: { platform?: Platform; signal?: AbortSignal } = {},
  ) {
    const { loadArchive } = await import("../archive/index.js");
    const images = await loadArchive(this.store, input, opts);
    const lines: string[] = [];
    for (const img of images) {
      const before = await this.store.meta.read();
      for (const t of img.tags) {
        const old = before.tags[t];
        if (old && old !== img.config.digest)
          lines.push(
            `The image ${familiarString(parseDockerRef(t))} already exists, renaming the old one with ID ${old} to empty string`,
          );
      }
      const res = await this.store.putImage({ config: img.config, layers: img.layers, tags: img.tags });
      if (img.tags.length)
        for (const t of img.tags) lines.push(`Loaded image: ${familiarString(parseDockerRef(t))}`);
      else lines.push(`Loaded image ID: ${res.record.id}`);
    }
    return lines;
  }

  /** `save`: every argument resolved first (an unknown one fails before a byte is written). */
  async save(args: string[], out: NodeJS.WritableStream, opts: { signal?: AbortSignal } = {}) {
    const doc = await this.store.meta.read();
    const items = new Map<string, SaveItem>();
    for (const a of args) {
      const rec = this.resolve(doc, a);
      let tags: string[] = [];
      if (!isIdArg(a, rec.id)) {
        const r = parseNormalizedNamed(a);
        if (!r.digest) tags = [referenceString(r.tag ? r : { ...r, tag: "latest" })];
        else tags = this.tagsOf(doc, rec.id);
      }
      const existing = items.get(rec.id);
      if (existing) {
        existing.tags = [...new Set([...existing.tags, ...tags])];
        continue;
      }
      const image = await this.store.image(rec.id, doc);
      const raw = await this.store.content.readSmall(rec.manifest);
      items.set(rec.id, { image, manifest: { raw, digest: rec.manifest }, tags });
    }
    const { saveArchive } = await import("../archive/index.js");
    await saveArchive([...items.values()], out, opts);
  }

  /** Chain IDs of an image's layers (for Deleted: lines and later the snapshotter). */
  static chainIdsOf(cfg: ImageConfig): Digest[] {
    return chainIds(diffIdsOf(cfg));
  }
}

function row(
  rec: ImageRecord,
  repository: string,
  tag: string,
  digest: string,
  labels: Record<string, string>,
): ImageSummaryRow {
  return { id: rec.id, repository, tag, digest, created: rec.created, size: rec.size, labels, record: rec };
}

/** Was this argument an image ID (full, short, or sha256: prefixed) rather than a name? */
function isIdArg(arg: string, id: Digest): boolean {
  const m = HEX_PREFIX.exec(arg);
  return !!m && id.startsWith(`sha256:${m[1]}`) && (arg.startsWith("sha256:") || !arg.includes(":"));
}

function matchLabel(labels: Record<string, string>, f: string): boolean {
  const i = f.indexOf("=");
  if (i < 0) return f in labels;
  return labels[f.slice(0, i)] === f.slice(i + 1);
}

function matchesReference(pattern: string, r: Reference): boolean {
  return familiarMatch(pattern, r);
}

/** `until=` takes a timestamp (RFC 3339, Unix seconds) or a Go duration relative to now. */
export function parseUntil(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = parseGoDuration(v);
  if (d !== undefined) return Date.now() - d;
  const t = Date.parse(v);
  if (Number.isFinite(t)) return t;
  throw new StrataError("INVALID_ARGUMENT", `invalid filter 'until=${v}'`);
}

export function parseGoDuration(s: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const units: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * units[m[2]!]!;
    consumed += m[0].length;
  }
  return consumed === s.length && consumed > 0 ? total : undefined;
}
