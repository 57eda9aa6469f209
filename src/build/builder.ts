import { createHash } from "node:crypto";
import { existsSync, promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Writable } from "node:stream";
import {
  type AddCommand,
  type Command,
  type CopyCommand,
  chompHeredocContent,
  chooseDockerignore,
  type Dockerfile,
  type DockerignoreSource,
  type ExpandedInstruction,
  type ExpandedStage,
  expandStages,
  isLikelySecretPath,
  type LintWarning,
  lintDockerfile,
  lintFailure,
  loadDockerfile,
  mustParseHeredocWord,
  PatternMatcher,
  type RunCommand,
  readDockerignore,
} from "../dockerfile/index.js";
import type { LayerIndex } from "../layer/index.js";
import {
  type ContainerConfig,
  chainIds,
  type Digest,
  digestOf,
  formatPlatform,
  type History,
  hostPlatform,
  type ImageConfig,
  type Parsed,
  type Platform,
  platformMatches,
} from "../oci/index.js";
import { findRuntime, resolveUser, runProcess } from "../runtime/index.js";
import { diffUpper, findOpaqueDirs, type LayerSource, Snapshotter } from "../snapshot/index.js";
import type { LayerRecord, Store } from "../store/index.js";
import {
  atomicWriteFile,
  errorMessage,
  preloadLock,
  type QuickListing,
  resolveInRoot,
  StrataError,
} from "../util/index.js";
import { isUrl, prepareAdd } from "./add.js";
import { contextBindDigest } from "./bind.js";
import { CopyMemo, layoutsDir, mapLimit, StatCache } from "./checksum.js";
import { type ContextEntry, walkContext } from "./context.js";
import { ContextListing } from "./context-find.js";
import { type CopyItem, copyLayerStream, entryKey, type PreviousLayout, resolveCopy } from "./copy.js";
import type { ProgressSink } from "./progress.js";

/** A base image as the builder needs it; engine/ supplies these (local store, later a registry). */
export interface BaseImage {
  id: Digest;
  config: Parsed<ImageConfig>;
  layers: LayerRecord[];
}

export interface ImageResolver {
  resolve(ref: string, opts: { pull: boolean; platform: Platform }): Promise<BaseImage>;
}

export interface SecretSource {
  id: string;
  data: Buffer;
}

export interface BuildRequest {
  contextDir: string;
  dockerfile: { text: string | Buffer; name: string; dir?: string };
  buildArgs?: Record<string, string>;
  target?: string;
  noCache?: boolean;
  pull?: boolean;
  labels?: Record<string, string>;
  network?: "default" | "host" | "none";
  secrets?: SecretSource[];
  platform?: Platform;
  /** `--check`: run the build checks only, build nothing. */
  checkOnly?: boolean;
  signal?: AbortSignal;
  /** find's quick listing of contextDir, when the caller started it early (util's quickListing). */
  listed?: Promise<QuickListing>;
}

export interface CheckResult {
  warnings: LintWarning[];
  /** BuildKit's message when `# check=error=true` makes the findings fatal. */
  failure?: string;
}

export interface BuildResult {
  config: Parsed<ImageConfig>;
  layers: LayerRecord[];
  warnings: string[];
  /** The "exporting to image" step, left open for the caller to log naming and finish. */
  exportVertex: number;
  checks: CheckResult;
}

/** What a stage is at some point of its build. */
interface StageState {
  config: ImageConfig;
  layers: LayerRecord[];
  /** chainId of the layers ("" for scratch). */
  chain: string;
  history: History[];
  /** Directories and files present (merged layer indexes), built lazily. */
  tree?: TreeView;
  /** This stage set CMD itself (an ENTRYPOINT then keeps it; else it resets the inherited one). */
  cmdSet?: boolean;
}

interface TreeView {
  dirs: Map<string, [number, number, number]>;
  files: Set<string>;
}

/**
 * Which COPY/ADD this is under its parent, whatever its sources hold: the parent chain (its
 * tree, its /etc/passwd for --chown names) and the instruction's fields.
 */
function copyIdentity(c: CopyCommand | AddCommand, chain: string, workdir: string | undefined): string {
  return h(
    "copy-identity",
    c.kind,
    chain,
    c.sources,
    c.dest,
    workdir,
    c.chown,
    c.chmod,
    c.link,
    c.exclude,
    c.kind === "copy" && c.parents,
  );
}

/** Files a COPY must miss in the stat cache before it hashes them while packing its layer. */
const SPECULATE_FILES = 64;

/**
 * Could some path in find's raw output look like a credential? (isLikelySecretPath decides.)
 * Top-level names follow a 0x01 there (util's quick listing).
 */
const MAYBE_SECRET =
  /(?:^|[\0/\x01])(?:\.ssh\/|\.aws\/|\.env|id_rsa|id_dsa|id_ecdsa|id_ed25519|\.npmrc|\.pypirc|\.git-credentials)|\.(?:pem|key)\0/i;

