import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, promises as fsp, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { type ContainerConfig, type Digest, diffIdsOf, parseImageConfig } from "../oci/index.js";
import {
  CONTAINER_RUNTIME_ROOT,
  findRuntime,
  generateSpec,
  type MountSpec,
  type PortBinding,
  processStartTime,
  resolveUser,
  runtimeDelete,
  runtimeExec,
  runtimeKill,
  runtimePids,
  STOP_REQUESTED,
  type StartedSupervisor,
  SUPERVISOR_STATE,
  type SupervisorConfig,
  type SupervisorState,
  startSupervisor,
} from "../runtime/index.js";
import { diffUpper, findOpaqueDirs, Snapshotter } from "../snapshot/index.js";
import type { Store } from "../store/index.js";
import { atomicWriteFile, exists, isErrno, resolveInRoot, StrataError, withFileLock } from "../util/index.js";
import type { ImageService } from "./images.js";
import { randomName } from "./names.js";

/**
 * Containers (DESIGN.md §3), one directory each:
 *
 *   <root>/containers/<id>/config.v2.json     ContainerRecord (version 1), written by the engine
 *   <root>/containers/<id>/state.json         SupervisorState, written by the supervisor (absent: created)
 *   <root>/containers/<id>/<id>-json.log      json-file log (and .1, .2 … when rotated)
 *   <root>/containers/<id>/bundle/config.json the OCI runtime bundle
 *   <root>/containers/<id>/{hosts,hostname,resolv.conf}
 *   <root>/containers/lock                    cross-process lock for names and state changes
 *   <root>/snapshots/ctr-<id>/{fs,work,merged} the writable layer (kept across stop/start)
 *   <root>/volumes/<name>/_data               local volumes
 */
export const CONTAINER_RECORD_VERSION = 1;

export interface MountPoint {
  Type: "bind" | "volume" | "tmpfs";
  Name?: string;
  Source: string;
  Destination: string;
  Mode: string;
  RW: boolean;
}

export interface ContainerRecord {
  version: number;
  id: string;
  name: string;
  created: string;
  path: string;
  args: string[];
  image: Digest;
  /** The image as the user named it (`ps` IMAGE column). */
  imageName: string;
  /** The image's layers: GC roots while the container exists. */
  diffIds: Digest[];
  config: {
    Hostname: string;
    Domainname: string;
    User: string;
    AttachStdin: boolean;
    AttachStdout: boolean;
    AttachStderr: boolean;
    ExposedPorts?: Record<string, object>;
    Tty: boolean;
    OpenStdin: boolean;
    StdinOnce: boolean;
    Env: string[];
    Cmd: string[] | null;
    Image: string;
    Volumes: Record<string, object> | null;
    WorkingDir: string;
    Entrypoint: string[] | null;
    OnBuild: null;
    Labels: Record<string, string>;
    StopSignal?: string;
    StopTimeout?: number;
  };
  hostConfig: {
    NetworkMode: string;
    PortBindings: Record<string, { HostIp: string; HostPort: string }[]>;
    PublishAllPorts: boolean;
    AutoRemove: boolean;
    Binds: string[] | null;
    ReadonlyRootfs: boolean;
    Tmpfs?: Record<string, string>;
    Init: boolean;
    RestartPolicy: { Name: string; MaximumRetryCount: number };
    Memory: number;
    NanoCpus: number;
    LogConfig: { Type: string; Config: Record<string, string> };
  };
  mounts: MountPoint[];
  /** Host ports actually bound (random ones resolved at create). */
  ports: PortBinding[];
  snapshotKey: string;
  /** Paths the runtime creates as mount points in the writable layer: left out of diff, commit and export. */
  initPaths: string[];
  restartCount: number;
}

export interface ContainerState {
  Status: "created" | "running" | "restarting" | "exited" | "removing";
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
}

export interface Container {
  record: ContainerRecord;
  state: ContainerState;
  /** Restarts by the restart policy since the last start (Docker's RestartCount). */
  restartCount: number;
  dir: string;
}

export interface CreateOptions {
  image: string;
  /** Arguments after the image: they replace CMD. */
  args: string[];
  name?: string;
  /** undefined: the image's; "": reset. */
  entrypoint?: string;
  env?: string[];
  envFiles?: string[];
  workdir?: string;
  user?: string;
  tty?: boolean;
  interactive?: boolean;
  publish?: string[];
  publishAll?: boolean;
  volumes?: string[];
  tmpfs?: string[];
  network?: string;
  hostname?: string;
  readOnly?: boolean;
  init?: boolean;
  restart?: string;
  stopSignal?: string;
  stopTimeout?: number;
  memory?: string;
  cpus?: string;
  labels?: string[];
  autoRemove?: boolean;
  logOpts?: string[];
}

export interface Warnings {
  warnings: string[];
}

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ZERO_TIME = "0001-01-01T00:00:00Z";
const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  PWR: 30,
  SYS: 31,
};

/** A signal name or number as Docker accepts it (`TERM`, `SIGTERM`, `15`); returns the bare name. */
export function parseSignal(s: string): string {
  const up = s.toUpperCase().replace(/^SIG/, "");
  if (/^\d+$/.test(up)) {
    const n = Number(up);
    const name = Object.entries(SIGNALS).find(([, v]) => v === n)?.[0];
    if (!name) throw new StrataError("INVALID_ARGUMENT", `Invalid signal: ${s}`);
    return name;
  }
  if (!(up in SIGNALS)) throw new StrataError("INVALID_ARGUMENT", `Invalid signal: ${s}`);
  return up;
}

/**
 * Docker's combination of ENTRYPOINT and CMD (moby daemon/commit.go `merge` and
 * `getEntrypointAndArgs`): arguments after the image replace CMD; `--entrypoint` replaces
 * ENTRYPOINT and drops the image's CMD, except `--entrypoint ""`, which only clears it.
 */
export function commandOf(
  image: { Entrypoint?: string[] | null; Cmd?: string[] | null },
  user: { entrypoint?: string; args: string[] },
): { entrypoint: string[] | null; cmd: string[] | null; argv: string[] } {
  let entrypoint: string[] | null;
  let cmd: string[] | null = user.args.length ? [...user.args] : null;
  if (user.entrypoint !== undefined) {
    entrypoint = user.entrypoint === "" ? [] : [user.entrypoint];
    if (user.entrypoint === "" && !cmd) cmd = image.Cmd?.length ? [...image.Cmd] : null;
  } else {
    entrypoint = image.Entrypoint?.length ? [...image.Entrypoint] : null;
    if (!cmd) cmd = image.Cmd?.length ? [...image.Cmd] : null;
  }
  const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (!argv.length) throw new StrataError("INVALID_ARGUMENT", "No command specified");
  return { entrypoint: entrypoint?.length ? entrypoint : null, cmd, argv };
}

/** Docker's byte sizes for `-m`: 512m, 1g, 1024k, plain bytes. */
export function parseMemory(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i.exec(s.trim());
  if (!m)
    throw new StrataError(
      "INVALID_ARGUMENT",
      `invalid argument "${s}" for "-m, --memory" flag: invalid size: '${s}'`,
    );
  const mult: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Math.floor(Number(m[1]) * mult[m[2]!.toLowerCase()]!);
}

/** `--restart`: Docker's parse (runconfig/opts) and validation (daemon validateRestartPolicy). */
export function parseRestartPolicy(s: string): { Name: string; MaximumRetryCount: number } {
  const parts = s.split(":");
  if (parts.length > 2) throw new StrataError("INVALID_ARGUMENT", "invalid restart policy format");
  let max = 0;
  if (parts.length === 2) {
    if (!/^[+-]?\d+$/.test(parts[1]!))
      throw new StrataError("INVALID_ARGUMENT", "maximum retry count must be an integer");
    max = Number(parts[1]);
  }
  const name = parts[0] || "no";
  if (["always", "unless-stopped", "no"].includes(name)) {
    if (max !== 0)
      throw new StrataError(
        "INVALID_ARGUMENT",
        `maximum retry count cannot be used with restart policy '${name}'`,
      );
  } else if (name === "on-failure") {
    if (max < 0) throw new StrataError("INVALID_ARGUMENT", "maximum retry count cannot be negative");
  } else throw new StrataError("INVALID_ARGUMENT", `invalid restart policy '${name}'`);
  return { Name: name, MaximumRetryCount: max };
}

