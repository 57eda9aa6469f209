/**
 * Build checks: BuildKit's lint rules (`frontend/dockerfile/linter`, run where `dockerfile2llb`
 * runs them) and Strata's own, in one pass. Rules are switched off with the `# check=` directive
 * (`skip=A,B`, `skip=all`, `error=true`), globally or in a comment right above an instruction,
 * or by the caller. `RULES` in lint-rules.ts lists every rule.
 */

import { hostPlatform, type Platform, parsePlatform } from "../oci/index.js";
import { StrataError } from "../util/index.js";
import { PatternMatcher } from "./dockerignore.js";
import { type DockerfileParseError, syntaxError } from "./errors.js";
import {
  defaultArgs,
  type ExpandedInstruction,
  type ExpandOptions,
  type ExpandResult,
  expandStages,
  splitExposeSpec,
} from "./expand.js";
import { parseGoBool } from "./go-values.js";
import { type Command, type Dockerfile, type Location, loadDockerfile } from "./instructions.js";
import { type LintRule, RULES, type RuleName } from "./lint-rules.js";
import { type Env, ShellLex } from "./shell.js";
import { goQuote, suggest } from "./text.js";

/** One finding. */
export interface LintWarning {
  /** The rule's stable name, e.g. `UndefinedVar`. */
  rule: RuleName;
  /** The message, in BuildKit's words for BuildKit's rules. */
  message: string;
  /** 1-based line of the instruction. */
  line: number;
  endLine: number;
  /** The rule's documentation page (BuildKit's rules). */
  url?: string;
  /** The rule's one-line description. */
  description: string;
}

/** Which rules run and whether findings fail the build (the `# check=` directive). */
export interface LintConfig {
  skipAll: boolean;
  skip: Set<string>;
  /** `error=true`: a build with findings should fail (see lintFailure). */
  error: boolean;
  experimentalAll: boolean;
  experimental: Set<string>;
}

/** What lint knows beyond the text: the build options, the context files and .dockerignore. */
export interface LintOptions extends Omit<ExpandOptions, "allStages"> {
  /** File name for messages, when `input` is text. */
  file?: string;
  /**
   * The .dockerignore patterns (as `readDockerignore` returns them). Enables CopyIgnoredFile
   * with BuildKit's exact behaviour (no check when a pattern is an `!` exception; the context
   * root counts as ignored only for `*`, `**` or `**\/*`), and keeps ignored files out of
   * SecretInContext.
   */
  dockerignore?: readonly string[];
  /**
   * Instead of `dockerignore`: is a context path excluded? Paths are relative to the context
   * root, `/` separated (`src/app.js`, `.` for the root).
   */
  isIgnored?: (path: string) => boolean;
  /**
   * The files of the build context: either every file (relative, `/` separated), or a function
   * giving the files one COPY/ADD source selects. Enables SecretInContext.
   */
  contextFiles?: readonly string[] | ((source: string) => Iterable<string>);
  /** Rules the caller switches off (BuildKit's `BUILDKIT_DOCKERFILE_CHECK=skip=…`). */
  skip?: readonly string[];
  /** Whether the caller wants findings to fail the build. */
  error?: boolean;
}

/** The result of lintDockerfile: findings, and the error that would stop the build, if any. */
export interface LintResult {
  warnings: LintWarning[];
  config: LintConfig;
  /** A word-expansion or stage error found while checking; later rules did not run. */
  error?: DockerfileParseError | StrataError;
}

/**
 * BuildKit `ParseLintOptions`: `skip=A,B;error=true;experimental=C`. Throws StrataError with
 * BuildKit's message on a malformed value.
 */
