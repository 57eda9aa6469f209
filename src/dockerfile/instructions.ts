/**
 * Typed instructions (BuildKit `frontend/dockerfile/instructions`): the AST turned into one typed
 * command per instruction, grouped into stages, with the ARGs before the first FROM kept apart as
 * meta ARGs. Flags are validated here and every argument-count rule lives here. Nothing is
 * expanded yet: `$VAR` stays as written (see `expand.ts`).
 */

import { BFlags } from "./bflags.js";
import { instructionError, ReasonError, syntaxError } from "./errors.js";
import { parseGoDuration, parseGoInt } from "./go-values.js";
import { chompHeredocContent, type Heredoc, mustParseHeredocWord } from "./heredoc.js";
import {
  INSTRUCTIONS,
  type Node,
  nodeArgs,
  type ParseOptions,
  type ParseResult,
  parseDockerfile,
} from "./parser.js";
import {
  checkMountBeforeExpansion,
  type Device,
  type Mount,
  type NetworkMode,
  parseDevice,
  parseMount,
  parseNetwork,
  parseSecurity,
  type SecurityMode,
} from "./run-mounts.js";
import { goQuote, trimSpace, withSuggestion } from "./text.js";

/** 1-based line range of an instruction in its file. */
export interface Location {
  startLine: number;
  endLine: number;
}

/** What every command has. */
export interface CommandBase {
  /** The instruction word as written (`RUN`, `run`). */
  name: string;
  /** The instruction's source text, trimmed (BuildKit's `String()`). */
  code: string;
  location: Location;
  /** The comment lines directly above the instruction. */
  comments: string[];
}

/** `key=value` of ENV and LABEL. `noDelim` marks the legacy `ENV key value` form. */
export interface KeyValuePair {
  key: string;
  value: string;
  noDelim: boolean;
}

/** One name of an ARG, with its default when given. */
export interface ArgDefinition {
  key: string;
  value?: string;
  /** A `# NAME description` comment right above the ARG. */
  docComment?: string;
}

/** The content of a `COPY <<EOF` / `ADD <<EOF` source. */
export interface SourceContent {
  /** The heredoc name, used as the file name. */
  path: string;
  /** The body, with leading tabs removed for `<<-`. */
  data: string;
  /** Whether `$VAR` in the body is expanded. */
  expand: boolean;
}

/** A heredoc of RUN: a file given to the shell command. */
export interface ShellInlineFile {
  name: string;
  data: string;
  chomp: boolean;
}

/** `FROM [--platform=…] image [AS name]`; begins a stage. */
export interface FromCommand extends CommandBase {
  kind: "from";
  /** The image or stage to build on, as written (`golang:${GO_VERSION}`). */
  baseName: string;
  /** The `AS name`, lower-cased; empty when the stage has no name. */
  stageName: string;
  /** The `--platform` value, as written. */
  platform: string;
}

/** `RUN [--mount=…] [--network=…] [--security=…] [--device=…] command`. */
export interface RunCommand extends CommandBase {
  kind: "run";
  /** Exec form: the argv. Shell form: one string, to be run by the stage's shell. */
  cmdLine: string[];
  /** True for the shell form. */
  prependShell: boolean;
  heredocs: ShellInlineFile[];
  /** The `--mount` values as written, in order. */
  mountSpecs: string[];
  /**
   * The mounts parsed from `mountSpecs`. A spec that holds a `$` is checked only after word
   * expansion (`expandStages`), as BuildKit does, so it may be missing here until then.
   */
  mounts: Mount[];
  network: NetworkMode;
  security: SecurityMode;
  devices: Device[];
  /** Names of the flags given (`mount`, `network`, …). */
  flagsUsed: string[];
}

/** `CMD`: the default command of the image. */
export interface CmdCommand extends CommandBase {
  kind: "cmd";
  cmdLine: string[];
  prependShell: boolean;
}

/** `ENTRYPOINT`: the image entrypoint. */
export interface EntrypointCommand extends CommandBase {
  kind: "entrypoint";
  /** Empty for `ENTRYPOINT []`, which resets the entrypoint. */
  cmdLine: string[];
  prependShell: boolean;
}

