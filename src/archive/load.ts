import { createReadStream } from "node:fs";
import { extract as tarExtract } from "tar-stream";
import type { z } from "zod";
import {
  cleanEntryPath,
  decompressor,
  type LayerScan,
  peekCompression,
  TarProbe,
  TarScanner,
} from "../layer/index.js";
import {
  type Digest,
  diffIdsOf,
  hostPlatform,
  type ImageConfig,
  type Index,
  isIndexType,
  layerCompression,
  type Manifest,
  type Parsed,
  type Platform,
  parseImageConfig,
  parseIndex,
  parseJsonDocument,
  parseManifest,
  selectPlatform,
  zod,
} from "../oci/index.js";
import { parseDockerRef, referenceString } from "../reference/index.js";
import type { LayerRecord, StagedBlob, Store } from "../store/index.js";
import { readAllLimited, StrataError } from "../util/index.js";

/** One image found in an archive, ready to be recorded. */
export interface LoadedImage {
  config: Parsed<ImageConfig>;
  layers: LayerRecord[];
  /** Full references (docker.io/library/busybox:latest). */
  tags: string[];
}

export interface LoadOptions {
  platform?: Platform;
  signal?: AbortSignal;
}

const MAX_JSON = 8 * 1024 * 1024;

interface Member {
  staged: StagedBlob;
  probe?: { scan?: LayerScan; error?: Error };
}

/** docker save's manifest.json (built on first use: zod loads lazily). */
function dockerManifestSchema() {
  const z = zod();
  return z.array(
    z.looseObject({
      Config: z.string(),
      RepoTags: z.array(z.string()).nullable().optional(),
      Layers: z.array(z.string()),
    }),
  );
}
type DockerManifest = z.infer<ReturnType<typeof dockerManifestSchema>>;

/**
 * Read a `docker save` tarball (Docker < 25 layout with <id>/layer.tar, Docker 25+ with
 * blobs/sha256 and an OCI layout inside) or an OCI layout tarball, gzip-compressed or not.
 * Every member streams once into ingest/ (hashed, and scanned if it is a tar); nothing
 * becomes visible in the store until every image in the archive verified. On any error
 * the staged files are discarded and the store is as it was.
 */
