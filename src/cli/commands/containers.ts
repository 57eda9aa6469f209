import type { ChildProcess } from "node:child_process";
import { createWriteStream, promises as fsp } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { Container, CreateOptions, Engine, LogEntry } from "../../engine/index.js";
import { shortId } from "../../oci/index.js";
import {
  errorMessage,
  goTimeString,
  humanDuration,
  humanSize,
  humanSize4,
  isStrataError,
  parseTemplate,
  StrataError,
  timeAgo,
} from "../../util/index.js";
import type { Context } from "../context.js";
import { collect, collectFilter, confirm, ExitError, ellipsis, renderRows } from "../output.js";

const CONTAINER_HEADERS: Record<string, string> = {
  ID: "CONTAINER ID",
  Image: "IMAGE",
  Command: "COMMAND",
  CreatedAt: "CREATED AT",
  RunningFor: "CREATED",
  Ports: "PORTS",
  Status: "STATUS",
  State: "STATE",
  Size: "SIZE",
  Names: "NAMES",
  Labels: "LABELS",
  Mounts: "MOUNTS",
  Networks: "NETWORKS",
};

/** Docker's STATUS column: `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`. */
export function statusText(c: Container, now = Date.now()): string {
  const s = c.state;
  if (s.Restarting) return `Restarting (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
  if (s.Running) return `Up ${humanDuration(now - Date.parse(s.StartedAt))}`;
  if (s.Status === "created") return "Created";
  if (s.FinishedAt.startsWith("0001")) return "Exited";
  return `Exited (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
}

function portsText(c: Container): string {
  if (!c.state.Running) return "";
  return c.record.ports
    .map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.proto}`)
    .concat(
      Object.keys(c.record.config.ExposedPorts ?? {})
        .filter((k) => !c.record.ports.some((p) => `${p.containerPort}/${p.proto}` === k))
        .map((k) => k),
    )
    .join(", ");
}

function imageColumn(c: Container, engineImageIds: Set<string>): string {
  // Docker shows the name given at create; the image ID when that image is gone.
  if (!engineImageIds.has(c.record.image)) return shortId(c.record.image);
  return c.record.imageName;
}

/** Go's strconv.Quote for the COMMAND column. */
function goQuote(s: string): string {
  return JSON.stringify(s).replace(
    /[\u007f-\u009f]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

async function engineOf(ctx: Context): Promise<Engine> {
  return ctx.engine();
}

/** Errors of container commands print as Docker's daemon errors; `run` adds its own prefix. */
function daemonError(e: unknown, status = 1): ExitError {
  if (e instanceof ExitError) return e;
  return new ExitError(`Error response from daemon: ${errorMessage(e)}`, status);
}

function parseIntFlag(name: string) {
  return (v: string) => {
    if (!/^-?\d+$/.test(v))
      throw new ExitError(
        `invalid argument "${v}" for "${name}" flag: strconv.ParseInt: parsing "${v}": invalid syntax`,
        125,
      );
    return Number(v);
  };
}

/** The options that `run` and `create` share. */
function addCreateOptions(cmd: Command): Command {
  return cmd
    .argument("<IMAGE>")
    .argument("[COMMAND...]")
    .passThroughOptions()
    .option("--name <string>", "Assign a name to the container")
    .option("-e, --env <list>", "Set environment variables", collect, [])
    .option("--env-file <list>", "Read in a file of environment variables", collect, [])
    .option("-w, --workdir <string>", "Working directory inside the container")
    .option("-u, --user <string>", "Username or UID (format: <name|uid>[:<group|gid>])")
    .option("--entrypoint <string>", "Overwrite the default ENTRYPOINT of the image")
    .option("-i, --interactive", "Keep STDIN open even if not attached")
    .option("-t, --tty", "Allocate a pseudo-TTY")
    .option("-p, --publish <list>", "Publish a container's port(s) to the host", collect, [])
    .option("-P, --publish-all", "Publish all exposed ports to random ports")
    .option("-v, --volume <list>", "Bind mount a volume (NAME:/path or /host/path:/path, [:ro])", collect, [])
    .option("--tmpfs <list>", "Mount a tmpfs directory", collect, [])
    .option("--network <string>", "Connect a container to a network (bridge, host, none)", "bridge")
    .option("--net <string>", "Alias of --network")
    .option("-h, --hostname <string>", "Container host name")
    .option("--read-only", "Mount the container's root filesystem as read only")
    .option("--init", "Run an init inside the container that forwards signals and reaps processes")
    .option(
      "--restart <string>",
      "Restart policy to apply when a container exits (no, on-failure[:max-retries], always, unless-stopped)",
      "no",
    )
    .option("--stop-signal <string>", "Signal to stop the container")
    .option(
      "--stop-timeout <int>",
      "Timeout (in seconds) to stop a container",
      parseIntFlag("--stop-timeout"),
    )
    .option("-m, --memory <bytes>", "Memory limit (e.g. 512m, 1g)")
    .option("--cpus <decimal>", "Number of CPUs")
    .option("-l, --label <list>", "Set meta data on a container", collect, [])
    .option("--log-opt <list>", "Log driver options (json-file: max-size, max-file)", collect, [])
    .option("--rm", "Automatically remove the container when it exits");
}

function createOptionsOf(image: string, args: string[], o: Record<string, unknown>): CreateOptions {
  return {
    image,
    args,
    name: o.name as string | undefined,
    entrypoint: o.entrypoint as string | undefined,
    env: o.env as string[],
    envFiles: o.envFile as string[],
    workdir: o.workdir as string | undefined,
    user: o.user as string | undefined,
    tty: !!o.tty,
    interactive: !!o.interactive,
    publish: o.publish as string[],
    publishAll: !!o.publishAll,
    volumes: o.volume as string[],
    tmpfs: o.tmpfs as string[],
    network: (o.net as string | undefined) ?? (o.network as string),
    hostname: o.hostname as string | undefined,
    readOnly: !!o.readOnly,
    init: !!o.init,
    restart: o.restart as string,
    stopSignal: o.stopSignal as string | undefined,
    stopTimeout: o.stopTimeout as number | undefined,
    memory: o.memory as string | undefined,
    cpus: o.cpus as string | undefined,
    labels: o.label as string[],
    autoRemove: !!o.rm,
    logOpts: o.logOpt as string[],
  };
}

/** Docker's CLI refuses -it when its stdin is not a terminal (a bare line, exit 1). */
function notATty(ctx: Context): ExitError {
  ctx.io.err.write("the input device is not a TTY\n");
  return new ExitError("the input device is not a TTY", 1, true);
}

/** Docker's `docker: Error response from daemon: …` for run/create, with its exit status. */
function runError(ctx: Context, cmdName: string, e: unknown): ExitError {
  const status = (e as { exitCode?: number }).exitCode ?? 125;
  let msg = errorMessage(e);
  if (isStrataError(e, "IMAGE_NOT_FOUND")) {
    const name = msg.replace(/^No such image: /, "");
    ctx.io.err.write(`Unable to find image '${name}' locally\n`);
  }
  if (!/[.!?]$/.test(msg)) msg += ".";
  ctx.io.err.write(`strata: Error response from daemon: ${msg}\nSee 'strata ${cmdName} --help'.\n`);
  return new ExitError(msg, status, true);
}

function defineRun(cmd: Command, ctx: Context) {
  return addCreateOptions(cmd)
    .description("Create and run a new container from an image")
    .option("-d, --detach", "Run container in background and print container ID")
    .action(async (image: string, args: string[], o) => {
      // Docker's CLI checks, before the daemon sees the request.
      if (o.tty && o.interactive && !o.detach && !ctx.io.stdin.isTTY) throw notATty(ctx);
      if (o.rm && o.restart && o.restart !== "no") {
        ctx.io.err.write("strata: Conflicting options: --restart and --rm.\nSee 'strata run --help'.\n");
        throw new ExitError("Conflicting options: --restart and --rm", 125, true);
      }
      const engine = await engineOf(ctx);
      let id: string;
      try {
        const created = await engine.containers.create(createOptionsOf(image, args, o));
        for (const w of created.warnings) ctx.io.err.write(`${w}\n`);
        id = created.id;
      } catch (e) {
        throw runError(ctx, "run", e);
      }
      if (o.detach) {
        try {
          await engine.containers.start(id, { standby: ctx.takeSupervisorStandby() });
        } catch (e) {
          throw runError(ctx, "run", e);
        }
        ctx.io.out.write(`${id}\n`);
        return;
      }
      const restarts = ((o.restart as string | undefined) ?? "no").split(":")[0] || "no";
      await attachRun(ctx, engine, id, !!o.interactive, restarts !== "no", ctx.takeSupervisorStandby());
    });
}

/** Foreground run / start -a: stream the supervisor's stdio, proxy signals, exit with the container's code. */
async function attachRun(
  ctx: Context,
  engine: Engine,
  id: string,
  interactive: boolean,
  /** The container has a restart policy: the supervisor goes on after the first exit. */
  restarts: boolean,
  standby?: ChildProcess,
): Promise<void> {
  let sup: Awaited<ReturnType<Engine["containers"]["start"]>>["supervisor"];
  try {
    sup = (await engine.containers.start(id, { attach: true, standby })).supervisor;
  } catch (e) {
    throw runError(ctx, "run", e);
  }
  if (!sup) return;
  const child = sup.child;
  child.stdout!.on("data", (c: Buffer) => ctx.io.out.write(c));
  child.stderr!.on("data", (c: Buffer) => ctx.io.err.write(c));
  if (interactive && child.stdin) {
    ctx.io.stdin.pipe(child.stdin);
    child.stdin.on("error", () => {});
  } else child.stdin?.end();
  const forward = (sig: NodeJS.Signals) => () => {
    if (child.pid && child.exitCode === null) process.kill(child.pid, sig);
  };
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  // With a restart policy the supervisor goes on after the first exit: as Docker's CLI,
  // return at that exit (the state turns to restarting or exited) with its code.
  const code: number | null = await new Promise((resolve) => {
    child.on("close", (c) => resolve(c));
    if (!restarts) return;
    const poll = setInterval(async () => {
      const c = await engine.containers.get(id).catch(() => undefined);
      if (c && (c.state.Restarting || !c.state.Running)) {
        clearInterval(poll);
        resolve(c.state.ExitCode);
      }
    }, 50);
    child.on("close", () => clearInterval(poll));
  });
  if (restarts) {
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.unref();
  }
  for (const [s, h] of handlers) process.off(s, h);
  if (interactive) ctx.io.stdin.unpipe(child.stdin!);
  (ctx.io.stdin as NodeJS.ReadableStream & { pause?: () => void }).pause?.();
  const status = code ?? (await engine.containers.wait(id).catch(() => 137));
  if (status !== 0) throw new ExitError("", status, true);
}

function defineCreate(cmd: Command, ctx: Context) {
  return addCreateOptions(cmd)
    .description("Create a new container")
    .action(async (image: string, args: string[], o) => {
      const engine = await engineOf(ctx);
      try {
        const created = await engine.containers.create(createOptionsOf(image, args, o));
        for (const w of created.warnings) ctx.io.err.write(`${w}\n`);
        ctx.io.out.write(`${created.id}\n`);
      } catch (e) {
        throw runError(ctx, "create", e);
      }
    });
}

/** Run `fn` for each argument; print its line; Docker goes on after an error and exits 1. */
async function eachContainer(ctx: Context, refs: string[], fn: (ref: string) => Promise<string | undefined>) {
  const errors: string[] = [];
  for (const r of refs) {
    try {
      const line = await fn(r);
      if (line !== undefined) ctx.io.out.write(`${line}\n`);
    } catch (e) {
      errors.push(`Error response from daemon: ${errorMessage(e)}`);
    }
  }
  if (errors.length) {
    for (const e of errors.slice(0, -1)) ctx.io.err.write(`Error: ${e}\n`);
    throw new ExitError(errors[errors.length - 1]!);
  }
}

function defineStart(cmd: Command, ctx: Context) {
  return cmd
    .description("Start one or more stopped containers")
    .argument("<CONTAINER...>")
    .option("-a, --attach", "Attach STDOUT/STDERR and forward signals")
    .option("-i, --interactive", "Attach container's STDIN")
    .action(async (refs: string[], o) => {
      const engine = await engineOf(ctx);
      if (o.attach || o.interactive) {
        if (refs.length > 1) throw new ExitError("you cannot start and attach multiple containers at once");
        const c = await engine.containers.get(refs[0]!).catch((e) => {
          throw daemonError(e);
        });
        await attachRun(
          ctx,
          engine,
          c.record.id,
          !!o.interactive,
          c.record.hostConfig.RestartPolicy.Name !== "no",
        );
        return;
      }
      await eachContainer(ctx, refs, async (r) => {
        await engine.containers.start(r);
        return r;
      });
    });
}

function definePs(cmd: Command, ctx: Context) {
  return cmd
    .description("List containers")
    .option("-a, --all", "Show all containers (default shows just running)")
    .option("-f, --filter <filter>", "Filter output based on conditions provided", collectFilter)
    .option("--format <string>", "Format output using a custom template")
    .option(
      "-n, --last <int>",
      "Show n last created containers (includes all states)",
      parseIntFlag("--last"),
      -1,
    )
    .option("-l, --latest", "Show the latest created container (includes all states)")
    .option("--no-trunc", "Don't truncate output")
    .option("-q, --quiet", "Only display container IDs")
    .option("-s, --size", "Display total file sizes")
    .action(async (o) => {
      const engine = await engineOf(ctx);
      let list = await engine.containers.list();
      const filters = (o.filter ?? {}) as Record<string, string[]>;
      for (const k of Object.keys(filters))
        if (!["status", "name", "ancestor", "label", "id", "exited"].includes(k))
          throw new ExitError(`Error response from daemon: invalid filter '${k}'`);
      const all = o.all || o.latest || o.last > 0 || !!filters.status || !!filters.exited;
      if (!all) list = list.filter((c) => c.state.Running);
      const doc = await engine.store.meta.read();
      const ids = new Set(Object.keys(doc.images));
      if (filters.status)
        for (const s of filters.status)
          if (!["created", "restarting", "running", "removing", "paused", "exited", "dead"].includes(s))
            throw new ExitError(`Error response from daemon: invalid filter 'status=${s}'`);
      if (filters.status) list = list.filter((c) => filters.status!.includes(c.state.Status));
      if (filters.exited)
        list = list.filter((c) => !c.state.Running && filters.exited!.includes(String(c.state.ExitCode)));
      if (filters.name)
        list = list.filter((c) => filters.name!.some((n) => new RegExp(n).test(c.record.name)));
      if (filters.id) list = list.filter((c) => filters.id!.some((n) => c.record.id.startsWith(n)));
      if (filters.label)
        list = list.filter((c) =>
          filters.label!.every((l) => {
            const i = l.indexOf("=");
            return i < 0
              ? l in c.record.config.Labels
              : c.record.config.Labels[l.slice(0, i)] === l.slice(i + 1);
          }),
        );
      if (filters.ancestor) {
        const wanted = new Set<string>();
        for (const a of filters.ancestor) {
          try {
            wanted.add(engine.images.resolve(doc, a).id);
          } catch {
            // an unknown image matches nothing
          }
        }
        list = list.filter((c) => wanted.has(c.record.image));
      }
      if (o.latest) list = list.slice(0, 1);
      else if (o.last > 0) list = list.slice(0, o.last);
      const noTrunc = o.trunc === false;
      if (o.quiet) {
        for (const c of list) ctx.io.out.write(`${noTrunc ? c.record.id : c.record.id.slice(0, 12)}\n`);
        return;
      }
      const rows = [];
      for (const c of list) {
        const command = [c.record.path, ...c.record.args].join(" ");
        const size = o.size || (o.format ?? "").includes(".Size") ? await engine.containers.sizeRw(c) : 0;
        const virtual = size + (doc.images[c.record.image]?.size ?? 0);
        rows.push({
          ID: noTrunc ? c.record.id : c.record.id.slice(0, 12),
          Image: imageColumn(c, ids),
          Command: goQuote(noTrunc ? command : ellipsis(command, 20)),
          CreatedAt: goTimeString(c.record.created),
          RunningFor: timeAgo(c.record.created),
          Ports: portsText(c),
          State: c.state.Status,
          Status: statusText(c),
          Size: `${humanSize(size)} (virtual ${humanSize(virtual)})`,
          Names: c.record.name,
          Labels: Object.entries(c.record.config.Labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(","),
          Mounts: c.record.mounts.map((m) => m.Name ?? m.Source).join(","),
          Networks:
            c.record.hostConfig.NetworkMode === "default" ? "bridge" : c.record.hostConfig.NetworkMode,
        });
      }
      const def = `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}${o.size ? "\t{{.Size}}" : ""}`;
      ctx.io.out.write(renderRows(o.format, def, rows, CONTAINER_HEADERS));
    });
}

function defineLogs(cmd: Command, ctx: Context) {
  return cmd
    .description("Fetch the logs of a container")
    .argument("<CONTAINER>")
    .option("-f, --follow", "Follow log output")
    .option("--tail <string>", 'Number of lines to show from the end of the logs (default "all")', "all")
    .option("-t, --timestamps", "Show timestamps")
    .option(
      "--since <string>",
      "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)",
    )
    .option("--until <string>", "Show logs before a timestamp or relative")
    .option("--details", "Show extra details provided to logs")
    .action(async (ref: string, o) => {
      const engine = await engineOf(ctx);
      const { parseUntil } = await import("../../engine/index.js");
      const tail = o.tail === "all" ? undefined : Number(o.tail);
      if (tail !== undefined && !Number.isInteger(tail))
        throw new ExitError(`invalid tail value "${o.tail}"`, 125);
      let res: Awaited<ReturnType<Engine["containers"]["readLogs"]>>;
      try {
        res = await engine.containers.readLogs(ref, {
          tail,
          since: o.since ? parseUntil(o.since) : undefined,
          until: o.until ? parseUntil(o.until) : undefined,
        });
      } catch (e) {
        throw daemonError(e);
      }
      const write = (e: LogEntry) => {
        const text = o.timestamps ? `${e.time} ${e.log}` : e.log;
        (e.stream === "stderr" ? ctx.io.err : ctx.io.out).write(text);
      };
      for (const e of res.entries) write(e);
      if (o.follow) {
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once("SIGINT", stop);
        try {
          for await (const e of engine.containers.followLogs(res.container, res.offset, ac.signal)) write(e);
        } finally {
          process.off("SIGINT", stop);
        }
      }
    });
}

function defineStop(cmd: Command, ctx: Context, name: "stop" | "restart") {
  return cmd
    .description(name === "stop" ? "Stop one or more running containers" : "Restart one or more containers")
    .argument("<CONTAINER...>")
    .option("-s, --signal <string>", "Signal to send to the container")
    .option("-t, --time <int>", "Seconds to wait before killing the container", parseIntFlag("--time"))
    .action(async (refs: string[], o) => {
      const engine = await engineOf(ctx);
      await eachContainer(ctx, refs, async (r) => {
        if (name === "stop") await engine.containers.stop(r, { timeout: o.time, signal: o.signal });
        else await engine.containers.restart(r, { timeout: o.time, signal: o.signal });
        return r;
      });
    });
}

function defineKill(cmd: Command, ctx: Context) {
  return cmd
    .description("Kill one or more running containers")
    .argument("<CONTAINER...>")
    .option("-s, --signal <string>", "Signal to send to the container", "KILL")
    .action(async (refs: string[], o) => {
      const engine = await engineOf(ctx);
      await eachContainer(ctx, refs, async (r) => {
        await engine.containers.kill(r, o.signal);
        return r;
      });
    });
}

function defineWait(cmd: Command, ctx: Context) {
  return cmd
    .description("Block until one or more containers stop, then print their exit codes")
    .argument("<CONTAINER...>")
    .action(async (refs: string[]) => {
      const engine = await engineOf(ctx);
      await eachContainer(ctx, refs, async (r) => String(await engine.containers.wait(r)));
    });
}

function defineRm(cmd: Command, ctx: Context) {
  return cmd
    .description("Remove one or more containers")
    .argument("<CONTAINER...>")
    .option("-f, --force", "Force the removal of a running container (uses SIGKILL)")
    .option("-v, --volumes", "Remove anonymous volumes associated with the container")
    .option("-l, --link", "Remove the specified link")
    .action(async (refs: string[], o) => {
      if (o.link) throw new ExitError("Error response from daemon: links are not supported", 1);
      const engine = await engineOf(ctx);
      await eachContainer(ctx, refs, async (r) => {
        await engine.containers.remove(r, { force: o.force, volumes: o.volumes });
        return r;
      });
    });
}

function defineContainerInspect(cmd: Command, ctx: Context) {
  return cmd
    .description("Display detailed information on one or more containers")
    .argument("<CONTAINER...>")
    .option("-f, --format <string>", "Format output using a custom template")
    .option("-s, --size", "Display total file sizes")
    .action(async (refs: string[], o) => {
      const engine = await engineOf(ctx);
      const found: Record<string, unknown>[] = [];
      const errors: string[] = [];
      for (const r of refs) {
        try {
          found.push(await engine.containers.inspect(r));
        } catch (e) {
          errors.push(errorMessage(e));
        }
      }
      writeInspect(ctx, found, o.format);
      if (errors.length) {
        for (const e of errors.slice(0, -1)) ctx.io.err.write(`Error: ${e}\n`);
        throw new ExitError(errors[errors.length - 1]!);
      }
    });
}

function writeInspect(ctx: Context, found: Record<string, unknown>[], format?: string) {
  if (!format || format === "json") ctx.io.out.write(`${JSON.stringify(found, null, 4)}\n`);
  else {
    const t = parseTemplate(format);
    for (const f of found) ctx.io.out.write(`${t.execute(f)}\n`);
  }
}

function defineExec(cmd: Command, ctx: Context) {
  return cmd
    .description("Execute a command in a running container")
    .argument("<CONTAINER>")
    .argument("<COMMAND...>")
    .passThroughOptions()
    .option("-d, --detach", "Detached mode: run command in the background")
    .option("-e, --env <list>", "Set environment variables", collect, [])
    .option("-i, --interactive", "Keep STDIN open even if not attached")
    .option("-t, --tty", "Allocate a pseudo-TTY")
    .option("-u, --user <string>", "Username or UID (format: <name|uid>[:<group|gid>])")
    .option("-w, --workdir <string>", "Working directory inside the container")
    .action(async (ref: string, command: string[], o) => {
      if (o.tty && o.interactive && !o.detach && !ctx.io.stdin.isTTY) throw notATty(ctx);
      const engine = await engineOf(ctx);
      let r: { exitCode: number; error?: string };
      try {
        r = await engine.containers.exec(ref, command, {
          env: o.env,
          user: o.user,
          workdir: o.workdir,
          tty: !!o.tty,
          interactive: !!o.interactive,
          detach: !!o.detach,
          stdin: ctx.io.stdin,
          stdout: ctx.io.out,
          stderr: ctx.io.err,
        });
      } catch (e) {
        throw daemonError(e);
      }
      if (r.error) ctx.io.err.write(`${r.error}\n`);
      if (r.exitCode !== 0) throw new ExitError("", r.exitCode, true);
    });
}

function defineTop(cmd: Command, ctx: Context) {
  return cmd
    .description("Display the running processes of a container")
    .argument("<CONTAINER>")
    .argument("[ps OPTIONS...]")
    .passThroughOptions()
    .action(async (ref: string, psArgs: string[]) => {
      const engine = await engineOf(ctx);
      let r: { titles: string[]; processes: string[][] };
      try {
        r = await engine.containers.top(ref, psArgs);
      } catch (e) {
        throw daemonError(e);
      }
      const { table } = await import("../output.js");
      const { alignColumns } = await import("../../util/index.js");
      void table;
      ctx.io.out.write(
        `${alignColumns([r.titles, ...r.processes], { minWidth: 1, padding: 3 }).replace(/\n?$/, "\n")}`,
      );
    });
}

function defineRename(cmd: Command, ctx: Context) {
  return cmd
    .description("Rename a container")
    .argument("<CONTAINER>")
    .argument("<NEW_NAME>")
    .action(async (ref: string, name: string) => {
      const engine = await engineOf(ctx);
      await engine.containers.rename(ref, name).catch((e) => {
        throw daemonError(e);
      });
    });
}

function splitCpArg(a: string): { container?: string; path: string } {
  if (a.startsWith("/") || a.startsWith(".")) return { path: a };
  const i = a.indexOf(":");
  if (i <= 0) return { path: a };
  return { container: a.slice(0, i), path: a.slice(i + 1) };
}

function defineCp(cmd: Command, ctx: Context) {
  return cmd
    .description("Copy files/folders between a container and the local filesystem")
    .argument("<SRC>")
    .argument("<DEST>")
    .option("-a, --archive", "Archive mode (copy all uid/gid information)")
    .option("-L, --follow-link", "Always follow symbol link in SRC_PATH")
    .option("-q, --quiet", "Suppress progress output during copy")
    .action(async (src: string, dest: string) => {
      const engine = await engineOf(ctx);
      const from = splitCpArg(src);
      const to = splitCpArg(dest);
      if (!from.container && !to.container)
        throw new ExitError("must specify at least one container source", 1);
      if (from.container && to.container)
        throw new ExitError("copying between containers is not supported", 1);
      if (src === "-" || dest === "-") throw new ExitError("cp with - (tar streams) is not supported", 1);
      await engine.containers.copy(from, to).catch((e) => {
        throw new ExitError(errorMessage(e));
      });
    });
}

function defineDiff(cmd: Command, ctx: Context) {
  return cmd
    .description("Inspect changes to files or directories on a container's filesystem")
    .argument("<CONTAINER>")
    .action(async (ref: string) => {
      const engine = await engineOf(ctx);
      const changes = await engine.containers.diff(ref).catch((e) => {
        throw daemonError(e);
      });
      for (const c of changes) ctx.io.out.write(`${c.kind} ${c.path}\n`);
    });
}

function defineCommit(cmd: Command, ctx: Context) {
  return cmd
    .description("Create a new image from a container's changes")
    .argument("<CONTAINER>")
    .argument("[REPOSITORY[:TAG]]")
    .option("-a, --author <string>", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    .option("-c, --change <list>", "Apply Dockerfile instruction to the created image", collect, [])
    .option("-m, --message <string>", "Commit message")
    .option("-p, --pause [bool]", "Pause container during commit", true)
    .action(async (ref: string, reference: string | undefined, o) => {
      const engine = await engineOf(ctx);
      try {
        const c = await engine.containers.get(ref);
        const changes = o.change.length
          ? engine.changesToConfig(o.change, {
              Env: c.record.config.Env,
              ...(c.record.config.Cmd ? { Cmd: c.record.config.Cmd } : {}),
              ...(c.record.config.Entrypoint ? { Entrypoint: c.record.config.Entrypoint } : {}),
            })
          : undefined;
        const id = await engine.containers.commit(ref, {
          reference,
          changes,
          message: o.message,
          author: o.author,
        });
        ctx.io.out.write(`${id}\n`);
      } catch (e) {
        throw daemonError(e);
      }
    });
}

function defineExport(cmd: Command, ctx: Context) {
  return cmd
    .description("Export a container's filesystem as a tar archive")
    .argument("<CONTAINER>")
    .option("-o, --output <string>", "Write to a file, instead of STDOUT")
    .action(async (ref: string, o) => {
      const engine = await engineOf(ctx);
      await engine.containers.get(ref).catch((e) => {
        throw daemonError(e);
      });
      if (!o.output) {
        if (ctx.io.stdoutIsTTY)
          throw new ExitError("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        await engine.containers.export(ref, ctx.io.out);
        return;
      }
      const dest = path.resolve(o.output);
      const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.tmp`);
      try {
        await engine.containers.export(ref, createWriteStream(tmp));
        await fsp.rename(tmp, dest);
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
    });
}

