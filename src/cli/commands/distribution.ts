import type { Command } from "commander";
import type { ProgressEvent, SearchResult } from "../../engine/index.js";
import { isNameOnly, parseNormalizedNamed } from "../../reference/index.js";
import { StrataError } from "../../util/index.js";
import type { Context } from "../context.js";
import { JsonMessageRenderer } from "../jsonmessage.js";
import { collectFilter, ExitError, ellipsis, renderRows } from "../output.js";

function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1)
      throw new StrataError("INVALID_ARGUMENT", `invalid argument "${v}" for "${flag}" flag`);
    return n;
  };
}

/** A writable that forgets everything (`-q`). */
const discard = { write: () => true } as unknown as NodeJS.WritableStream;

/** Would docker add `:latest` (and say so)? Only for a name without tag or digest. */
function nameOnly(name: string): boolean {
  try {
    return isNameOnly(parseNormalizedNamed(name));
  } catch {
    return false;
  }
}

function renderer(ctx: Context, quiet: boolean): (e: ProgressEvent) => void {
  const r = new JsonMessageRenderer(quiet ? discard : ctx.io.out, {
    isTerminal: !quiet && ctx.io.stdoutIsTTY,
  });
  return (e) => r.write(e);
}

function definePull(cmd: Command, ctx: Context) {
  return cmd
    .description("Download an image from a registry")
    .argument("<NAME[:TAG|@DIGEST]>")
    .option("-a, --all-tags", "Download all tagged images in the repository")
    .option("--disable-content-trust [bool]", "Skip image verification", true)
    .option("--platform <string>", "Set platform if server is multi-platform capable")
    .option("-q, --quiet", "Suppress verbose output")
    .option(
      "--max-concurrent-downloads <int>",
      "Layers downloaded at once (default 3, or max-concurrent-downloads in Strata's config)",
      positiveInt("--max-concurrent-downloads"),
    )
    .action(async (name: string, o) => {
      const engine = await ctx.engine();
      if (!o.allTags && nameOnly(name) && !o.quiet) ctx.io.out.write("Using default tag: latest\n");
      const r = await engine.distribution.pull(name, {
        allTags: o.allTags,
        platform: o.platform,
        maxConcurrentDownloads: o.maxConcurrentDownloads,
        onProgress: renderer(ctx, !!o.quiet),
      });
      ctx.io.out.write(`${r.canonical}\n`);
    });
}

function definePush(cmd: Command, ctx: Context) {
  return cmd
    .description("Upload an image to a registry")
    .argument("<NAME[:TAG]>")
    .option("-a, --all-tags", "Push all tagged images in the repository")
    .option("--disable-content-trust [bool]", "Skip image signing", true)
    .option("-q, --quiet", "Suppress verbose output")
    .option(
      "--max-concurrent-uploads <int>",
      "Layers uploaded at once (default 5, or max-concurrent-uploads in Strata's config)",
      positiveInt("--max-concurrent-uploads"),
    )
    .action(async (name: string, o) => {
      const engine = await ctx.engine();
      if (!o.allTags && nameOnly(name) && !o.quiet) ctx.io.out.write("Using default tag: latest\n");
      const r = await engine.distribution.push(name, {
        allTags: o.allTags,
        maxConcurrentUploads: o.maxConcurrentUploads,
        onProgress: renderer(ctx, !!o.quiet),
      });
      if (o.quiet) ctx.io.out.write(`${r.canonical}\n`);
    });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer | string>) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString("utf8");
}

/** Prompt on the terminal; with `hide`, echo nothing (a password). */
async function prompt(ctx: Context, question: string, hide: boolean): Promise<string> {
  const stdin = ctx.io.stdin as NodeJS.ReadStream;
  ctx.io.out.write(question);
  const raw = hide && typeof stdin.setRawMode === "function";
  if (raw) stdin.setRawMode(true);
  try {
    return await new Promise<string>((resolve, reject) => {
      let buf = "";
      const onData = (c: Buffer | string) => {
        for (const ch of c.toString()) {
          if (ch === "\u0003") {
            cleanup();
            return reject(new ExitError("interrupted", 130));
          }
          if (ch === "\r" || ch === "\n") {
            cleanup();
            if (hide) ctx.io.out.write("\n");
            return resolve(buf);
          }
          if (ch === "\u007f") buf = buf.slice(0, -1);
          else buf += ch;
        }
      };
      const onEnd = () => {
        cleanup();
        resolve(buf);
      };
      const cleanup = () => {
        stdin.off("data", onData);
        stdin.off("end", onEnd);
        stdin.pause();
      };
      stdin.on("data", onData);
      stdin.on("end", onEnd);
      stdin.resume();
    });
  } finally {
    if (raw) stdin.setRawMode(false);
  }
}

const UNENCRYPTED_WARNING = (file: string) =>
  `WARNING! Your password will be stored unencrypted in ${file}.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credentials-store\n\n`;