const h = (...parts: unknown[]) => createHash("sha256").update(JSON.stringify(parts)).digest("hex");
const goQuoteList = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(" ")}]`;

/**
 * Builds a Dockerfile into an image with BuildKit's semantics: stages as a graph, only
 * what the target needs, a content-based cache per filesystem step, COPY/ADD straight
 * from the context into a layer, RUN in an overlay snapshot through runc.
 */
export class Builder {
  readonly snapshots: Snapshotter;
  /**
   * Layer blobs written but not yet committed (fsync, rename, then their records), by diff
   * ID: the fsync of a 100 MB layer runs while the next steps do, and the build awaits them
   * all before it hands the image over. Whatever reads a blob awaits its commit first.
   */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(
    readonly store: Store,
    readonly resolver: ImageResolver,
  ) {
    this.snapshots = new Snapshotter(store.root);
  }

  async build(req: BuildRequest, progress: ProgressSink): Promise<BuildResult> {
    const platform = req.platform ?? hostPlatform();
    const host = hostPlatform();
    if (!platformMatches(host, platform))
      throw new StrataError(
        "UNSUPPORTED",
        `building for ${formatPlatform(platform)} is not supported on a ${formatPlatform(host)} host`,
      );
    await this.snapshots.cleanup();

    // 1. The Dockerfile.
    const v0 = progress.start("[internal] load build definition from " + req.dockerfile.name);
    const text =
      typeof req.dockerfile.text === "string" ? req.dockerfile.text : req.dockerfile.text.toString("utf8");
    progress.log(v0, `transferring dockerfile: ${Buffer.byteLength(text)}B done`);
    let df: Dockerfile;
    try {
      df = loadDockerfile(req.dockerfile.text, { file: req.dockerfile.name });
    } catch (e) {
      progress.error(v0, errorMessage(e));
      throw e;
    }
    progress.done(v0);

    // 2. Base images: expand once to learn the FROM names, resolve them, expand again with their configs.
    const expandOpts = {
      buildArgs: req.buildArgs ?? {},
      target: req.target,
      buildPlatform: platform,
      targetPlatform: platform,
    };
    const first = expandStages(df, expandOpts);
    const bases = new Map<string, BaseImage>();
    for (const st of first.stages) {
      const name = st.baseName;
      // A FROM names a stage only if it was defined before; a later stage's name is an image (BuildKit).
      if (st.baseStage !== undefined || name === "scratch" || bases.has(name)) continue;
      const v = progress.start(`[internal] load metadata for ${name}`);
      try {
        bases.set(name, await this.resolver.resolve(name, { pull: !!req.pull, platform }));
      } catch (e) {
        progress.error(v, errorMessage(e));
        throw e;
      }
      progress.done(v);
    }
    const expanded = expandStages(df, {
      ...expandOpts,
      baseImage: (ref) => {
        const b = bases.get(ref);
        if (!b) return undefined;
        const c = b.config.value;
        return { env: c.config?.Env ?? [], onBuild: c.config?.OnBuild ?? [], os: c.os, user: c.config?.User };
      },
    });
    for (const w of expanded.warnings) progress.warn(w);

    // 3. The context and .dockerignore.
    const vi = progress.start("[internal] load .dockerignore");
    const ignoreText = await this.readIgnore(req);
    const matcher = ignoreText ? new PatternMatcher(readDockerignore(ignoreText)) : undefined;
    progress.log(vi, `transferring context: ${ignoreText ? Buffer.byteLength(ignoreText) : 2}B done`);
    progress.done(vi);
    let context: Map<string, ContextEntry> | undefined;
    let listing: ContextListing | undefined;
    // Opened on first use: a build whose COPY steps all hit the memo never reads them.
    let statCacheP: Promise<StatCache> | undefined;
    const statCache = () => (statCacheP ??= StatCache.open(this.store.root, req.contextDir));
    let memoP: Promise<CopyMemo> | undefined;
    const copyMemo = () => (memoP ??= CopyMemo.open(this.store.root));
    const ignoreDigest = h("dockerignore", ignoreText ?? null);
    // The context is listed once, before the steps (BuildKit sends it first). Without `!`
    // exceptions GNU find lists it natively (much faster) and entries are parsed only where
    // a step needs them; with them, the descriptor-based walker applies Docker's re-inclusion rules.
    let listed: Promise<void> | undefined;
    // Memoised as a promise: stages running side by side all wait for the one listing.
    const listContextOnce = () => (listed ??= listContext());
    const listContext = async () => {
      // The build ends by writing metadata under the lock: load its module while find runs.
      preloadLock();
      const v = progress.start("[internal] load build context");
      let bytes = 0;
      if (matcher?.exclusions()) {
        const m = new Map<string, ContextEntry>();
        for await (const e of walkContext(req.contextDir, matcher, { signal: req.signal })) {
          m.set(e.relPath, e);
          bytes += e.type === "file" ? e.size : 0;
        }
        context = m;
      } else {
        listing = await ContextListing.list(req.contextDir, matcher, req.listed);
        bytes = listing.bytes;
      }
      progress.log(v, `transferring context: ${humanBytes(bytes)} done`);
      progress.done(v);
    };
    const loadContext = async () => {
      await listContextOnce();
      context ??= await listing!.entries();
      return context;
    };
    /** The entries a COPY's sources can see: their top-level subtrees when that is enough. */
    const contextFor = async (sources: readonly string[]) => {
      await listContextOnce();
      if (context) return context;
      const tops = listing!.topsFor(sources);
      return tops ? listing!.entries(tops) : loadContext();
    };
    // What a RUN bind mount of the context shows: the context with .dockerignore applied (a
    // read-only overlay whose top layer whites the ignored entries out), made once per build.
    let contextViewP: Promise<{ mountpoint: string; remove(): Promise<void> } | undefined> | undefined;
    const contextView = async () => {
      contextViewP ??= (async () => {
        if (!matcher) return undefined;
        const included = await loadContext();
        const all = await (
          listing?.unfiltered() ?? (await ContextListing.list(req.contextDir, undefined))
        ).entries();
        const hidden: string[] = [];
        for (const p of all.keys()) {
          if (included.has(p)) continue;
          const slash = p.lastIndexOf("/");
          if (slash < 0 || included.has(p.slice(0, slash))) hidden.push(p);
        }
        if (!hidden.length) return undefined;
        const top = await fsp.lstat(req.contextDir);
        return this.snapshots.maskedView(req.contextDir, hidden, (rel) =>
          rel === ""
            ? { mode: top.mode, uid: top.uid, gid: top.gid, mtimeMs: top.mtimeMs }
            : (included.get(rel) ?? all.get(rel)),
        );
      })();
      return (await contextViewP)?.mountpoint ?? req.contextDir;
    };
    const quickSignature = async (sources: readonly string[]) => {
      await listContextOnce();
      return listing ? `${ignoreDigest}:${listing.signature(sources)}` : undefined;
    };

    // BuildKit sends the context before the steps that use it.
    const usesContext = expanded.stages.some((st) =>
      st.instructions.some((i) => (i.command.kind === "copy" && !i.command.from) || i.command.kind === "add"),
    );
    if (usesContext || req.checkOnly) await listContextOnce();

    // The build checks (BuildKit's rules and Strata's), with what the context holds.
    const lintResult = lintDockerfile(df, {
      ...expandOpts,
      baseImage: (ref) => {
        const c = bases.get(ref)?.config.value;
        return c
          ? { env: c.config?.Env ?? [], onBuild: c.config?.OnBuild ?? [], os: c.os, user: c.config?.User }
          : undefined;
      },
      dockerignore: ignoreText ? readDockerignore(ignoreText) : [],
      // SecretInContext reports only likely-secret paths: hand it just those (a few, not 10,000).
      contextFiles:
        context || listing
          ? // find's raw output shows at once whether any path could look like a secret
            listing && !context && !MAYBE_SECRET.test(listing.rawText())
            ? []
            : [...(await loadContext()).values()]
                .filter((e) => e.type === "file" && isLikelySecretPath(e.relPath))
                .map((e) => e.relPath)
          : undefined,
    });
    const checks: CheckResult = {
      warnings: lintResult.warnings,
      failure: lintFailure(lintResult.warnings, lintResult.config),
    };
    if (checks.failure && !req.checkOnly) throw new StrataError("INVALID_ARGUMENT", checks.failure);
    if (req.checkOnly) return { checks } as BuildResult;

    // 4. Stages, each a promise; a stage waits only for those it uses.
    const results = new Map<number, Promise<StageState>>();
    // When one stage fails the others are canceled, and awaited: their RUNs stop and their
    // snapshots are unmounted and removed before the build reports the failure.
    const stop = new AbortController();
    const stageReq = {
      ...req,
      signal: req.signal ? AbortSignal.any([req.signal, stop.signal]) : stop.signal,
    };
    const runStage = (st: ExpandedStage): Promise<StageState> => {
      let p = results.get(st.index);
      if (!p) {
        p = this.buildStage(st, expanded.stages, {
          req: stageReq,
          progress,
          bases,
          loadContext,
          contextView,
          contextFor,
          quickSignature,
          copyMemo,
          statCache,
          runStage,
          platform,
        });
        results.set(st.index, p);
      }
      return p;
    };
    const targetStage = expanded.stages.find((s) => s.index === expanded.target)!;
    // Start every needed stage now so independent ones overlap.
    const all = expanded.stages.map((s) => runStage(s));
    let final: StageState;
    try {
      // Promise.all first: it handles every stage's rejection at once (a stage failing while the
      // target still waits for another was an unhandled rejection, a crash).
      await Promise.all(all);
      final = await runStage(targetStage);
      // Every layer blob committed and recorded before the image refers to them.
      await this.settle();
    } catch (e) {
      stop.abort(e);
      await Promise.allSettled(all);
      await this.settle().catch(() => {});
      throw e;
    } finally {
      await Promise.all([
        contextViewP?.then((v) => v?.remove()).catch(() => {}),
        statCacheP?.then((c) => c.save()).catch(() => {}),
        memoP?.then((m) => m.save()).catch(() => {}),
      ]);
    }

    // 5. The image config.
    const ve = progress.start("exporting to image");
    const cfg: ImageConfig = structuredClone(final.config);
    if (req.labels && Object.keys(req.labels).length) {
      cfg.config = { ...(cfg.config ?? {}), Labels: { ...(cfg.config?.Labels ?? {}), ...req.labels } };
    }
    // Times come from the cache records, so a fully cached rebuild gives the same image ID.
    cfg.created = latestCreated(final.history);
    cfg.history = final.history;
    cfg.rootfs = { type: "layers", diff_ids: final.layers.map((l) => l.diffId) };
    const raw = JSON.stringify(orderConfig(cfg));
    // Strata wrote this document itself from validated parts: no schema pass (zod) needed.
    const config: Parsed<ImageConfig> = {
      value: JSON.parse(raw) as ImageConfig,
      raw: Buffer.from(raw),
      digest: digestOf(raw),
    };
    progress.log(ve, "exporting layers done");
    return { config, layers: final.layers, warnings: expanded.warnings, exportVertex: ve, checks };
  }

  /** BuildKit's choice: `<Dockerfile>.dockerignore` beside the Dockerfile, else the context's `.dockerignore`. */
  private async readIgnore(req: BuildRequest): Promise<string | undefined> {
    const where = (src: DockerignoreSource) =>
      src.location === "dockerfile"
        ? path.join(req.dockerfile.dir ?? req.contextDir, path.basename(src.path))
        : path.join(req.contextDir, src.path);
    const choice = chooseDockerignore(path.basename(req.dockerfile.name), (src) => existsSync(where(src)));
    return choice ? fsp.readFile(where(choice), "utf8") : undefined;
  }

  private async buildStage(
    st: ExpandedStage,
    stages: ExpandedStage[],
    b: {
      req: BuildRequest;
      progress: ProgressSink;
      bases: Map<string, BaseImage>;
      loadContext: () => Promise<Map<string, ContextEntry>>;
      /** The directory a RUN bind mount of the context uses (.dockerignore applied). */
      contextView: () => Promise<string>;
      contextFor: (sources: readonly string[]) => Promise<Map<string, ContextEntry>>;
      quickSignature: (sources: readonly string[]) => Promise<string | undefined>;
      copyMemo: () => Promise<CopyMemo>;
      statCache: () => Promise<StatCache>;
      runStage: (s: ExpandedStage) => Promise<StageState>;
      platform: Platform;
    },
  ): Promise<StageState> {
    const { progress } = b;
    const fsSteps = st.instructions.filter((i) => ["run", "copy", "add", "workdir"].includes(i.command.kind));
    const total = fsSteps.length + 1;
    const label = (n: number) =>
      stages.length > 1 ? `[${st.name || `stage-${st.index}`} ${n}/${total}]` : `[${n}/${total}]`;
    let step = 1;

    // FROM
    let state: StageState;
    const vf = progress.start(`${label(step)} FROM ${st.baseName === "scratch" ? "scratch" : st.baseName}`);
    if (st.baseStage !== undefined) {
      const parent = await b.runStage(stages.find((s) => s.index === st.baseStage)!);
      state = {
        ...parent,
        config: structuredClone(parent.config),
        history: [...parent.history],
        layers: [...parent.layers],
        // The parent stage's CMD is inherited, not set by this stage: an ENTRYPOINT here resets it.
        cmdSet: false,
      };
    } else if (st.baseName === "scratch") {
      state = {
        // BuildKit's empty image: a PATH and WorkingDir "/" (dockerfile2llb emptyImage).
        config: {
          architecture: b.platform.architecture,
          os: b.platform.os,
          config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: "/" },
          rootfs: { type: "layers", diff_ids: [] },
        } as ImageConfig,
        layers: [],
        chain: "",
        history: [],
      };
      if (b.platform.variant) state.config.variant = b.platform.variant;
    } else {
      const base = b.bases.get(st.baseName)!;
      const cfg = structuredClone(base.config.value);
      state = {
        config: cfg,
        layers: base.layers,
        chain: chainOf(base.layers),
        history: [...(cfg.history ?? [])],
      };
      // BuildKit gives every image a PATH.
      const env = cfg.config?.Env ?? [];
      if (!env.some((e) => e.startsWith("PATH=")))
        cfg.config = { ...(cfg.config ?? {}), Env: [`PATH=${DEFAULT_PATH}`, ...env] };
    }
    state.config.config ??= {};
    // A new stage's ONBUILD list is its own; the base's triggers already ran through expandStages.
    if (st.baseStage === undefined && st.baseName !== "scratch") state.config.config.OnBuild = null;
    progress.done(vf);

    for (const [i, ins] of st.instructions.entries()) {
      b.req.signal?.throwIfAborted();
      const c = ins.command;
      if (["run", "copy", "add", "workdir"].includes(c.kind)) step++;
      const name = `${label(step)} ${displayOf(ins)}`;
      // A RUN later in the stage will need this step's layer unpacked.
      const laterRun = st.instructions.slice(i + 1).some((x) => x.command.kind === "run");
      try {
        state = await this.dispatch(ins, state, name, stages, b, laterRun);
      } catch (e) {
        const where = `${b.req.dockerfile.name}:${c.location.startLine}`;
        if (e instanceof StrataError && !e.message.startsWith(`${b.req.dockerfile.name}:`)) {
          const wrapped = new StrataError(e.code, e.message, { cause: e });
          (wrapped as StrataError & { where?: string }).where = where;
          throw wrapped;
        }
        throw e;
      }
    }
    return state;
  }

  private async dispatch(
    ins: ExpandedInstruction<Command>,
    s: StageState,
    name: string,
    stages: ExpandedStage[],
    b: Parameters<Builder["buildStage"]>[2],
    laterRun = false,
  ): Promise<StageState> {
    const c = ins.command;
    const cc = (s.config.config ??= {}) as ContainerConfig & Record<string, unknown>;
    const meta = (createdBy: string) => {
      s.history.push({
        created: latestCreated(s.history),
        created_by: createdBy,
        comment: "buildkit.dockerfile.v0",
        empty_layer: true,
      });
      return s;
    };
    switch (c.kind) {
      case "env": {
        const env = [...(cc.Env ?? [])];
        for (const p of c.pairs) {
          const i = env.findIndex((e) => e.startsWith(`${p.key}=`));
          if (i >= 0) env[i] = `${p.key}=${p.value}`;
          else env.push(`${p.key}=${p.value}`);
        }
        cc.Env = env;
        return meta(`ENV ${c.pairs.map((p) => `${p.key}=${p.value}`).join(" ")}`);
      }
      case "label": {
        cc.Labels = { ...(cc.Labels ?? {}) };
        for (const p of c.pairs) cc.Labels[p.key] = p.value;
        return meta(`LABEL ${c.pairs.map((p) => `${p.key}=${p.value}`).join(" ")}`);
      }
      case "expose": {
        cc.ExposedPorts = { ...(cc.ExposedPorts ?? {}) };
        for (const p of c.ports) cc.ExposedPorts[p.includes("/") ? p : `${p}/tcp`] = {};
        return meta(
          `EXPOSE map[${Object.keys(cc.ExposedPorts)
            .sort()
            .map((k) => `${k}:{}`)
            .join(" ")}]`,
        );
      }
      case "user":
        cc.User = c.user;
        return meta(`USER ${c.user}`);
      case "cmd":
        cc.Cmd = c.prependShell ? [...(cc.Shell ?? ["/bin/sh", "-c"]), c.cmdLine.join(" ")] : c.cmdLine;
        if (c.prependShell) cc.ArgsEscaped = true;
        s.cmdSet = true;
        return meta(`CMD ${goQuoteList(cc.Cmd)}`);
      case "entrypoint": {
        cc.Entrypoint = c.prependShell
          ? [...(cc.Shell ?? ["/bin/sh", "-c"]), c.cmdLine.join(" ")]
          : c.cmdLine.length
            ? c.cmdLine
            : null;
        // An ENTRYPOINT resets a CMD this stage did not set (Docker's rule).
        if (!s.cmdSet) cc.Cmd = null;
        return meta(`ENTRYPOINT ${goQuoteList(cc.Entrypoint ?? [])}`);
      }
      case "volume":
        cc.Volumes = { ...(cc.Volumes ?? {}) };
        for (const v of c.volumes) cc.Volumes[v] = {};
        return meta(`VOLUME ${goQuoteList(c.volumes).replace(/"/g, "")}`);
      case "stopsignal":
        cc.StopSignal = c.signal;
        return meta(`STOPSIGNAL ${c.signal}`);
      case "healthcheck": {
        const hc = c.health;
        cc.Healthcheck =
          hc.test[0] === "NONE"
            ? { Test: ["NONE"] }
            : {
                Test: hc.test,
                ...(hc.interval ? { Interval: hc.interval } : {}),
                ...(hc.timeout ? { Timeout: hc.timeout } : {}),
                ...(hc.startPeriod ? { StartPeriod: hc.startPeriod } : {}),
                ...(hc.startInterval ? { StartInterval: hc.startInterval } : {}),
                ...(hc.retries ? { Retries: hc.retries } : {}),
              };
        return meta(`HEALTHCHECK ${c.code.replace(/^healthcheck\s+/i, "")}`);
      }
      case "shell":
        cc.Shell = c.shell;
        return meta(`SHELL ${goQuoteList(c.shell).replace(/"/g, "")}`);
      case "onbuild":
        cc.OnBuild = [...(cc.OnBuild ?? []), c.expression];
        return meta(`ONBUILD ${c.expression}`);
      case "maintainer":
        s.config.author = c.maintainer;
        return meta(`MAINTAINER ${c.maintainer}`);
      case "arg":
        return meta(
          `ARG ${c.args.map((a) => (a.value !== undefined ? `${a.key}=${ins.env.get(a.key) ?? a.value}` : a.key)).join(" ")}`,
        );
      case "workdir":
        return this.workdir(ins as ExpandedInstruction<typeof c>, s, name, b);
      case "copy":
      case "add":
        return this.copy(ins as ExpandedInstruction<CopyCommand | AddCommand>, s, name, stages, b, laterRun);
      case "run":
        return this.run(ins as ExpandedInstruction<RunCommand>, s, name, b, stages);
    }
  }

  // --- the directory view of a stage, for COPY and WORKDIR -------------------------------

  private async tree(s: StageState): Promise<TreeView> {
    if (s.tree) return s.tree;
    const t: TreeView = { dirs: new Map(), files: new Set() };
    for (const l of s.layers) mergeIndex(t, await this.store.layerIndex(l.diffId));
    s.tree = t;
    return t;
  }

  private withLayer(
    s: StageState,
    layer: LayerRecord | null,
    history: History,
    index?: LayerIndex,
  ): StageState {
    const layers = layer ? [...s.layers, layer] : s.layers;
    let tree = s.tree;
    if (layer && tree && index) {
      tree = { dirs: new Map(tree.dirs), files: new Set(tree.files) };
      mergeIndex(tree, index);
    } else if (layer) tree = undefined;
    return {
      config: { ...s.config, rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } },
      layers,
      chain: layer ? chainOf(layers) : s.chain,
      history: [...s.history, layer ? history : { ...history, empty_layer: true }],
      tree,
      cmdSet: s.cmdSet,
    };
  }

  private layoutPath(identity: string): string {
    return path.join(layoutsDir(this.store.root), `${identity}.json`);
  }

  /** Where each entry lies in the layer a COPY (by identity) made last, if its blob is still here. */
  private async previousLayout(
    identity: string,
  ): Promise<{ diffId: Digest; layout: PreviousLayout; keys: Map<string, string> } | undefined> {
    try {
      const doc = JSON.parse(await fsp.readFile(this.layoutPath(identity), "utf8")) as {
        version: number;
        diffId: Digest;
        entries: [string, string, number, number][];
      };
      if (doc.version !== 1 || !(await this.store.content.has(doc.diffId))) return undefined;
      const entries = new Map<string, [string, number, number]>();
      const keys = new Map<string, string>();
      for (const [d, k, o, l] of doc.entries) {
        entries.set(d, [k, o, l]);
        keys.set(d, k);
      }
      return { diffId: doc.diffId, layout: { blob: this.store.content.blobPath(doc.diffId), entries }, keys };
    } catch {
      return undefined; // none, or unreadable: the layer is made from the files
    }
  }

  private async saveLayout(identity: string, diffId: Digest, entries: [string, string, number, number][]) {
    await fsp.mkdir(path.dirname(this.layoutPath(identity)), { recursive: true });
    await atomicWriteFile(this.layoutPath(identity), JSON.stringify({ version: 1, diffId, entries }), {
      sync: false,
    });
  }

  /**
   * The snapshot of a COPY layer derived from the one its previous layer has: what changed
   * is unpacked over a hard-linked copy. Undefined (unpack the whole layer) when that
   * snapshot is gone or an entry changed type (a directory cannot be replaced in place).
   */
  private async deriveSnapshot(
    previous: { diffId: Digest; keys: Map<string, string> },
    all: CopyItem[],
    s: StageState,
  ) {
    const now = new Set<string>();
    const delta: CopyItem[] = [];
    for (const it of all) {
      now.add(it.dest);
      const before = previous.keys.get(it.dest);
      if (before !== undefined && before.slice(0, before.indexOf("|")) !== it.type) return undefined;
      if (it.type === "dir" || before !== entryKey(it)) delta.push(it);
    }
    const removed = [...previous.keys.keys()].filter((d) => !now.has(d));
    const from = chainIds([...s.layers.map((x) => x.diffId), previous.diffId]).at(-1)!;
    return this.snapshots.prepareDerived(from, removed, copyLayerStream(delta, []));
  }

  /** A build-cache record whose layer is still in the store. */
  private async cacheRecord(
    key: string,
  ): Promise<{ layer: LayerRecord | null; created: string } | undefined> {
    const doc = await this.store.meta.read();
    const rec = doc.buildCache?.[key];
    if (
      rec &&
      (rec.diffId === null || (doc.layers[rec.diffId] && (await this.store.content.has(rec.diffId))))
    )
      return { layer: rec.diffId ? doc.layers[rec.diffId]! : null, created: rec.created };
    return undefined;
  }

  /** Look a step up in the build cache; on a miss run `make` and record its layer. */
  private async cached(
    key: string,
    noCache: boolean,
    vertex: number,
    progress: ProgressSink,
    make: () => Promise<LayerRecord | null>,
  ): Promise<{ layer: LayerRecord | null; created: string; hit: boolean }> {
    if (!noCache) {
      const rec = await this.cacheRecord(key);
      if (rec) {
        progress.cached(vertex);
        return { ...rec, hit: true };
      }
    }
    const layer = await make();
    const created = new Date().toISOString();
    const record = () =>
      this.store.meta.update((doc) => {
        doc.buildCache ??= {};
        doc.buildCache[key] = { diffId: layer?.diffId ?? null, created, lastUsed: created };
        if (layer && !doc.layers[layer.diffId]) doc.layers[layer.diffId] = layer;
      });
    // A layer whose blob is still being committed is recorded once it is there.
    if (layer && this.pending.has(layer.diffId)) this.defer(layer.diffId, Promise.resolve(), record);
    else await record();
    progress.done(vertex);
    return { layer, created, hit: false };
  }

  private async workdir(
    ins: ExpandedInstruction<Extract<Command, { kind: "workdir" }>>,
    s: StageState,
    name: string,
    b: Parameters<Builder["buildStage"]>[2],
  ) {
    const cc = (s.config.config ??= {});
    const p = ins.command.path;
    const wd = path.posix.isAbsolute(p) ? path.posix.normalize(p) : path.posix.join(cc.WorkingDir || "/", p);
    cc.WorkingDir = wd;
    const v = b.progress.start(name);
    const tree = await this.tree(s);
    const rel = wd.replace(/^\/+/, "").replace(/\/$/, "");
    const missing = missingDirs(tree, rel);
    const history: History = { created_by: `WORKDIR ${wd}`, comment: "buildkit.dockerfile.v0" };
    if (!missing.length) {
      // Nothing to create, but a cache record all the same: a rebuild shows CACHED, as BuildKit's does.
      await this.cached(h("workdir", s.chain, wd), !!b.req.noCache, v, b.progress, async () => null);
      return this.withLayer(s, null, { ...history, created: latestCreated(s.history) });
    }
    const owner = cc.User ? await this.ownerFor(s, cc.User) : { uid: 0, gid: 0 };
    const dirs: CopyItem[] = missing.map((d) => ({
      dest: d,
      type: "dir",
      mode: 0o755,
      ...owner,
      mtimeMs: Date.now(),
      size: 0,
    }));
    const key = h("workdir", s.chain, missing, owner);
    const r = await this.cached(key, !!b.req.noCache, v, b.progress, async () =>
      this.store.ingestLayer(copyLayerStream([], dirs)),
    );
    const idx: LayerIndex = {
      dirs: Object.fromEntries(dirs.map((d) => [d.dest, [0o755, owner.uid, owner.gid]])),
      files: [],
      whiteouts: [],
      opaque: [],
    };
    return this.withLayer(s, r.layer, { ...history, created: r.created }, idx);
  }

  private async ownerFor(s: StageState, spec: string): Promise<{ uid: number; gid: number }> {
    const [u, g] = spec.split(":", 2) as [string, string | undefined];
    // Docker: a user without a group uses the same number as the GID.
    if (/^\d+$/.test(u) && (g === undefined || /^\d+$/.test(g)))
      return { uid: Number(u), gid: g === undefined ? Number(u) : Number(g) };
    // Names: read /etc/passwd and /etc/group from the stage's layers (unpacked once per chain).
    const lowers = await this.snapshots.ensureChain(this.layerSources(s.layers));
    const snap = await this.snapshots.prepare(lowers);
    try {
      const r = await resolveUser(snap.mountpoint, spec);
      return { uid: r.uid, gid: g === undefined ? r.uid : r.gid };
    } finally {
      await snap.remove();
    }
  }

  private layerSources(layers: LayerRecord[]): LayerSource[] {
    return layers.map((l) => ({
      diffId: l.diffId,
      open: async () => {
        await this.pending.get(l.diffId);
        return this.store.content.open(l.diffId);
      },
    }));
  }

  /** Commit a staged layer in the background (see `pending`); `then` runs after it. */
  private defer(diffId: string, commit: Promise<void>, then?: () => Promise<unknown>): void {
    const prev = this.pending.get(diffId);
    const p = Promise.all([prev, commit]).then(async () => {
      await then?.();
    });
    p.catch(() => {}); // awaited by settle(); not an unhandled rejection meanwhile
    this.pending.set(diffId, p);
  }

  /** Wait for every deferred commit; the first failure is thrown after all have settled. */
  private async settle(): Promise<void> {
    const all = [...this.pending.values()];
    this.pending.clear();
    const r = await Promise.allSettled(all);
    const failed = r.find((x): x is PromiseRejectedResult => x.status === "rejected");
    if (failed) throw failed.reason;
  }

  private async copy(
    ins: ExpandedInstruction<CopyCommand | AddCommand>,
    s: StageState,
    name: string,
    stages: ExpandedStage[],
    b: Parameters<Builder["buildStage"]>[2],
    laterRun = false,
  ): Promise<StageState> {
    const c = ins.command;
    const cc = s.config.config ?? {};
    const from = c.kind === "copy" ? c.from : "";
    const createdBy = `${c.code.replace(/^(copy|add)\b/i, (m) => m.toUpperCase())} # buildkit`;
    // A COPY from the context whose sources' listing records are byte for byte those of an
    // earlier build reuses that build's cache key: nothing is parsed, resolved or hashed.
    // Everything else the key depends on is in the quick key: the parent chain (its tree,
    // its /etc/passwd for --chown names), the instruction's fields, the .dockerignore.
    let quick: string | undefined;
    if (c.kind === "copy" && !from && !c.heredocs.length && !b.req.noCache) {
      const sig = await b.quickSignature(c.sources);
      if (sig) {
        quick = h("copy-quick", copyIdentity(c, s.chain, cc.WorkingDir), sig);
        const key = (await b.copyMemo()).get(quick);
        const rec = key ? await this.cacheRecord(key) : undefined;
        if (rec) {
          const v = b.progress.start(name);
          b.progress.cached(v);
          return this.withLayer(s, rec.layer, {
            created: rec.created,
            created_by: createdBy,
            comment: "buildkit.dockerfile.v0",
          });
        }
      }
    }
    const chown = c.chown ? await this.ownerFor(s, c.chown) : undefined;
    const chmod = c.chmod ? Number.parseInt(c.chmod, 8) : undefined;
    if (c.chmod && (chmod === undefined || Number.isNaN(chmod) || !/^[0-7]{3,4}$/.test(c.chmod)))
      throw new StrataError("INVALID_ARGUMENT", `invalid chmod parameter: ${c.chmod}`);
    // ADD downloads URLs and unpacks local archives (add.ts); COPY does neither.
    if (c.kind === "copy" && c.sources.some(isUrl))
      throw new StrataError("INVALID_ARGUMENT", "source can't be a URL for COPY");
    const urls = c.kind === "add" ? c.sources.filter(isUrl) : [];
    const v = b.progress.start(name);
    let entries: Map<string, ContextEntry>;
    let root: string;
    let release = async () => {};
    let sourceKey: unknown;
    if (from) {
      const isStage = /^\d+$/.test(from) || stages.some((x) => x.name === from.toLowerCase());
      const { layers: srcLayers, chain: srcChain } = await this.fromLayers(from, stages, b).catch((e) => {
        // An image that cannot be found fails this step, on its own line (a failed stage shows its own).
        if (!isStage) b.progress.error(v, errorMessage(e));
        throw e;
      });
      const lowers = await this.snapshots.ensureChain(this.layerSources(srcLayers));
      const snap = await this.snapshots.prepare(lowers);
      release = () => snap.remove();
      root = snap.mountpoint;
      entries = new Map();
      for await (const e of walkContext(root, undefined)) entries.set(e.relPath, e);
      sourceKey = { chain: srcChain, sources: c.sources };
    } else {
      entries = await b.contextFor(c.sources);
      root = b.req.contextDir;
    }
    try {
      const tree = await this.tree(s);
      const items: CopyItem[] = [];
      for (const hd of c.heredocs) {
        const dest = c.dest.endsWith("/") ? path.posix.join(c.dest, hd.path) : c.dest;
        const abs = path.posix.isAbsolute(dest) ? dest : path.posix.join(cc.WorkingDir || "/", dest);
        const data = Buffer.from(hd.data);
        items.push({
          dest: abs.replace(/^\/+/, ""),
          type: "file",
          mode: chmod ?? 0o644,
          uid: chown?.uid ?? 0,
          gid: chown?.gid ?? 0,
          mtimeMs: Date.now(),
          size: data.length,
          source: { data },
        });
      }
      const fileSources = c.sources.filter(
        (x) => !c.heredocs.some((hd) => hd.path === x) && !urls.includes(x),
      );
      if (fileSources.length)
        items.push(
          ...resolveCopy(
            entries,
            fileSources,
            c.dest,
            {
              workdir: cc.WorkingDir || "/",
              chown,
              chmod,
              name: c.kind.toUpperCase(),
              keepOwner: !!from,
              exclude: c.exclude,
              parents: c.kind === "copy" && c.parents,
            },
            root,
            (p) => tree.dirs.has(p),
          ),
        );
      if (c.kind === "add") {
        const prep = await prepareAdd(items, {
          urls,
          sourceCount: c.sources.length,
          dest: c.dest,
          workdir: cc.WorkingDir || "/",
          chown,
          chmod,
          checksum: c.checksum || undefined,
          unpack: c.unpack,
          destIsDir: (p) => tree.dirs.has(p),
          signal: b.req.signal,
        });
        items.splice(0, items.length, ...prep.items);
        const previous = release;
        release = async () => {
          await prep.release();
          await previous();
        };
      }
      // Most of the files unknown to the stat cache (a first build, a new dependency tree):
      // hash them while packing the layer, one read per file, and look the key up after.
      let speculate: { statCache: StatCache } | undefined;
      if (!from) {
        const statCache = await b.statCache();
        const misses: CopyItem[] = [];
        for (const it of items) {
          if (
            it.digest ||
            !(it.type === "file" || it.type === "archive") ||
            !it.source ||
            !("abs" in it.source)
          )
            continue;
          const hit = statCache.cached(it.source.abs, it.entry!);
          if (hit) it.digest = hit;
          else misses.push(it);
        }
        const missBytes = misses.reduce((n, it) => n + it.size, 0);
        const fileBytes = items.reduce((n, it) => n + (it.type === "file" ? it.size : 0), 0);
        if (
          misses.length >= SPECULATE_FILES &&
          missBytes * 2 >= fileBytes &&
          !items.some((it) => it.type === "archive")
        )
          speculate = { statCache };
        else
          await mapLimit(misses, 8, async (it) => {
            it.digest = await statCache.digest((it.source as { abs: string }).abs, it.entry!);
          });
      } else
        for (const it of items)
          if (it.type === "file" && it.source && "data" in it.source)
            it.digest = createHash("sha256").update(it.source.data).digest("hex");
      // Parent directories this copy must create.
      const needed = new Set<string>();
      for (const it of items) {
        let d = it.dest;
        for (let i = d.lastIndexOf("/"); i > 0; i = d.lastIndexOf("/")) {
          d = d.slice(0, i);
          if (needed.has(d)) break;
          needed.add(d);
        }
      }
      const itemDests = new Set(items.map((it) => it.dest));
      const newDirs: CopyItem[] = [...needed]
        .filter((d) => !tree.dirs.has(d) && !itemDests.has(d))
        .sort()
        .map((d) => ({
          dest: d,
          type: "dir",
          mode: 0o755,
          uid: chown?.uid ?? 0,
          gid: chown?.gid ?? 0,
          mtimeMs: Date.now(),
          size: 0,
        }));
      const idx: LayerIndex = { dirs: {}, files: [], whiteouts: [], opaque: [] };
      let contentSize = 0;
      for (const it of [...newDirs, ...items]) {
        if (it.type === "dir") idx.dirs[it.dest] = [it.mode, it.uid, it.gid];
        else idx.files.push(it.dest);
        if (it.type === "file") contentSize += it.size;
      }
      // The tar is written from these items: its index is known, unless an archive is unpacked
      // into it or a name would read as a whiteout.
      const known =
        items.some((it) => it.type === "archive") || idx.files.some((f) => /(?:^|\/)\.wh\./.test(f))
          ? undefined
          : { index: idx, contentSize };
      // With a RUN ahead, the layer is unpacked into its snapshot in the same pass (on the
      // other core) rather than read back from the blob later.
      const chainOfLayer = (l: LayerRecord) => chainIds([...s.layers.map((x) => x.diffId), l.diffId]).at(-1)!;
      let staged: Awaited<ReturnType<Store["stageLayer"]>> | undefined;
      let stagedTee: Awaited<ReturnType<Snapshotter["unpackTee"]>> | undefined;
      // Which COPY this is, whatever its sources hold: the layer it makes records where each
      // entry lies (meta/layouts), so that the next run under the same parent builds on it.
      const identity =
        !from && !items.some((it) => it.type === "archive")
          ? copyIdentity(c, s.chain, cc.WorkingDir)
          : undefined;
      const stagedLayout: [string, string, number, number][] = [];
      if (speculate) {
        const { statCache } = speculate;
        stagedTee = laterRun && process.getuid?.() === 0 ? await this.snapshots.unpackTee() : undefined;
        try {
          staged = await this.store.stageLayer(
            copyLayerStream(items, newDirs, (p) => tree.dirs.has(p), {
              cold: true,
              hashed: (it, hex) => statCache.record((it.source as { abs: string }).abs, it.entry!, hex),
              layout: identity ? (d, k, o, l) => stagedLayout.push([d, k, o, l]) : undefined,
            }),
            { tees: stagedTee ? [stagedTee.sink as Writable] : [], known, deferSync: true },
          );
        } catch (e) {
          await stagedTee?.abort();
          throw e;
        }
      }
      const key = h(
        c.kind,
        s.chain,
        sourceKey ?? null,
        c.dest,
        cc.WorkingDir,
        chown,
        chmod,
        c.link,
        c.exclude,
        items.map((it) => [
          it.dest,
          it.type,
          it.mode,
          it.uid,
          it.gid,
          it.size,
          it.linkTarget,
          it.digest ?? (from ? it.mtimeMs : null),
        ]),
        newDirs.map((d) => d.dest),
      );
      let r: Awaited<ReturnType<Builder["cached"]>>;
      try {
        r = await this.cached(key, !!b.req.noCache, v, b.progress, async () => {
          if (staged) {
            if (stagedTee) await stagedTee.commit(chainOfLayer(staged.record));
            this.defer(staged.record.diffId, staged.commit());
            if (identity) await this.saveLayout(identity, staged.record.diffId, stagedLayout);
            return staged.record;
          }
          if (!items.length && !newDirs.length) return null;
          // The same bytes as a layer made before (this COPY under another parent: its tar
          // does not depend on the parent): that blob, without packing anything again.
          const content = items.every((it) => it.type !== "archive" && (it.type !== "file" || it.digest))
            ? (() => {
                const hc = createHash("sha256").update("layer-content\n");
                for (const it of [...newDirs, ...items].sort((x, y) =>
                  x.dest < y.dest ? -1 : x.dest > y.dest ? 1 : 0,
                ))
                  hc.update(`${it.dest}\0${entryKey(it)}\n`);
                return hc.digest("hex");
              })()
            : undefined;
          const memo = content ? await b.copyMemo() : undefined;
          const sameAs = content ? memo!.get(`layer:${content}`) : undefined;
          if (sameAs) {
            const doc = await this.store.meta.read();
            const rec = doc.layers[sameAs];
            if (rec && (await this.store.content.has(rec.diffId))) return rec;
          }
          // The layer this COPY made last time (same parent, same instruction): unchanged
          // entries are copied from its blob, and its snapshot is derived from the earlier one
          // (when every entry's content is known: a key needs its digest).
          const previous = identity && content ? await this.previousLayout(identity) : undefined;
          const wantSnapshot = laterRun && process.getuid?.() === 0;
          const derived =
            wantSnapshot && previous
              ? await this.deriveSnapshot(previous, [...newDirs, ...items], s)
              : undefined;
          const tee = wantSnapshot && !derived ? await this.snapshots.unpackTee() : undefined;
          const layout: [string, string, number, number][] = [];
          try {
            const st = await this.store.stageLayer(
              copyLayerStream(items, newDirs, (p) => tree.dirs.has(p), {
                previous: previous?.layout,
                layout: identity ? (d, k, o, l) => layout.push([d, k, o, l]) : undefined,
              }),
              { tees: tee ? [tee.sink as Writable] : [], known, deferSync: true },
            );
            if (tee) await tee.commit(chainOfLayer(st.record));
            if (derived) await derived.commit(chainOfLayer(st.record));
            this.defer(st.record.diffId, st.commit());
            if (content) memo!.set(`layer:${content}`, st.record.diffId);
            if (identity) await this.saveLayout(identity, st.record.diffId, layout);
            return st.record;
          } catch (e) {
            await tee?.abort();
            await derived?.abort();
            throw e;
          }
        });
      } catch (e) {
        await staged?.discard().catch(() => {});
        await stagedTee?.abort().catch(() => {});
        throw e;
      }
      // The cache had it after all (files touched, not changed): the staged work goes.
      if (staged && r.hit) {
        await staged.discard();
        await stagedTee?.abort();
      }
      if (quick) (await b.copyMemo()).set(quick, key);
      return this.withLayer(
        s,
        r.layer,
        { created: r.created, created_by: createdBy, comment: "buildkit.dockerfile.v0" },
        // An unpacked archive's contents are known from the layer's own index, read when needed.
        items.some((it) => it.type === "archive") ? undefined : idx,
      );
    } catch (e) {
      b.progress.error(v, errorMessage(e));
      throw e;
    } finally {
      await release();
    }
  }

  /** The layers `COPY --from` / `--mount=…,from=` name: an earlier stage (name or index), else an image. */
  private async fromLayers(
    from: string,
    stages: ExpandedStage[],
    b: Parameters<Builder["buildStage"]>[2],
  ): Promise<{ layers: LayerRecord[]; chain: string }> {
    const st = /^\d+$/.test(from)
      ? stages.find((x) => x.index === Number(from))
      : stages.find((x) => x.name === from.toLowerCase());
    if (st) {
      const done = await b.runStage(st);
      return { layers: done.layers, chain: done.chain };
    }
    const img = await this.resolver.resolve(from, { pull: !!b.req.pull, platform: b.platform });
    return { layers: img.layers, chain: chainOf(img.layers) };
  }

  private async run(
    ins: ExpandedInstruction<RunCommand>,
    s: StageState,
    name: string,
    b: Parameters<Builder["buildStage"]>[2],
    stages: ExpandedStage[] = [],
  ): Promise<StageState> {
    const c = ins.command;
    const cc = s.config.config ?? {};
    const shell = cc.Shell ?? ["/bin/sh", "-c"];
    let script = c.cmdLine.join(" ");
    if (c.prependShell && c.heredocs.length) {
      // The shell reads heredocs natively: give it the line and the bodies as written.
      script = [
        script,
        ...c.heredocs.map((hd) => `${hd.data}${hd.data.endsWith("\n") ? "" : "\n"}${hd.name}`),
      ].join("\n");
    }
    let args = c.prependShell ? [...shell, script] : c.cmdLine;
    // `RUN <<EOF` alone: BuildKit runs the body itself, with the shell, or as a file when it
    // starts with "#!" (mounted read-only at /dev/pipes/NAME, outside the layer).
    let heredocScript: { name: string; data: string } | undefined;
    if (
      c.prependShell &&
      c.heredocs.length === 1 &&
      c.cmdLine.length === 1 &&
      mustParseHeredocWord(c.cmdLine[0]!)
    ) {
      const hd = c.heredocs[0]!;
      const data = hd.chomp ? chompHeredocContent(hd.data) : hd.data;
      if (data.startsWith("#!")) {
        heredocScript = { name: hd.name, data };
        args = [path.posix.join("/dev/pipes", hd.name)];
      } else args = [...shell, data];
    }
    // The environment: image ENV, then the ARGs in scope (they are in RUN's environment).
    const env = new Map<string, string>();
    for (const e of cc.Env ?? []) {
      const i = e.indexOf("=");
      env.set(e.slice(0, i), e.slice(i + 1));
    }
    const argEnv: [string, string][] = [];
    for (const a of [...ins.usedArgs].sort()) {
      const val = ins.env.get(a);
      if (val !== undefined && !(cc.Env ?? []).some((e) => e.startsWith(`${a}=`))) argEnv.push([a, val]);
    }
    for (const [k, v2] of argEnv) env.set(k, v2);
    if (!env.has("PATH")) env.set("PATH", DEFAULT_PATH);
    const network = c.network && c.network !== "default" ? c.network : (b.req.network ?? "default");
    const secretMounts = (c.mounts ?? []).filter((m) => m.type === "secret");
    const cacheMounts = (c.mounts ?? []).filter((m) => m.type === "cache");
    const tmpfsMounts = (c.mounts ?? []).filter((m) => m.type === "tmpfs");
    const bindMounts = (c.mounts ?? []).filter((m) => m.type === "bind");
    const argPrefix = argEnv.length
      ? `|${argEnv.length} ${argEnv.map(([k, v2]) => `${k}=${v2}`).join(" ")} `
      : "";
    const createdBy = `RUN ${argPrefix}${args.join(" ")} # buildkit`;
    // Bind sources are part of the key: the content of the context's files (.dockerignore
    // applied), or the chain of the stage or image named by from=.
    const binds: { mount: (typeof bindMounts)[number]; from?: LayerRecord[]; key: string }[] = [];
    for (const m of bindMounts) {
      if (m.from) {
        const src = await this.fromLayers(m.from, stages, b);
        binds.push({ mount: m, from: src.layers, key: src.chain });
      } else
        binds.push({
          mount: m,
          key: await contextBindDigest(
            await b.loadContext(),
            b.req.contextDir,
            m.source ?? "",
            await b.statCache(),
          ),
        });
    }
    const key = h(
      "run",
      s.chain,
      args,
      [...env.entries()].sort(),
      cc.User ?? "",
      cc.WorkingDir ?? "",
      network,
      (c.mounts ?? []).map((m) => ({ ...m, ...(m.type === "secret" ? { source: undefined } : {}) })),
      ...(binds.length ? [binds.map((x) => x.key)] : []),
    );
    const v = b.progress.start(name);
    try {
      const r = await this.cached(key, !!b.req.noCache, v, b.progress, async () => {
        if (!findRuntime())
          throw new StrataError("UNSUPPORTED", "RUN needs an OCI runtime: runc or crun is not installed");
        const lowers = await this.snapshots.ensureChain(this.layerSources(s.layers));
        const snap = await this.snapshots.prepare(lowers);
        // Holds the bundle and the secrets' bytes: removed however the step ends.
        let etcDir: string | undefined;
        const views: { remove(): Promise<void> }[] = [];
        try {
          const user = await resolveUser(snap.mountpoint, cc.User);
          const etc = await this.etcFiles();
          etcDir = etc.dir;
          const mounts = [];
          if (heredocScript) {
            const file = path.join(etc.dir, "heredoc-script");
            await fsp.writeFile(file, heredocScript.data, { mode: 0o755 });
            mounts.push({ destination: args[0]!, type: "bind", source: file, options: ["rbind", "ro"] });
          }
          for (const m of secretMounts) {
            const id = m.cacheId || path.posix.basename(m.target || "");
            const sec = b.req.secrets?.find((x) => x.id === id);
            if (!sec) {
              if (m.required) throw new StrataError("INVALID_ARGUMENT", `secret ${id}: not found`);
              continue;
            }
            if (m.env) env.set(m.env, sec.data.toString());
            if (m.env && !m.target) continue;
            const file = path.join(etc.dir, `secret-${id}`);
            await fsp.writeFile(file, sec.data, { mode: m.mode ?? 0o400 });
            if (m.uid !== undefined || m.gid !== undefined) await fsp.chown(file, m.uid ?? 0, m.gid ?? 0);
            mounts.push({
              destination: m.target || `/run/secrets/${id}`,
              type: "bind",
              source: file,
              options: ["rbind", "ro"],
            });
          }
          for (const m of cacheMounts) {
            const id = m.cacheId || m.target;
            const dir = path.join(
              this.store.root,
              "cache-mounts",
              createHash("sha256").update(id).digest("hex").slice(0, 32),
            );
            await fsp.mkdir(dir, { recursive: true });
            mounts.push({
              destination: m.target,
              type: "bind",
              source: dir,
              options: ["rbind", m.readOnly ? "ro" : "rw"],
            });
          }
          for (const m of tmpfsMounts)
            mounts.push({
              destination: m.target,
              type: "tmpfs",
              source: "tmpfs",
              options: ["nosuid", "nodev"],
            });
          for (const { mount: m, from } of binds) {
            let base = from ? "" : await b.contextView();
            if (from) {
              const view = await this.snapshots.prepare(
                await this.snapshots.ensureChain(this.layerSources(from)),
              );
              views.push(view);
              base = view.mountpoint;
            }
            // Symlinks are followed inside the source's root: the runtime would follow them on the host.
            const src = resolveInRoot(base, m.source ?? "");
            if (!existsSync(src))
              throw new StrataError(
                "INVALID_ARGUMENT",
                `failed to compute cache key: "/${m.source ?? ""}": not found`,
              );
            // Always read-only: a RUN must never change the user's context (BuildKit's rw writes are thrown away).
            mounts.push({ destination: m.target, type: "bind", source: src, options: ["rbind", "ro"] });
          }
          // The working directory exists before the process starts (BuildKit creates it).
          if (cc.WorkingDir) await fsp.mkdir(path.join(snap.mountpoint, cc.WorkingDir), { recursive: true });
          // Mount points the runtime will create (a stub file or dir) must not land in the layer.
          const stubPaths = [
            "/proc",
            "/dev",
            "/sys",
            "/etc/resolv.conf",
            "/etc/hosts",
            ...mounts.map((m) => m.destination),
          ];
          const stubs: string[] = [];
          for (const p of stubPaths) {
            const parts = path.posix.normalize(p).split("/").filter(Boolean);
            for (let i = 1; i <= parts.length; i++) {
              const sub = parts.slice(0, i).join("/");
              if (!existsSync(path.join(snap.mountpoint, sub))) {
                stubs.push(sub);
                break;
              }
            }
          }
          const tail: string[] = [];
          let pending = "";
          const res = await runProcess({
            bundleDir: path.join(etc.dir, "bundle"),
            spec: {
              rootPath: snap.mountpoint,
              process: {
                args,
                env: [...env.entries()].map(([k, v2]) => `${k}=${v2}`),
                cwd: cc.WorkingDir || "/",
                uid: user.uid,
                gid: user.gid,
                additionalGids: user.additionalGids,
              },
              network: network === "none" ? "none" : "host",
              resolvConf: etc.resolv,
              hosts: etc.hosts,
              mounts,
            },
            signal: b.req.signal,
            onOutput: (chunk) => {
              pending += chunk.toString();
              const lines = pending.split("\n");
              pending = lines.pop()!;
              for (const l of lines) {
                b.progress.log(v, l, true);
                tail.push(l);
                if (tail.length > 10) tail.shift();
              }
            },
          });
          if (pending) {
            b.progress.log(v, pending, true);
            tail.push(pending);
          }
          await fsp.rm(etc.dir, { recursive: true, force: true });
          if (res.exitCode !== 0) {
            const msg = `process "${args.join(" ")}" did not complete successfully: exit code: ${res.exitCode}`;
            throw Object.assign(new StrataError("IO_ERROR", msg), { tail });
          }
          for (const st of stubs) await fsp.rm(path.join(snap.upper, st), { recursive: true, force: true });
          // Directories overlayfs copied up only because the runtime put a mount point in them
          // (/etc for resolv.conf) and that the process left empty: not part of the change.
          for (const p of stubPaths) {
            const parts = path.posix.normalize(p).split("/").filter(Boolean);
            for (let i = parts.length - 1; i >= 1; i--) {
              const dir = parts.slice(0, i).join("/");
              const up = path.join(snap.upper, dir);
              const listing = await fsp.readdir(up).catch(() => undefined);
              if (!listing || listing.length > 0 || !lowers.some((l) => existsSync(path.join(l, dir)))) break;
              await fsp.rmdir(up).catch(() => {});
            }
          }
          const opaque = await findOpaqueDirs(snap.upper);
          const layer = await this.store.ingestLayer(diffUpper(snap.upper, opaque), { what: "RUN layer" });
          if (layer.contentSize === 0 && (await isEmptyDiff(snap.upper))) {
            await snap.remove();
            return null;
          }
          await this.snapshots.commitUpper(
            snap,
            chainIds([...s.layers.map((l) => l.diffId), layer.diffId]).at(-1)!,
          );
          return layer;
        } finally {
          await snap.remove();
          for (const view of views) await view.remove();
          if (etcDir) await fsp.rm(etcDir, { recursive: true, force: true });
        }
      });
      return this.withLayer(s, r.layer, {
        created: r.created,
        created_by: createdBy,
        comment: "buildkit.dockerfile.v0",
      });
    } catch (e) {
      // Stopped because another stage failed (or the build was interrupted): say so, not "exit code: 137".
      b.progress.error(v, b.req.signal?.aborted ? "canceled" : errorMessage(e));
      throw e;
    }
  }

  private async etcFiles(): Promise<{ dir: string; resolv: string; hosts: string }> {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "strata-run-"));
    const resolv = path.join(dir, "resolv.conf");
    const hosts = path.join(dir, "hosts");
    const hostResolv = await fsp.readFile("/etc/resolv.conf", "utf8").catch(() => "nameserver 127.0.0.1\n");
    await fsp.writeFile(resolv, hostResolv);
    await fsp.writeFile(
      hosts,
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tstrata\n",
    );
    return { dir, resolv, hosts };
  }
}

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The time a metadata step is stamped with: the newest time among the steps before it
 * (the base image's creation for a stage's first steps), never the clock. Only a
 * filesystem step that really ran brings a new time.
 */
