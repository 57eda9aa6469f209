import { createHash } from "node:crypto";
import { type Digest, digestHex, parseAnyManifest, parseDigest } from "../../oci/index.js";
import { FsDriver } from "./fs-driver.js";
import { paths } from "./layout.js";
import { parseRevisionLink, Registry } from "./registry.js";
import type { StorageDriver } from "./storage.js";

export interface GcOptions {
  /** Report what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** Also delete manifests no tag reaches (directly, through an index, or as a referrer). */
  deleteUntagged?: boolean;
  /**
   * Anything written or touched more recently than this is kept: it may belong to a push in
   * progress (blobs uploaded before their manifest, index children before their index).
   * Default one hour.
   */
  gracePeriodMs?: number;
  /** Upload sessions started longer ago than this are purged. Default 7 days. */
  uploadMaxAgeMs?: number;
  /** Progress lines (cli/ prints them; library code never does). */
  onEvent?: (line: string) => void;
}

export interface GcReport {
  manifestsDeleted: string[];
  linksDeleted: number;
  blobsDeleted: string[];
  bytesFreed: number;
  blobsKept: number;
  uploadsPurged: number;
}

/**
 * Mark and sweep. Marks, per repository: the manifests to keep (all of them, or with
 * `deleteUntagged` those reachable from tags, through index children and referrers, plus
 * young ones), the blobs they reference, and every young link. Sweeps blobs nobody marked
 * and that are older than the grace period, repository links to blobs the repository no
 * longer references, and stale upload sessions.
 *
 * Safe while the server runs: a manifest PUT touches the links it validated, so a blob a
 * push is about to reference is young and kept.
 */
export async function collectGarbage(root: string, opts: GcOptions = {}): Promise<GcReport> {
  const driver = new FsDriver(root);
  const registry = new Registry(driver, {
    deleteEnabled: true,
    maxManifestSize: 4 * 1024 * 1024,
    manifestCacheBytes: 0,
  });
  await registry.init();
  const grace = opts.gracePeriodMs ?? 60 * 60 * 1000;
  const uploadMaxAge = opts.uploadMaxAgeMs ?? 7 * 24 * 60 * 60 * 1000;
  const started = Date.now();
  const young = (t: Date | undefined) => t !== undefined && started - t.getTime() < grace;
  const say = opts.onEvent ?? (() => {});
  const report: GcReport = {
    manifestsDeleted: [],
    linksDeleted: 0,
    blobsDeleted: [],
    bytesFreed: 0,
    blobsKept: 0,
    uploadsPurged: 0,
  };
  const marked = new Set<string>();

  for (const repo of await registry.repositories()) {
    const revisions = await listDigests(driver, paths.revisionsDir(repo));
    const docs = new Map<string, { children: Digest[]; blobs: Digest[]; subject?: Digest }>();
    for (const d of revisions) {
      const raw = await driver.getContent(paths.blob(d));
      if (!raw) continue;
      try {
        const m = parseAnyManifest(raw);
        const subject = m.doc.value.subject?.digest ? parseDigest(m.doc.value.subject.digest) : undefined;
        if (m.kind === "index")
          docs.set(d, {
            children: m.doc.value.manifests.map((x) => parseDigest(x.digest)),
            blobs: [],
            subject,
          });
        else
          docs.set(d, {
            children: [],
            blobs: [m.doc.value.config, ...m.doc.value.layers].map((x) => parseDigest(x.digest)),
            subject,
          });
      } catch {
        docs.set(d, { children: [], blobs: [] });
      }
    }

    let keep: Set<string>;
    if (opts.deleteUntagged) {
      keep = new Set();
      const queue: string[] = [];
      const add = (d: string) => {
        if (!keep.has(d) && docs.has(d)) {
          keep.add(d);
          queue.push(d);
        }
      };
      for (const t of await driver.list(paths.tagsDir(repo))) {
        const d = await registry.resolveTag(repo, t).catch(() => undefined);
        if (d) add(d);
      }
      for (const d of revisions) if (young((await driver.stat(paths.revision(repo, d)))?.modTime)) add(d);
      // Closure over index children and referrers of kept manifests, to a fixpoint.
      for (;;) {
        while (queue.length) for (const c of docs.get(queue.pop()!)?.children ?? []) add(c);
        let grew = false;
        for (const [d, doc] of docs) {
          if (!keep.has(d) && doc.subject && keep.has(doc.subject)) {
            add(d);
            grew = true;
          }
        }
        if (!grew) break;
      }
    } else keep = new Set(revisions);

    const referenced = new Set<string>();
    for (const d of keep) {
      marked.add(d);
      for (const b of docs.get(d)?.blobs ?? []) referenced.add(b);
    }
    for (const d of revisions) {
      if (keep.has(d)) continue;
      report.manifestsDeleted.push(`${repo}@${d}`);
      say(`delete manifest ${repo}@${d}`);
      if (!opts.dryRun) await registry.removeManifest(repo, d);
    }
    for (const d of await listDigests(driver, paths.layersDir(repo))) {
      const link = paths.layerLink(repo, d);
      if (referenced.has(d) || young((await driver.stat(link))?.modTime)) {
        marked.add(d);
        continue;
      }
      report.linksDeleted++;
      say(`unlink blob ${d} from ${repo}`);
      if (!opts.dryRun) await driver.delete(link);
    }
    for (const b of referenced) marked.add(b);

    for (const id of await driver.list(paths.uploadsDir(repo))) {
      let startedAt = Date.parse(
        (await driver.getContent(paths.uploadStarted(repo, id)))?.toString("utf8") ?? "",
      );
      // No start time yet: the session is being created right now (its directory exists,
      // its startedat file is still being written). Its directory's time says how old it is;
      // an upload is never purged for lack of the file (that purged live pushes).
      if (Number.isNaN(startedAt))
        startedAt = (await driver.stat(paths.upload(repo, id)))?.modTime.getTime() ?? started;
      if (started - startedAt < uploadMaxAge) continue;
      report.uploadsPurged++;
      say(`purge upload ${repo} ${id}`);
      if (!opts.dryRun) await driver.delete(paths.upload(repo, id));
    }
  }

  for (const d of await listBlobs(driver)) {
    if (marked.has(d)) {
      report.blobsKept++;
      continue;
    }
    const st = await driver.stat(paths.blob(d));
    if (!st || young(st.modTime)) {
      report.blobsKept++;
      continue;
    }
    report.blobsDeleted.push(d);
    report.bytesFreed += st.size;
    say(`delete blob ${d}`);
    if (!opts.dryRun) await driver.delete(paths.blob(d));
  }
  return report;
}

