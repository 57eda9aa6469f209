/**
 * Word expansion and ARG/ENV scoping, BuildKit's rules (`dockerfile2llb/convert.go`):
 *
 * - ARGs before the first FROM (meta ARGs) and the predefined platform ARGs are visible in FROM
 *   lines only; inside a stage an ARG must be declared again (`ARG NAME` without a value takes
 *   the global value).
 * - `--build-arg` values replace defaults, at the point where the ARG is declared.
 * - ARG values and ENV values share one build environment, in instruction order: a later ENV of
 *   the same name overrides the ARG, and what RUN sees is that environment.
 * - HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY (either case) given as build args
 *   reach RUN without being declared, and never count as unused.
 * - Which words are expanded is BuildKit's list: ADD, COPY, ENV, EXPOSE, FROM (and its
 *   --platform), LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults, ADD/COPY --chown and
 *   --chmod, ADD --checksum, RUN --mount values and the bodies of unquoted COPY/ADD heredocs.
 *   RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD and MAINTAINER are left as written, and
 *   COPY --from may not use variables at all.
 * - Only the stages the target needs are expanded (all of them with `allStages`).
 */

import { hostPlatform, type Platform, parsePlatform } from "../oci/index.js";
import { StrataError } from "../util/index.js";
import { DockerfileParseError, ReasonError } from "./errors.js";
import { csvFields } from "./go-values.js";
import {
  type AddCommand,
  type ArgCommand,
  type ArgDefinition,
  type Command,
  type CopyCommand,
  type Dockerfile,
  type FromCommand,
  type Location,
  parseInstruction,
  type RunCommand,
  type Stage,
} from "./instructions.js";
import { parseDockerfile } from "./parser.js";
import { parseMount } from "./run-mounts.js";
import { type Env, envFromSlice, ShellLex } from "./shell.js";
import { goQuote, withSuggestion } from "./text.js";

/** What the caller knows about a base image (from its config), when it knows it. */
export interface BaseImageConfig {
  /** `KEY=VALUE` entries of the image config's Env. */
  env?: string[];
  /** The image config's OnBuild triggers, run at the start of a stage built on it. */
  onBuild?: string[];
  /** The image's OS; `windows` gets no default PATH. */
  os?: string;
  /** The image config's User (checked by the RunAsRoot lint rule). */
  user?: string;
}

/** What a build is for: build args, target, platforms, and what is known of base images. */
export interface ExpandOptions {
  /** `--build-arg` values. */
  buildArgs?: Record<string, string> | Map<string, string>;
  /** `--target`: the stage to build; the last stage when empty. */
  target?: string;
  /** The platform the build runs on (BUILDPLATFORM …); the target platform or the host by default. */
  buildPlatform?: Platform;
  /** The platform to build for (TARGETPLATFORM …); the build platform by default. */
  targetPlatform?: Platform;
  /** Expand every stage, not only those the target reaches. */
  allStages?: boolean;
  /**
   * Looks up a base image's config. Without it (or when it returns undefined) a base image is
   * assumed to set only PATH, as BuildKit does for images without one.
   */
  baseImage?: (ref: string) => BaseImageConfig | undefined;
}

/** One instruction after expansion. */
export interface ExpandedInstruction<C extends Command | FromCommand = Command | FromCommand> {
  /** The instruction with its words expanded (a copy; the input is not changed). */
  command: C;
  /** The instruction as written. */
  original: C;
  /**
   * The ARGs whose values this instruction depends on: those its words referenced, and for RUN
   * every ARG in scope (they are all in its environment). For FROM, the meta and platform ARGs.
   */
  usedArgs: Set<string>;
  /** Variables its words referenced that are neither set nor declared (BuildKit's UndefinedVar). */
  undefinedVars: string[];
  /** The build environment before the instruction: ENV and ARG values (plus proxies for RUN). */
  env: Env;
  /** True for a trigger inherited from the base (ONBUILD). */
  onbuild: boolean;
}