function defineContainerPrune(cmd: Command, ctx: Context) {
  return cmd
    .description("Remove all stopped containers")
    .option("--filter <filter>", 'Provide filter values (e.g. "until=<timestamp>")', collectFilter)
    .option("-f, --force", "Do not prompt for confirmation")
    .action(async (o) => {
      if (
        !o.force &&
        !(await confirm(
          ctx.io,
          "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        ))
      )
        return;
      const engine = await engineOf(ctx);
      const { parseUntil } = await import("../../engine/index.js");
      const f = (o.filter ?? {}) as Record<string, string[]>;
      const r = await engine.containers.prune({
        until: f.until?.[0] ? parseUntil(f.until[0]) : undefined,
        labels: f.label,
      });
      if (r.ids.length) ctx.io.out.write(`Deleted Containers:\n${r.ids.join("\n")}\n\n`);
      ctx.io.out.write(`Total reclaimed space: ${humanSize4(r.reclaimed)}\n`);
    });
}

function defineSystem(program: Command, ctx: Context) {
  const system = program.command("system").description("Manage Strata");
  system
    .command("df")
    .description("Show docker disk usage")
    .option("-v, --verbose", "Show detailed information on space usage")
    .option("--format <string>", "Format output using a custom template")
    .action(async (o) => {
      const engine = await engineOf(ctx);
      const doc = await engine.store.meta.read();
      const containers = await engine.containers.list();
      const used = new Set(containers.map((c) => c.record.image));
      // Images: unique layers, shared ones counted once.
      const layerOwners = new Map<string, number>();
      const imageLayers = new Map<string, string[]>();
      for (const img of Object.values(doc.images)) {
        const { diffIdsOf, parseImageConfig } = await import("../../oci/index.js");
        const ids = diffIdsOf(parseImageConfig(await engine.store.content.readSmall(img.id)).value);
        imageLayers.set(img.id, ids);
        for (const d of new Set(ids)) layerOwners.set(d, (layerOwners.get(d) ?? 0) + 1);
      }
      const sizeOf = (d: string) => doc.layers[d]?.contentSize ?? 0;
      const cacheLayers = new Set<string>();
      for (const c of Object.values(doc.buildCache ?? {})) if (c.diffId) cacheLayers.add(c.diffId);
      const allLayers = new Set([...imageLayers.values()].flat());
      const imagesSize = [...allLayers].reduce((n, d) => n + sizeOf(d), 0);
      const activeLayers = new Set([...used].flatMap((id) => imageLayers.get(id) ?? []));
      const imagesReclaimable = [...allLayers]
        .filter((d) => !activeLayers.has(d))
        .reduce((n, d) => n + sizeOf(d), 0);
      const activeImages = Object.keys(doc.images).filter((id) => used.has(id as never)).length;
      let ctrSize = 0;
      let ctrReclaim = 0;
      const ctrSizes = new Map<string, number>();
      for (const c of containers) {
        const s = await engine.containers.sizeRw(c);
        ctrSizes.set(c.record.id, s);
        ctrSize += s;
        if (!c.state.Running) ctrReclaim += s;
      }
      const vols = await engine.containers.volumes();
      let volSize = 0;
      let volReclaim = 0;
      const volSizes = new Map<string, number>();
      for (const v of vols) {
        const s = await engine.containers.volumeSize(v.mountpoint);
        volSizes.set(v.name, s);
        volSize += s;
        if (!v.usedBy.length) volReclaim += s;
      }
      const cache = Object.values(doc.buildCache ?? {});
      const cacheSize = [...cacheLayers].reduce((n, d) => n + sizeOf(d), 0);
      const pct = (r: number, t: number) =>
        t > 0 ? `${humanSize4(r)} (${Math.trunc((100 * r) / t)}%)` : humanSize4(r);
      const rows = [
        {
          Type: "Images",
          TotalCount: String(Object.keys(doc.images).length),
          Active: String(activeImages),
          Size: humanSize4(imagesSize),
          Reclaimable: pct(imagesReclaimable, imagesSize),
        },
        {
          Type: "Containers",
          TotalCount: String(containers.length),
          Active: String(containers.filter((c) => c.state.Running).length),
          Size: humanSize4(ctrSize),
          Reclaimable: pct(ctrReclaim, ctrSize),
        },
        {
          Type: "Local Volumes",
          TotalCount: String(vols.length),
          Active: String(vols.filter((v) => v.usedBy.length).length),
          Size: humanSize4(volSize),
          Reclaimable: pct(volReclaim, volSize),
        },
        {
          Type: "Build Cache",
          TotalCount: String(cache.length),
          Active: "0",
          Size: humanSize4(cacheSize),
          Reclaimable: humanSize4(cacheSize),
        },
      ];
      if (!o.verbose) {
        ctx.io.out.write(
          renderRows(
            o.format,
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            rows,
            {
              Type: "TYPE",
              TotalCount: "TOTAL",
              Active: "ACTIVE",
              Size: "SIZE",
              Reclaimable: "RECLAIMABLE",
            },
          ),
        );
        return;
      }
      const imgRows = (await engine.images.list()).map((r) => {
        const ids = imageLayers.get(r.id) ?? [];
        const shared = ids.filter((d) => (layerOwners.get(d) ?? 0) > 1).reduce((n, d) => n + sizeOf(d), 0);
        return {
          Repository: r.repository,
          Tag: r.tag,
          ID: shortId(r.id),
          CreatedSince: r.created ? timeAgo(r.created) : "N/A",
          Size: humanSize(r.size),
          SharedSize: humanSize(shared),
          UniqueSize: humanSize(r.size - shared),
          Containers: String(containers.filter((c) => c.record.image === r.id).length),
        };
      });
      ctx.io.out.write("Images space usage:\n\n");
      ctx.io.out.write(
        renderRows(
          undefined,
          "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
          imgRows,
          {
            Repository: "REPOSITORY",
            Tag: "TAG",
            ID: "IMAGE ID",
            CreatedSince: "CREATED",
            Size: "SIZE",
            SharedSize: "SHARED SIZE",
            UniqueSize: "UNIQUE SIZE",
            Containers: "CONTAINERS",
          },
        ),
      );
      ctx.io.out.write("\nContainers space usage:\n\n");
      ctx.io.out.write(
        renderRows(
          undefined,
          "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
          containers.map((c) => ({
            ID: c.record.id.slice(0, 12),
            Image: c.record.imageName,
            Command: goQuote(ellipsis([c.record.path, ...c.record.args].join(" "), 20)),
            LocalVolumes: String(c.record.mounts.filter((m) => m.Type === "volume").length),
            Size: humanSize(ctrSizes.get(c.record.id) ?? 0),
            RunningFor: timeAgo(c.record.created),
            Status: statusText(c),
            Names: c.record.name,
          })),
          {
            ID: "CONTAINER ID",
            Image: "IMAGE",
            Command: "COMMAND",
            LocalVolumes: "LOCAL VOLUMES",
            Size: "SIZE",
            RunningFor: "CREATED",
            Status: "STATUS",
            Names: "NAMES",
          },
        ),
      );
      ctx.io.out.write("\nLocal Volumes space usage:\n\n");
      ctx.io.out.write(
        renderRows(
          undefined,
          "table {{.Name}}\t{{.Links}}\t{{.Size}}",
          vols.map((v) => ({
            Name: v.name,
            Links: String(v.usedBy.length),
            Size: humanSize(volSizes.get(v.name) ?? 0),
          })),
          { Name: "VOLUME NAME", Links: "LINKS", Size: "SIZE" },
        ),
      );
      ctx.io.out.write("\nBuild cache usage: ");
      ctx.io.out.write(`${humanSize4(cacheSize)}\n`);
    });
  system
    .command("prune")
    .description("Remove unused data")
    .option("-a, --all", "Remove all unused images not just dangling ones")
    .option("--volumes", "Prune anonymous volumes")
    .option("-f, --force", "Do not prompt for confirmation")
    .option("--filter <filter>", 'Provide filter values (e.g. "label=<key>=<value>")', collectFilter)
    .action(async (o) => {
      if (!o.force) {
        const lines = [
          "WARNING! This will remove:",
          "  - all stopped containers",
          "  - all networks not used by at least one container",
          ...(o.volumes ? ["  - all anonymous volumes not used by at least one container"] : []),
          o.all
            ? "  - all images without at least one container associated to them"
            : "  - all dangling images",
          o.all ? "  - all build cache" : "  - unused build cache",
          "",
        ];
        if (!(await confirm(ctx.io, `${lines.join("\n")}\nAre you sure you want to continue?`))) return;
      }
      const engine = await engineOf(ctx);
      const ctr = await engine.containers.prune();
      let reclaimed = ctr.reclaimed;
      if (ctr.ids.length) ctx.io.out.write(`Deleted Containers:\n${ctr.ids.join("\n")}\n\n`);
      if (o.volumes) {
        const v = await engine.containers.pruneVolumes();
        reclaimed += v.reclaimed;
        if (v.names.length) ctx.io.out.write(`Deleted Volumes:\n${v.names.join("\n")}\n\n`);
      }
      const img = await engine.images.prune({ all: o.all });
      reclaimed += img.reclaimed;
      if (img.lines.length) ctx.io.out.write(`Deleted Images:\n${img.lines.join("\n")}\n\n`);
      const cache = await engine.pruneBuildCache({ all: o.all });
      reclaimed += cache.reclaimed;
      ctx.io.out.write(`Total reclaimed space: ${humanSize4(reclaimed)}\n`);
    });
}

function defineVolumes(program: Command, ctx: Context) {
  const volume = program.command("volume").description("Manage volumes");
  volume
    .command("create")
    .description("Create a volume")
    .argument("[VOLUME]")
    .option("-d, --driver <string>", "Specify volume driver name", "local")
    .action(async (name: string | undefined, o) => {
      if (o.driver !== "local")
        throw new ExitError(`Error response from daemon: volume driver ${o.driver} is not supported`);
      const engine = await engineOf(ctx);
      ctx.io.out.write(
        `${await engine.containers.createVolume(name).catch((e) => {
          throw daemonError(e);
        })}\n`,
      );
    });
  volume
    .command("ls")
    .alias("list")
    .description("List volumes")
    .option("-q, --quiet", "Only display volume names")
    .option("--format <string>", "Format output using a custom template")
    .option("-f, --filter <filter>", "Provide filter values (e.g. 'dangling=true')", collectFilter)
    .action(async (o) => {
      const engine = await engineOf(ctx);
      let vols = await engine.containers.volumes();
      const f = (o.filter ?? {}) as Record<string, string[]>;
      if (f.dangling) {
        const want = ["true", "1"].includes(f.dangling[0]!);
        vols = vols.filter((v) => (v.usedBy.length === 0) === want);
      }
      if (f.name) vols = vols.filter((v) => f.name!.some((n) => v.name.includes(n)));
      if (o.quiet) {
        for (const v of vols) ctx.io.out.write(`${v.name}\n`);
        return;
      }
      ctx.io.out.write(
        renderRows(
          o.format,
          "table {{.Driver}}\t{{.Name}}",
          vols.map((v) => ({ Driver: "local", Name: v.name, Mountpoint: v.mountpoint, Scope: "local" })),
          { Driver: "DRIVER", Name: "VOLUME NAME", Mountpoint: "MOUNTPOINT", Scope: "SCOPE" },
        ),
      );
    });
  volume
    .command("inspect")
    .description("Display detailed information on one or more volumes")
    .argument("<VOLUME...>")
    .option("-f, --format <string>", "Format output using a custom template")
    .action(async (names: string[], o) => {
      const engine = await engineOf(ctx);
      const vols = await engine.containers.volumes();
      const found = [];
      const errors: string[] = [];
      for (const n of names) {
        const v = vols.find((x) => x.name === n);
        if (!v) errors.push(`get ${n}: no such volume`);
        else
          found.push({
            CreatedAt: v.created,
            Driver: "local",
            Labels: null,
            Mountpoint: v.mountpoint,
            Name: v.name,
            Options: null,
            Scope: "local",
          });
      }
      writeInspect(ctx, found, o.format);
      if (errors.length) throw new ExitError(`Error response from daemon: ${errors[errors.length - 1]}`);
    });
  volume
    .command("rm")
    .alias("remove")
    .description("Remove one or more volumes")
    .argument("<VOLUME...>")
    .option("-f, --force", "Force the removal of one or more volumes")
    .action(async (names: string[], o) => {
      const engine = await engineOf(ctx);
      await eachContainer(ctx, names, async (n) => {
        await engine.containers.removeVolume(n, { force: o.force });
        return n;
      });
    });
  volume
    .command("prune")
    .description("Remove unused local volumes")
    .option("-a, --all", "Remove all unused volumes, not just anonymous ones")
    .option("-f, --force", "Do not prompt for confirmation")
    .action(async (o) => {
      if (
        !o.force &&
        !(await confirm(
          ctx.io,
          "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?",
        ))
      )
        return;
      const engine = await engineOf(ctx);
      const r = await engine.containers.pruneVolumes({ all: o.all });
      if (r.names.length) ctx.io.out.write(`Deleted Volumes:\n${r.names.join("\n")}\n\n`);
      ctx.io.out.write(`Total reclaimed space: ${humanSize4(r.reclaimed)}\n`);
    });
}

/** The container commands at top level (run, ps, …), under `container`, plus `system` and `volume`. */
export function registerContainerCommands(program: Command, ctx: Context): void {
  const groups: [string, (c: Command, ctx: Context) => Command][] = [
    ["run", defineRun],
    ["create", defineCreate],
    ["start", defineStart],
    ["ps", definePs],
    ["logs", defineLogs],
    ["stop", (c, x) => defineStop(c, x, "stop")],
    ["restart", (c, x) => defineStop(c, x, "restart")],
    ["kill", defineKill],
    ["wait", defineWait],
    ["rm", defineRm],
    ["exec", defineExec],
    ["top", defineTop],
    ["rename", defineRename],
    ["cp", defineCp],
    ["diff", defineDiff],
    ["commit", defineCommit],
    ["export", defineExport],
  ];
  for (const [name, define] of groups) define(program.command(name), ctx);
  const container = program.command("container").description("Manage containers");
  for (const [name, define] of groups) {
    const sub = define(container.command(name), ctx);
    if (name === "ps") sub.alias("ls").alias("list");
    if (name === "rm") sub.alias("remove");
  }
  defineContainerInspect(container.command("inspect"), ctx);
  defineContainerPrune(container.command("prune"), ctx);
  defineSystem(program, ctx);
  defineVolumes(program, ctx);
}

/** For the top-level `inspect`: a container's JSON, or undefined when no container has that name. */
export async function inspectContainerIfAny(
  ctx: Context,
  ref: string,
): Promise<Record<string, unknown> | undefined> {
  const engine = await engineOf(ctx);
  try {
    return await engine.containers.inspect(ref);
  } catch (e) {
    if (e instanceof StrataError && e.code === "CONTAINER_NOT_FOUND") return undefined;
    throw e;
  }
}