/** `SHELL ["exe", "-c"]`: the shell for shell-form commands (JSON form only). */
export interface ShellCommand extends CommandBase {
  kind: "shell";
  shell: string[];
}

interface SourcesAndDest {
  /** Paths, URLs or git refs to copy from. */
  sources: string[];
  /** Inline files given as heredocs. */
  heredocs: SourceContent[];
  dest: string;
}

/** `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude]… src… dest`. */
export interface CopyCommand extends CommandBase, SourcesAndDest {
  kind: "copy";
  /** `--from`: stage name, stage index or image. */
  from: string;
  chown: string;
  chmod: string;
  link: boolean;
  exclude: string[];
  parents: boolean;
}

/** `ADD [--chown] [--chmod] [--link] [--checksum] [--keep-git-dir] [--unpack] [--exclude]… src… dest`. */
export interface AddCommand extends CommandBase, SourcesAndDest {
  kind: "add";
  chown: string;
  chmod: string;
  link: boolean;
  exclude: string[];
  checksum: string;
  /** `--keep-git-dir`, when given. */
  keepGitDir?: boolean;
  /** `--unpack`, when given. */
  unpack?: boolean;
}

/** `ENV k=v …` (or the legacy `ENV k v`). */
export interface EnvCommand extends CommandBase {
  kind: "env";
  pairs: KeyValuePair[];
}

/** `LABEL k=v …`. */
export interface LabelCommand extends CommandBase {
  kind: "label";
  pairs: KeyValuePair[];
}

/** `ARG name[=default] …`. */
export interface ArgCommand extends CommandBase {
  kind: "arg";
  args: ArgDefinition[];
}

/** `EXPOSE port[/proto] …`. */
export interface ExposeCommand extends CommandBase {
  kind: "expose";
  /** Sorted as BuildKit sorts them. */
  ports: string[];
}

/** `USER user[:group]`. */
export interface UserCommand extends CommandBase {
  kind: "user";
  user: string;
}

/** `WORKDIR path`. */
export interface WorkdirCommand extends CommandBase {
  kind: "workdir";
  path: string;
}

/** `VOLUME path …` or `VOLUME ["path", …]`. */
export interface VolumeCommand extends CommandBase {
  kind: "volume";
  volumes: string[];
}

/** `STOPSIGNAL signal`. */
export interface StopSignalCommand extends CommandBase {
  kind: "stopsignal";
  signal: string;
}

/** The image config healthcheck; durations in nanoseconds, 0 = inherit the default. */
export interface HealthConfig {
  /** `["NONE"]`, `["CMD", …argv]` or `["CMD-SHELL", command]`. */
  test: string[];
  interval: number;
  timeout: number;
  startPeriod: number;
  startInterval: number;
  retries: number;
}

/** `HEALTHCHECK [options] CMD …` or `HEALTHCHECK NONE`. */
export interface HealthcheckCommand extends CommandBase {
  kind: "healthcheck";
  health: HealthConfig;
}

/** `ONBUILD <instruction>`: a trigger for images built on this one. */
export interface OnbuildCommand extends CommandBase {
  kind: "onbuild";
  /** The trigger instruction's text (with its heredocs), stored in the image config. */
  expression: string;
}

/** `MAINTAINER name` (deprecated). */
export interface MaintainerCommand extends CommandBase {
  kind: "maintainer";
  maintainer: string;
}

/** Every instruction that can appear inside a stage. */
export type Command =
  | RunCommand
  | CmdCommand
  | EntrypointCommand
  | ShellCommand
  | CopyCommand
  | AddCommand
  | EnvCommand
  | LabelCommand
  | ArgCommand
  | ExposeCommand
  | UserCommand
  | WorkdirCommand
  | VolumeCommand
  | StopSignalCommand
  | HealthcheckCommand
  | OnbuildCommand
  | MaintainerCommand;