/** One stage after expansion. */
export interface ExpandedStage {
  index: number;
  /** The stage name, or empty. */
  name: string;
  /** The expanded FROM. */
  from: ExpandedInstruction<FromCommand>;
  /** The expanded base name (`golang:1.22`, `scratch`, or an earlier stage's name). */
  baseName: string;
  /** Index of the earlier stage this one builds on, when its base is a stage. */
  baseStage?: number;
  /** The expanded `--platform`, when given. */
  platform?: Platform;
  /** Stages this one copies or mounts from (COPY --from, RUN --mount from=), by index. */
  dependsOn: number[];
  instructions: ExpandedInstruction<Command>[];
  /** The image config env at the end of the stage (base image env and ENV; no ARGs). */
  imageEnv: Env;
  /** The build environment at the end of the stage (image env and ARG values). */
  buildEnv: Env;
  /** ARGs declared in the stage (and in the stages it builds on), in order. */
  declaredArgs: string[];
}

/** Every stage a build needs, expanded, plus the global ARGs and the build-arg warning. */
export interface ExpandResult {
  /** The expanded stages, in file order: those the target reaches, or all with `allStages`. */
  stages: ExpandedStage[];
  /** Index of the target stage. */
  target: number;
  /** The expanded meta ARGs (before the first FROM). */
  metaArgs: ExpandedInstruction<ArgCommand>[];
  /** Global scope after the meta ARGs: platform ARGs, TARGETSTAGE and the meta ARG values. */
  globalArgs: Env;
  /** Build args that no ARG declared, sorted. */
  unusedBuildArgs: string[];
  /** Messages for the caller to show, e.g. `[Warning] One or more build-args [X] were not consumed`. */
  warnings: string[];
}

/** Build args that need no ARG: the proxy settings (matched case-insensitively). */
export const PROXY_ARGS: readonly string[] = [
  "http_proxy",
  "https_proxy",
  "ftp_proxy",
  "no_proxy",
  "all_proxy",
];

/** The ARGs BuildKit defines from the platforms and the target. */
export const PLATFORM_ARGS: readonly string[] = [
  "BUILDPLATFORM",
  "BUILDOS",
  "BUILDOSVERSION",
  "BUILDARCH",
  "BUILDVARIANT",
  "TARGETPLATFORM",
  "TARGETOS",
  "TARGETOSVERSION",
  "TARGETARCH",
  "TARGETVARIANT",
  "TARGETSTAGE",
];

/** ARGs that only steer BuildKit and never reach the environment. */
const NON_ENV_ARGS = new Set(["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"]);

/** containerd's default PATH for Linux images without one. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const EMPTY_IMAGE = "scratch";

/** containerd `platforms.Format`: `os/arch[/variant]`. */
export function formatPlatformSpec(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x).join("/");
}

/** containerd `platforms.FormatAll`: like formatPlatformSpec, with `(os.version)` after the OS. */
export function formatPlatformAll(p: Platform): string {
  if (!p.os) return "unknown";
  const osv = p["os.version"];
  return [osv ? `${p.os}(${osv})` : p.os, p.architecture, p.variant].filter((x) => x).join("/");
}

/** BuildKit `defaultArgs`: the platform ARGs and TARGETSTAGE, each overridable by a build arg. */
export function defaultArgs(build: Platform, target: Platform, targetStage: string, buildArgs: Env): Env {
  const pairs: [string, string][] = [
    ["BUILDPLATFORM", formatPlatformSpec(build)],
    ["BUILDOS", build.os],
    ["BUILDOSVERSION", build["os.version"] ?? ""],
    ["BUILDARCH", build.architecture],
    ["BUILDVARIANT", build.variant ?? ""],
    ["TARGETPLATFORM", formatPlatformAll(target)],
    ["TARGETOS", target.os],
    ["TARGETOSVERSION", target["os.version"] ?? ""],
    ["TARGETARCH", target.architecture],
    ["TARGETVARIANT", target.variant ?? ""],
    ["TARGETSTAGE", targetStage || "default"],
  ];
  const env: Env = new Map();
  for (const [k, v] of pairs) env.set(k, buildArgs.get(k) ?? v);
  return env;
}

function isProxyArg(key: string): boolean {
  return PROXY_ARGS.includes(key.toLowerCase());
}