/** `-p [ip:][hostPort:]containerPort[/proto]` (host port ranges need as many container ports). */
export function parsePublish(
  spec: string,
): { hostIp: string; hostPort: string; containerPort: number; proto: "tcp" | "udp" }[] {
  let rest = spec;
  let proto: "tcp" | "udp" = "tcp";
  const slash = rest.lastIndexOf("/");
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== "tcp" && p !== "udp") throw new StrataError("INVALID_ARGUMENT", `invalid proto: ${p}`);
    proto = p;
    rest = rest.slice(0, slash);
  }
  const parts = rest.split(":");
  let hostIp = "0.0.0.0";
  let hostPort = "";
  let ctr: string;
  if (parts.length === 1) ctr = parts[0]!;
  else if (parts.length === 2) [hostPort, ctr] = parts as [string, string];
  else if (parts.length === 3) {
    hostIp = parts[0] || "0.0.0.0";
    hostPort = parts[1]!;
    ctr = parts[2]!;
  } else throw new StrataError("INVALID_ARGUMENT", `Invalid ip address: ${parts.slice(0, -2).join(":")}`);
  const range = (s: string): [number, number] => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(s);
    if (!m) throw new StrataError("INVALID_ARGUMENT", `Invalid containerPort: ${s}`);
    const a = Number(m[1]);
    const b = m[2] ? Number(m[2]) : a;
    if (a < 1 || b > 65535 || b < a) throw new StrataError("INVALID_ARGUMENT", `Invalid port: ${s}`);
    return [a, b];
  };
  const [c0, c1] = range(ctr);
  const hostRange = hostPort ? range(hostPort) : undefined;
  if (hostRange && hostRange[1] - hostRange[0] !== c1 - c0)
    throw new StrataError(
      "INVALID_ARGUMENT",
      `Invalid ranges specified for container and host Ports: ${ctr} and ${hostPort}`,
    );
  const out = [];
  for (let p = c0; p <= c1; p++)
    out.push({ hostIp, hostPort: hostRange ? String(hostRange[0] + (p - c0)) : "", containerPort: p, proto });
  return out;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** `--env-file`: KEY=VALUE lines; a bare KEY takes the host's value; # comments. */
async function readEnvFile(file: string): Promise<string[]> {
  const text = await fsp.readFile(file, "utf8").catch(() => {
    throw new StrataError("INVALID_ARGUMENT", `open ${file}: no such file or directory`);
  });
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^\s+/, "");
    if (!line || line.startsWith("#")) continue;
    if (line.includes("=")) out.push(line);
    else if (process.env[line] !== undefined) out.push(`${line}=${process.env[line]}`);
  }
  return out;
}

function mergeEnv(base: string[], extra: string[]): string[] {
  const out = [...base];
  for (const e of extra) {
    const i = e.indexOf("=");
    const k = i < 0 ? e : e.slice(0, i);
    const val = i < 0 ? (process.env[k] !== undefined ? `${k}=${process.env[k]}` : undefined) : e;
    if (val === undefined) continue;
    const at = out.findIndex((x) => x === k || x.startsWith(`${k}=`));
    if (at >= 0) out[at] = val;
    else out.push(val);
  }
  return out;
}

function emptyState(): ContainerState {
  return {
    Status: "created",
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: "",
    StartedAt: ZERO_TIME,
    FinishedAt: ZERO_TIME,
  };
}

/**
 * The container service: what `run`, `ps`, `stop`, `commit`… mean, for the CLI and the
 * Engine API alike. State lives on disk (the record and the supervisor's state file), so
 * every process sees the same containers; a container whose supervisor died is reconciled
 * to exited (its process killed, its mounts released) by the next reader.
 */
export class ContainerService {
  readonly dir: string;
  readonly volumesDir: string;
  readonly snapshots: Snapshotter;
  private readonly lockTarget: string;
  private runtimePath: string | undefined | null = null;

  constructor(
    readonly store: Store,
    readonly images: ImageService,
  ) {
    this.dir = path.join(store.root, "containers");
    this.volumesDir = path.join(store.root, "volumes");
    this.lockTarget = path.join(this.dir, "lock");
    this.snapshots = new Snapshotter(store.root);
    // GC roots: images and layers that containers use (store/ asks, engine/ answers).
    store.extraRoots = () => this.gcRoots();
    images.containerUsage = () => this.imageUsage();
  }