/** A build stage: a FROM and the commands up to the next FROM. */
export interface Stage {
  /** 0-based position in the file (what `COPY --from=0` refers to). */
  index: number;
  /** The `AS` name, lower-cased; empty when unnamed. */
  name: string;
  from: FromCommand;
  commands: Command[];
  /** A `# name description` comment right above the FROM. */
  docComment?: string;
}

/** A Dockerfile turned into typed instructions. */
export interface Dockerfile {
  file: string;
  ast: ParseResult;
  /** The ARGs before the first FROM. */
  metaArgs: ArgCommand[];
  stages: Stage[];
}

// ---------------------------------------------------------------------------------------------

interface Req {
  node: Node;
  command: string;
  args: string[];
  flags: BFlags;
  base: CommandBase;
}

function baseOf(node: Node): CommandBase {
  return {
    name: node.value,
    code: trimSpace(node.original),
    location: { startLine: node.startLine, endLine: node.endLine },
    comments: node.comments,
  };
}

const atLeastOne = (cmd: string) => new ReasonError(`${cmd} requires at least one argument`);
const exactlyOne = (cmd: string) => new ReasonError(`${cmd} requires exactly one argument`);
const noDestination = (cmd: string) =>
  new ReasonError(
    `${cmd} requires at least two arguments, but only one was provided. Destination could not be determined`,
  );

/** BuildKit `handleJSONArgs`: exec form as is, shell form joined into one string. */
function handleJSONArgs(args: string[], json: boolean): string[] {
  if (args.length === 0) return [];
  if (json) return args;
  return [args.join(" ")];
}

function parseKvps(args: string[], cmd: string): KeyValuePair[] {
  if (args.length === 0) throw atLeastOne(cmd);
  if (args.length % 3 !== 0) throw new ReasonError(`Bad input to ${cmd}, too many arguments`);
  const out: KeyValuePair[] = [];
  for (let j = 0; j < args.length; j += 3) {
    if (args[j]!.length === 0) throw new ReasonError(`${cmd} names can not be blank`);
    out.push({ key: args[j]!, value: args[j + 1]!, noDelim: args[j + 2] === "" });
  }
  return out;
}

function docComment(comments: string[], name: string): string | undefined {
  if (name === "") return undefined;
  for (const line of comments) if (line.startsWith(`${name} `)) return line.slice(name.length + 1);
  return undefined;
}

const VALID_STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

function parseFrom(req: Req): FromCommand {
  const { args } = req;
  let stageName = "";
  if (args.length === 3 && args[1]!.toLowerCase() === "as") {
    stageName = args[2]!.toLowerCase();
    if (!VALID_STAGE_NAME.test(stageName)) {
      throw new ReasonError(
        `invalid name for build stage: ${goQuote(args[2]!)}, name can't start with a number or contain symbols`,
      );
    }
  } else if (args.length !== 1) {
    throw new ReasonError("FROM requires either one or three arguments");
  }
  const platform = req.flags.addString("platform");
  req.flags.parse();
  return { ...req.base, kind: "from", baseName: args[0]!, stageName, platform: platform.value };
}

function sourcesAndDest(req: Req, cmd: string): SourcesAndDest {
  const srcs = req.args.slice(0, -1);
  const dest = req.args[req.args.length - 1]!;
  if (mustParseHeredocWord(dest)) throw new ReasonError(`${cmd} cannot accept a heredoc as a destination`);
  const byName = new Map<string, Heredoc>();
  for (const h of req.node.heredocs) byName.set(h.name, h);
  const sources: string[] = [];
  const heredocs: SourceContent[] = [];
  for (const src of srcs) {
    const h = mustParseHeredocWord(src);
    if (h) {
      let data = byName.get(h.name)?.content ?? "";
      if (h.chomp) data = chompHeredocContent(data);
      heredocs.push({ path: h.name, data, expand: h.expand });
    } else {
      sources.push(src);
    }
  }
  return { sources, heredocs, dest };
}

