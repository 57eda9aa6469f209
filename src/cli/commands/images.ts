import { createReadStream, createWriteStream, promises as fsp } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { ImageSummaryRow } from "../../engine/index.js";
import { shortId } from "../../oci/index.js";
import { goTimeString, humanSize, humanSize4, StrataError, timeAgo } from "../../util/index.js";
import type { Context } from "../context.js";
import { collect, collectFilter, confirm, ExitError, ellipsis, renderRows } from "../output.js";
import { inspectContainerIfAny } from "./containers.js";

const IMAGE_HEADERS: Record<string, string> = {
  ID: "IMAGE ID",
  Repository: "REPOSITORY",
  Tag: "TAG",
  Digest: "DIGEST",
  CreatedSince: "CREATED",
  CreatedAt: "CREATED AT",
  Size: "SIZE",
  Containers: "CONTAINERS",
  SharedSize: "SHARED SIZE",
  UniqueSize: "UNIQUE SIZE",
  VirtualSize: "VIRTUAL SIZE",
};

function imageRowData(r: ImageSummaryRow, noTrunc: boolean) {
  return {
    Containers: "N/A",
    CreatedAt: r.created ? goTimeString(r.created) : "",
    CreatedSince: r.created ? timeAgo(r.created) : "N/A",
    Digest: r.digest,
    ID: noTrunc ? r.id : shortId(r.id),
    Repository: r.repository,
    SharedSize: "N/A",
    Size: humanSize(r.size),
    Tag: r.tag,
    UniqueSize: "N/A",
    VirtualSize: humanSize(r.size),
  };
}

function defineList(cmd: Command, ctx: Context) {
  return cmd
    .description("List images")
    .argument("[REPOSITORY[:TAG]]")
    .option("-a, --all", "Show all images (default hides intermediate images)")
    .option("--digests", "Show digests")
    .option("-f, --filter <filter>", "Filter output based on conditions provided", collectFilter)
    .option("--format <string>", "Format output using a custom template: 'table', 'json', or a Go template")
    .option("--no-trunc", "Don't truncate output")
    .option("-q, --quiet", "Only show image IDs")
    .action(async (reference: string | undefined, o) => {
      const engine = await ctx.engine();
      const rows = await engine.images.list({ all: o.all, filters: o.filter, reference });
      const noTrunc = o.trunc === false;
      if (o.quiet) {
        const seen = new Set<string>();
        for (const r of rows) {
          const id = noTrunc ? r.id : shortId(r.id);
          if (seen.has(id)) continue;
          seen.add(id);
          ctx.io.out.write(`${id}\n`);
        }
        return;
      }
      const def = o.digests
        ? "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        : "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
      ctx.io.out.write(
        renderRows(
          o.format,
          def,
          rows.map((r) => imageRowData(r, noTrunc)),
          IMAGE_HEADERS,
        ),
      );
    });
}

