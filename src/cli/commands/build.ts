import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import type { BuildOutput } from "../../engine/index.js";
import type { Context } from "../context.js";
import { collect, ExitError } from "../output.js";
import { PlainProgress } from "../progress.js";

async function readStdin(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

function parseKeyValues(list: string[], flag: string, fromEnv = false): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf("=");
    if (i < 0) {
      if (fromEnv) {
        // `--build-arg NAME` takes the value from the environment, as docker does.
        if (process.env[item] !== undefined) out[item] = process.env[item]!;
        continue;
      }
      throw new ExitError(`invalid argument "${item}" for "${flag}" flag: expected key=value`, 125);
    }
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** `-o type=local,dest=out` (or a bare path: type=local). */
function parseOutput(spec: string): BuildOutput {
  if (!spec.includes("="))
    return spec === "-" ? { type: "tar", dest: "/dev/stdout" } : { type: "local", dest: spec };
  const kv: Record<string, string> = {};
  for (const part of spec.split(",")) {
    const i = part.indexOf("=");
    kv[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  const type = kv.type ?? "local";
  if (type === "image" || (type === "docker" && !kv.dest)) return { type: "image" };
  if (!["local", "tar", "oci", "docker"].includes(type))
    throw new ExitError(`unsupported output type "${type}" (local, tar, oci, docker, image)`, 1);
  if (!kv.dest) throw new ExitError(`output type ${type} requires dest`, 1);
  return { type: type as "local" | "tar" | "oci" | "docker", dest: kv.dest };
}

async function parseSecrets(list: string[]) {
  const out: { id: string; data: Buffer }[] = [];
  for (const s of list) {
    const kv: Record<string, string> = {};
    for (const p of s.split(",")) {
      const i = p.indexOf("=");
      kv[i < 0 ? p : p.slice(0, i)] = i < 0 ? "" : p.slice(i + 1);
    }
    const id = kv.id;
    if (!id) throw new ExitError(`invalid secret "${s}": id is required`, 1);
    if (kv.env !== undefined) {
      const v = process.env[kv.env || id];
      if (v === undefined)
        throw new ExitError(`secret ${id}: environment variable ${kv.env || id} is not set`, 1);
      out.push({ id, data: Buffer.from(v) });
    } else {
      const src = kv.src ?? kv.source ?? id;
      out.push({
        id,
        data: await fsp.readFile(src).catch(() => {
          throw new ExitError(`failed to read secret ${id}: open ${src}: no such file or directory`, 1);
        }),
      });
    }
  }
  return out;
}

export function registerBuildCommands(program: Command, ctx: Context): void {
  const define = (cmd: Command) =>
    cmd
      .description("Build an image from a Dockerfile")
      .argument("<PATH|->")
      .option("-t, --tag <name:tag>", "Name and optionally a tag in the 'name:tag' format", collect, [])
      .option("-f, --file <string>", "Name of the Dockerfile (default: 'PATH/Dockerfile')")
      .option("--build-arg <list>", "Set build-time variables", collect, [])
      .option("--target <string>", "Set the target build stage to build")
      .option("--no-cache", "Do not use cache when building the image")
      .option("--pull", "Always attempt to pull all referenced images")
      .option("--label <list>", "Set metadata for an image", collect, [])
      .option("-q, --quiet", "Suppress the build output and print image ID on success")
      .option("--iidfile <string>", "Write the image ID to the file")
      .option("--progress <string>", "Set type of progress output (auto, plain, tty, quiet)", "auto")
      .option(
        "--network <string>",
        "Set the networking mode for the RUN instructions during build",
        "default",
      )
      .option(
        "--secret <stringArray>",
        'Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")',
        collect,
        [],
      )
      .option("--platform <string>", "Set target platform for build")
      .option("--check", "Evaluate the build checks and build nothing (shorthand for --call=check)")
      .option(
        "-o, --output <stringArray>",
        'Output destination (format: "type=local,dest=path")',
        collect,
        [],
      )
      .action(async (context: string, o) => {
        // The entry point may have started listing this context already; otherwise the
        // builder lists it.
        const listed = context !== "-" ? ctx.contextListing(context) : undefined;
        const engine = await ctx.engine();
        const { parsePlatform } = await import("../../oci/index.js");
        let contextDir = context;
        let dockerfileText: Buffer;
        let dockerfileName = "Dockerfile";
        let dockerfileDir: string | undefined;
        let tmp: string | undefined;
        try {
          if (context === "-") {
            const data = await readStdin(ctx.io.stdin);
            tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "strata-ctx-"));
            const isTar = data.length >= 512 && data.subarray(257, 262).toString("latin1") === "ustar";
            const { gunzipSync } = await import("node:zlib");
            const plain = data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data) : data;
            if (isTar || (plain.length >= 512 && plain.subarray(257, 262).toString("latin1") === "ustar")) {
              await engine.extractContext(plain, tmp);
              contextDir = tmp;
              dockerfileText = await fsp.readFile(path.join(tmp, o.file ?? "Dockerfile")).catch(() => {
                throw new ExitError(
                  `failed to read dockerfile: open ${o.file ?? "Dockerfile"}: no such file or directory`,
                );
              });
            } else {
              // A bare Dockerfile on stdin: an empty context.
              contextDir = tmp;
              dockerfileText = data;
            }
          } else {
            const st = await fsp.stat(context).catch(() => undefined);
            if (!st?.isDirectory())
              throw new ExitError(`unable to prepare context: path "${context}" not found`);
            if (o.file === "-") dockerfileText = await readStdin(ctx.io.stdin);
            else {
              const file = o.file ? path.resolve(o.file) : path.join(context, "Dockerfile");
              dockerfileName = path.basename(file);
              dockerfileDir = path.dirname(file);
              dockerfileText = await fsp.readFile(file).catch(() => {
                throw new ExitError(`failed to read dockerfile: open ${file}: no such file or directory`);
              });
            }
          }
          const quiet = o.quiet || o.progress === "quiet";
          const progress = new PlainProgress(quiet ? undefined : ctx.io.err);
          let result: Awaited<ReturnType<typeof engine.builder.build>>;
          // Ctrl-C or SIGTERM cancels the build: the running step's container is killed and every
          // snapshot unmounted and removed before the command exits.
          const cancel = new AbortController();
          const onSignal = () => cancel.abort(new Error("Canceled: context canceled"));
          process.once("SIGINT", onSignal);
          process.once("SIGTERM", onSignal);
          try {
            result = await engine.builder.build(
              {
                contextDir: path.resolve(contextDir),
                dockerfile: { text: dockerfileText, name: dockerfileName, dir: dockerfileDir },
                tags: o.tag,
                buildArgs: parseKeyValues(o.buildArg, "--build-arg", true),
                target: o.target,
                noCache: o.cache === false,
                pull: o.pull,
                labels: parseKeyValues(o.label, "--label"),
                network: o.network,
                secrets: await parseSecrets(o.secret),
                platform: o.platform ? parsePlatform(o.platform) : undefined,
                outputs: (o.output as string[]).map(parseOutput),
                checkOnly: !!o.check,
                signal: cancel.signal,
                listed: contextDir === context ? listed : undefined,
              },
              progress,
            );
          } catch (e) {
            const msg = cancel.signal.aborted
              ? "Canceled: context canceled"
              : e instanceof Error
                ? e.message
                : String(e);
            progress.failure(msg, dockerfileText.toString("utf8"), dockerfileName, e);
            ctx.io.err.write(`ERROR: failed to solve: ${msg}\n`);
            throw new ExitError(`failed to solve: ${msg}`, 1, true);
          } finally {
            process.off("SIGINT", onSignal);
            process.off("SIGTERM", onSignal);
          }
          const warnings = result.checks?.warnings ?? [];
          if (o.check) {
            const n = warnings.length;
            ctx.io.out.write(
              n
                ? `Check complete, ${n} warning${n === 1 ? " has" : "s have"} been found!\n`
                : "Check complete, no warnings found.\n",
            );
            const lines = dockerfileText.toString("utf8").split("\n");
            for (const w of warnings) {
              ctx.io.out.write(
                `WARNING: ${w.rule}${w.url ? ` - ${w.url}` : ""}\n${w.description}\n${dockerfileName}:${w.line}\n--------------------\n`,
              );
              for (let i = Math.max(1, w.line - 1); i <= Math.min(lines.length, w.endLine + 1); i++)
                ctx.io.out.write(
                  `${String(i).padStart(4)} | ${i >= w.line && i <= w.endLine ? ">>> " : "    "}${lines[i - 1]}\n`,
                );
              ctx.io.out.write(`--------------------\n${w.message}\n\n`);
            }
            if (result.checks?.failure) throw new ExitError(result.checks.failure);
            return;
          }
          if (warnings.length && !quiet) {
            ctx.io.err.write(
              `\n ${warnings.length} warning${warnings.length === 1 ? "" : "s"} found (use docker --debug to expand):\n`,
            );
            for (const w of warnings) ctx.io.err.write(` - ${w.rule}: ${w.message} (line ${w.line})\n`);
          }
          if (o.iidfile && result.id) await fsp.writeFile(o.iidfile, result.id);
          if (quiet && result.id) ctx.io.out.write(`${result.id}\n`);
        } finally {
          if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
        }
      });
  define(program.command("build"));
  const builder =
    program.commands.find((c) => c.name() === "builder") ??
    program.command("builder").description("Manage builds");
  define(builder.command("build"));
  builder
    .command("prune")
    .description("Remove build cache")
    .option("-a, --all", "Remove all unused build cache, not just dangling ones")
    .option("--filter <filter>", 'Provide filter values (e.g. "until=24h")', collect, [])
    .option("-f, --force", "Do not prompt for confirmation")
    .action(async (o) => {
      const { confirm } = await import("../output.js");
      if (
        !o.force &&
        !(await confirm(
          ctx.io,
          "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?",
        ))
      )
        return;
      const engine = await ctx.engine();
      const until = (o.filter as string[]).find((f) => f.startsWith("until="))?.slice(6);
      const r = await engine.pruneBuildCache({ all: o.all, until });
      const { humanSize4 } = await import("../../util/index.js");
      ctx.io.out.write(`Total:\t${humanSize4(r.reclaimed)}\n`);
    });
}