export async function loadArchive(
  store: Store,
  input: NodeJS.ReadableStream | string,
  opts: LoadOptions = {},
): Promise<LoadedImage[]> {
  const source = typeof input === "string" ? createReadStream(input, { highWaterMark: 1 << 20 }) : input;
  const { compression, stream } = await peekCompression(source as AsyncIterable<Buffer>);
  const dec = compression === "none" ? undefined : decompressor(compression);
  const members = new Map<string, Member>();
  const links = new Map<string, string>();
  const staged: StagedBlob[] = [];
  const group = store.content.newGroup();
  let current: { destroy(e?: Error): void } | undefined;
  let sawEntry = false;

  const ex = tarExtract();
  ex.on("entry", (h, entry, next) => {
    sawEntry = true;
    current = entry as unknown as { destroy(e?: Error): void };
    (async () => {
      if (h.name.split("/").includes("..") || h.name.startsWith("/"))
        throw new StrataError("UNSAFE_PATH", `invalid archive member "${h.name}": path escapes the archive`);
      const name = cleanEntryPath(h.name);
      if (h.type === "file" || h.type === "contiguous-file") {
        const probe = new TarProbe({ what: `layer ${name}` });
        const pending = store.content.stage(entry as unknown as AsyncIterable<Buffer>, {
          tees: [probe],
          what: name,
          signal: opts.signal,
          group,
        });
        const s = await pending;
        staged.push(s);
        members.set(name, { staged: s, probe: probe.result() });
      } else if (h.type === "symlink" || h.type === "link") {
        const target = h.linkname ?? "";
        if (target.startsWith("/"))
          throw new StrataError(
            "UNSAFE_PATH",
            `invalid archive member "${h.name}": absolute link target "${target}"`,
          );
        const base = h.type === "symlink" ? name.split("/").slice(0, -1).join("/") : "";
        const resolved = cleanEntryPath(base ? `${base}/${target}` : target);
        links.set(name, resolved);
        entry.resume();
        await new Promise<void>((r) => entry.on("end", () => r()));
      } else {
        entry.resume();
        await new Promise<void>((r) => entry.on("end", () => r()));
      }
    })().then(
      () => {
        current = undefined;
        next();
      },
      (e) => {
        current = undefined;
        next(e);
      },
    );
  });

  try {
    try {
      await extractAll(stream, dec, ex, opts.signal);
    } catch (e) {
      // tar-stream leaves the member being read open: end it so its staged file goes.
      current?.destroy(e as Error);
      if (e instanceof StrataError) throw e;
      throw new StrataError("INVALID_ARCHIVE", `invalid tar archive: ${(e as Error).message}`, { cause: e });
    }
    if (!sawEntry)
      throw new StrataError("INVALID_ARCHIVE", "invalid tar archive: no entries (empty or not a tar file)");

    const resolve = (name: string, depth = 0): Member | undefined => {
      const n = cleanEntryPath(name);
      const m = members.get(n);
      if (m) return m;
      const l = links.get(n);
      if (l !== undefined && depth < 16) return resolve(l, depth + 1);
      return undefined;
    };
    const readJson = async (name: string): Promise<Buffer> => {
      const m = resolve(name);
      if (!m) throw new StrataError("INVALID_ARCHIVE", `invalid archive: ${name} is missing`);
      if (m.staged.size > MAX_JSON)
        throw new StrataError("TOO_LARGE", `invalid archive: ${name} is too large`);
      return readAllLimited(createReadStream(m.staged.path) as AsyncIterable<Buffer>, MAX_JSON, name);
    };
    const byDigest = (d: Digest) => resolve(`blobs/${d.replace(":", "/")}`);

    const images: {
      config: Parsed<ImageConfig>;
      layerMembers: Member[];
      layerTypes?: string[];
      tags: string[];
    }[] = [];
    if (resolve("manifest.json")) {
      const entries = parseJsonDocument<DockerManifest>(
        await readJson("manifest.json"),
        dockerManifestSchema(),
        "manifest.json",
      );
      for (const e of entries) {
        const config = parseImageConfig(await readJson(e.Config));
        const layerMembers = e.Layers.map((p) => {
          const m = resolve(p);
          if (!m) throw new StrataError("INVALID_ARCHIVE", `invalid archive: layer ${p} is missing`);
          return m;
        });
        const tags = (e.RepoTags ?? []).map((t) => referenceString(parseDockerRef(t)));
        images.push({ config, layerMembers, tags });
      }
    } else if (resolve("index.json")) {
      if (!resolve("oci-layout"))
        throw new StrataError("INVALID_ARCHIVE", "invalid archive: oci-layout is missing");
      const want = opts.platform ?? hostPlatform();
      const index = parseIndex(await readJson("index.json"));
      const readBlob = async (d: Digest) => {
        const m = byDigest(d);
        if (!m) throw new StrataError("INVALID_ARCHIVE", `invalid archive: blob ${d} is missing`);
        if (m.staged.digest !== d)
          throw new StrataError(
            "DIGEST_MISMATCH",
            `invalid archive: blob ${d} has digest ${m.staged.digest}`,
          );
        return readJson(`blobs/${d.replace(":", "/")}`);
      };
      const collect = async (idx: Index, name: string | undefined, depth: number) => {
        if (depth > 4) throw new StrataError("INVALID_ARCHIVE", "invalid archive: nested indexes too deep");
        const manifests = idx.manifests.filter((m) => !isIndexType(m.mediaType));
        const nested = idx.manifests.filter((m) => isIndexType(m.mediaType));
        for (const n of nested) {
          const nameOf = n.annotations?.["io.containerd.image.name"] ?? name;
          await collect(parseIndex(await readBlob(n.digest as Digest)).value, nameOf, depth + 1);
        }
        const withPlatform = manifests.filter((m) => m.platform);
        const chosen = withPlatform.length
          ? [selectPlatform(withPlatform, want)].filter((m) => m !== undefined)
          : manifests;
        if (withPlatform.length && !chosen.length)
          throw new StrataError(
            "PLATFORM_MISMATCH",
            `no image in the archive matches the platform ${want.os}/${want.architecture}`,
          );
        for (const d of chosen) {
          const man: Parsed<Manifest> = parseManifest(await readBlob(d.digest as Digest));
          const config = parseImageConfig(await readBlob(man.value.config.digest as Digest));
          const layerMembers = man.value.layers.map((l) => {
            const m = byDigest(l.digest as Digest);
            if (!m) throw new StrataError("INVALID_ARCHIVE", `invalid archive: layer ${l.digest} is missing`);
            if (m.staged.digest !== l.digest)
              throw new StrataError(
                "DIGEST_MISMATCH",
                `invalid archive: layer ${l.digest} has digest ${m.staged.digest}`,
              );
            return m;
          });
          const refName =
            d.annotations?.["io.containerd.image.name"] ?? name ?? refFromAnnotation(d.annotations);
          const tags = refName ? [referenceString(parseDockerRef(refName))] : [];
          images.push({ config, layerMembers, layerTypes: man.value.layers.map((l) => l.mediaType), tags });
        }
      };
      await collect(index.value, undefined, 0);
    } else {
      throw new StrataError(
        "INVALID_ARCHIVE",
        "invalid archive: no manifest.json or index.json (not a docker or OCI image archive)",
      );
    }

    // Resolve each layer to an uncompressed, scanned tar whose digest is the config's diff_id.
    const out: LoadedImage[] = [];
    const toCommit = new Set<StagedBlob>();
    for (const img of images) {
      const diffIds = diffIdsOf(img.config.value);
      if (diffIds.length !== img.layerMembers.length)
        throw new StrataError(
          "INVALID_ARCHIVE",
          `invalid archive: image config has ${diffIds.length} layers but the manifest lists ${img.layerMembers.length}`,
        );
      const layers: LayerRecord[] = [];
      for (let i = 0; i < diffIds.length; i++) {
        const m = img.layerMembers[i]!;
        const want = diffIds[i]!;
        const mt = img.layerTypes?.[i];
        const declared = mt ? layerCompression(mt) : undefined;
        let blob = m.staged;
        let scan = m.probe?.scan;
        if (m.probe?.error) throw m.probe.error;
        if (!m.probe || declared === "gzip" || declared === "zstd") {
          // Compressed (or not a tar at all): decompress into a second staged file, scanning on the way.
          const { compression, stream } = await peekCompression(
            createReadStream(blob.path) as AsyncIterable<Buffer>,
          );
          const d = decompressor(compression);
          if (!d)
            throw new StrataError("INVALID_ARCHIVE", `invalid archive: layer ${i + 1} is not a tar stream`);
          const scanner = new TarScanner({ what: `layer ${want}` });
          const plain = await store.content.stage(stream.pipe(d), {
            expected: { digest: want },
            tees: [scanner],
            what: `layer ${i + 1}`,
            group,
          });
          staged.push(plain);
          blob = plain;
          scan = scanner.result();
        } else if (blob.digest !== want) {
          throw new StrataError(
            "DIGEST_MISMATCH",
            `invalid archive: layer ${i + 1} has diff ID ${blob.digest}, the config expects ${want}`,
          );
        }
        toCommit.add(blob);
        layers.push({ diffId: want, size: blob.size, contentSize: scan?.contentSize ?? 0 });
      }
      out.push({ config: img.config, layers, tags: img.tags });
    }
    for (const b of toCommit) await b.commit();
    return out;
  } finally {
    for (const s of staged) await s.discard().catch(() => {});
    await store.content.discardGroup(group);
  }
}

