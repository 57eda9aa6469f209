import { createRequire } from "node:module";
import type { z as Z } from "zod";
import { StrataError } from "../util/index.js";
import { type Digest, digestOf, parseDigest } from "./digest.js";
import { MediaType } from "./mediatypes.js";

/**
 * Validating parsers for untrusted OCI / Docker JSON. Each keeps the raw bytes beside the
 * parsed value: digests are always computed from the bytes, never from re-serialised JSON.
 * Unknown fields pass through (Docker configs carry many), known fields are type-checked,
 * and errors name the field: `invalid image config: config.Env.1: expected string`.
 */

/** The schemas, built on first use: zod loads only when a document is validated (CLI start-up). */
function buildSchemas(z: typeof Z) {
  const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
  const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$/;

  const mediaType = z.string().regex(MEDIA_TYPE_RE, "invalid media type");
  const digest = z.string().superRefine((s, ctx) => {
    try {
      parseDigest(s, { allowUnknown: true });
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
    }
  });
  const size = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
  const stringMap = z.record(z.string(), z.string());
  /** Go's encoding/json decodes null into a nil slice or map: Docker writes such nulls. */
  const nullable = <T extends Z.ZodType>(t: T) => t.nullable().optional();

  const platformSchema = z.looseObject({
    architecture: z.string(),
    os: z.string(),
    "os.version": z.string().optional(),
    "os.features": z.array(z.string()).optional(),
    variant: z.string().optional(),
    features: z.array(z.string()).optional(),
  });

  const descriptorSchema = z.looseObject({
    mediaType,
    digest,
    size,
    urls: z.array(z.string().regex(URI_RE, "invalid URI")).optional(),
    annotations: stringMap.optional(),
    data: z.string().regex(BASE64_RE, "invalid base64").optional(),
    platform: platformSchema.optional(),
    artifactType: mediaType.optional(),
  });

  const manifestSchema = z.looseObject({
    schemaVersion: z.literal(2),
    mediaType: z.enum([MediaType.OciManifest, MediaType.DockerManifest]).optional(),
    artifactType: mediaType.optional(),
    config: descriptorSchema,
    layers: z.array(descriptorSchema),
    subject: descriptorSchema.optional(),
    annotations: stringMap.optional(),
  });

  const indexSchema = z.looseObject({
    schemaVersion: z.literal(2),
    mediaType: z.enum([MediaType.OciIndex, MediaType.DockerManifestList]).optional(),
    artifactType: mediaType.optional(),
    manifests: z.array(descriptorSchema),
    subject: descriptorSchema.optional(),
    annotations: stringMap.optional(),
  });

  const healthcheckSchema = z.looseObject({
    Test: nullable(z.array(z.string())),
    Interval: z.number().optional(),
    Timeout: z.number().optional(),
    StartPeriod: z.number().optional(),
    StartInterval: z.number().optional(),
    Retries: z.number().optional(),
  });

  const containerConfigSchema = z.looseObject({
    User: z.string().optional(),
    ExposedPorts: nullable(z.record(z.string(), z.looseObject({}))),
    Env: nullable(z.array(z.string().regex(/^[^=]+=/, "environment entry must be NAME=value"))),
    Entrypoint: nullable(z.array(z.string())),
    Cmd: nullable(z.array(z.string())),
    Volumes: nullable(z.record(z.string(), z.looseObject({}))),
    WorkingDir: z.string().optional(),
    Labels: nullable(stringMap),
    StopSignal: z.string().optional(),
    ArgsEscaped: z.boolean().optional(),
    Healthcheck: nullable(healthcheckSchema),
    OnBuild: nullable(z.array(z.string())),
    Shell: nullable(z.array(z.string())),
  });

  const historySchema = z.looseObject({
    created: z.string().optional(),
    created_by: z.string().optional(),
    author: z.string().optional(),
    comment: z.string().optional(),
    empty_layer: z.boolean().optional(),
  });

  const imageConfigSchema = z.looseObject({
    created: z.string().optional(),
    author: z.string().optional(),
    architecture: z.string(),
    os: z.string(),
    "os.version": z.string().optional(),
    "os.features": z.array(z.string()).optional(),
    variant: z.string().optional(),
    config: nullable(containerConfigSchema),
    rootfs: z.looseObject({ type: z.literal("layers"), diff_ids: z.array(digest) }),
    history: nullable(z.array(historySchema)),
  });

  const layoutSchema = z.looseObject({ imageLayoutVersion: z.literal("1.0.0") });
  return {
    platformSchema,
    descriptorSchema,
    manifestSchema,
    indexSchema,
    healthcheckSchema,
    containerConfigSchema,
    historySchema,
    imageConfigSchema,
    layoutSchema,
  };
}

const requireCjs = createRequire(import.meta.url);
type Schemas = ReturnType<typeof buildSchemas>;
let built: Schemas | undefined;
/** The validating schemas (zod), loaded on first use. */
export function schemas(): Schemas {
  built ??= buildSchemas((requireCjs("zod") as { z: typeof Z }).z);
  return built;
}

/** zod itself, for modules that validate their own documents (loaded on first use). */
export function zod(): typeof Z {
  return (requireCjs("zod") as { z: typeof Z }).z;
}

