import os from "node:os";
import path from "node:path";
import { Store } from "../store/index.js";
import type { ContainerConfig } from "../oci/index.js";
import { applyChanges } from "./changes.js";
import { openUrl } from "./fetch.js";
import { ImageService } from "./images.js";

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

  private constructor(readonly store: Store) {
    this.images = new ImageService(store);
  }

  changesToConfig(changes: string[], base?: ContainerConfig): ContainerConfig {
    return applyChanges(changes, base);
  }

  openUrl(url: string, opts?: { signal?: AbortSignal }) {
    return openUrl(url, opts);
  }

  static async open(opts: EngineOptions = {}): Promise<Engine> {
    const root = opts.root ? path.resolve(opts.root) : defaultRoot();
    return new Engine(await Store.open(root));
  }
}