// Linux signal names, as moby's `signal.SignalMap`.
const SIGNALS = new Set([
  "ABRT",
  "ALRM",
  "BUS",
  "CHLD",
  "CLD",
  "CONT",
  "FPE",
  "HUP",
  "ILL",
  "INT",
  "IO",
  "IOT",
  "KILL",
  "PIPE",
  "POLL",
  "PROF",
  "PWR",
  "QUIT",
  "SEGV",
  "STKFLT",
  "STOP",
  "SYS",
  "TERM",
  "TRAP",
  "TSTP",
  "TTIN",
  "TTOU",
  "URG",
  "USR1",
  "USR2",
  "VTALRM",
  "WINCH",
  "XCPU",
  "XFSZ",
  "RTMIN",
  "RTMAX",
  ...Array.from({ length: 15 }, (_, i) => `RTMIN+${i + 1}`),
  ...Array.from({ length: 14 }, (_, i) => `RTMAX-${i + 1}`),
]);

/** moby `signal.ParseSignal`: a name with or without SIG, or a non-zero number. */
export function isValidSignal(raw: string): boolean {
  if (/^[+-]?\d+$/.test(raw)) return Number(raw) !== 0;
  const name = raw.toUpperCase().replace(/^SIG/, "");
  return SIGNALS.has(name);
}

/** The parts of an EXPOSE word: `[ip:][hostPort:]containerPort[/proto]`. */
export function splitExposeSpec(raw: string): { ip: string; hostPort: string; port: string; proto: string } {
  const parts = raw.split(":");
  const n = parts.length;
  const ip = n >= 3 ? parts.slice(0, n - 2).join(":") : "";
  const hostPort = n >= 2 ? parts[n - 2]! : "";
  const containerPort = parts[n - 1]!;
  const slash = containerPort.indexOf("/");
  return {
    ip,
    hostPort,
    port: slash < 0 ? containerPort : containerPort.slice(0, slash),
    proto: slash < 0 ? "" : containerPort.slice(slash + 1),
  };
}

function portRange(ports: string): [number, number] {
  if (ports === "") throw new ReasonError("empty string specified for ports");
  const dash = ports.indexOf("-");
  const start = dash < 0 ? ports : ports.slice(0, dash);
  const end = dash < 0 ? "" : ports.slice(dash + 1);
  const num = (s: string, what: string): number => {
    if (s === "") throw new ReasonError(`invalid ${what} port '${s}': value is empty`);
    if (!/^[+-]?\d+$/.test(s)) throw new ReasonError(`invalid ${what} port '${s}': invalid syntax`);
    const v = Number(s);
    if (v < 0 || v > 65535)
      throw new ReasonError(`invalid ${what} port '${s}': value out of range (0–65535)`);
    return v;
  };
  const a = num(start, "start");
  if (dash < 0 || start === end) return [a, a];
  const b = num(end, "end");
  if (b < a) throw new ReasonError(`invalid port range: ${ports}`);
  return [a, b];
}

/**
 * One EXPOSE word as the image config's ExposedPorts keys (`80/tcp`, a range gives each port),
 * with BuildKit's errors (`invalid port: "x": …`). An IP or host port is accepted and dropped,
 * as BuildKit does (the ExposeInvalidFormat lint rule reports it).
 */
export function parseExposedPort(raw: string): string[] {
  const { ip, hostPort, port, proto } = splitExposeSpec(raw);
  if (port === "") throw new ReasonError(`invalid port: ${goQuote(raw)}: no port specified`);
  const p = proto.toLowerCase();
  if (p !== "" && p !== "tcp" && p !== "udp" && p !== "sctp") {
    throw new ReasonError(`invalid port: ${goQuote(raw)}: invalid proto: ${proto}`);
  }
  if (ip !== "") {
    const bare = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
    const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(bare);
    const ok = v4
      ? v4.slice(1).every((x) => Number(x) <= 255)
      : /^[0-9a-fA-F:.]+$/.test(bare) && bare.includes(":");
    if (!ok) throw new ReasonError(`invalid IP address: ${ip}`);
  }
  let start: number;
  let end: number;
  try {
    [start, end] = portRange(port);
  } catch {
    throw new ReasonError(`invalid containerPort: ${port}`);
  }
  if (hostPort !== "") {
    let hs: number;
    let he: number;
    try {
      [hs, he] = portRange(hostPort);
    } catch {
      throw new ReasonError(`invalid hostPort: ${hostPort}`);
    }
    if (end - start !== he - hs && end !== start) {
      throw new ReasonError(`invalid ranges specified for container and host Ports: ${port} and ${hostPort}`);
    }
  }
  const out: string[] = [];
  for (let i = start; i <= end; i++) out.push(`${i}/${p || "tcp"}`);
  return out;
}