export function parseCheckOptions(value: string): LintConfig {
  const cfg: LintConfig = {
    skipAll: false,
    skip: new Set(),
    error: false,
    experimentalAll: false,
    experimental: new Set(),
  };
  const v = value.trim();
  if (v === "") return cfg;
  const parts = splitN(v, ";", 3);
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq < 0) throw new StrataError("INVALID_ARGUMENT", `invalid check option ${goQuote(p)}`);
    const k = p.slice(0, eq).trim();
    const val = p.slice(eq + 1).trim();
    switch (k) {
      case "skip":
        if (val === "all") cfg.skipAll = true;
        else for (const r of val.split(",")) cfg.skip.add(r.trim());
        break;
      case "experimental":
        if (val === "all") cfg.experimentalAll = true;
        else for (const r of val.split(",")) cfg.experimental.add(r.trim());
        break;
      case "error": {
        const b = parseGoBool(val);
        if (b === undefined) {
          throw new StrataError(
            "INVALID_ARGUMENT",
            `failed to parse check option ${goQuote(p)}: strconv.ParseBool: parsing ${goQuote(val)}: invalid syntax`,
          );
        }
        cfg.error = b;
        break;
      }
      default:
        throw new StrataError("INVALID_ARGUMENT", `invalid check option ${goQuote(k)}`);
    }
  }
  return cfg;
}

function splitN(s: string, sep: string, n: number): string[] {
  const out: string[] = [];
  let rest = s;
  while (out.length < n - 1) {
    const i = rest.indexOf(sep);
    if (i < 0) break;
    out.push(rest.slice(0, i));
    rest = rest.slice(i + sep.length);
  }
  out.push(rest);
  return out;
}

function mergeConfig(a: LintConfig, b: LintConfig): LintConfig {
  return {
    skipAll: a.skipAll || b.skipAll,
    skip: new Set([...a.skip, ...b.skip]),
    error: a.error || b.error,
    experimentalAll: a.experimentalAll || b.experimentalAll,
    experimental: new Set([...a.experimental, ...b.experimental]),
  };
}

/**
 * The lint configuration of a Dockerfile: its `# check=` directive (first word of the value, as
 * BuildKit reads it), merged with the caller's choices.
 */
export function lintConfig(df: Dockerfile, opts: Pick<LintOptions, "skip" | "error"> = {}): LintConfig {
  const d = df.ast.directives.find((x) => x.name === "check");
  let cfg: LintConfig;
  try {
    cfg = parseCheckOptions(d ? (d.value.split(" ")[0] ?? "") : "");
  } catch (e) {
    throw syntaxError(
      `failed to parse check options: ${(e as Error).message}`,
      d?.line ?? 1,
      undefined,
      df.file,
    );
  }
  const caller = parseCheckOptions("");
  for (const r of opts.skip ?? []) caller.skip.add(r);
  caller.error = opts.error ?? false;
  return mergeConfig(cfg, caller);
}

/** A `# check=…` comment right above an instruction adds to the configuration for it. */
function configFromComments(base: LintConfig, comments: readonly string[] | undefined): LintConfig {
  if (!comments) return base;
  for (const c of comments) {
    const m = /^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*([^\n]+?)[\t\n\f\r ]*$/.exec(c.trimStart());
    if (!m || m[1]!.toLowerCase() !== "check") continue;
    try {
      return mergeConfig(base, parseCheckOptions(m[2]!.split(" ")[0] ?? ""));
    } catch {
      return base;
    }
  }
  return base;
}

/**
 * BuildKit's answer to `error=true`: the message that fails the build when there are findings
 * (`lint violation found for rules: A, B`), or undefined.
 */