/**
 * Feed an archive into the extractor. Settles on the first error of any stage (Node's
 * pipeline would wait for tar-stream's extractor to close, which it does not do while an
 * entry is still being consumed), or when the extractor finishes.
 */
function extractAll(
  source: NodeJS.ReadableStream,
  dec: NodeJS.ReadWriteStream | undefined,
  ex: NodeJS.WritableStream,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      for (const st of [source, dec, ex] as ({ destroy?: (e?: Error) => void } | undefined)[])
        st?.destroy?.();
      reject(e);
    };
    source.on("error", fail);
    dec?.on("error", fail);
    ex.on("error", fail);
    ex.on("finish", () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    });
    signal?.addEventListener("abort", () => fail(new StrataError("IO_ERROR", "load cancelled")), {
      once: true,
    });
    if (dec) source.pipe(dec).pipe(ex);
    else source.pipe(ex);
  });
}

function refFromAnnotation(a: Record<string, string> | undefined): string | undefined {
  const r = a?.["org.opencontainers.image.ref.name"];
  // A bare tag ("latest") names no repository; only a full reference can be used.
  if (!r || (!r.includes("/") && !r.includes(":"))) return undefined;
  try {
    parseDockerRef(r);
    return r;
  } catch {
    return undefined;
  }
}