function parseAdd(req: Req): AddCommand {
  if (req.args.length < 2) throw noDestination("ADD");
  const chown = req.flags.addString("chown");
  const chmod = req.flags.addString("chmod");
  const link = req.flags.addBool("link");
  const keepGitDir = req.flags.addBool("keep-git-dir");
  const checksum = req.flags.addString("checksum");
  const unpack = req.flags.addBool("unpack");
  const exclude = req.flags.addStrings("exclude");
  req.flags.parse();
  const cmd: AddCommand = {
    ...req.base,
    kind: "add",
    ...sourcesAndDest(req, "ADD"),
    chown: chown.value,
    chmod: chmod.value,
    link: link.value === "true",
    exclude: exclude.values,
    checksum: checksum.value,
  };
  if (req.flags.isUsed("keep-git-dir")) cmd.keepGitDir = keepGitDir.value === "true";
  if (req.flags.isUsed("unpack")) cmd.unpack = unpack.value === "true";
  return cmd;
}

function parseCopy(req: Req): CopyCommand {
  if (req.args.length < 2) throw noDestination("COPY");
  const chown = req.flags.addString("chown");
  const from = req.flags.addString("from");
  const chmod = req.flags.addString("chmod");
  const link = req.flags.addBool("link");
  const exclude = req.flags.addStrings("exclude");
  const parents = req.flags.addBool("parents");
  req.flags.parse();
  return {
    ...req.base,
    kind: "copy",
    ...sourcesAndDest(req, "COPY"),
    from: from.value,
    chown: chown.value,
    chmod: chmod.value,
    link: link.value === "true",
    exclude: exclude.values,
    parents: parents.value === "true",
  };
}

const ONBUILD_PREFIX = /^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i;

function parseOnbuild(req: Req): OnbuildCommand {
  if (req.args.length === 0) throw atLeastOne("ONBUILD");
  req.flags.parse();
  const trigger = trimSpace(req.args[0]!).toUpperCase();
  if (trigger === "ONBUILD") throw new ReasonError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  if (trigger === "MAINTAINER" || trigger === "FROM") {
    throw new ReasonError(`${trigger} isn't allowed as an ONBUILD trigger`);
  }
  let expression = req.node.original.replace(ONBUILD_PREFIX, "");
  for (const h of req.node.heredocs) expression += `\n${h.content}${h.name}`;
  return { ...req.base, kind: "onbuild", expression };
}

function parseRun(req: Req): RunCommand {
  const mount = req.flags.addStrings("mount");
  const network = req.flags.addString("network", "default");
  const security = req.flags.addString("security", "sandbox");
  const device = req.flags.addStrings("device");
  req.flags.parse();
  const mounts: Mount[] = [];
  for (const spec of mount.values) {
    checkMountBeforeExpansion(spec);
    if (spec.includes("$")) {
      try {
        mounts.push(parseMount(spec, (w) => w));
      } catch (e) {
        if (!(e instanceof ReasonError)) throw e;
      }
    } else {
      mounts.push(parseMount(spec, (w) => w));
    }
  }
  return {
    ...req.base,
    kind: "run",
    cmdLine: handleJSONArgs(req.args, req.node.json),
    prependShell: !req.node.json,
    heredocs: req.node.heredocs.map((h) => ({ name: h.name, data: h.content, chomp: h.chomp })),
    mountSpecs: mount.values,
    mounts,
    network: parseNetwork(network.value),
    security: parseSecurity(security.value),
    devices: device.values.map(parseDevice),
    flagsUsed: req.flags.usedNames(),
  };
}

function optInterval(value: string, name: string): number {
  if (value === "") return 0;
  const d = parseGoDuration(value);
  if (d === 0) return 0;
  if (d < 1_000_000) throw new ReasonError(`Interval ${goQuote(name)} cannot be less than 1ms`);
  return d;
}