export function lintFailure(warnings: readonly LintWarning[], config: LintConfig): string | undefined {
  if (!config.error || warnings.length === 0) return undefined;
  const rules = [...new Set(warnings.map((w) => w.rule))].sort();
  return `lint violation found for rules: ${rules.join(", ")}`;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** distribution/reference grammar, for `ParseNormalizedNamed`-style validity. */
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const REFERENCE_RE = new RegExp(
  `^((?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`,
);

/** Would `reference.ParseNormalizedNamed` accept this image name? */
export function isValidImageReference(s: string): boolean {
  if (s === "" || /^[a-f0-9]{64}$/.test(s)) return false;
  const m = REFERENCE_RE.exec(s);
  if (!m) return false;
  return m[1]!.length <= 255;
}

/** The tag and digest of an image reference (after the last `/`). */
function tagOf(ref: string): { tag?: string; digest?: string } {
  const at = ref.indexOf("@");
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  const out: { tag?: string; digest?: string } = {};
  if (colon > slash) out.tag = name.slice(colon + 1);
  if (digest !== undefined) out.digest = digest;
  return out;
}

const SECRET_DENY =
  /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW = /(?:_|^)(?:public|file|version)(?:_|$)/i;

/** BuildKit's test for a secret-looking ARG/ENV name. */
export function isSecretKey(key: string): boolean {
  return SECRET_DENY.test(key) && !SECRET_ALLOW.test(key);
}

/** Does this context path look like a credential (Strata's SecretInContext)? */
export function isLikelySecretPath(path: string): boolean {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  const base = parts[parts.length - 1] ?? "";
  if (parts.slice(0, -1).some((p) => p === ".ssh" || p === ".aws")) return true;
  if (base === ".env" || (base.startsWith(".env.") && !/\.(example|sample|template|dist)$/.test(base)))
    return true;
  if (
    ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".npmrc", ".pypirc", ".git-credentials"].includes(base)
  ) {
    return true;
  }
  return /\.(pem|key)$/i.test(base);
}

function isRemoteSource(src: string): boolean {
  return /^(?:https?|git|ssh):\/\//i.test(src) || /^git@/.test(src);
}

function hasWildcard(src: string): boolean {
  return /[*?[]/.test(src);
}

const ARCHIVE = /\.(?:tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|tzst|tar\.lz4)$/i;

/** `path.Clean` for context paths, keeping a leading slash. */
function cleanPath(p: string): string {
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
      continue;
    }
    out.push(part);
  }
  const s = out.join("/");
  if (abs) return `/${s}`;
  return s === "" ? "." : s;
}

/** A context path relative to the root, `.` for the root itself. */
function contextRelative(src: string): string {
  const c = cleanPath(src);
  if (c === "/") return ".";
  return c.startsWith("/") ? c.slice(1) : c;
}

/** Go's `path.Match` for one `/`-separated path (no `**`). */
function globMatch(pattern: string, name: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) return false;
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("^")) cls = `!${cls.slice(1)}`;
      re += `[${cls.startsWith("!") ? `^${cls.slice(1)}` : cls}]`;
      i = end;
    } else if (c === "\\" && i + 1 < pattern.length) {
      re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  try {
    return new RegExp(`${re}$`).test(name);
  } catch {
    return false;
  }
}

/** The files of a context file list that a COPY source selects (a directory selects its tree). */
function filesSelected(files: readonly string[], src: string): string[] {
  const rel = contextRelative(src);
  if (rel === ".") return [...files];
  return files.filter((f) => {
    const file = contextRelative(f);
    if (hasWildcard(rel)) {
      const depth = rel.split("/").length;
      const head = file.split("/").slice(0, depth).join("/");
      return globMatch(rel, head);
    }
    return file === rel || file.startsWith(`${rel}/`);
  });
}

const INSTALLERS: [RegExp, string][] = [
  [/\bpip[0-9.]*\s+install\b/, "pip install"],
  [/\bnpm\s+(?:install|ci|i)\b/, "npm install"],
  [/\byarn(?:\s+install\b|\s*(?:$|[;&|)]))/m, "yarn install"],
  [/\bpnpm\s+(?:install|i)\b/, "pnpm install"],
  [/\bapt(?:-get)?\s+(?:-\S+\s+)*install\b/, "apt-get install"],
  [/\bapk\s+(?:-\S+\s+)*add\b/, "apk add"],
  [/\bgo\s+mod\s+(?:download|tidy)\b/, "go mod download"],
  [/\bbundle\s+install\b/, "bundle install"],
];

