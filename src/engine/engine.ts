import os from "node:os";
import path from "node:path";
import { type ContainerConfig, type Digest, formatPlatform } from "../oci/index.js";
import { Store } from "../store/index.js";
import { StrataError } from "../util/index.js";
import { BuildService } from "./builder.js";
import { applyChanges } from "./changes.js";
import { ContainerService } from "./containers.js";
import { DistributionService } from "./distribution.js";
import { openUrl } from "./fetch.js";
import { ImageService, parseUntil } from "./images.js";

export interface EngineOptions {
  /** Store root: `--root`, else $STRATA_ROOT, else the default below. */
  root?: string;
}

/** DESIGN.md §3: /var/lib/strata as root, ~/.local/share/strata otherwise. */
export function defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATA_ROOT) return path.resolve(env.STRATA_ROOT);
  if (process.getuid?.() === 0) return "/var/lib/strata";
  const data = env.XDG_DATA_HOME || path.join(os.homedir(), ".local/share");
  return path.join(data, "strata");
}

/** Owns the store and the services; the CLI and the daemon each hold one. */
export class Engine {
  readonly images: ImageService;
  readonly distribution: DistributionService;
  readonly builder: BuildService;
  readonly containers: ContainerService;

  private constructor(readonly store: Store) {
    this.images = new ImageService(store);
    this.distribution = new DistributionService(store, this.images);
    // A base image missing locally (or every base with --pull) comes from its registry.
    this.builder = new BuildService(store, this.images, async (ref, platform, signal) => {
      await this.distribution.pull(ref, { platform: formatPlatform(platform), signal });
    });
    this.containers = new ContainerService(store, this.images);
  }

  changesToConfig(changes: string[], base?: ContainerConfig): ContainerConfig {
    return applyChanges(changes, base);
  }

  openUrl(url: string, opts?: { signal?: AbortSignal }) {
    return openUrl(url, opts);
  }

  /** Unpack a build context sent as a tar (`build -`) into `dir`, refusing hostile entries. */
  async extractContext(tar: Buffer, dir: string): Promise<void> {
    const { Readable } = await import("node:stream");
    const { pipeline } = await import("node:stream/promises");
    const { TarScanner } = await import("../layer/index.js");
    await pipeline(Readable.from([tar]), new TarScanner({ what: "build context" }));
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync("tar", ["-x", "-f", "-", "-C", dir, "--no-same-owner", "--no-same-permissions"], {
      input: tar,
    });
    if (r.status !== 0)
      throw new StrataError("INVALID_ARCHIVE", `build context: ${r.stderr.toString().trim()}`);
  }

  /** `builder prune`: drop build-cache records (all, or those last used before `until`), then their layers. */
  async pruneBuildCache(opts: { all?: boolean; until?: string } = {}): Promise<{ reclaimed: number }> {
    const cutoff = opts.until ? parseUntil(opts.until) : Number.POSITIVE_INFINITY;
    await this.store.meta.update((doc) => {
      for (const [k, rec] of Object.entries(doc.buildCache ?? {})) {
        if (Date.parse(rec.lastUsed) < cutoff) {
          delete doc.buildCache![k];
        }
      }
    });
    const r = await this.store.sweep({ graceMs: 0, layerRecords: true });
    const { pruneBuildFiles } = await import("../build/index.js");
    await pruneBuildFiles(this.store.root, (d) => this.store.content.has(d as Digest));
    return { reclaimed: r.reclaimed };
  }

  static async open(opts: EngineOptions = {}): Promise<Engine> {
    const root = opts.root ? path.resolve(opts.root) : defaultRoot();
    return new Engine(await Store.open(root));
  }
}