function parseHealthcheck(req: Req): HealthcheckCommand {
  if (req.args.length === 0) throw atLeastOne("HEALTHCHECK");
  let typ = req.args[0]!.toUpperCase();
  const args = req.args.slice(1);
  const health: HealthConfig = {
    test: [],
    interval: 0,
    timeout: 0,
    startPeriod: 0,
    startInterval: 0,
    retries: 0,
  };
  if (typ === "NONE") {
    // As BuildKit: flags are not even looked at for NONE.
    if (args.length !== 0) throw new ReasonError("HEALTHCHECK NONE takes no arguments");
    health.test = [typ];
    return { ...req.base, kind: "healthcheck", health };
  }
  const interval = req.flags.addString("interval");
  const timeout = req.flags.addString("timeout");
  const startPeriod = req.flags.addString("start-period");
  const startInterval = req.flags.addString("start-interval");
  const retries = req.flags.addString("retries");
  req.flags.parse();
  if (typ !== "CMD") throw new ReasonError(`Unknown type ${goQuote(typ)} in HEALTHCHECK (try CMD)`);
  const cmd = handleJSONArgs(args, req.node.json);
  if (cmd.length === 0) throw new ReasonError("Missing command after HEALTHCHECK CMD");
  if (!req.node.json) typ = "CMD-SHELL";
  health.test = [typ, ...cmd];
  health.interval = optInterval(interval.value, "interval");
  health.timeout = optInterval(timeout.value, "timeout");
  health.startPeriod = optInterval(startPeriod.value, "start-period");
  health.startInterval = optInterval(startInterval.value, "start-interval");
  if (retries.value !== "") {
    const n = parseGoInt(retries.value, { bits: 32 });
    if (n < 0) throw new ReasonError(`--retries cannot be negative (${n})`);
    health.retries = n;
  }
  return { ...req.base, kind: "healthcheck", health };
}

function parseArg(req: Req): ArgCommand {
  // As BuildKit: ARG does not look at its flags.
  if (req.args.length < 1) throw atLeastOne("ARG");
  const args = req.args.map((arg): ArgDefinition => {
    const eq = arg.indexOf("=");
    const def: ArgDefinition = eq < 0 ? { key: arg } : { key: arg.slice(0, eq), value: arg.slice(eq + 1) };
    if (eq >= 0 && def.key.length === 0) throw new ReasonError("ARG names can not be blank");
    const doc = docComment(req.node.comments, def.key);
    if (doc !== undefined) def.docComment = doc;
    return def;
  });
  return { ...req.base, kind: "arg", args };
}

function parseShell(req: Req): ShellCommand {
  req.flags.parse();
  const shell = handleJSONArgs(req.args, req.node.json);
  if (shell.length === 0) throw atLeastOne("SHELL");
  if (!req.node.json) throw new ReasonError("SHELL requires the arguments to be in JSON form");
  return { ...req.base, kind: "shell", shell };
}

function exactlyOneArg(req: Req, cmd: string): string {
  if (req.args.length !== 1) throw exactlyOne(cmd);
  return req.args[0]!;
}

const PARSERS: Record<string, (req: Req) => FromCommand | Command> = {
  from: parseFrom,
  env: (req) => {
    req.flags.parse();
    return { ...req.base, kind: "env", pairs: parseKvps(req.args, "ENV") };
  },
  label: (req) => {
    req.flags.parse();
    return { ...req.base, kind: "label", pairs: parseKvps(req.args, "LABEL") };
  },
  maintainer: (req) => {
    const maintainer = exactlyOneArg(req, "MAINTAINER");
    req.flags.parse();
    return { ...req.base, kind: "maintainer", maintainer };
  },
  add: parseAdd,
  copy: parseCopy,
  onbuild: parseOnbuild,
  workdir: (req) => {
    const path = exactlyOneArg(req, "WORKDIR");
    req.flags.parse();
    return { ...req.base, kind: "workdir", path };
  },
  run: parseRun,
  cmd: (req) => {
    req.flags.parse();
    return {
      ...req.base,
      kind: "cmd",
      cmdLine: handleJSONArgs(req.args, req.node.json),
      prependShell: !req.node.json,
    };
  },
  entrypoint: (req) => {
    req.flags.parse();
    return {
      ...req.base,
      kind: "entrypoint",
      cmdLine: handleJSONArgs(req.args, req.node.json),
      prependShell: !req.node.json,
    };
  },
  healthcheck: parseHealthcheck,
  expose: (req) => {
    if (req.args.length === 0) throw atLeastOne("EXPOSE");
    req.flags.parse();
    return { ...req.base, kind: "expose", ports: [...req.args].sort(byteOrder) };
  },
  user: (req) => {
    const user = exactlyOneArg(req, "USER");
    req.flags.parse();
    return { ...req.base, kind: "user", user };
  },
  volume: (req) => {
    if (req.args.length === 0) throw atLeastOne("VOLUME");
    req.flags.parse();
    const volumes = req.args.map((v) => {
      const t = trimSpace(v);
      if (t === "") throw new ReasonError("VOLUME specified can not be an empty string");
      return t;
    });
    return { ...req.base, kind: "volume", volumes };
  },
  // As BuildKit: STOPSIGNAL does not look at its flags; the signal is checked at build time.
  stopsignal: (req) => ({ ...req.base, kind: "stopsignal", signal: exactlyOneArg(req, "STOPSIGNAL") }),
  arg: parseArg,
  shell: parseShell,
};