/** The stage a `--from` or mount `from=` names: an index (COPY only), a stage name, or none (an image). */
function stageRef(df: Dockerfile, ref: string, allowIndex: boolean, loc: Location): number | undefined {
  if (allowIndex && /^[+-]?\d+$/.test(ref)) {
    const i = Number(ref);
    if (i < 0 || i >= df.stages.length) throw locErr(df, `invalid stage index ${i}`, loc);
    return i;
  }
  const n = ref.toLowerCase();
  for (let i = df.stages.length - 1; i >= 0; i--)
    if (df.stages[i]!.name !== "" && df.stages[i]!.name === n) return i;
  return undefined;
}

/** `Dockerfile:<line>: <reason>`, keeping the code of a lexer error (TOO_LARGE stays TOO_LARGE). */
function locErr(df: Dockerfile, reason: string, loc: Location, cause?: unknown): DockerfileParseError {
  return new DockerfileParseError(`${df.file}:${loc.startLine}: ${reason}`, {
    reason,
    line: loc.startLine,
    endLine: loc.endLine,
    file: df.file,
    cause,
    code: cause instanceof StrataError ? cause.code : "INVALID_ARGUMENT",
  });
}

/** The `from=` of a mount spec, read without expanding anything. */
function mountFrom(spec: string): string {
  let from = "";
  try {
    for (const f of csvFields(spec)) {
      const eq = f.indexOf("=");
      if (eq >= 0 && f.slice(0, eq).toLowerCase() === "from") from = f.slice(eq + 1);
    }
  } catch {
    // Already reported at parse time.
  }
  return from;
}

interface StageState {
  buildEnv: Env;
  imageEnv: Env;
  /** Keys of buildEnv whose value came from an ARG (an ENV of the same name takes it back). */
  argOwned: Set<string>;
  declaredArgs: string[];
}

interface Trigger {
  command: Command;
}

/**
 * Expands the stages a build of `target` needs: every word BuildKit expands, with the ARG and
 * ENV values in scope at that instruction, and the ARGs each instruction depends on.
 *
 * Throws DockerfileParseError (`Dockerfile:<line>: <reason>`) for what would fail the build:
 * bad `${…}` syntax or `${X:?msg}` with X unset, a blank base name, a bad `--platform`, an
 * unknown target, `COPY --from` with a variable or a later stage, a circular dependency, a bad
 * mount or stop signal.
 */
