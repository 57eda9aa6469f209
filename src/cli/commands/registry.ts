import os from "node:os";
import path from "node:path";
import { type Command, Option } from "commander";
import type { RegistryConfig } from "../../registry/server/index.js";

/** The server's modules (jose, yaml, bcrypt) load only when a registry command runs. */
const serverModule = () => import("../../registry/server/index.js");

import { humanSize, StrataError } from "../../util/index.js";

/** Default registry root: never the image store's root (DESIGN §3). */
function defaultRegistryRoot(): string {
  if (process.env.STRATA_REGISTRY_ROOT) return process.env.STRATA_REGISTRY_ROOT;
  if (process.getuid?.() === 0) return "/var/lib/strata-registry";
  return path.join(os.homedir(), ".local/share/strata-registry");
}

/** `--root` may have been taken by the program's own (store) option: read both. */
function rootOf(cmd: Command, config?: RegistryConfig): string {
  const o = cmd.optsWithGlobals() as { registryRoot?: string; root?: string };
  return path.resolve(o.root ?? config?.root ?? defaultRegistryRoot());
}

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m)
    throw new StrataError(
      "INVALID_ARGUMENT",
      `invalid duration ${JSON.stringify(s)} (want e.g. 30s, 10m, 1h)`,
    );
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "s"]!;
  return Number(m[1]) * unit;
}

/** `strata registry serve|gc|fsck`. */
export function registerRegistryCommands(program: Command): void {
  const registry = program.command("registry").description("Run and maintain an OCI distribution registry");

  registry
    .command("serve")
    .description("Serve an OCI distribution registry")
    .addOption(new Option("--addr <host:port>", "Address to listen on (default 127.0.0.1:5000)"))
    .addOption(new Option("--root <dir>", "Registry storage directory"))
    .addOption(
      new Option("--config <file>", "Config file (YAML or JSON): auth, access rules, TLS, limits, search"),
    )
    .addOption(new Option("--tls-cert <file>", "TLS certificate (PEM)"))
    .addOption(new Option("--tls-key <file>", "TLS private key (PEM)"))
    .addOption(new Option("--insecure-open", "Allow anonymous read-write access on a non-loopback address"))
    .action(
      async (
        opts: { addr?: string; config?: string; tlsCert?: string; tlsKey?: string; insecureOpen?: boolean },
        cmd: Command,
      ) => {
        const file = opts.config ? await (await serverModule()).loadConfigFile(opts.config) : {};
        if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
          throw new StrataError("INVALID_ARGUMENT", "--tls-cert and --tls-key go together");
        const config: RegistryConfig = {
          ...file,
          addr: opts.addr ?? file.addr,
          root: rootOf(cmd, file),
          insecureOpen: opts.insecureOpen ?? file.insecureOpen,
          tls:
            opts.tlsCert && opts.tlsKey
              ? { cert: path.resolve(opts.tlsCert), key: path.resolve(opts.tlsKey) }
              : file.tls,
          logger: (line) => process.stderr.write(`${line}\n`),
        };
        const server = await (await serverModule()).startRegistryServer(config);
        process.stdout.write(`Strata registry listening on ${server.url} (root ${config.root})\n`);
        await new Promise<void>((resolve) => {
          const stop = (sig: string) => {
            process.stderr.write(`${sig}: finishing in-flight requests\n`);
            server.close().then(resolve, resolve);
          };
          process.once("SIGTERM", () => stop("SIGTERM"));
          process.once("SIGINT", () => stop("SIGINT"));
        });
      },
    );

  registry
    .command("gc")
    .description("Delete blobs (and with --delete-untagged, manifests) that nothing references")
    .addOption(new Option("--root <dir>", "Registry storage directory"))
    .addOption(new Option("--config <file>", "Config file (its root is used when --root is not given)"))
    .addOption(new Option("--dry-run", "Print what would be deleted, delete nothing"))
    .addOption(new Option("--delete-untagged", "Also delete manifests that no tag reaches"))
    .addOption(
      new Option(
        "--grace-period <duration>",
        "Keep anything younger than this (a push may be in progress)",
      ).default("1h"),
    )
    .action(
      async (
        opts: { config?: string; dryRun?: boolean; deleteUntagged?: boolean; gracePeriod: string },
        cmd: Command,
      ) => {
        const file = opts.config ? await (await serverModule()).loadConfigFile(opts.config) : undefined;
        const report = await (await serverModule()).collectGarbage(rootOf(cmd, file), {
          dryRun: opts.dryRun,
          deleteUntagged: opts.deleteUntagged,
          gracePeriodMs: parseDuration(opts.gracePeriod),
          onEvent: (line) => process.stdout.write(`${opts.dryRun ? "would " : ""}${line}\n`),
        });
        process.stdout.write(
          `${opts.dryRun ? "Would delete" : "Deleted"} ${report.manifestsDeleted.length} manifests, ${report.blobsDeleted.length} blobs (${humanSize(report.bytesFreed)}), ${report.linksDeleted} links, ${report.uploadsPurged} stale uploads; kept ${report.blobsKept} blobs\n`,
        );
      },
    );

  registry
    .command("fsck")
    .description("Verify every blob's digest and every link, tag and manifest reference")
    .addOption(new Option("--root <dir>", "Registry storage directory"))
    .addOption(new Option("--config <file>", "Config file (its root is used when --root is not given)"))
    .action(async (opts: { config?: string }, cmd: Command) => {
      const file = opts.config ? await (await serverModule()).loadConfigFile(opts.config) : undefined;
      const r = await (await serverModule()).checkRegistry(rootOf(cmd, file), {
        onEvent: (line) => process.stdout.write(`${line}\n`),
      });
      process.stdout.write(
        `${r.repositories} repositories, ${r.manifests} manifests, ${r.blobs} blobs, ${r.uploads} uploads in progress: ${r.problems.length} problems\n`,
      );
      if (r.problems.length)
        throw new StrataError("STORE_CORRUPT", `registry check found ${r.problems.length} problems`);
    });
}