function defineLogin(cmd: Command, ctx: Context) {
  return cmd
    .description("Log in to a registry (Docker Hub when no server is given)")
    .argument("[SERVER]")
    .option("-p, --password <string>", "Password")
    .option("--password-stdin", "Take the password from stdin")
    .option("-u, --username <string>", "Username")
    .action(async (server: string | undefined, o) => {
      const engine = await ctx.engine();
      let username: string | undefined = o.username;
      let password: string | undefined = o.password;
      if (password !== undefined) {
        ctx.io.err.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n");
        if (o.passwordStdin) throw new ExitError("--password and --password-stdin are mutually exclusive");
      }
      if (o.passwordStdin) {
        if (!username) throw new ExitError("Must provide --username with --password-stdin");
        password = (await readAll(ctx.io.stdin)).replace(/\n$/, "").replace(/\r$/, "");
      }
      const d = engine.distribution;
      if (username === undefined && password === undefined) {
        // docker first tries what is stored, then asks.
        if (await d.hasStoredCredentials(server)) {
          ctx.io.out.write("Authenticating with existing credentials...\n");
          try {
            await d.login(server, undefined);
            ctx.io.out.write("Login Succeeded\n");
            return;
          } catch (e) {
            ctx.io.err.write(`Login did not succeed, error: ${(e as Error).message}\n`);
          }
        }
      }
      if (username === undefined || password === undefined) {
        if (!ctx.io.stdin.isTTY)
          throw new ExitError("Cannot perform an interactive login from a non TTY device");
        if (username === undefined) username = (await prompt(ctx, "Username: ", false)).trim();
        if (!username) throw new ExitError("Username cannot be empty");
        if (password === undefined) password = await prompt(ctx, "Password: ", true);
        if (!password) throw new ExitError("Password Required");
      }
      const r = await d.login(server, { username, password });
      if ("file" in r.storedIn) ctx.io.err.write(UNENCRYPTED_WARNING(r.storedIn.file));
      ctx.io.out.write("Login Succeeded\n");
    });
}

function defineLogout(cmd: Command, ctx: Context) {
  return cmd
    .description("Log out from a registry (Docker Hub when no server is given)")
    .argument("[SERVER]")
    .action(async (server: string | undefined) => {
      const engine = await ctx.engine();
      const r = await engine.distribution.logout(server);
      if (!r.removed) ctx.io.out.write(`Not logged in to ${r.serverAddress}\n`);
      else ctx.io.out.write(`Removing login credentials for ${r.serverAddress}\n`);
    });
}

const SEARCH_HEADERS: Record<string, string> = {
  Name: "NAME",
  Description: "DESCRIPTION",
  StarCount: "STARS",
  IsOfficial: "OFFICIAL",
  IsAutomated: "AUTOMATED",
};

function searchRow(r: SearchResult, trunc: boolean) {
  let description = r.description.replace(/\n/g, " ").replace(/\r/g, " ");
  if (trunc) description = ellipsis(description, 45);
  return {
    Name: r.name,
    Description: description,
    StarCount: String(r.star_count),
    IsOfficial: r.is_official ? "[OK]" : "",
    IsAutomated: r.is_automated ? "[OK]" : "",
  };
}

function defineSearch(cmd: Command, ctx: Context) {
  return cmd
    .description("Search Docker Hub for images")
    .argument("<TERM>")
    .option("-f, --filter <filter>", "Filter output based on conditions provided", collectFilter)
    .option("--format <string>", "Pretty-print search using a Go template")
    .option("--limit <int>", "Max number of search results", (v: string) => {
      if (!/^-?\d+$/.test(v))
        throw new StrataError("INVALID_ARGUMENT", `invalid argument "${v}" for "--limit" flag`);
      return Number(v);
    })
    .option("--no-trunc", "Don't truncate output")
    .action(async (term: string, o) => {
      const engine = await ctx.engine();
      const results = await engine.distribution.search(term, { limit: o.limit, filters: o.filter });
      const rows = results.map((r) => searchRow(r, o.trunc !== false));
      ctx.io.out.write(
        renderRows(
          o.format,
          "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
          rows,
          SEARCH_HEADERS,
        ),
      );
    });
}

/** `pull`, `push`, `login`, `logout`, `search` (and `image pull|push`), with docker's flags and output. */
export function registerDistributionCommands(program: Command, ctx: Context): void {
  definePull(program.command("pull"), ctx);
  definePush(program.command("push"), ctx);
  defineLogin(program.command("login"), ctx);
  defineLogout(program.command("logout"), ctx);
  defineSearch(program.command("search"), ctx);
  const image = program.commands.find((c) => c.name() === "image");
  if (image) {
    definePull(image.command("pull"), ctx);
    definePush(image.command("push"), ctx);
  }
}