export type Platform = Z.infer<Schemas["platformSchema"]>;

export type Descriptor = Z.infer<Schemas["descriptorSchema"]> & { digest: Digest };

export type Manifest = Z.infer<Schemas["manifestSchema"]> & {
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
};

export type Index = Z.infer<Schemas["indexSchema"]> & {
  manifests: Descriptor[];
  subject?: Descriptor;
};

export type ContainerConfig = Z.infer<Schemas["containerConfigSchema"]>;

export type History = Z.infer<Schemas["historySchema"]>;

export type ImageConfig = Z.infer<Schemas["imageConfigSchema"]> & {
  rootfs: { type: "layers"; diff_ids: Digest[] };
};

/** rootfs.diff_ids typed as digests (validated by the schema). */
export function diffIdsOf(c: ImageConfig): Digest[] {
  return c.rootfs.diff_ids as Digest[];
}

/** A parsed document with the exact bytes it came from and their digest. */
export interface Parsed<T> {
  value: T;
  raw: Buffer;
  digest: Digest;
}

/** Manifests and configs are small; anything bigger is hostile (registries use 4 MiB). */
export const MAX_DOCUMENT_SIZE = 4 * 1024 * 1024;

function formatIssues(err: Z.ZodError): string {
  const first = err.issues[0];
  if (!first) return "invalid";
  const where = first.path.length ? `${first.path.join(".")}: ` : "";
  return `${where}${first.message}`;
}

function parseJson(raw: Buffer | string, what: string, limit = MAX_DOCUMENT_SIZE): unknown {
  const buf = typeof raw === "string" ? Buffer.from(raw) : raw;
  if (buf.length > limit)
    throw new StrataError("TOO_LARGE", `${what} is ${buf.length} bytes, over the limit of ${limit}`);
  try {
    return JSON.parse(buf.toString("utf8"));
  } catch (e) {
    throw new StrataError("INVALID_JSON", `invalid ${what}: ${(e as Error).message}`);
  }
}

function validate<T>(schema: Z.ZodType, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new StrataError("INVALID_JSON", `invalid ${what}: ${formatIssues(r.error)}`);
  return r.data as T;
}

function parsed<T>(value: T, raw: Buffer | string): Parsed<T> {
  const buf = typeof raw === "string" ? Buffer.from(raw) : raw;
  return { value, raw: buf, digest: digestOf(buf) };
}

export interface ParseOptions {
  /** Also apply the JSON schema's rules that real-world documents break (manifest with no layers). */
  strictSchema?: boolean;
}

export function parseManifest(raw: Buffer | string, opts: ParseOptions = {}): Parsed<Manifest> {
  const v = validate<Manifest>(schemas().manifestSchema, parseJson(raw, "image manifest"), "image manifest");
  if (opts.strictSchema && v.layers.length === 0)
    throw new StrataError("INVALID_JSON", "invalid image manifest: layers: expected at least one layer");
  return parsed(v, raw);
}

export function parseIndex(raw: Buffer | string): Parsed<Index> {
  return parsed(validate<Index>(schemas().indexSchema, parseJson(raw, "image index"), "image index"), raw);
}

export function parseImageConfig(raw: Buffer | string): Parsed<ImageConfig> {
  return parsed(
    validate<ImageConfig>(schemas().imageConfigSchema, parseJson(raw, "image config"), "image config"),
    raw,
  );
}

export function parseDescriptor(value: unknown): Descriptor {
  return validate<Descriptor>(schemas().descriptorSchema, value, "descriptor");
}

export function parseLayout(raw: Buffer | string): { imageLayoutVersion: "1.0.0" } {
  return validate(schemas().layoutSchema, parseJson(raw, "oci-layout"), "oci-layout");
}

/** Generic validation of any untrusted JSON document against a schema, with field paths in errors. */
export function parseJsonDocument<T>(
  raw: Buffer | string,
  schema: Z.ZodType,
  what: string,
  limit?: number,
): T {
  return validate<T>(schema, parseJson(raw, what, limit), what);
}

/** A manifest or index, told apart by mediaType (or by shape when mediaType is absent). */
export type AnyManifest = { kind: "manifest"; doc: Parsed<Manifest> } | { kind: "index"; doc: Parsed<Index> };

export function parseAnyManifest(raw: Buffer, contentType?: string): AnyManifest {
  const json = parseJson(raw, "manifest") as { mediaType?: unknown; manifests?: unknown };
  const mt = typeof json?.mediaType === "string" ? json.mediaType : contentType;
  if (
    mt === MediaType.OciIndex ||
    mt === MediaType.DockerManifestList ||
    (mt === undefined && json?.manifests)
  )
    return { kind: "index", doc: parsed(validate<Index>(schemas().indexSchema, json, "image index"), raw) };
  if (mt === MediaType.DockerManifestV1Signed || (json as { schemaVersion?: unknown })?.schemaVersion === 1)
    throw new StrataError("UNSUPPORTED", "image manifest schema version 1 is not supported");
  return {
    kind: "manifest",
    doc: parsed(validate<Manifest>(schemas().manifestSchema, json, "image manifest"), raw),
  };
}