function latestCreated(history: readonly History[]): string {
  let best = "";
  for (const h of history) if (h.created && h.created > best) best = h.created;
  return best || "1970-01-01T00:00:00Z";
}

function chainOf(layers: readonly LayerRecord[]): string {
  return layers.length ? chainIds(layers.map((l) => l.diffId)).at(-1)! : "";
}

function mergeIndex(t: TreeView, idx: LayerIndex): void {
  const drop = (p: string) => {
    t.dirs.delete(p);
    t.files.delete(p);
    const prefix = `${p}/`;
    for (const d of [...t.dirs.keys()]) if (d.startsWith(prefix)) t.dirs.delete(d);
    for (const f of [...t.files]) if (f.startsWith(prefix)) t.files.delete(f);
  };
  for (const w of idx.whiteouts) drop(w);
  for (const o of idx.opaque) {
    const prefix = `${o}/`;
    for (const d of [...t.dirs.keys()]) if (d.startsWith(prefix)) t.dirs.delete(d);
    for (const f of [...t.files]) if (f.startsWith(prefix)) t.files.delete(f);
  }
  for (const [d, m] of Object.entries(idx.dirs)) t.dirs.set(d, m);
  for (const f of idx.files) t.files.add(f);
}

function missingDirs(t: TreeView, rel: string): string[] {
  if (!rel) return [];
  const parts = rel.split("/");
  const out: string[] = [];
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join("/");
    if (!t.dirs.has(p)) out.push(p);
  }
  return out;
}

function displayOf(ins: ExpandedInstruction<Command>): string {
  const c = ins.original;
  return c.code.replace(/^\S+/, (m) => m.toUpperCase());
}

function humanBytes(n: number): string {
  if (n < 1000) return `${n}B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(2)}kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(2)}MB`;
  return `${(n / 1e9).toFixed(2)}GB`;
}

async function isEmptyDiff(upper: string): Promise<boolean> {
  return (await fsp.readdir(upper)).length === 0;
}

/** Image config keys in the order BuildKit writes them. */
function orderConfig(c: ImageConfig): Record<string, unknown> {
  const {
    architecture,
    os: osName,
    variant,
    config,
    created,
    history,
    rootfs,
    ...rest
  } = c as ImageConfig & Record<string, unknown>;
  return {
    architecture,
    ...(variant ? { variant } : {}),
    config,
    created,
    history,
    os: osName,
    rootfs,
    ...rest,
  };
}
