import { promises as fsp } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { StrataError } from "../../util/index.js";

const actionSchema = z.enum(["pull", "push", "delete"]);
export type Action = z.infer<typeof actionSchema>;

const accessRuleSchema = z.strictObject({
  /** Repository name patterns: `*` within a component, `**` across components. */
  repositories: z.array(z.string().min(1)).min(1),
  users: z.array(z.string()).optional(),
  groups: z.array(z.string()).optional(),
  actions: z.array(actionSchema).min(1),
});
export type AccessRule = z.infer<typeof accessRuleSchema>;

const searchEntrySchema = z.strictObject({
  description: z.string().optional(),
  stars: z.number().int().min(0).optional(),
  official: z.boolean().optional(),
});

/** The config file, YAML or JSON. Every field is optional; flags override addr, root and TLS. */
export const registryConfigSchema = z.strictObject({
  addr: z.string().optional(),
  root: z.string().optional(),
  /** Serve anonymous read-write on a non-loopback address without auth. */
  insecureOpen: z.boolean().optional(),
  tls: z.strictObject({ cert: z.string(), key: z.string() }).optional(),
  storage: z.strictObject({ delete: z.boolean().optional() }).optional(),
  auth: z
    .strictObject({
      htpasswd: z.strictObject({ path: z.string(), realm: z.string().optional() }).optional(),
      token: z
        .strictObject({
          /** Where clients get tokens. Default: this server's own `/token`. */
          realm: z.string().optional(),
          service: z.string().optional(),
          issuer: z.string().optional(),
          /** PEM file of the external token service's public key or certificate: trust it. */
          publicKey: z.string().optional(),
          /** PEM private key (EC P-256 or RSA) our token service signs with; generated when absent. */
          signingKey: z.string().optional(),
          /** Token lifetime in seconds. */
          expiresIn: z.number().int().min(10).max(86_400).optional(),
        })
        .optional(),
    })
    .optional(),
  groups: z.record(z.string(), z.array(z.string())).optional(),
  access: z.array(accessRuleSchema).optional(),
  anonymous: z.strictObject({ pull: z.array(z.string()).optional() }).optional(),
  limits: z
    .strictObject({
      maxManifestSize: z.number().int().min(1024).optional(),
      maxBlobSize: z.number().int().min(1).optional(),
      headersTimeoutMs: z.number().int().min(100).optional(),
      idleTimeoutMs: z.number().int().min(100).optional(),
      chunkMinLength: z.number().int().min(0).optional(),
      failedLogins: z
        .strictObject({ max: z.number().int().min(1), windowSeconds: z.number().int().min(1) })
        .optional(),
      manifestCacheBytes: z.number().int().min(0).optional(),
    })
    .optional(),
  search: z.strictObject({ repositories: z.record(z.string(), searchEntrySchema).optional() }).optional(),
  log: z.strictObject({ requests: z.boolean().optional() }).optional(),
});
export type RegistryConfigFile = z.infer<typeof registryConfigSchema>;

/** What `startRegistryServer` takes: the file's settings plus the flags and a log sink. */
export interface RegistryConfig extends RegistryConfigFile {
  /** Where one line per request (and startup notes) go. Library code never prints. */
  log?: RegistryConfigFile["log"];
  logger?: (line: string) => void;
  /** Directory relative paths in the config file are resolved against. */
  baseDir?: string;
}

/** Every default in one place. */
export function resolveConfig(c: RegistryConfig) {
  const base = c.baseDir ?? process.cwd();
  const rel = (p: string | undefined) => (p === undefined ? undefined : path.resolve(base, p));
  const tokenCfg = c.auth?.token;
  return {
    addr: c.addr ?? "127.0.0.1:5000",
    root: rel(c.root) ?? path.resolve("registry-data"),
    insecureOpen: c.insecureOpen ?? false,
    tls: c.tls ? { cert: rel(c.tls.cert)!, key: rel(c.tls.key)! } : undefined,
    // Deleting is on by default: a private registry whose owner cannot delete is a trap.
    deleteEnabled: c.storage?.delete ?? true,
    htpasswd: c.auth?.htpasswd
      ? { path: rel(c.auth.htpasswd.path)!, realm: c.auth.htpasswd.realm ?? "Strata Registry" }
      : undefined,
    token: tokenCfg
      ? {
          realm: tokenCfg.realm,
          service: tokenCfg.service ?? "strata-registry",
          issuer: tokenCfg.issuer ?? "strata-registry-token-service",
          publicKey: rel(tokenCfg.publicKey),
          signingKey: rel(tokenCfg.signingKey),
          // Docker's token spec suggests short lives; clients refresh on 401.
          expiresIn: tokenCfg.expiresIn ?? 300,
        }
      : undefined,
    groups: c.groups ?? {},
    access: c.access,
    anonymousPull: c.anonymous?.pull ?? [],
    limits: {
      // Spec: registries should accept manifests of at least 4 MB.
      maxManifestSize: c.limits?.maxManifestSize ?? 4 * 1024 * 1024,
      maxBlobSize: c.limits?.maxBlobSize,
      // Slow-header clients (slowloris) are cut off after this long.
      headersTimeoutMs: c.limits?.headersTimeoutMs ?? 20_000,
      // A connection silent this long (mid-body included) is closed; uploads stay resumable.
      idleTimeoutMs: c.limits?.idleTimeoutMs ?? 120_000,
      // Announced in OCI-Chunk-Min-Length; the filesystem driver needs no minimum, so 0 unless set.
      chunkMinLength: c.limits?.chunkMinLength ?? 0,
      failedLogins: c.limits?.failedLogins ?? { max: 10, windowSeconds: 60 },
      manifestCacheBytes: c.limits?.manifestCacheBytes ?? 64 * 1024 * 1024,
    },
    search: c.search?.repositories ?? {},
    logRequests: c.log?.requests ?? true,
    logger: c.logger ?? (() => {}),
  };
}
export type ResolvedConfig = ReturnType<typeof resolveConfig>;

/** Read a YAML or JSON config file (YAML is a superset; `.json` files are parsed strictly). */
export async function loadConfigFile(file: string): Promise<RegistryConfig> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (e) {
    throw new StrataError("INVALID_ARGUMENT", `cannot read config file ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  let data: unknown;
  try {
    data = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new StrataError("INVALID_JSON", `config file ${file}: ${(e as Error).message}`, { cause: e });
  }
  const r = registryConfigSchema.safeParse(data ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new StrataError(
      "INVALID_JSON",
      `config file ${file}: ${i.path.join(".") || "(root)"}: ${i.message}`,
    );
  }
  return { ...r.data, baseDir: path.dirname(path.resolve(file)) };
}