function runText(c: Command): string {
  if (c.kind !== "run") return "";
  return [c.cmdLine.join(" "), ...c.heredocs.map((h) => h.data)].join("\n");
}

function isRootUser(user: string): boolean {
  const u = user.split(":")[0]!;
  return u === "root" || u === "0";
}

// ---------------------------------------------------------------------------------------------

interface Emitted extends LintWarning {
  order: number;
}

/**
 * Runs every check and returns the findings, sorted by line, plus the configuration read from
 * the `# check=` directive and the first expansion error, if any. Throws DockerfileParseError
 * only when the text itself does not parse.
 */
export function lintDockerfile(input: Dockerfile | string | Uint8Array, opts: LintOptions = {}): LintResult {
  const df =
    typeof input === "string" || input instanceof Uint8Array
      ? loadDockerfile(input, { file: opts.file })
      : input;
  const config = lintConfig(df, opts);
  const out: Emitted[] = [];
  const seen = new Set<string>();
  const emit = <A extends unknown[]>(
    rule: LintRule<A>,
    loc: Location,
    comments: readonly string[] | undefined,
    ...args: A
  ) => {
    const cfg = configFromComments(config, comments);
    if (cfg.skipAll || cfg.skip.has(rule.name)) return;
    const message = rule.format(...args);
    const key = `${rule.name}\0${loc.startLine}\0${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    const w: Emitted = {
      rule: rule.name as RuleName,
      message,
      line: loc.startLine,
      endLine: loc.endLine,
      description: rule.description,
      order: out.length,
    };
    if (rule.url) w.url = rule.url;
    out.push(w);
  };
  const result = (error?: DockerfileParseError | StrataError): LintResult => {
    const warnings = out
      .sort((a, b) => a.line - b.line || a.order - b.order)
      .map(({ order: _order, ...w }) => w as LintWarning);
    const r: LintResult = { warnings, config };
    if (error) r.error = error;
    return r;
  };

  // The parser's own warnings.
  for (const w of df.ast.warnings) {
    emit(RULES.NoEmptyContinuation, { startLine: w.line, endLine: w.line }, undefined);
  }

  // Per instruction, as BuildKit's instructions.Parse runs them.
  for (const node of df.ast.children) {
    const loc = { startLine: node.startLine, endLine: node.endLine };
    if (node.command === "maintainer") emit(RULES.MaintainerDeprecated, loc, node.comments);
    if (node.command === "from" && node.args.length === 3) {
      const [, as, name] = node.args as [string, string, string];
      if (name !== name.toLowerCase()) emit(RULES.StageNameCasing, loc, node.comments, name);
      const from = node.value;
      const fromLower = from === from.toLowerCase();
      const fromUpper = from === from.toUpperCase();
      if ((fromLower && as !== as.toLowerCase()) || (!fromLower && fromUpper && as !== as.toUpperCase())) {
        emit(RULES.FromAsCasing, loc, node.comments, from, as);
      }
    }
  }

  // Stage names.
  const names = new Set<string>();
  for (const s of df.stages) {
    if (s.name === "") continue;
    if (s.name === "context" || s.name === "scratch")
      emit(RULES.ReservedStageName, s.from.location, undefined, s.name);
    if (names.has(s.name)) emit(RULES.DuplicateStageName, s.from.location, undefined, s.name);
    names.add(s.name);
  }

  // Instruction casing: the majority wins; a tie goes to upper case.
  let lower = 0;
  let upper = 0;
  const allNamed: { name: string; location: Location }[] = [];
  for (const s of df.stages) {
    allNamed.push(s.from, ...s.commands);
  }
  for (const { name } of allNamed) {
    if (name === name.toLowerCase()) lower++;
    else if (name === name.toUpperCase()) upper++;
  }
  const majorityLower = lower > upper;
  for (const { name, location } of allNamed) {
    if (majorityLower && name !== name.toLowerCase()) {
      emit(RULES.ConsistentInstructionCasing, location, undefined, name, "lowercase");
    } else if (!majorityLower && name !== name.toUpperCase()) {
      emit(RULES.ConsistentInstructionCasing, location, undefined, name, "uppercase");
    }
  }

  const isIgnored = ignoreChecker(opts);
  const lex = new ShellLex(df.ast.escapeToken);
  const buildArgs: Env =
    opts.buildArgs instanceof Map ? new Map(opts.buildArgs) : new Map(Object.entries(opts.buildArgs ?? {}));
  checkDefaultBaseNames(df, opts, buildArgs, lex, (loc, base) =>
    emit(RULES.InvalidDefaultArgInFrom, loc, undefined, base),
  );

  // Everything that needs expansion.
  let expanded: ExpandResult;
  try {
    expanded = expandStages(df, { ...opts, allStages: !opts.target });
  } catch (e) {
    if (e instanceof StrataError) return result(e);
    throw e;
  }

  const argKeys = new Set([
    ...expanded.globalArgs.keys(),
    ...df.metaArgs.flatMap((a) => a.args.map((x) => x.key)),
  ]);
  const argKeyList = [...argKeys].sort();
  const byIndex = new Map(expanded.stages.map((s) => [s.index, s]));
  const shellSet = new Map<number, boolean>();
  const workdirSet = new Map<number, boolean>();
  const finalUser = new Map<number, { user: string; location: Location } | undefined>();

  for (const es of expanded.stages) {
    const stage = df.stages[es.index]!;
    const fromLoc = stage.from.location;
    const fromComments = stage.from.comments;

    for (const v of es.from.undefinedVars) {
      if (argKeys.has(v)) continue;
      emit(RULES.UndefinedArgInFrom, fromLoc, fromComments, v, suggest(v, argKeyList, true));
    }
    if (stage.from.platform !== "")
      checkPlatform(stage.from.platform, stage.name, expanded.globalArgs, lex, fromLoc, fromComments, emit);

    if (es.baseStage === undefined && es.baseName.toLowerCase() !== "scratch") {
      const { tag, digest } = tagOf(es.baseName);
      if (digest === undefined && (tag === undefined || tag === "latest")) {
        emit(RULES.LatestBaseImage, fromLoc, fromComments, es.baseName);
      }
    }

    let shell = es.baseStage !== undefined ? (shellSet.get(es.baseStage) ?? false) : false;
    let workdir = es.baseStage !== undefined ? (workdirSet.get(es.baseStage) ?? false) : false;
    let user =
      es.baseStage !== undefined
        ? finalUser.get(es.baseStage)
        : (() => {
            const u =
              es.baseName.toLowerCase() === "scratch" ? undefined : opts.baseImage?.(es.baseName)?.user;
            return u ? { user: u, location: fromLoc } : undefined;
          })();
    const trackers = new Map<string, Location>();
    let wholeContextCopy: { ins: ExpandedInstruction<Command>; done: boolean } | undefined;

    for (const ins of es.instructions) {
      const c = ins.command;
      const loc = c.location;
      const comments = c.comments;
      const envKeys = [...ins.env.keys()];
      for (const v of ins.undefinedVars)
        emit(RULES.UndefinedVar, loc, comments, v, suggest(v, envKeys, true));

      switch (c.kind) {
        case "env":
          for (const p of c.pairs) {
            if (p.noDelim) emit(RULES.LegacyKeyValueFormat, loc, comments, c.name);
            if (isSecretKey(p.key)) emit(RULES.SecretsUsedInArgOrEnv, loc, comments, "ENV", p.key);
          }
          break;
        case "label":
          for (const p of c.pairs) if (p.noDelim) emit(RULES.LegacyKeyValueFormat, loc, comments, c.name);
          break;
        case "arg":
          for (const a of c.args)
            if (isSecretKey(a.key)) emit(RULES.SecretsUsedInArgOrEnv, loc, comments, "ARG", a.key);
          break;
        case "cmd":
        case "entrypoint":
        case "healthcheck": {
          const prev = trackers.get(c.kind);
          if (prev) emit(RULES.MultipleInstructionsDisallowed, prev, comments, c.name);
          trackers.set(c.kind, loc);
          if (c.kind !== "healthcheck" && c.prependShell && !shell)
            emit(RULES.JSONArgsRecommended, loc, comments, c.name);
          break;
        }
        case "shell":
          shell = true;
          break;
        case "expose":
          for (const p of c.ports) {
            const spec = splitExposeSpec(p);
            if (spec.proto !== spec.proto.toLowerCase()) emit(RULES.ExposeProtoCasing, loc, comments, p);
            if (spec.ip !== "" || spec.hostPort !== "") emit(RULES.ExposeInvalidFormat, loc, comments, p);
          }
          break;
        case "workdir":
          if (!workdir && !c.path.startsWith("/")) emit(RULES.WorkdirRelativePath, loc, comments, c.path);
          workdir = true;
          break;
        case "user":
          user = { user: c.user, location: loc };
          break;
        case "copy":
        case "add": {
          const label = c.kind === "copy" ? "Copy" : "Add";
          const local = c.kind === "add" || c.from === "";
          if (local) {
            const sources = c.sources.filter((s) => !isRemoteSource(s));
            if (isIgnored.forCopy) {
              for (const s of sources) {
                if (isIgnored.forCopy(contextRelative(s)))
                  emit(RULES.CopyIgnoredFile, loc, comments, label, cleanPath(s));
              }
            }
            if (opts.contextFiles) {
              for (const s of sources) {
                const files =
                  typeof opts.contextFiles === "function"
                    ? [...opts.contextFiles(s)]
                    : filesSelected(opts.contextFiles, s);
                for (const f of files) {
                  const rel = contextRelative(f);
                  if (!isLikelySecretPath(rel)) continue;
                  if (isIgnored.any?.(rel)) continue;
                  emit(RULES.SecretInContext, loc, comments, c.kind.toUpperCase(), rel);
                }
              }
            }
            if (!wholeContextCopy && sources.some((s) => [".", "*"].includes(contextRelative(s)))) {
              wholeContextCopy = { ins, done: false };
            }
          }
          if (c.kind === "add" && c.checksum === "" && c.keepGitDir === undefined && c.unpack === undefined) {
            const paths = c.sources;
            if (
              paths.length > 0 &&
              paths.every((s) => !isRemoteSource(s) && !hasWildcard(s) && !ARCHIVE.test(s))
            ) {
              emit(RULES.AddInsteadOfCopy, loc, comments, paths[0]!);
            }
          }
          break;
        }
        case "run": {
          const text = runText(c);
          if (wholeContextCopy && !wholeContextCopy.done) {
            const hit = INSTALLERS.find(([re]) => re.test(text));
            if (hit) {
              const w = wholeContextCopy.ins.command;
              emit(
                RULES.CacheBustingOrder,
                w.location,
                w.comments,
                w.name.toUpperCase(),
                hit[1],
                loc.startLine,
              );
              wholeContextCopy.done = true;
            }
          }
          if (/\bapt(?:-get)?\s+(?:-\S+\s+)*install\b/.test(text)) {
            const cleaned = /\brm\b[^;&|\n]*\/var\/lib\/apt\/lists/.test(text);
            const mounted = c.mounts.some(
              (m) =>
                (m.type === "cache" || m.type === "tmpfs") && cleanPath(m.target).startsWith("/var/lib/apt"),
            );
            if (!cleaned && !mounted) emit(RULES.AptListsNotCleaned, loc, comments);
          }
          break;
        }
        default:
          break;
      }
    }
    shellSet.set(es.index, shell);
    workdirSet.set(es.index, workdir);
    finalUser.set(es.index, user);
  }

  const target = byIndex.get(expanded.target);
  if (target) {
    const u = finalUser.get(target.index);
    const fromLoc = df.stages[target.index]!.from.location;
    if (!u || u.user === "") emit(RULES.RunAsRoot, fromLoc, df.stages[target.index]!.from.comments);
    else if (isRootUser(u.user)) emit(RULES.RunAsRoot, u.location, undefined, u.user);
  }
  return result();
}

/**
 * The ignore tests lint uses: `forCopy` for CopyIgnoredFile (BuildKit's `validateCopySourcePath`)
 * and `any` for SecretInContext.
 */
function ignoreChecker(opts: LintOptions): {
  forCopy?: (path: string) => boolean;
  any?: (path: string) => boolean;
} {
  if (opts.isIgnored) return { forCopy: opts.isIgnored, any: opts.isIgnored };
  if (!opts.dockerignore || opts.dockerignore.length === 0) return {};
  const m = new PatternMatcher(opts.dockerignore);
  const any = (p: string) => p !== "." && m.matchesOrParentMatches(p);
  // As BuildKit: exceptions make the answer depend on files below, so the check is skipped.
  if (m.exclusions()) return { any };
  const rootIgnored = m.patterns().some((p) => !p.exclusion && ["*", "**", "**/*"].includes(p.pattern));
  return { forCopy: (p) => (p === "." ? rootIgnored : m.matchesOrParentMatches(p)), any };
}

/** Runs the checks; see lintDockerfile for the details. Returns the findings, sorted by line. */
export function lint(input: Dockerfile | string | Uint8Array, opts: LintOptions = {}): LintWarning[] {
  return lintDockerfile(input, opts).warnings;
}

/** BuildKit `validateBaseImagesWithDefaultArgs`: FROM with only the ARG defaults must name an image. */
function checkDefaultBaseNames(
  df: Dockerfile,
  opts: LintOptions,
  buildArgs: Env,
  lex: ShellLex,
  report: (loc: Location, baseName: string) => void,
): void {
  const bp: Platform = opts.buildPlatform ?? opts.targetPlatform ?? hostPlatform();
  const tp: Platform = opts.targetPlatform ?? bp;
  const targetStage = opts.target ?? df.stages[df.stages.length - 1]?.name ?? "";
  const env = defaultArgs(bp, tp, targetStage, buildArgs);
  try {
    for (const cmd of df.metaArgs) {
      for (const kp of cmd.args) {
        if (kp.value !== undefined) env.set(kp.key, lex.processWord(kp.value, env).result);
      }
    }
    for (const s of df.stages) {
      const name = lex.processWord(s.from.baseName, env).result;
      if (!isValidImageReference(name)) report(s.from.location, s.from.baseName);
    }
  } catch (e) {
    // As BuildKit: an expansion error abandons this check; the build reports it.
    if (!(e instanceof StrataError)) throw e;
  }
}

function checkPlatform(
  platform: string,
  stageName: string,
  globalArgs: Env,
  lex: ShellLex,
  loc: Location,
  comments: readonly string[],
  emit: <A extends unknown[]>(
    rule: LintRule<A>,
    loc: Location,
    comments: readonly string[] | undefined,
    ...args: A
  ) => void,
): void {
  let r: ReturnType<ShellLex["processWord"]>;
  try {
    r = lex.processWord(platform, globalArgs);
  } catch {
    return;
  }
  if (r.used.size === 1 && r.unmatched.size === 0 && r.used.has("TARGETPLATFORM")) {
    if (r.result === globalArgs.get("TARGETPLATFORM"))
      emit(RULES.RedundantTargetPlatform, loc, comments, platform);
  }
  if (r.used.size > 0 || r.unmatched.size > 0) return;
  let p: Platform;
  try {
    p = parsePlatform(r.result);
  } catch {
    return;
  }
  if (stageName.includes(p.os) || stageName.includes(p.architecture)) return;
  emit(RULES.FromPlatformFlagConstDisallowed, loc, comments, r.result);
}