export function expandStages(df: Dockerfile, opts: ExpandOptions = {}): ExpandResult {
  if (df.stages.length === 0) {
    throw new StrataError("INVALID_ARGUMENT", "dockerfile contains no stages to build");
  }
  const lex = new ShellLex(df.ast.escapeToken);
  // Unquoted heredoc bodies are expanded with quotes left alone, and always with `\` (BuildKit).
  const rawLex = new ShellLex("\\", { skipProcessQuotes: true });
  const buildArgs: Env =
    opts.buildArgs instanceof Map ? new Map(opts.buildArgs) : new Map(Object.entries(opts.buildArgs ?? {}));
  const buildPlatform = opts.buildPlatform ?? opts.targetPlatform ?? hostPlatform();
  const targetPlatform = opts.targetPlatform ?? buildPlatform;
  const consumed = new Set<string>(PLATFORM_ARGS);

  // Target.
  let targetIndex = df.stages.length - 1;
  if (opts.target) {
    const want = opts.target.toLowerCase();
    const i = df.stages.findLastIndex((s) => s.name !== "" && s.name === want);
    if (i < 0) {
      const names = df.stages.map((s) => s.name || `stage-${s.index}`);
      throw new StrataError(
        "INVALID_ARGUMENT",
        withSuggestion(`target stage ${goQuote(opts.target)} could not be found`, opts.target, names, true),
      );
    }
    targetIndex = i;
  }
  // As BuildKit: TARGETSTAGE is the target as the caller wrote it.
  const targetName = opts.target || df.stages[df.stages.length - 1]!.name;
  const globalArgs = defaultArgs(buildPlatform, targetPlatform, targetName, buildArgs);

  const word = (w: string, env: Env, loc: Location, l: ShellLex = lex) => {
    try {
      return l.processWord(w, env);
    } catch (e) {
      if (e instanceof StrataError) throw locErr(df, e.message, loc, e);
      throw e;
    }
  };

  // Meta ARGs.
  const metaArgs: ExpandedInstruction<ArgCommand>[] = [];
  for (const cmd of df.metaArgs) {
    const used = new Set<string>();
    const undef = new Set<string>();
    const env = new Map(globalArgs);
    const args: ArgDefinition[] = cmd.args.map((kp) => {
      consumed.add(kp.key);
      const out: ArgDefinition = { ...kp };
      const v = buildArgs.get(kp.key);
      if (v !== undefined) out.value = v;
      else if (kp.value !== undefined) {
        const r = word(kp.value, globalArgs, cmd.location);
        for (const k of r.used) used.add(k);
        for (const k of r.unmatched) undef.add(k);
        out.value = r.result;
      }
      if (out.value !== undefined) globalArgs.set(kp.key, out.value);
      return out;
    });
    metaArgs.push({
      command: { ...cmd, args },
      original: cmd,
      usedArgs: used,
      undefinedVars: [...undef].sort(),
      env,
      onbuild: false,
    });
  }

  // FROM lines, bases and dependencies, for every stage (BuildKit resolves them all).
  interface Plan {
    stage: Stage;
    from: ExpandedInstruction<FromCommand>;
    baseName: string;
    baseStage?: number;
    platform?: Platform;
    triggers: Trigger[];
    /** A trigger that does not parse fails the stage only if the stage is built. */
    triggerError?: DockerfileParseError;
    deps: Set<number>;
  }
  const plans: Plan[] = [];
  for (const stage of df.stages) {
    const f = stage.from;
    const used = new Set<string>();
    const undef = new Set<string>();
    const name = word(f.baseName, globalArgs, f.location);
    for (const k of name.used) used.add(k);
    for (const k of name.unmatched) undef.add(k);
    if (name.result === "") throw locErr(df, `base name (${f.baseName}) should not be blank`, f.location);
    let platform: Platform | undefined;
    let platformText = "";
    if (f.platform !== "") {
      const p = word(f.platform, globalArgs, f.location);
      for (const k of p.used) used.add(k);
      for (const k of p.unmatched) undef.add(k);
      platformText = p.result;
      if (p.result === "") {
        throw locErr(
          df,
          withSuggestAny(`empty platform value from expression ${f.platform}`, p.unmatched, [
            ...globalArgs.keys(),
          ]),
          f.location,
        );
      }
      try {
        platform = parsePlatform(p.result);
      } catch (e) {
        throw locErr(df, `failed to parse platform ${f.platform}: ${(e as Error).message}`, f.location, e);
      }
    }
    let baseStage: number | undefined;
    for (let i = stage.index - 1; i >= 0; i--) {
      if (df.stages[i]!.name !== "" && df.stages[i]!.name === name.result) {
        baseStage = i;
        break;
      }
    }
    const plan: Plan = {
      stage,
      from: {
        command: { ...f, baseName: name.result, platform: platformText },
        original: f,
        usedArgs: used,
        undefinedVars: [...undef].sort(),
        env: new Map(globalArgs),
        onbuild: false,
      },
      baseName: name.result,
      triggers: [],
      deps: new Set(),
    };
    if (baseStage !== undefined) plan.baseStage = baseStage;
    if (platform) plan.platform = platform;
    plans.push(plan);
  }

  // ONBUILD triggers: from the base stage's ONBUILD instructions, or the base image's config.
  for (const plan of plans) {
    let expressions: string[] = [];
    if (plan.baseStage !== undefined) {
      for (const c of df.stages[plan.baseStage]!.commands)
        if (c.kind === "onbuild") expressions.push(c.expression);
    } else if (plan.baseName !== EMPTY_IMAGE) {
      expressions = opts.baseImage?.(plan.baseName)?.onBuild ?? [];
    }
    const loc = plan.stage.from.location;
    for (const expr of expressions) {
      let cmd: Command;
      try {
        const ast = parseDockerfile(expr, { file: df.file });
        if (ast.children.length !== 1) throw new Error("onbuild trigger should be a single expression");
        const node = ast.children[0]!;
        node.startLine = loc.startLine;
        node.endLine = loc.endLine;
        const c = parseInstruction(node, df.file);
        if (c.kind === "from") throw new Error("FROM isn't allowed as an ONBUILD trigger");
        cmd = c;
      } catch (e) {
        plan.triggerError = locErr(
          df,
          (e as { reason?: string; message: string }).reason ?? (e as Error).message,
          loc,
          e,
        );
        break;
      }
      plan.triggers.push({ command: cmd });
    }
  }

  // Dependencies (BuildKit `toCommand`): COPY --from and RUN --mount from=.
  for (const plan of plans) {
    const all = [...plan.triggers.map((t) => t.command), ...plan.stage.commands];
    for (const c of all) {
      if (c.kind === "copy" && c.from !== "") {
        const r = word(c.from, new Map(), c.location);
        if (r.result !== c.from) {
          throw locErr(
            df,
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
            c.location,
          );
        }
        const i = stageRef(df, c.from, true, c.location);
        if (i !== undefined) plan.deps.add(i);
      }
      if (c.kind === "run") {
        for (const spec of c.mountSpecs) {
          const from = mountFrom(spec);
          if (from === "") continue;
          const i = stageRef(df, from, false, c.location);
          if (i !== undefined) plan.deps.add(i);
        }
      }
    }
  }
  checkCycles(df, plans);

  // Reachable stages.
  const reachable = new Set<number>();
  const visit = (i: number) => {
    if (reachable.has(i)) return;
    reachable.add(i);
    const p = plans[i]!;
    if (p.baseStage !== undefined) visit(p.baseStage);
    for (const d of p.deps) visit(d);
  };
  visit(targetIndex);
  if (opts.allStages) for (let i = 0; i < plans.length; i++) reachable.add(i);

  // Dispatch, in file order.
  const proxyEnv: Env = new Map([...buildArgs].filter(([k]) => isProxyArg(k)));
  const done = new Map<number, Dispatched>();
  const stages: ExpandedStage[] = [];
  for (const plan of plans) {
    if (!reachable.has(plan.stage.index)) continue;
    if (plan.triggerError) throw plan.triggerError;
    const st = initialState(plan, done, opts);
    const expanded: ExpandedStage = {
      index: plan.stage.index,
      name: plan.stage.name,
      from: plan.from,
      baseName: plan.baseName,
      dependsOn: [...plan.deps].sort((a, b) => a - b),
      instructions: [],
      imageEnv: st.imageEnv,
      buildEnv: st.buildEnv,
      declaredArgs: st.declaredArgs,
    };
    if (plan.baseStage !== undefined) expanded.baseStage = plan.baseStage;
    if (plan.platform) expanded.platform = plan.platform;
    const stageLabel = plan.stage.name || `stage-${plan.stage.index}`;
    const list: [Command, boolean][] = [
      ...plan.triggers.map((t): [Command, boolean] => [t.command, true]),
      ...plan.stage.commands.map((c): [Command, boolean] => [c, false]),
    ];
    for (const [cmd, onbuild] of list) {
      const ctx: DispatchContext = {
        df,
        lex,
        rawLex,
        word,
        st,
        buildArgs,
        globalArgs,
        consumed,
        proxyEnv,
        stageLabel,
        stageIndex: plan.stage.index,
        done,
      };
      expanded.instructions.push({ ...dispatch(ctx, cmd), onbuild });
    }
    done.set(plan.stage.index, { expanded, state: st });
    stages.push(expanded);
  }

  const unusedBuildArgs = [...buildArgs.keys()].filter((k) => !consumed.has(k) && !isProxyArg(k)).sort();
  const warnings =
    unusedBuildArgs.length > 0
      ? [`[Warning] One or more build-args [${unusedBuildArgs.join(" ")}] were not consumed`]
      : [];
  return { stages, target: targetIndex, metaArgs, globalArgs, unusedBuildArgs, warnings };
}