  private get runtime(): string | undefined {
    if (this.runtimePath === null) this.runtimePath = findRuntime();
    return this.runtimePath;
  }

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    await fsp.mkdir(this.dir, { recursive: true });
    const fh = await fsp.open(this.lockTarget, "a");
    await fh.close();
    return withFileLock(this.lockTarget, fn);
  }

  private containerDir(id: string): string {
    return path.join(this.dir, id);
  }

  private async readRecord(id: string): Promise<ContainerRecord | undefined> {
    try {
      const rec = JSON.parse(
        await fsp.readFile(path.join(this.containerDir(id), "config.v2.json"), "utf8"),
      ) as ContainerRecord;
      if (rec.version !== CONTAINER_RECORD_VERSION)
        throw new StrataError(
          "STORE_CORRUPT",
          `container ${id}: record version ${rec.version} is not supported`,
        );
      return rec;
    } catch (e) {
      if (isErrno(e, "ENOENT")) return undefined;
      if (e instanceof SyntaxError) return undefined;
      throw e;
    }
  }

  private async writeRecord(rec: ContainerRecord): Promise<void> {
    await atomicWriteFile(path.join(this.containerDir(rec.id), "config.v2.json"), JSON.stringify(rec));
  }

  /** The state from the supervisor's file, reconciled when the supervisor is gone. */
  private async loadState(rec: ContainerRecord, reconcile = true): Promise<ContainerState> {
    return (await this.loadStateAndCount(rec, reconcile)).state;
  }

  private async loadStateAndCount(
    rec: ContainerRecord,
    reconcile = true,
  ): Promise<{ state: ContainerState; restartCount: number }> {
    let s: SupervisorState | undefined;
    try {
      s = JSON.parse(await fsp.readFile(path.join(this.containerDir(rec.id), SUPERVISOR_STATE), "utf8"));
    } catch {
      s = undefined;
    }
    return { state: await this.stateOf(rec, s, reconcile), restartCount: s?.restartCount ?? 0 };
  }

  private async stateOf(
    rec: ContainerRecord,
    file: SupervisorState | undefined,
    reconcile: boolean,
  ): Promise<ContainerState> {
    const st = emptyState();
    let s = file;
    if (!s) return st;
    st.StartedAt = s.startedAt;
    if (s.status === "running" || s.status === "restarting") {
      const live = processStartTime(s.supervisorPid) === s.supervisorStart;
      // Restarting (the policy's back-off between two runs): Docker counts it as running.
      if (live && s.status === "restarting")
        return {
          ...st,
          Status: "restarting",
          Running: true,
          Restarting: true,
          ExitCode: s.exitCode ?? 0,
          FinishedAt: s.finishedAt ?? ZERO_TIME,
        };
      if (live || !reconcile) return { ...st, Status: "running", Running: true, Pid: s.pid };
      s = await this.reconcile(rec, s);
    }
    return {
      ...st,
      Status: "exited",
      ExitCode: s.exitCode ?? 0,
      Error: s.error ?? "",
      FinishedAt: s.finishedAt ?? ZERO_TIME,
      OOMKilled: false,
    };
  }

  /**
   * The supervisor died without recording an exit (kill -9, a reboot): kill what is left
   * of the container as containerd does when a shim dies, release its mounts and network,
   * and record it as exited (137, killed).
   */
  private async reconcile(rec: ContainerRecord, s: SupervisorState): Promise<SupervisorState> {
    if (this.runtime) runtimeDelete(this.runtime, rec.id);
    if (rec.hostConfig.NetworkMode === "bridge" || rec.hostConfig.NetworkMode === "default")
      spawnSync("ip", ["netns", "delete", netnsName(rec.id)], { stdio: "ignore" });
    await this.snapshots.unmountNamed(rec.snapshotKey).catch(() => {});
    const done: SupervisorState = {
      ...s,
      status: "exited",
      pid: 0,
      exitCode: 137,
      error: "container supervisor exited unexpectedly",
      finishedAt: new Date().toISOString(),
    };
    const file = path.join(this.containerDir(rec.id), SUPERVISOR_STATE);
    await atomicWriteFile(file, JSON.stringify(done), { sync: false });
    if (rec.hostConfig.AutoRemove) await this.removeFiles(rec);
    return done;
  }

  async ids(): Promise<string[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n));
  }

  /** Every container, newest first. */
  async list(opts: { reconcile?: boolean } = {}): Promise<Container[]> {
    const out: Container[] = [];
    for (const id of await this.ids()) {
      const record = await this.readRecord(id);
      if (!record) continue;
      const { state, restartCount } = await this.loadStateAndCount(record, opts.reconcile ?? true);
      if (record.hostConfig.AutoRemove && state.Status === "exited" && !(await exists(this.containerDir(id))))
        continue;
      out.push({ record, state, restartCount, dir: this.containerDir(id) });
    }
    return out.sort((a, b) =>
      a.record.created < b.record.created ? 1 : a.record.created > b.record.created ? -1 : 0,
    );
  }

  /** Docker's lookup: full ID, exact name, then a unique ID prefix. */
  async get(ref: string): Promise<Container> {
    const name = ref.replace(/^\//, "");
    const ids = await this.ids();
    let id: string | undefined = ids.find((i) => i === ref);
    if (!id) {
      for (const i of ids) {
        const r = await this.readRecord(i);
        if (r?.name === name) {
          id = i;
          break;
        }
      }
    }
    if (!id && /^[a-f0-9]+$/.test(ref)) {
      const hits = ids.filter((i) => i.startsWith(ref));
      if (hits.length > 1)
        throw new StrataError("AMBIGUOUS_ID", `Multiple IDs found with provided prefix: ${ref}`);
      id = hits[0];
    }
    const record = id ? await this.readRecord(id) : undefined;
    if (!record) throw new StrataError("CONTAINER_NOT_FOUND", `No such container: ${ref}`);
    const { state, restartCount } = await this.loadStateAndCount(record);
    return { record, state, restartCount, dir: this.containerDir(record.id) };
  }

  /** image ID -> containers using it (running or not), for rmi and prune policy. */
  async imageUsage(): Promise<Map<string, { id: string; running: boolean }[]>> {
    const m = new Map<string, { id: string; running: boolean }[]>();
    for (const c of await this.list()) {
      const arr = m.get(c.record.image) ?? [];
      arr.push({ id: c.record.id, running: c.state.Running });
      m.set(c.record.image, arr);
    }
    return m;
  }

  /** Blobs containers keep alive: their image's config and layers. */
  async gcRoots(): Promise<Set<string>> {
    const live = new Set<string>();
    for (const id of await this.ids()) {
      const r = await this.readRecord(id);
      if (!r) continue;
      live.add(r.image);
      for (const d of r.diffIds) live.add(d);
    }
    return live;
  }

  /** `create`: the record, the writable layer and anonymous volumes; nothing runs yet. */
  async create(o: CreateOptions): Promise<{ id: string; warnings: string[] }> {
    const warnings: string[] = [];
    const doc = await this.store.meta.read();
    const imgRec = this.images.resolve(doc, o.image);
    const image = await this.store.image(imgRec.id, doc);
    const cfg = image.config.value;
    const ic = (cfg.config ?? {}) as ContainerConfig;
    const { entrypoint, cmd, argv } = commandOf(ic, { entrypoint: o.entrypoint, args: o.args });
    const restart = parseRestartPolicy(o.restart ?? "no");
    if (o.autoRemove && restart.Name !== "no")
      throw new StrataError("INVALID_ARGUMENT", "Conflicting options: --restart and --rm");
    if (o.init && !(await findInit()))
      throw new StrataError("UNSUPPORTED", "--init needs tini (apt-get install tini): no init binary found");
    const network = o.network ?? "bridge";
    if (!["bridge", "host", "none", "default"].includes(network))
      throw new StrataError("INVALID_ARGUMENT", `network ${network} not found`);
    const netMode = network === "default" ? "bridge" : network;
    const id = randomBytes(32).toString("hex");
    const env = mergeEnv(
      mergeEnv(
        ic.Env ?? [`PATH=${DEFAULT_PATH}`],
        (await Promise.all((o.envFiles ?? []).map(readEnvFile))).flat(),
      ),
      o.env ?? [],
    );
    const labels: Record<string, string> = { ...((ic.Labels ?? {}) as Record<string, string>) };
    for (const l of o.labels ?? []) {
      const i = l.indexOf("=");
      labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? "" : l.slice(i + 1);
    }
    // Ports: -p, and -P for every exposed port.
    const exposed: Record<string, object> = { ...((ic.ExposedPorts ?? {}) as Record<string, object>) };
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    const ports: PortBinding[] = [];
    const wanted = (o.publish ?? []).flatMap(parsePublish);
    if (o.publishAll)
      for (const k of Object.keys(exposed)) {
        const [p, proto] = k.split("/") as [string, string | undefined];
        wanted.push({
          hostIp: "0.0.0.0",
          hostPort: "",
          containerPort: Number(p),
          proto: proto === "udp" ? "udp" : "tcp",
        });
      }
    if (wanted.length && netMode !== "bridge") {
      if (netMode === "host")
        warnings.push("WARNING: Published ports are discarded when using host network mode");
      wanted.length = 0;
    }
    for (const w of wanted) {
      const key = `${w.containerPort}/${w.proto}`;
      exposed[key] = {};
      const hostPort = w.hostPort ? Number(w.hostPort) : await freePort(w.hostIp);
      (bindings[key] ??= []).push({ HostIp: w.hostIp === "0.0.0.0" ? "" : w.hostIp, HostPort: w.hostPort });
      ports.push({ hostIp: w.hostIp, hostPort, containerPort: w.containerPort, proto: w.proto });
    }
    let memory = 0;
    let nanoCpus = 0;
    if (o.memory) memory = parseMemory(o.memory);
    if (o.cpus) {
      const c = Number(o.cpus);
      if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(o.cpus.trim()) || !Number.isFinite(c))
        throw new StrataError(
          "INVALID_ARGUMENT",
          `invalid argument "${o.cpus}" for "--cpus" flag: failed to parse ${o.cpus} as a rational number`,
        );
      nanoCpus = Math.round(c * 1e9);
    }
    // Docker's checks and messages (daemon verifyPlatformContainerResources).
    const cg = cgroupSupport();
    if (memory > 0 && memory < 6 * 1024 * 1024)
      throw new StrataError("INVALID_ARGUMENT", "Minimum memory limit allowed is 6MB");
    if (memory > 0 && !cg.memory) {
      warnings.push(
        "WARNING: Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.",
      );
      memory = 0;
    }
    if (nanoCpus !== 0) {
      if (!cg.cpu)
        throw new StrataError(
          "INVALID_ARGUMENT",
          "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted",
        );
      const n = os.cpus().length;
      if (nanoCpus < 0 || nanoCpus > n * 1e9)
        throw new StrataError(
          "INVALID_ARGUMENT",
          `Range of CPUs is from 0.01 to ${n}.00, as there are only ${n} CPUs available`,
        );
    }
    const logConfig: Record<string, string> = {};
    for (const kv of o.logOpts ?? []) {
      const i = kv.indexOf("=");
      if (i <= 0) throw new StrataError("INVALID_ARGUMENT", `invalid log opt format: ${kv}`);
      const k = kv.slice(0, i);
      if (!["max-size", "max-file"].includes(k))
        throw new StrataError("INVALID_ARGUMENT", `unknown log opt '${k}' for json-file log driver`);
      logConfig[k] = kv.slice(i + 1);
    }
    const tmpfs: Record<string, string> = {};
    for (const t of o.tmpfs ?? []) {
      const i = t.indexOf(":");
      tmpfs[i < 0 ? t : t.slice(0, i)] = i < 0 ? "" : t.slice(i + 1);
    }
    const hostname = o.hostname ?? (netMode === "host" ? os.hostname() : id.slice(0, 12));
    const dir = this.containerDir(id);
    const snapshotKey = `ctr-${id.slice(0, 32)}`;
    const lowers = await this.snapshots.ensureChain(
      image.layers.map((l) => ({ diffId: l.diffId, open: l.open as never })),
    );
    const mounts: MountPoint[] = [];
    const record: ContainerRecord = {
      version: CONTAINER_RECORD_VERSION,
      id,
      name: "",
      created: new Date().toISOString(),
      path: argv[0]!,
      args: argv.slice(1),
      image: imgRec.id,
      imageName: o.image,
      diffIds: diffIdsOf(cfg),
      config: {
        Hostname: hostname,
        Domainname: "",
        User: o.user ?? ic.User ?? "",
        AttachStdin: !!o.interactive,
        AttachStdout: true,
        AttachStderr: true,
        ...(Object.keys(exposed).length ? { ExposedPorts: exposed } : {}),
        Tty: !!o.tty,
        OpenStdin: !!o.interactive,
        StdinOnce: !!o.interactive,
        Env: env,
        Cmd: cmd,
        Image: o.image,
        Volumes: ic.Volumes && Object.keys(ic.Volumes).length ? (ic.Volumes as Record<string, object>) : null,
        WorkingDir: o.workdir ?? ic.WorkingDir ?? "",
        Entrypoint: entrypoint,
        OnBuild: null,
        Labels: labels,
        ...(o.stopSignal || ic.StopSignal ? { StopSignal: o.stopSignal ?? ic.StopSignal } : {}),
        ...(o.stopTimeout !== undefined ? { StopTimeout: o.stopTimeout } : {}),
      },
      hostConfig: {
        NetworkMode: netMode === "bridge" ? "default" : netMode,
        PortBindings: bindings,
        PublishAllPorts: !!o.publishAll,
        AutoRemove: !!o.autoRemove,
        Binds: o.volumes?.length ? o.volumes : null,
        ReadonlyRootfs: !!o.readOnly,
        ...(Object.keys(tmpfs).length ? { Tmpfs: tmpfs } : {}),
        Init: !!o.init,
        RestartPolicy: restart,
        Memory: memory,
        NanoCpus: nanoCpus,
        LogConfig: { Type: "json-file", Config: logConfig },
      },
      mounts,
      ports,
      snapshotKey,
      initPaths: [],
      restartCount: 0,
    };
    if (o.stopSignal) parseSignal(o.stopSignal);
    await this.locked(async () => {
      const taken = new Set<string>();
      for (const i of await this.ids()) {
        const r = await this.readRecord(i);
        if (r) taken.add(r.name);
      }
      let name = o.name;
      if (name !== undefined) {
        name = name.replace(/^\//, "");
        if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name))
          throw new StrataError(
            "INVALID_ARGUMENT",
            `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
          );
        if (taken.has(name)) {
          const other = (await this.get(name)).record.id;
          throw new StrataError(
            "CONTAINER_CONFLICT",
            `Conflict. The container name "/${name}" is already in use by container "${other}". You have to remove (or rename) that container to be able to reuse that name.`,
          );
        }
      } else {
        do name = randomName();
        while (taken.has(name));
      }
      record.name = name;
      await fsp.mkdir(dir, { recursive: true });
      try {
        await this.snapshots.prepareNamed(snapshotKey, lowers);
        mounts.push(...(await this.prepareVolumes(record, o.volumes ?? [], lowers)));
        await this.writeRecord(record);
      } catch (e) {
        await fsp.rm(dir, { recursive: true, force: true });
        await this.snapshots.removeNamed(snapshotKey).catch(() => {});
        throw e;
      }
    });
    return { id, warnings };
  }

  /** Bind mounts, named volumes (created on first use) and anonymous volumes for the image's VOLUMEs. */
  private async prepareVolumes(
    rec: ContainerRecord,
    specs: string[],
    lowers: string[],
  ): Promise<MountPoint[]> {
    const out: MountPoint[] = [];
    for (const spec of specs) {
      const parts = spec.split(":");
      let src: string | undefined;
      let dest: string;
      let mode = "";
      if (parts.length === 1) dest = parts[0]!;
      else if (parts.length === 2 && parts[1]!.startsWith("/")) [src, dest] = parts as [string, string];
      else if (parts.length === 2) [dest, mode] = parts as [string, string];
      else [src, dest, mode] = parts as [string, string, string];
      if (!dest.startsWith("/"))
        throw new StrataError(
          "INVALID_ARGUMENT",
          `invalid mount config: mount path must be absolute: ${dest}`,
        );
      if (mode && !/^(ro|rw|z|Z)(,(ro|rw|z|Z))*$/.test(mode))
        throw new StrataError("INVALID_ARGUMENT", `invalid mode: ${mode}`);
      const rw = !mode.split(",").includes("ro");
      if (src && (src.startsWith("/") || src.startsWith("."))) {
        const abs = path.resolve(src);
        await fsp.mkdir(abs, { recursive: true });
        out.push({ Type: "bind", Source: abs, Destination: dest, Mode: mode, RW: rw });
      } else {
        const name = src ?? randomBytes(32).toString("hex");
        if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name))
          throw new StrataError("INVALID_ARGUMENT", `invalid volume name ${JSON.stringify(name)}`);
        const data = await this.ensureVolume(name, !src);
        await this.seedVolume(data, lowers, dest);
        out.push({ Type: "volume", Name: name, Source: data, Destination: dest, Mode: mode || "z", RW: rw });
      }
    }
    for (const dest of Object.keys(rec.config.Volumes ?? {})) {
      if (out.some((m) => m.Destination === dest)) continue;
      const name = randomBytes(32).toString("hex");
      const data = await this.ensureVolume(name, true);
      await this.seedVolume(data, lowers, dest);
      out.push({ Type: "volume", Name: name, Source: data, Destination: dest, Mode: "", RW: true });
    }
    return out;
  }

  private async ensureVolume(name: string, anonymous: boolean): Promise<string> {
    const base = path.join(this.volumesDir, name);
    const data = path.join(base, "_data");
    if (!(await exists(data))) {
      await fsp.mkdir(data, { recursive: true });
      await atomicWriteFile(
        path.join(base, "volume.json"),
        JSON.stringify({ name, created: new Date().toISOString(), anonymous, labels: {} }),
        { sync: false },
      );
    }
    return data;
  }

  /** A new, empty volume gets the image's content at its mount point, as Docker copies it. */
  private async seedVolume(data: string, lowers: string[], dest: string): Promise<void> {
    if ((await fsp.readdir(data)).length) return;
    for (const l of lowers) {
      const src = path.join(l, dest);
      if (await exists(src)) {
        spawnSync("cp", ["-a", `${src}/.`, data], { stdio: "ignore" });
        return;
      }
    }
  }

  /**
   * `start`: mount the writable layer, write the bundle and hand the container to a new
   * supervisor. With `attach`, the supervisor's stdio are the caller's (foreground run).
   */
  async start(
    ref: string,
    opts: {
      attach?: boolean;
      /** A supervisor process started ahead in standby (`supervisor.js --standby`) to use. */
      standby?: ChildProcess;
    } = {},
  ): Promise<{ id: string; supervisor?: StartedSupervisor }> {
    const c = await this.get(ref);
    if (c.state.Running) return { id: c.record.id };
    const rec = c.record;
    const runtime = this.runtime;
    if (!runtime)
      throw new StrataError(
        "UNSUPPORTED",
        "no OCI runtime found: containers need runc (apt-get install runc)",
      );
    if (process.getuid?.() !== 0)
      throw new StrataError("UNSUPPORTED", "containers need root (overlayfs mounts and namespaces)");
    // An --rm container's writable layer is deleted at exit: nothing to sync at unmount.
    const rootfs = await this.snapshots.mountNamed(rec.snapshotKey, { volatile: rec.hostConfig.AutoRemove });
    try {
      const spec = await this.bundleSpec(rec, rootfs, c.dir);
      await fsp.mkdir(path.join(c.dir, "bundle"), { recursive: true });
      await fsp.writeFile(path.join(c.dir, "bundle", "config.json"), JSON.stringify(spec));
      await fsp.rm(path.join(c.dir, SUPERVISOR_STATE), { force: true });
      await fsp.rm(path.join(c.dir, STOP_REQUESTED), { force: true });
      await fsp.mkdir(CONTAINER_RUNTIME_ROOT, { recursive: true });
      // A stale runtime entry (a crash between start and cleanup) would refuse the same ID.
      if (await exists(path.join(CONTAINER_RUNTIME_ROOT, rec.id))) runtimeDelete(runtime, rec.id);
      const lc = rec.hostConfig.LogConfig.Config;
      const cfg: SupervisorConfig = {
        id: rec.id,
        runtime,
        runtimeRoot: CONTAINER_RUNTIME_ROOT,
        bundle: path.join(c.dir, "bundle"),
        logPath: path.join(c.dir, `${rec.id}-json.log`),
        logMaxSize: lc["max-size"] ? parseMemory(lc["max-size"]) : 0,
        logMaxFile: lc["max-file"] ? Number(lc["max-file"]) : 1,
        tty: rec.config.Tty,
        openStdin: rec.config.OpenStdin,
        network: {
          mode:
            rec.hostConfig.NetworkMode === "default"
              ? "bridge"
              : (rec.hostConfig.NetworkMode as "host" | "none"),
          ...(rec.hostConfig.NetworkMode === "default" ? { netns: netnsName(rec.id) } : {}),
          ports: rec.ports,
        },
        unmount: rootfs,
        autoRemove: rec.hostConfig.AutoRemove,
        restart: {
          name: rec.hostConfig.RestartPolicy.Name,
          maxRetries: rec.hostConfig.RestartPolicy.MaximumRetryCount,
        },
        removeDirs: [c.dir, this.snapshots.named(rec.snapshotKey).base, ...this.anonymousVolumeDirs(rec)],
      };
      const sup = await startSupervisor(c.dir, cfg, { attach: !!opts.attach, standby: opts.standby });
      return { id: rec.id, supervisor: sup };
    } catch (e) {
      if (!(await exists(path.join(c.dir, SUPERVISOR_STATE)))) {
        await this.snapshots.unmountNamed(rec.snapshotKey).catch(() => {});
        if (rec.hostConfig.AutoRemove) await this.removeFiles(rec);
      }
      throw e;
    }
  }

  private anonymousVolumeDirs(rec: ContainerRecord): string[] {
    return rec.mounts
      .filter((m) => m.Type === "volume" && m.Name && /^[a-f0-9]{64}$/.test(m.Name))
      .map((m) => path.join(this.volumesDir, m.Name!));
  }

  private async bundleSpec(
    rec: ContainerRecord,
    rootfs: string,
    dir: string,
  ): Promise<Record<string, unknown>> {
    const user = await resolveUser(rootfs, rec.config.User);
    const env = mergeEnv(rec.config.Env, [`HOSTNAME=${rec.config.Hostname}`]);
    if (!env.some((e) => e.startsWith("PATH="))) env.unshift(`PATH=${DEFAULT_PATH}`);
    if (rec.config.Tty && !env.some((e) => e.startsWith("TERM="))) env.push("TERM=xterm");
    if (!env.some((e) => e.startsWith("HOME="))) env.push(`HOME=${user.home}`);
    const cwd = rec.config.WorkingDir || "/";
    if (rec.config.WorkingDir) {
      const wd = resolveInRoot(rootfs, rec.config.WorkingDir);
      await fsp.mkdir(wd, { recursive: true });
    }
    const net = rec.hostConfig.NetworkMode;
    const hosts = path.join(dir, "hosts");
    const resolv = path.join(dir, "resolv.conf");
    const hostnameFile = path.join(dir, "hostname");
    const ip = net === "default" ? "10.0.2.100" : undefined;
    await fsp.writeFile(
      hosts,
      net === "host"
        ? await fsp.readFile("/etc/hosts", "utf8").catch(() => "127.0.0.1\tlocalhost\n")
        : `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n${ip ? `${ip}\t${rec.config.Hostname}\n` : ""}`,
    );
    const hostResolv = await fsp.readFile("/etc/resolv.conf", "utf8").catch(() => "");
    await fsp.writeFile(
      resolv,
      net === "default"
        ? `nameserver 10.0.2.3\n${hostResolv
            .split("\n")
            .filter((l) => /^(search|options)\s/.test(l))
            .join("\n")}\n`
        : hostResolv,
    );
    await fsp.writeFile(hostnameFile, `${rec.config.Hostname}\n`);
    const mounts: MountSpec[] = [
      { destination: "/etc/resolv.conf", type: "bind", source: resolv, options: ["rbind", "rprivate"] },
      { destination: "/etc/hostname", type: "bind", source: hostnameFile, options: ["rbind", "rprivate"] },
      { destination: "/etc/hosts", type: "bind", source: hosts, options: ["rbind", "rprivate"] },
    ];
    for (const m of rec.mounts)
      mounts.push({
        destination: m.Destination,
        type: "bind",
        source: m.Source,
        options: ["rbind", m.RW ? "rw" : "ro", "rprivate"],
      });
    for (const [dest, opts] of Object.entries(rec.hostConfig.Tmpfs ?? {}))
      mounts.push({
        destination: dest,
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "nodev", "noexec", ...(opts ? opts.split(",") : [])],
      });
    // Mount points the runtime will create in the writable layer stay out of diff and commit.
    const initPaths = new Set(rec.initPaths);
    for (const p of ["/proc", "/dev", "/sys", ...mounts.map((m) => m.destination)]) {
      const parts = path.posix.normalize(p).split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        const sub = parts.slice(0, i).join("/");
        if (!(await exists(path.join(rootfs, sub)))) {
          initPaths.add(sub);
          break;
        }
      }
    }
    if (initPaths.size !== rec.initPaths.length) {
      rec.initPaths = [...initPaths].sort();
      await this.writeRecord(rec);
    }
    let args = [rec.path, ...rec.args];
    if (rec.hostConfig.Init) {
      const init = (await findInit())!;
      mounts.push({ destination: "/sbin/docker-init", type: "bind", source: init, options: ["rbind", "ro"] });
      args = ["/sbin/docker-init", "--", ...args];
    }
    const spec = generateSpec({
      process: {
        args,
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        additionalGids: user.additionalGids,
        terminal: rec.config.Tty,
      },
      rootPath: rootfs,
      rootReadonly: rec.hostConfig.ReadonlyRootfs,
      hostname: rec.config.Hostname,
      network: net === "host" ? "host" : "none",
      mounts,
    }) as Record<string, unknown> & {
      linux: {
        namespaces: { type: string; path?: string }[];
        resources: Record<string, unknown>;
        cgroupsPath?: string;
      };
    };
    if (net === "default") {
      const ns = spec.linux.namespaces.find((n) => n.type === "network");
      if (ns) ns.path = `/var/run/netns/${netnsName(rec.id)}`;
    }
    spec.linux.cgroupsPath = `/strata/${rec.id}`;
    const { Memory, NanoCpus } = rec.hostConfig;
    if (Memory) spec.linux.resources.memory = { limit: Memory };
    if (NanoCpus) spec.linux.resources.cpu = { quota: Math.round(NanoCpus / 1e4), period: 100000 };
    return spec;
  }

  /**
   * `stop`: the stop signal, then SIGKILL after the timeout (the container's StopTimeout,
   * else 10 s, as Docker). Resolves when the container has exited and was cleaned up.
   */
  async stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<string> {
    const c = await this.get(ref);
    if (!c.state.Running) return c.record.id;
    const sig = parseSignal(opts.signal ?? c.record.config.StopSignal ?? "TERM");
    const timeout = opts.timeout ?? c.record.config.StopTimeout ?? 10;
    await this.requestStop(c);
    runtimeKill(this.runtime, c.record.id, sig);
    if (timeout < 0) {
      await this.waitExit(c.record.id);
      return c.record.id;
    }
    if (!(await this.waitExit(c.record.id, timeout * 1000))) {
      runtimeKill(this.runtime, c.record.id, "KILL", true);
      await this.waitExit(c.record.id);
    }
    return c.record.id;
  }

  /** `kill -s`: deliver a signal to the container's process. */
  async kill(ref: string, signal = "KILL"): Promise<string> {
    const c = await this.get(ref);
    const sig = parseSignal(signal);
    if (!c.state.Running)
      throw new StrataError(
        "CONTAINER_NOT_RUNNING",
        `Cannot kill container: ${ref}: Container ${c.record.id} is not running`,
      );
    // As Docker's kill: the restart policy does not apply to the exit that follows.
    await this.requestStop(c);
    runtimeKill(this.runtime, c.record.id, sig);
    if (sig === "KILL") await this.waitExit(c.record.id, 10_000);
    return c.record.id;
  }

  /** Tell the supervisor that the coming exit is wanted: no restart by the policy after it. */
  private async requestStop(c: Container): Promise<void> {
    await fsp.writeFile(path.join(c.dir, STOP_REQUESTED), "").catch(() => {});
  }

  /** Wait until the container has exited (state recorded); false on timeout. */
  private async waitExit(id: string, timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rec = await this.readRecord(id);
      if (!rec) return true;
      const st = await this.loadState(rec);
      if (!st.Running) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** `wait`: block until the container stops, then return its exit code. */
  async wait(ref: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    const c = await this.get(ref);
    for (;;) {
      if (opts.signal?.aborted) throw new StrataError("IO_ERROR", "wait aborted");
      const rec = await this.readRecord(c.record.id);
      if (!rec) return c.state.ExitCode;
      const st = await this.loadState(rec);
      if (!st.Running && st.Status !== "created") return st.ExitCode;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async restart(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<string> {
    await this.stop(ref, opts);
    const r = await this.start(ref);
    return r.id;
  }

  /** `rm`: refuses a running container unless forced; `-v` also removes its anonymous volumes. */
  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<string> {
    const c = await this.get(ref);
    if (c.state.Running) {
      if (!opts.force)
        throw new StrataError(
          "CONTAINER_CONFLICT",
          `You cannot remove a running container ${c.record.id}. Stop the container before attempting removal or force remove`,
        );
      await this.requestStop(c);
      runtimeKill(this.runtime, c.record.id, "KILL", true);
      if (!(await this.waitExit(c.record.id, 15_000))) {
        // The supervisor did not finish: clean up behind it.
        runtimeDelete(this.runtime, c.record.id);
      }
    }
    await this.locked(async () => {
      await this.removeFiles(c.record);
      if (opts.volumes)
        for (const d of this.anonymousVolumeDirs(c.record)) await fsp.rm(d, { recursive: true, force: true });
    });
    return c.record.id;
  }

  private async removeFiles(rec: ContainerRecord): Promise<void> {
    await this.snapshots.removeNamed(rec.snapshotKey);
    if (this.runtime && (await exists(path.join(CONTAINER_RUNTIME_ROOT, rec.id))))
      runtimeDelete(this.runtime, rec.id);
    await fsp.rm(this.containerDir(rec.id), { recursive: true, force: true });
  }

  /** `rename OLD NEW`. */
  async rename(ref: string, newName: string): Promise<void> {
    const name = newName.replace(/^\//, "");
    await this.get(ref); // Docker looks the container up first: an unknown one is the error
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name))
      throw new StrataError(
        "INVALID_ARGUMENT",
        `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
      );
    await this.locked(async () => {
      const c = await this.get(ref);
      if (c.record.name === name)
        throw new StrataError(
          "CONTAINER_CONFLICT",
          "Renaming a container with the same name as its current name",
        );
      for (const i of await this.ids()) {
        const r = await this.readRecord(i);
        if (r?.name === name)
          throw new StrataError(
            "CONTAINER_CONFLICT",
            `Conflict. The container name "/${name}" is already in use by container "${r.id}". You have to remove (or rename) that container to be able to reuse that name.`,
          );
      }
      c.record.name = name;
      await this.writeRecord(c.record);
    });
  }

  /** Log entries (json-file) in order, oldest file first. */
  async readLogs(
    ref: string,
    opts: { tail?: number; since?: number; until?: number } = {},
  ): Promise<{ entries: LogEntry[]; container: Container; offset: number }> {
    const c = await this.get(ref);
    const file = path.join(c.dir, `${c.record.id}-json.log`);
    const files: string[] = [];
    for (let n = 9; n >= 1; n--) if (await exists(`${file}.${n}`)) files.push(`${file}.${n}`);
    files.push(file);
    let entries: LogEntry[] = [];
    let offset = 0;
    for (const f of files) {
      const buf = await fsp.readFile(f).catch(() => Buffer.alloc(0));
      if (f === file) offset = buf.length;
      entries.push(...parseLogLines(buf.toString("utf8")));
    }
    if (opts.since !== undefined) entries = entries.filter((e) => Date.parse(e.time) >= opts.since!);
    if (opts.until !== undefined) entries = entries.filter((e) => Date.parse(e.time) <= opts.until!);
    if (opts.tail !== undefined && opts.tail >= 0)
      entries = entries.slice(Math.max(entries.length - opts.tail, 0));
    return { entries, container: c, offset };
  }

  /** Follow the log from `offset` until the container stops (or `signal` aborts). */
  async *followLogs(c: Container, offset: number, signal?: AbortSignal): AsyncGenerator<LogEntry> {
    const file = path.join(c.dir, `${c.record.id}-json.log`);
    let pos = offset;
    let rest = "";
    for (;;) {
      if (signal?.aborted) return;
      let size = 0;
      try {
        size = (await fsp.stat(file)).size;
      } catch {
        return;
      }
      if (size < pos) pos = 0; // rotated
      if (size > pos) {
        const fh = await fsp.open(file, "r");
        const buf = Buffer.alloc(size - pos);
        await fh.read(buf, 0, buf.length, pos);
        await fh.close();
        pos = size;
        const text = rest + buf.toString("utf8");
        const cut = text.lastIndexOf("\n");
        rest = text.slice(cut + 1);
        yield* parseLogLines(text.slice(0, cut + 1));
        continue;
      }
      const rec = await this.readRecord(c.record.id);
      if (!rec) return;
      const st = await this.loadState(rec);
      if (!st.Running) {
        const final = (await fsp.stat(file).catch(() => undefined))?.size ?? 0;
        if (final <= pos) return;
        continue;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** `inspect` for containers: Docker's ContainerJSON fields. */
  async inspect(ref: string): Promise<Record<string, unknown>> {
    const c = await this.get(ref);
    const r = c.record;
    const snap = this.snapshots.named(r.snapshotKey);
    const lowers = JSON.parse(
      await fsp.readFile(path.join(snap.base, "lowers.json"), "utf8").catch(() => "[]"),
    ) as string[];
    const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
    if (c.state.Running)
      for (const p of r.ports)
        (ports[`${p.containerPort}/${p.proto}`] ??= [])!.push({
          HostIp: p.hostIp,
          HostPort: String(p.hostPort),
        });
    for (const k of Object.keys(r.config.ExposedPorts ?? {})) if (!(k in ports)) ports[k] = null;
    const net = r.hostConfig.NetworkMode;
    return {
      Id: r.id,
      Created: r.created,
      Path: r.path,
      Args: r.args,
      State: c.state,
      Image: r.image,
      ResolvConfPath: path.join(c.dir, "resolv.conf"),
      HostnamePath: path.join(c.dir, "hostname"),
      HostsPath: path.join(c.dir, "hosts"),
      LogPath: path.join(c.dir, `${r.id}-json.log`),
      Name: `/${r.name}`,
      RestartCount: c.restartCount,
      Driver: "overlay2",
      Platform: "linux",
      MountLabel: "",
      ProcessLabel: "",
      AppArmorProfile: "",
      ExecIDs: null,
      HostConfig: {
        Binds: r.hostConfig.Binds,
        ContainerIDFile: "",
        LogConfig: r.hostConfig.LogConfig,
        NetworkMode: net,
        PortBindings: r.hostConfig.PortBindings,
        RestartPolicy: r.hostConfig.RestartPolicy,
        AutoRemove: r.hostConfig.AutoRemove,
        PublishAllPorts: r.hostConfig.PublishAllPorts,
        ReadonlyRootfs: r.hostConfig.ReadonlyRootfs,
        Init: r.hostConfig.Init,
        Memory: r.hostConfig.Memory,
        NanoCpus: r.hostConfig.NanoCpus,
        ...(r.hostConfig.Tmpfs ? { Tmpfs: r.hostConfig.Tmpfs } : {}),
      },
      GraphDriver: {
        Data: {
          LowerDir: lowers.join(":"),
          MergedDir: snap.mountpoint,
          UpperDir: snap.upper,
          WorkDir: path.join(snap.base, "work"),
        },
        Name: "overlay2",
      },
      Mounts: r.mounts.map((m) => ({
        Type: m.Type,
        ...(m.Name ? { Name: m.Name } : {}),
        Source: m.Source,
        Destination: m.Destination,
        ...(m.Type === "volume" ? { Driver: "local" } : {}),
        Mode: m.Mode,
        RW: m.RW,
        Propagation: m.Type === "bind" ? "rprivate" : "",
      })),
      Config: r.config,
      NetworkSettings: {
        Bridge: "",
        SandboxID: "",
        HairpinMode: false,
        Ports: ports,
        SandboxKey: net === "default" && c.state.Running ? `/var/run/netns/${netnsName(r.id)}` : "",
        Gateway: net === "default" && c.state.Running ? "10.0.2.2" : "",
        IPAddress: net === "default" && c.state.Running ? "10.0.2.100" : "",
        IPPrefixLen: net === "default" && c.state.Running ? 24 : 0,
        MacAddress: "",
        Networks: {
          [net === "default" ? "bridge" : net]: {
            NetworkID: "",
            Gateway: net === "default" && c.state.Running ? "10.0.2.2" : "",
            IPAddress: net === "default" && c.state.Running ? "10.0.2.100" : "",
            IPPrefixLen: net === "default" && c.state.Running ? 24 : 0,
          },
        },
      },
    };
  }

  /** `diff`: A/C/D changes of the writable layer, sorted by path as Docker prints them. */
  async diff(ref: string): Promise<{ kind: "A" | "C" | "D"; path: string }[]> {
    const c = await this.get(ref);
    const snap = this.snapshots.named(c.record.snapshotKey);
    const lowers = JSON.parse(await fsp.readFile(path.join(snap.base, "lowers.json"), "utf8")) as string[];
    const skip = new Set(c.record.initPaths.map((p) => `/${p}`));
    const out: { kind: "A" | "C" | "D"; path: string }[] = [];
    const inLowers = async (rel: string) => {
      for (const l of lowers) {
        const st = await fsp.lstat(path.join(l, rel)).catch(() => undefined);
        if (st) return !(st.isCharacterDevice() && st.rdev === 0);
      }
      return false;
    };
    const walk = async (dir: string, rel: string): Promise<void> => {
      const ents = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        const p = path.posix.join(rel, e.name);
        if (skip.has(p)) continue;
        const full = path.join(dir, e.name);
        if (e.isCharacterDevice()) {
          const st = await fsp.lstat(full);
          if (st.rdev === 0) {
            out.push({ kind: "D", path: p });
            continue;
          }
        }
        out.push({ kind: (await inLowers(p)) ? "C" : "A", path: p });
        if (e.isDirectory()) await walk(full, p);
      }
    };
    await walk(snap.upper, "/");
    return out;
  }

  /** Run `fn` with the container's root filesystem mounted (mounting a stopped container's for the call). */
  private async withRootfs<T>(c: Container, fn: (rootfs: string) => Promise<T>): Promise<T> {
    const rootfs = await this.snapshots.mountNamed(c.record.snapshotKey);
    try {
      return await fn(rootfs);
    } finally {
      const rec = await this.readRecord(c.record.id);
      if (rec && !(await this.loadState(rec)).Running)
        await this.snapshots.unmountNamed(c.record.snapshotKey).catch(() => {});
    }
  }

  /** `commit`: the writable layer becomes a new image layer over the container's image. */
  async commit(
    ref: string,
    opts: {
      reference?: string;
      changes?: ContainerConfig;
      message?: string;
      author?: string;
      pause?: boolean;
    } = {},
  ): Promise<Digest> {
    const c = await this.get(ref);
    const rec = c.record;
    const snap = this.snapshots.named(rec.snapshotKey);
    const opaque = await findOpaqueDirs(snap.upper);
    const layer = await this.store.ingestLayer(diffUpper(snap.upper, opaque, rec.initPaths), {
      what: "commit",
    });
    const base = parseImageConfig(await this.store.content.readSmall(rec.image)).value;
    const doc = await this.store.meta.read();
    const layers = [];
    for (const d of rec.diffIds) {
      const lr = doc.layers[d];
      if (!lr) throw new StrataError("BLOB_NOT_FOUND", `layer ${d} of the container's image is gone`);
      layers.push(lr);
    }
    layers.push(layer);
    const now = new Date().toISOString();
    const baseCfg = (base.config ?? {}) as ContainerConfig;
    // Docker's commit: the container's config, with --change applied on top.
    const cc: ContainerConfig = {
      ...baseCfg,
      Env: rec.config.Env,
      Cmd: rec.config.Cmd ?? undefined,
      Entrypoint: rec.config.Entrypoint ?? undefined,
      WorkingDir: rec.config.WorkingDir || undefined,
      User: rec.config.User || undefined,
      Labels: Object.keys(rec.config.Labels).length ? rec.config.Labels : undefined,
      ExposedPorts: rec.config.ExposedPorts,
      ...(opts.changes ?? {}),
    } as ContainerConfig;
    for (const k of Object.keys(cc) as (keyof ContainerConfig)[]) if (cc[k] === undefined) delete cc[k];
    const raw = {
      ...base,
      ...(opts.author ? { author: opts.author } : {}),
      ...(opts.message ? { comment: opts.message } : {}),
      config: cc,
      container: rec.id,
      created: now,
      history: [
        ...(base.history ?? []),
        {
          created: now,
          ...(opts.author ? { author: opts.author } : {}),
          created_by: [rec.path, ...rec.args].join(" "),
          ...(opts.message ? { comment: opts.message } : {}),
        },
      ],
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    };
    if (!opts.message) delete (raw as Record<string, unknown>).comment;
    const config = parseImageConfig(JSON.stringify(raw));
    let tags: string[] = [];
    if (opts.reference) {
      const { parseNormalizedNamed, referenceString } = await import("../reference/index.js");
      const r = parseNormalizedNamed(opts.reference);
      if (r.digest)
        throw new StrataError("INVALID_REFERENCE", "refusing to create a tag with a digest reference");
      tags = [referenceString(r.tag ? r : { ...r, tag: "latest" })];
    }
    const res = await this.store.putImage({ config, layers, tags });
    return res.record.id;
  }

  /** `export`: the container's flattened filesystem as a tar stream (the caller consumes it). */
  async export(ref: string, out: NodeJS.WritableStream): Promise<void> {
    const c = await this.get(ref);
    await this.withRootfs(c, async (rootfs) => {
      const top = (await fsp.readdir(rootfs)).sort();
      const tar = spawn(
        "tar",
        [
          "-c",
          "-f",
          "-",
          "-C",
          rootfs,
          "--numeric-owner",
          "--xattrs",
          "--xattrs-include=*",
          "--sort=name",
          "--",
          ...top,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const err: Buffer[] = [];
      tar.stderr!.on("data", (b: Buffer) => err.push(b));
      const { pipeline } = await import("node:stream/promises");
      const closed = new Promise<number>((resolve) => tar.on("close", (code) => resolve(code ?? 1)));
      await pipeline(tar.stdout! as Readable, out as NodeJS.WritableStream, { end: out !== process.stdout });
      const code = await closed;
      if (code !== 0) throw new StrataError("IO_ERROR", `export: ${Buffer.concat(err).toString().trim()}`);
    });
  }

  /** `cp CONTAINER:SRC DEST` and `cp SRC CONTAINER:DEST`, Docker's rules for directories. */
  async copy(
    from: { container?: string; path: string },
    to: { container?: string; path: string },
  ): Promise<void> {
    if (!!from.container === !!to.container)
      throw new StrataError("INVALID_ARGUMENT", "copying between containers is not supported");
    const ref = (from.container ?? to.container)!;
    const c = await this.get(ref);
    await this.withRootfs(c, async (rootfs) => {
      let src: string;
      let dest: string;
      if (from.container) {
        src = resolveInRoot(rootfs, from.path);
        if (!(await exists(src)))
          throw new StrataError(
            "INVALID_ARGUMENT",
            `Could not find the file ${from.path} in container ${ref}`,
          );
        dest = path.resolve(to.path);
      } else {
        src = path.resolve(from.path);
        if (!(await exists(src)))
          throw new StrataError("INVALID_ARGUMENT", `stat ${from.path}: no such file or directory`);
        dest = resolveInRoot(rootfs, to.path);
      }
      const contentsOnly = /\/\.$/.test(from.path);
      const srcStat = await fsp.stat(src);
      const destStat = await fsp.stat(dest).catch(() => undefined);
      if (!destStat && /\/$/.test(to.path) && !srcStat.isDirectory())
        throw new StrataError("INVALID_ARGUMENT", `no such directory: ${to.path}`);
      if (destStat && !destStat.isDirectory() && srcStat.isDirectory())
        throw new StrataError("INVALID_ARGUMENT", `cannot copy a directory to a file: ${to.path}`);
      let target = dest;
      if (destStat?.isDirectory() && !contentsOnly) target = path.join(dest, path.basename(src));
      const args = srcStat.isDirectory()
        ? destStat?.isDirectory() && contentsOnly
          ? ["-a", `${src}/.`, dest]
          : ["-a", "-T", src, target]
        : ["-a", "-T", src, target];
      if (srcStat.isDirectory() && !(await exists(target)) && !contentsOnly)
        await fsp.mkdir(path.dirname(target), { recursive: true });
      const r = spawnSync("cp", args, { encoding: "utf8" });
      if (r.status !== 0) throw new StrataError("IO_ERROR", `cp: ${r.stderr.trim()}`);
      if (!from.container) spawnSync("chown", ["-R", "-h", "0:0", target], { stdio: "ignore" });
    });
  }

  /** `top`: `ps` run on the host for the container's processes (Docker's default `-ef`). */
  async top(ref: string, psArgs: string[] = []): Promise<{ titles: string[]; processes: string[][] }> {
    const c = await this.get(ref);
    if (!c.state.Running)
      throw new StrataError("CONTAINER_NOT_RUNNING", `Container ${c.record.id} is not running`);
    const pids = runtimePids(this.runtime, c.record.id);
    const r = spawnSync("ps", psArgs.length ? psArgs : ["-ef"], { encoding: "utf8" });
    if (r.status !== 0) throw new StrataError("IO_ERROR", `ps: ${r.stderr.trim()}`);
    const lines = r.stdout.split("\n").filter(Boolean);
    const titles = lines[0]!.trim().split(/\s+/);
    const pidCol = titles.indexOf("PID");
    if (pidCol < 0) throw new StrataError("INVALID_ARGUMENT", `Couldn't find PID field in ps output`);
    const processes: string[][] = [];
    for (const l of lines.slice(1)) {
      const f = l.trim().split(/\s+/);
      if (!pids.includes(Number(f[pidCol]))) continue;
      processes.push([...f.slice(0, titles.length - 1), f.slice(titles.length - 1).join(" ")]);
    }
    return { titles, processes };
  }

  /** `exec`: a new process in the running container (the caller's stdio). */
  async exec(
    ref: string,
    cmd: string[],
    o: {
      env?: string[];
      user?: string;
      workdir?: string;
      tty?: boolean;
      interactive?: boolean;
      detach?: boolean;
      stdin?: NodeJS.ReadableStream;
      stdout: NodeJS.WritableStream;
      stderr: NodeJS.WritableStream;
    },
  ): Promise<{ exitCode: number; error?: string }> {
    const c = await this.get(ref);
    if (!c.state.Running)
      throw new StrataError("CONTAINER_NOT_RUNNING", `Container ${c.record.id} is not running`);
    const rootfs = this.snapshots.named(c.record.snapshotKey).mountpoint;
    const user = await resolveUser(rootfs, o.user ?? c.record.config.User);
    const env = mergeEnv(
      mergeEnv(c.record.config.Env, [`HOSTNAME=${c.record.config.Hostname}`]),
      o.env ?? [],
    );
    if (o.tty && !env.some((e) => e.startsWith("TERM="))) env.push("TERM=xterm");
    const spec = generateSpec({
      process: {
        args: cmd,
        env,
        cwd: o.workdir || c.record.config.WorkingDir || "/",
        uid: user.uid,
        gid: user.gid,
        additionalGids: user.additionalGids,
        // Detached, nothing would hold the terminal: the process gets none.
        terminal: !!o.tty && !o.detach,
      },
      rootPath: rootfs,
    }) as { process: unknown };
    const file = path.join(c.dir, `exec-${randomBytes(6).toString("hex")}.json`);
    await fsp.writeFile(file, JSON.stringify(spec.process));
    try {
      return await runtimeExec({
        runtime: this.runtime,
        id: c.record.id,
        processFile: file,
        tty: !!o.tty && !o.detach,
        stdinIsTTY: !!(o.stdin as { isTTY?: boolean } | undefined)?.isTTY,
        detach: !!o.detach,
        stdin: o.interactive ? o.stdin : undefined,
        stdout: o.stdout,
        stderr: o.stderr,
      });
    } finally {
      await fsp.rm(file, { force: true });
    }
  }

  /** Bytes in the writable layer (`ps -s`, `system df`). */
  async sizeRw(c: Container): Promise<number> {
    return duBytes(this.snapshots.named(c.record.snapshotKey).upper);
  }

  /** `container prune`: every stopped container. */
  async prune(
    opts: { until?: number; labels?: string[] } = {},
  ): Promise<{ ids: string[]; reclaimed: number }> {
    const ids: string[] = [];
    let reclaimed = 0;
    for (const c of await this.list()) {
      if (c.state.Running) continue;
      if (opts.until !== undefined && Date.parse(c.record.created) >= opts.until) continue;
      if (opts.labels && !opts.labels.every((l) => matchLabel(c.record.config.Labels, l))) continue;
      reclaimed += await this.sizeRw(c);
      await this.remove(c.record.id);
      ids.push(c.record.id);
    }
    return { ids, reclaimed };
  }

  // ---- volumes ----

  async volumes(): Promise<
    { name: string; mountpoint: string; created: string; anonymous: boolean; usedBy: string[] }[]
  > {
    const names = await fsp.readdir(this.volumesDir).catch(() => [] as string[]);
    const users = new Map<string, string[]>();
    for (const c of await this.list())
      for (const m of c.record.mounts)
        if (m.Type === "volume" && m.Name) users.set(m.Name, [...(users.get(m.Name) ?? []), c.record.id]);
    const out = [];
    for (const n of names.sort()) {
      const meta = JSON.parse(
        await fsp.readFile(path.join(this.volumesDir, n, "volume.json"), "utf8").catch(() => "{}"),
      ) as { created?: string; anonymous?: boolean };
      out.push({
        name: n,
        mountpoint: path.join(this.volumesDir, n, "_data"),
        created: meta.created ?? ZERO_TIME,
        anonymous: !!meta.anonymous,
        usedBy: users.get(n) ?? [],
      });
    }
    return out;
  }

  async createVolume(name?: string): Promise<string> {
    const n = name ?? randomBytes(32).toString("hex");
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(n))
      throw new StrataError(
        "INVALID_ARGUMENT",
        `create ${n}: "${n}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      );
    await this.ensureVolume(n, !name);
    return n;
  }

  async removeVolume(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const v = (await this.volumes()).find((x) => x.name === name);
    if (!v) {
      if (opts.force) return;
      throw new StrataError("VOLUME_NOT_FOUND", `get ${name}: no such volume`);
    }
    if (v.usedBy.length)
      throw new StrataError("VOLUME_IN_USE", `remove ${name}: volume is in use - [${v.usedBy.join(", ")}]`);
    await fsp.rm(path.join(this.volumesDir, name), { recursive: true, force: true });
  }

  /** `volume prune`: unused anonymous volumes, or with `all` every unused volume (Docker 23+). */
  async pruneVolumes(opts: { all?: boolean } = {}): Promise<{ names: string[]; reclaimed: number }> {
    const names: string[] = [];
    let reclaimed = 0;
    for (const v of await this.volumes()) {
      if (v.usedBy.length || (!opts.all && !v.anonymous)) continue;
      reclaimed += await duBytes(v.mountpoint);
      await fsp.rm(path.join(this.volumesDir, v.name), { recursive: true, force: true });
      names.push(v.name);
    }
    return { names, reclaimed };
  }

  async volumeSize(mountpoint: string): Promise<number> {
    return duBytes(mountpoint);
  }
}

export interface LogEntry {
  log: string;
  stream: "stdout" | "stderr";
  time: string;
}

function parseLogLines(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const l of text.split("\n")) {
    if (!l) continue;
    try {
      out.push(JSON.parse(l) as LogEntry);
    } catch {
      // a torn last line of a crashed writer: skip it
    }
  }
  return out;
}

function matchLabel(labels: Record<string, string>, f: string): boolean {
  const i = f.indexOf("=");
  if (i < 0) return f in labels;
  return labels[f.slice(0, i)] === f.slice(i + 1);
}

function netnsName(id: string): string {
  return `strata-${id.slice(0, 12)}`;
}

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    const ents = await fsp.readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += (await fsp.lstat(p).catch(() => ({ size: 0 }))).size;
    }
  }
  return total;
}

async function findInit(): Promise<string | undefined> {
  for (const p of ["/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini"])
    if (await exists(p)) return p;
  return undefined;
}

/**
 * Which resource limits runc can apply here: cgroup v2 with the controllers enabled, or
 * v1 (and hybrid) hierarchies with the memory controller and CFS quotas of the cpu one.
 */
export function cgroupSupport(root = "/sys/fs/cgroup"): { memory: boolean; cpu: boolean } {
  const has = (p: string) => existsSync(path.join(root, p));
  if (has("cgroup.controllers")) {
    const controllers = readFileSync(path.join(root, "cgroup.controllers"), "utf8").split(/\s+/);
    return { memory: controllers.includes("memory"), cpu: controllers.includes("cpu") };
  }
  return {
    memory: has("memory/memory.limit_in_bytes"),
    cpu: has("cpu/cpu.cfs_quota_us") || has("cpu,cpuacct/cpu.cfs_quota_us"),
  };
}