/** Go's string order (UTF-8 bytes), which differs from UTF-16 order only above U+FFFF. */
function byteOrder(a: string, b: string): number {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) if (ea[i] !== eb[i]) return ea[i]! - eb[i]!;
  return ea.length - eb.length;
}

const UPPER_INSTRUCTIONS = INSTRUCTIONS.map((i) => i.toUpperCase());

/**
 * One AST node as a typed command (BuildKit `ParseInstruction`). Throws DockerfileParseError:
 * `Dockerfile:7: unknown instruction: COPPY (did you mean COPY?)` for an unknown word, or
 * `Dockerfile parse error on line 2: <reason>` for bad arguments or flags.
 */
export function parseInstruction(node: Node, file?: string): FromCommand | Command {
  const fn = Object.hasOwn(PARSERS, node.command) ? PARSERS[node.command] : undefined;
  if (!fn) {
    throw syntaxError(
      withSuggestion(`unknown instruction: ${node.value}`, node.value, UPPER_INSTRUCTIONS, false),
      node.startLine,
      node.endLine,
      file,
    );
  }
  const req: Req = {
    node,
    command: node.command,
    args: nodeArgs(node),
    flags: new BFlags(node.flags),
    base: baseOf(node),
  };
  try {
    return fn(req);
  } catch (e) {
    if (e instanceof ReasonError) throw instructionError(e.message, node.startLine, node.endLine, file);
    throw e;
  }
}

/**
 * The typed instructions of a parsed Dockerfile, grouped into stages (BuildKit
 * `instructions.Parse`). Throws DockerfileParseError for the first bad instruction.
 */
export function parseInstructions(ast: ParseResult): Dockerfile {
  const stages: Stage[] = [];
  const metaArgs: ArgCommand[] = [];
  for (const node of ast.children) {
    const cmd = parseInstruction(node, ast.file);
    if (cmd.kind === "from") {
      const stage: Stage = { index: stages.length, name: cmd.stageName, from: cmd, commands: [] };
      const doc = docComment(node.comments, cmd.stageName);
      if (doc !== undefined) stage.docComment = doc;
      stages.push(stage);
      continue;
    }
    const current = stages[stages.length - 1];
    if (!current) {
      if (cmd.kind === "arg") {
        metaArgs.push(cmd);
        continue;
      }
      throw syntaxError("no build stage in current context", node.startLine, node.endLine, ast.file);
    }
    current.commands.push(cmd);
  }
  return { file: ast.file, ast, metaArgs, stages };
}

/** Parses text straight to typed instructions: `parseInstructions(parseDockerfile(input))`. */
export function loadDockerfile(input: string | Uint8Array, opts: ParseOptions = {}): Dockerfile {
  return parseInstructions(parseDockerfile(input, opts));
}

/**
 * Finds a stage by name (case-insensitive; the last of equal names wins, as in BuildKit) or by
 * index (`COPY --from=0`).
 */
export function findStage(df: Dockerfile, nameOrIndex: string): Stage | undefined {
  if (/^\d+$/.test(nameOrIndex)) return df.stages[Number(nameOrIndex)];
  const n = nameOrIndex.toLowerCase();
  return df.stages.findLast((s) => s.name !== "" && s.name === n);
}