function withSuggestAny(msg: string, keys: Set<string>, options: string[]): string {
  for (const k of keys) {
    const m = withSuggestion(msg, k, options, true);
    if (m !== msg) return m;
  }
  return msg;
}

function checkCycles(df: Dockerfile, plans: { stage: Stage; baseStage?: number; deps: Set<number> }[]): void {
  const visited = new Set<number>();
  const onPath = new Set<number>();
  const edges = (i: number) => {
    const p = plans[i]!;
    return [...(p.baseStage !== undefined ? [p.baseStage] : []), ...p.deps];
  };
  const visit = (i: number): boolean => {
    if (visited.has(i)) return false;
    visited.add(i);
    onPath.add(i);
    for (const d of edges(i)) {
      if (onPath.has(d)) return true;
      if (visit(d)) return true;
    }
    onPath.delete(i);
    return false;
  };
  for (let i = 0; i < plans.length; i++) {
    onPath.clear();
    if (visit(i)) {
      const s = df.stages[i]!;
      throw locErr(df, `circular dependency detected on stage: ${s.name || `stage-${i}`}`, s.from.location);
    }
  }
}

interface Dispatched {
  expanded: ExpandedStage;
  state: StageState;
}

function initialState(
  plan: { baseStage?: number; baseName: string },
  done: Map<number, Dispatched>,
  opts: ExpandOptions,
): StageState {
  if (plan.baseStage !== undefined) {
    const base = done.get(plan.baseStage)!.state;
    return {
      buildEnv: new Map(base.buildEnv),
      imageEnv: new Map(base.imageEnv),
      argOwned: new Set(base.argOwned),
      declaredArgs: [...base.declaredArgs],
    };
  }
  const cfg = plan.baseName === EMPTY_IMAGE ? undefined : opts.baseImage?.(plan.baseName);
  const imageEnv = envFromSlice(cfg?.env ?? []);
  if (!imageEnv.has("PATH") && cfg?.os !== "windows") imageEnv.set("PATH", DEFAULT_PATH);
  return { buildEnv: new Map(imageEnv), imageEnv, argOwned: new Set(), declaredArgs: [] };
}