function defineTag(cmd: Command, ctx: Context) {
  return cmd
    .description("Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    .argument("<SOURCE_IMAGE[:TAG]>")
    .argument("<TARGET_IMAGE[:TAG]>")
    .action(async (src: string, dst: string) => {
      const engine = await ctx.engine();
      await engine.images.tag(src, dst);
    });
}

function defineRmi(cmd: Command, ctx: Context) {
  return cmd
    .description("Remove one or more images")
    .argument("<IMAGE...>")
    .option("-f, --force", "Force removal of the image")
    .option("--no-prune", "Do not delete untagged parents")
    .action(async (images: string[], o) => {
      const engine = await ctx.engine();
      const { lines, errors } = await engine.images.remove(images, {
        force: o.force,
        noPrune: o.prune === false,
      });
      for (const l of lines) ctx.io.out.write(`${l}\n`);
      if (errors.length) {
        for (const e of errors.slice(0, -1)) ctx.io.err.write(`Error: ${e.message}\n`);
        throw new ExitError(errors[errors.length - 1]!.message);
      }
    });
}

function defineInspect(cmd: Command, ctx: Context) {
  return cmd
    .description("Display detailed information on one or more images")
    .argument("<IMAGE...>")
    .option("-f, --format <string>", "Format output using a custom template: 'json', or a Go template")
    .option("--type <string>", "Return JSON for specified type (container or image)")
    .action(async (images: string[], o) => {
      const engine = await ctx.engine();
      const found: Record<string, unknown>[] = [];
      const errors: string[] = [];
      for (const a of images) {
        try {
          // Like docker's inspect without --type: a container of that name or ID first, then an image.
          const onlyImages = o.type === "image" || cmd.parent?.name() === "image";
          const ctr = onlyImages ? undefined : await inspectContainerIfAny(ctx, a);
          if (ctr) {
            found.push(ctr);
            continue;
          }
          if (o.type === "container") throw new StrataError("CONTAINER_NOT_FOUND", `No such container: ${a}`);
          found.push(await engine.images.inspect(a));
        } catch (e) {
          if (e instanceof StrataError && e.code === "IMAGE_NOT_FOUND") errors.push(`No such image: ${a}`);
          else if (e instanceof StrataError && e.code === "CONTAINER_NOT_FOUND") errors.push(e.message);
          else throw e;
        }
      }
      if (!o.format || o.format === "json") {
        ctx.io.out.write(`${JSON.stringify(found, null, 4)}\n`);
      } else {
        const { parseTemplate } = await import("../../util/index.js");
        const t = parseTemplate(o.format);
        for (const f of found) ctx.io.out.write(`${t.execute(f)}\n`);
      }
      if (errors.length) {
        for (const e of errors.slice(0, -1)) ctx.io.err.write(`Error: ${e}\n`);
        throw new ExitError(errors[errors.length - 1]!);
      }
    });
}

function defineHistory(cmd: Command, ctx: Context) {
  return cmd
    .description("Show the history of an image")
    .argument("<IMAGE>")
    .option("--format <string>", "Format output using a custom template")
    .option("-H, --human [bool]", "Print sizes and dates in human readable format", parseBool, true)
    .option("--no-trunc", "Don't truncate output")
    .option("-q, --quiet", "Only show image IDs")
    .action(async (image: string, o) => {
      const engine = await ctx.engine();
      const rows = await engine.images.history(image);
      const noTrunc = o.trunc === false;
      const human = o.human !== false;
      const data = rows.map((r) => {
        const createdBy = r.createdBy.replaceAll("\t", " ");
        return {
          ID: r.id === "<missing>" ? r.id : noTrunc ? r.id : shortId(r.id),
          CreatedSince: r.created
            ? human
              ? timeAgo(r.created)
              : new Date(r.created).toISOString().replace(/\.\d{3}Z$/, "Z")
            : "N/A",
          CreatedAt: r.created ? new Date(r.created).toISOString().replace(/\.\d{3}Z$/, "Z") : "",
          CreatedBy: noTrunc ? createdBy : ellipsis(createdBy, 45),
          Size: human ? humanSize(r.size) : String(r.size),
          Comment: r.comment,
        };
      });
      if (o.quiet) {
        for (const d of data) ctx.io.out.write(`${d.ID}\n`);
        return;
      }
      ctx.io.out.write(
        renderRows(
          o.format,
          "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
          data,
          {
            ID: "IMAGE",
            CreatedSince: "CREATED",
            CreatedAt: "CREATED AT",
            CreatedBy: "CREATED BY",
            Size: "SIZE",
            Comment: "COMMENT",
          },
        ),
      );
    });
}

function parseBool(v: string | undefined): boolean {
  if (v === undefined) return true;
  // pflag accepts -H=false; commander hands the short option "=false".
  v = v.replace(/^=/, "");
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw new ExitError(
    `invalid argument "${v}" for "-H, --human" flag: strconv.ParseBool: parsing "${v}": invalid syntax`,
    125,
  );
}

function definePrune(cmd: Command, ctx: Context) {
  return cmd
    .description("Remove unused images")
    .option("-a, --all", "Remove all unused images, not just dangling ones")
    .option("--filter <filter>", 'Provide filter values (e.g. "until=<timestamp>")', collectFilter)
    .option("-f, --force", "Do not prompt for confirmation")
    .action(async (o) => {
      if (!o.force) {
        const warning = o.all
          ? "WARNING! This will remove all images without at least one container associated to them."
          : "WARNING! This will remove all dangling images.";
        if (!(await confirm(ctx.io, `${warning}\nAre you sure you want to continue?`))) return;
      }
      const engine = await ctx.engine();
      const { lines, reclaimed } = await engine.images.prune({ all: o.all, filters: o.filter });
      if (lines.length) ctx.io.out.write(`Deleted Images:\n${lines.join("\n")}\n\n`);
      ctx.io.out.write(`Total reclaimed space: ${humanSize4(reclaimed)}\n`);
    });
}

function defineImport(cmd: Command, ctx: Context) {
  return cmd
    .description("Import the contents from a tarball to create a filesystem image")
    .argument("<file|URL|->")
    .argument("[REPOSITORY[:TAG]]")
    .option("-c, --change <instruction>", "Apply Dockerfile instruction to the created image", collect, [])
    .option("-m, --message <string>", "Set commit message for imported image")
    .option("--platform <string>", "Set platform if server is multi-platform capable")
    .action(async (source: string, reference: string | undefined, o) => {
      const engine = await ctx.engine();
      let input: NodeJS.ReadableStream;
      let sourceName = "-";
      if (source === "-") input = ctx.io.stdin;
      else if (/^https?:\/\//.test(source)) {
        input = await engine.openUrl(source);
        sourceName = source;
      } else {
        await fsp.access(source).catch(() => {
          throw new ExitError(`open ${source}: no such file or directory`);
        });
        input = createReadStream(source, { highWaterMark: 1 << 20 });
      }
      const config = o.change.length ? await engine.changesToConfig(o.change) : undefined;
      const id = await engine.images.import(input, { reference, config, message: o.message, sourceName });
      ctx.io.out.write(`${id}\n`);
    });
}

function defineSave(cmd: Command, ctx: Context) {
  return cmd
    .description("Save one or more images to a tar archive (streamed to STDOUT by default)")
    .argument("<IMAGE...>")
    .option("-o, --output <string>", "Write to a file, instead of STDOUT")
    .option("--platform <string>", "Save only the given platform variant")
    .action(async (images: string[], o) => {
      const engine = await ctx.engine();
      if (!o.output) {
        if (ctx.io.stdoutIsTTY)
          throw new ExitError("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        await engine.images.save(images, ctx.io.out);
        return;
      }
      const dest = path.resolve(o.output);
      const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.tmp`);
      try {
        // Resolve every name first: an unknown image fails before a file appears.
        for (const i of images) await engine.images.get(i);
        await engine.images.save(images, createWriteStream(tmp));
        await fsp.rename(tmp, dest);
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
    });
}

function defineLoad(cmd: Command, ctx: Context) {
  return cmd
    .description("Load an image from a tar archive or STDIN")
    .option("-i, --input <string>", "Read from tar archive file, instead of STDIN")
    .option("-q, --quiet", "Suppress the load output")
    .option("--platform <string>", "Load only the given platform variant")
    .action(async (o) => {
      const engine = await ctx.engine();
      let input: NodeJS.ReadableStream | string;
      if (o.input) {
        await fsp.access(o.input).catch(() => {
          throw new ExitError(`open ${o.input}: no such file or directory`);
        });
        input = o.input;
      } else {
        if (ctx.io.stdin.isTTY) throw new ExitError("requested load from stdin, but stdin is empty");
        input = ctx.io.stdin;
      }
      const { parsePlatform } = await import("../../oci/index.js");
      const lines = await engine.images.load(input, {
        platform: o.platform ? parsePlatform(o.platform) : undefined,
      });
      for (const l of lines) ctx.io.out.write(`${l}\n`);
    });
}

/** The image commands, at top level (docker images, rmi, …) and under `image`. */
export function registerImageCommands(program: Command, ctx: Context): void {
  defineList(program.command("images"), ctx);
  defineTag(program.command("tag"), ctx);
  defineRmi(program.command("rmi"), ctx);
  defineInspect(program.command("inspect"), ctx);
  defineHistory(program.command("history"), ctx);
  defineImport(program.command("import"), ctx);
  defineSave(program.command("save"), ctx);
  defineLoad(program.command("load"), ctx);

  const image = program.command("image").description("Manage images");
  defineList(image.command("ls").alias("list"), ctx);
  defineTag(image.command("tag"), ctx);
  defineRmi(image.command("rm").alias("remove"), ctx);
  defineInspect(image.command("inspect"), ctx);
  defineHistory(image.command("history"), ctx);
  definePrune(image.command("prune"), ctx);
  defineImport(image.command("import"), ctx);
  defineSave(image.command("save"), ctx);
  defineLoad(image.command("load"), ctx);
}