/** Digests under a `<alg>/<hex>` directory tree (links, revisions). */
async function listDigests(driver: StorageDriver, dir: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const alg of await driver.list(dir)) {
    for (const hex of await driver.list(`${dir}/${alg}`)) {
      try {
        out.push(parseDigest(`${alg}:${hex}`));
      } catch {
        // Temp files and strays are not digests.
      }
    }
  }
  return out;
}

/** Every blob in the blob store (`/blobs/<alg>/<xx>/<hex>`). */
export async function listBlobs(driver: StorageDriver): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const alg of await driver.list(paths.blobsRoot())) {
    for (const pre of await driver.list(`${paths.blobsRoot()}/${alg}`)) {
      for (const hex of await driver.list(`${paths.blobsRoot()}/${alg}/${pre}`)) {
        try {
          out.push(parseDigest(`${alg}:${hex}`));
        } catch {
          // skip temp files
        }
      }
    }
  }
  return out;
}

export interface FsckReport {
  repositories: number;
  manifests: number;
  blobs: number;
  /** Upload sessions in progress (not a problem; listed for information). */
  uploads: number;
  problems: string[];
}

/**
 * Verify the whole registry: every blob hashes to its name; every link, revision, tag and
 * manifest reference points to content that exists; every manifest parses.
 */
export async function checkRegistry(
  root: string,
  opts: { onEvent?: (line: string) => void } = {},
): Promise<FsckReport> {
  const driver = new FsDriver(root);
  const registry = new Registry(driver, {
    deleteEnabled: false,
    maxManifestSize: 4 * 1024 * 1024,
    manifestCacheBytes: 0,
  });
  await registry.init();
  const problems: string[] = [];
  const problem = (s: string) => {
    problems.push(s);
    opts.onEvent?.(s);
  };
  const blobs = await listBlobs(driver);
  for (const d of blobs) {
    const [alg] = d.split(":");
    const hash = createHash(alg!);
    for await (const c of (await driver.reader(paths.blob(d))) as AsyncIterable<Buffer>) hash.update(c);
    if (hash.digest("hex") !== digestHex(d)) problem(`blob ${d}: content does not match its digest`);
  }
  const have = new Set<string>(blobs);
  const repos = await registry.repositories();
  let manifests = 0;
  let uploads = 0;
  for (const repo of repos) {
    const layers = new Set<string>(await listDigests(driver, paths.layersDir(repo)));
    for (const d of layers) if (!have.has(d)) problem(`${repo}: blob link ${d} points to a missing blob`);
    const revisions = new Set<string>(await listDigests(driver, paths.revisionsDir(repo)));
    for (const d of revisions as Set<Digest>) {
      manifests++;
      const raw = await driver.getContent(paths.blob(d));
      if (!raw) {
        problem(`${repo}: manifest ${d} is linked but its blob is missing`);
        continue;
      }
      const mediaType = parseRevisionLink(
        (await driver.getContent(paths.revision(repo, d))) ?? Buffer.from(""),
      );
      try {
        const m = parseAnyManifest(raw, mediaType);
        if (m.kind === "index") {
          for (const c of m.doc.value.manifests)
            if (!revisions.has(c.digest))
              problem(`${repo}: index ${d} refers to missing manifest ${c.digest}`);
        } else {
          for (const b of [m.doc.value.config, ...m.doc.value.layers]) {
            if (b.urls?.length) continue;
            if (!layers.has(b.digest) || !have.has(b.digest))
              problem(`${repo}: manifest ${d} refers to blob ${b.digest}, which is not in the repository`);
          }
        }
      } catch (e) {
        problem(`${repo}: manifest ${d} does not parse: ${(e as Error).message}`);
      }
    }
    for (const t of await driver.list(paths.tagsDir(repo))) {
      if (t.startsWith(".")) continue;
      const d = await registry.resolveTag(repo, t).catch(() => undefined);
      if (!d) problem(`${repo}: tag ${t} is unreadable`);
      else if (!revisions.has(d)) problem(`${repo}: tag ${t} points to missing manifest ${d}`);
    }
    uploads += (await driver.list(paths.uploadsDir(repo))).length;
  }
  return { repositories: repos.length, manifests, blobs: blobs.length, uploads, problems };
}