interface DispatchContext {
  df: Dockerfile;
  lex: ShellLex;
  rawLex: ShellLex;
  word: (
    w: string,
    env: Env,
    loc: Location,
    l?: ShellLex,
  ) => { result: string; used: Set<string>; unmatched: Set<string> };
  st: StageState;
  buildArgs: Env;
  globalArgs: Env;
  consumed: Set<string>;
  proxyEnv: Env;
  stageLabel: string;
  stageIndex: number;
  done: Map<number, Dispatched>;
}

/** Expands one command against the stage state, then applies its effect on the state. */
function dispatch(ctx: DispatchContext, cmd: Command): Omit<ExpandedInstruction<Command>, "onbuild"> {
  const { st, df } = ctx;
  const env = new Map(st.buildEnv);
  const used = new Set<string>();
  const undef = new Set<string>();
  const loc = cmd.location;
  // Declared ARGs are not undefined even without a value (BuildKit checks the live list, so an
  // ARG may use a name declared earlier in the same instruction).
  const note = (r: { used: Set<string>; unmatched: Set<string> }) => {
    for (const k of r.used) used.add(k);
    for (const k of r.unmatched) if (!st.declaredArgs.includes(k) && !NON_ENV_ARGS.has(k)) undef.add(k);
  };
  const w = (s: string): string => {
    const r = ctx.word(s, st.buildEnv, loc);
    note(r);
    return r.result;
  };
  const argsUsed = () => new Set([...used].filter((k) => st.argOwned.has(k)));
  const result = (command: Command, usedArgs = argsUsed(), envOut = env) => ({
    command,
    original: cmd,
    usedArgs,
    undefinedVars: [...undef].sort(),
    env: envOut,
  });

  switch (cmd.kind) {
    case "env": {
      const pairs = cmd.pairs.map((p) => ({ ...p, key: w(p.key), value: w(p.value) }));
      const usedArgs = argsUsed();
      for (const p of pairs) {
        st.buildEnv.set(p.key, p.value);
        st.imageEnv.set(p.key, p.value);
        st.argOwned.delete(p.key);
      }
      return result({ ...cmd, pairs }, usedArgs);
    }
    case "label":
      return result({ ...cmd, pairs: cmd.pairs.map((p) => ({ ...p, key: w(p.key), value: w(p.value) })) });
    case "add":
    case "copy": {
      const c: AddCommand | CopyCommand = {
        ...cmd,
        chown: w(cmd.chown),
        chmod: w(cmd.chmod),
        sources: cmd.sources.map(w),
        dest: w(cmd.dest),
        heredocs: cmd.heredocs.map((h) => {
          if (!h.expand) return h;
          const r = ctx.word(h.data, st.buildEnv, loc, ctx.rawLex);
          note(r);
          return { ...h, data: r.result };
        }),
      };
      if (c.kind === "add") c.checksum = w(c.checksum);
      if (c.kind === "copy" && c.from !== "") {
        const src = stageRef(df, c.from, true, loc);
        if (src !== undefined && !ctx.done.has(src)) {
          throw locErr(
            df,
            `cannot copy from stage ${goQuote(c.from)}, it needs to be defined before current stage ${goQuote(ctx.stageLabel)}`,
            loc,
          );
        }
      }
      return result(c);
    }
    case "workdir":
      return result({ ...cmd, path: w(cmd.path) });
    case "user":
      return result({ ...cmd, user: w(cmd.user) });
    case "volume": {
      const volumes = cmd.volumes.map(w);
      if (volumes.some((v) => v === "")) throw locErr(df, "VOLUME specified can not be an empty string", loc);
      return result({ ...cmd, volumes });
    }
    case "stopsignal": {
      const signal = w(cmd.signal);
      if (!isValidSignal(signal)) throw locErr(df, `Invalid signal: ${signal}`, loc);
      return result({ ...cmd, signal });
    }
    case "expose": {
      const ports: string[] = [];
      for (const p of cmd.ports) {
        let r: { result: string[]; used: Set<string>; unmatched: Set<string> };
        try {
          r = ctx.lex.processWords(p, st.buildEnv);
        } catch (e) {
          if (e instanceof StrataError) throw locErr(df, e.message, loc, e);
          throw e;
        }
        note(r);
        ports.push(...r.result);
      }
      for (const p of ports) {
        try {
          parseExposedPort(p);
        } catch (e) {
          if (e instanceof ReasonError) throw locErr(df, e.message, loc, e);
          throw e;
        }
      }
      return result({ ...cmd, ports });
    }
    case "run": {
      const mounts = cmd.mountSpecs.map((spec) => {
        try {
          return parseMount(spec, w);
        } catch (e) {
          if (e instanceof ReasonError) throw locErr(df, e.message, loc, e);
          throw e;
        }
      });
      for (const m of mounts) {
        if (m.from === "") continue;
        const src = stageRef(df, m.from, false, loc);
        if (src !== undefined && !ctx.done.has(src)) {
          throw locErr(
            df,
            `cannot mount from stage ${goQuote(m.from)} to ${goQuote(m.target)}, stage needs to be defined before current command`,
            loc,
          );
        }
      }
      const runEnv = new Map(env);
      const usedArgs = new Set(st.argOwned);
      for (const [k, v] of ctx.proxyEnv) {
        if (!runEnv.has(k)) runEnv.set(k, v);
        usedArgs.add(k);
      }
      const run: RunCommand = { ...cmd, mounts };
      return result(run, new Set([...usedArgs, ...argsUsed()]), runEnv);
    }
    case "arg": {
      const args = cmd.args.map((kp) => {
        ctx.consumed.add(kp.key);
        const out: ArgDefinition = { ...kp };
        const given = ctx.buildArgs.get(kp.key);
        if (kp.value === undefined && given === undefined) {
          const g = ctx.globalArgs.get(kp.key);
          if (g !== undefined) out.value = g;
        }
        if (given !== undefined) out.value = given;
        else if (kp.value !== undefined) out.value = w(kp.value);
        if (out.value !== undefined && !NON_ENV_ARGS.has(kp.key)) {
          st.buildEnv.set(kp.key, out.value);
          st.argOwned.add(kp.key);
        }
        st.declaredArgs.push(kp.key);
        return out;
      });
      return result({ ...cmd, args });
    }
    case "cmd":
    case "entrypoint":
    case "shell":
    case "healthcheck":
    case "onbuild":
    case "maintainer":
      return result(cmd, new Set());
  }
}
