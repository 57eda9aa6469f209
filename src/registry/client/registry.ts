import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import {
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestHex,
  digestOf,
  MAX_DOCUMENT_SIZE,
} from "../../oci/index.js";
import { registryHost } from "../../reference/index.js";
import { errorMessage, readAllLimited, StrataError } from "../../util/index.js";
import { type Challenge, parseChallenges } from "./challenge.js";
import { type AuthConfig, credentialsKey } from "./credentials.js";
import { registryError } from "./errors.js";
import { SingleFlight } from "./limiter.js";
import { isInsecureRegistry, type ResolvedClientOptions } from "./options.js";
import { update } from "./progress.js";
import {
  backoffMs,
  goMethod,
  type HttpRequest,
  type HttpResponse,
  isTlsError,
  isTransientNetworkError,
  type RequestBody,
  requestError,
  sleep,
  type Transport,
} from "./transport.js";

/** The Accept header for manifests: every image manifest and index kind Strata reads. */
export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

interface Endpoint {
  /** `https://host` or `http://host`. */
  base: string;
  /** The /v2/ ping's challenge; undefined when the registry needs no auth. */
  challenge?: Challenge;
}

interface CachedToken {
  token: string;
  expiresAt: number;
  /** An OAuth2 refresh token, when one was asked for (`offline`) and given. */
  refreshToken?: string;
}

/** A fetched manifest or index: the exact bytes, their digest and the media type. */
export interface RawManifest {
  raw: Buffer;
  digest: Digest;
  mediaType: string;
}

export interface RequestOptions {
  /** Retry 429/5xx and dropped connections (idempotent requests). Default true. */
  retry?: boolean;
  /** How retries are described in progress lines. */
  what?: string;
}

/**
 * One registry, as seen from the client: how to reach it (https, or http for insecure
 * registries after https failed, like Docker), what auth it asks for (the /v2/ ping's
 * challenge), and the tokens it gave (one per scope set, reused until they expire).
 */
export class RegistryClient {
  /** The host contacted: registry-1.docker.io for docker.io. */
  readonly host: string;
  private endpoint?: Promise<Endpoint>;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenFlight = new SingleFlight<string>();
  private creds?: Promise<AuthConfig | undefined>;

  constructor(
    readonly transport: Transport,
    readonly opts: ResolvedClientOptions,
    /** The reference's domain (docker.io, 127.0.0.1:5000): the credentials key. */
    readonly domain: string,
    private readonly explicitAuth?: AuthConfig,
  ) {
    this.host = registryHost(domain);
  }

  /** Credentials for this registry: the explicit ones, else Docker's config.json / helpers. */
  credentials(): Promise<AuthConfig | undefined> {
    this.creds ??= this.explicitAuth
      ? Promise.resolve(this.explicitAuth)
      : (this.opts.credentials?.get(credentialsKey(this.domain)) ?? Promise.resolve(undefined));
    return this.creds;
  }

  /** Resolve (once) the scheme and the auth challenge with `GET /v2/`. */
  ping(signal?: AbortSignal): Promise<Endpoint> {
    this.endpoint ??= this.resolveEndpoint(signal);
    this.endpoint.catch(() => {
      this.endpoint = undefined;
    });
    return this.endpoint;
  }

  private async resolveEndpoint(signal?: AbortSignal): Promise<Endpoint> {
    if (!isInsecureRegistry(this.host, this.opts.insecureRegistries))
      return this.pingAt(`https://${this.host}`, signal);
    this.transport.skipVerify(this.host);
    try {
      return await this.pingAt(`https://${this.host}`, signal, false);
    } catch (e) {
      const cause = (e as StrataError).cause ?? e;
      if (!isTlsError(cause) && !isTransientNetworkError(cause)) throw e;
    }
    return this.pingAt(`http://${this.host}`, signal);
  }

  private async pingAt(base: string, signal?: AbortSignal, retry = true): Promise<Endpoint> {
    const url = `${base}/v2/`;
    const res = await this.transport.send({ method: "GET", url, signal }, { retry, what: `GET ${url}` });
    await res.dump();
    if (res.status === 200) return { base };
    if (res.status === 401) {
      const chs = parseChallenges(res.headers["www-authenticate"]);
      const challenge = chs.find((c) => c.scheme === "bearer") ?? chs.find((c) => c.scheme === "basic");
      return { base, challenge };
    }
    throw new StrataError(
      "REGISTRY_ERROR",
      `Get "${url}": unexpected status ${res.status} (not a registry?)`,
    );
  }

  /** The URL of the registry's API root, e.g. `https://registry-1.docker.io`. */
  async base(signal?: AbortSignal): Promise<string> {
    return (await this.ping(signal)).base;
  }

  /** The Authorization header for a request needing `scopes`, or undefined. */
  private async authorize(ep: Endpoint, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const ch = ep.challenge;
    if (!ch) return undefined;
    const creds = await this.credentials();
    if (ch.scheme === "basic") {
      if (!creds?.username && !creds?.password) return undefined;
      return `Basic ${Buffer.from(`${creds.username ?? ""}:${creds.password ?? ""}`).toString("base64")}`;
    }
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    return `Bearer ${await this.token(ch, scopes, signal)}`;
  }

  /** A bearer token for the scopes: cached per scope set until shortly before it expires. */
  private token(ch: Challenge, scopes: string[], signal?: AbortSignal): Promise<string> {
    const key = [...new Set(scopes)].sort().join(" ");
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return Promise.resolve(cached.token);
    return this.tokenFlight.do(key, async () => {
      const t = await this.fetchToken(ch, [...new Set(scopes)].sort(), signal);
      this.tokens.set(key, t);
      return t.token;
    });
  }

  private async fetchToken(
    ch: Challenge,
    scopes: string[],
    signal?: AbortSignal,
    offline = false,
  ): Promise<CachedToken> {
    const realm = ch.params.realm;
    if (!realm) throw new StrataError("REGISTRY_ERROR", `${this.host}: bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new StrataError("REGISTRY_ERROR", `${this.host}: invalid token realm ${JSON.stringify(realm)}`);
    }
    const creds = await this.credentials();
    const service = ch.params.service;
    const asked = Date.now();
    let res: HttpResponse;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant, as docker does after an SSO login.
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: creds.identityToken,
        client_id: "strata",
      });
      if (service) form.set("service", service);
      if (scopes.length) form.set("scope", scopes.join(" "));
      res = await this.transport.send(
        {
          method: "POST",
          url: url.toString(),
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: form.toString(),
          signal,
        },
        { what: "token request" },
      );
    } else {
      if (service) url.searchParams.set("service", service);
      for (const s of scopes) url.searchParams.append("scope", s);
      const headers: Record<string, string> = {};
      let authorization: string | undefined;
      if (creds?.username !== undefined || creds?.password !== undefined) {
        url.searchParams.set("account", creds.username ?? "");
        // docker login asks for an offline (refresh) token to keep instead of the password.
        if (offline) {
          url.searchParams.set("client_id", "strata");
          url.searchParams.set("offline_token", "true");
        }
        authorization = `Basic ${Buffer.from(`${creds.username ?? ""}:${creds.password ?? ""}`).toString("base64")}`;
      }
      res = await this.transport.send(
        { method: "GET", url: url.toString(), headers, authorization, signal },
        { what: "token request" },
      );
    }
    if (res.status !== 200) throw await registryError(res, creds?.identityToken ? "POST" : "GET");
    let body: {
      token?: unknown;
      access_token?: unknown;
      expires_in?: unknown;
      issued_at?: unknown;
      refresh_token?: unknown;
    };
    try {
      body = JSON.parse(
        (await readAllLimited(res.body as AsyncIterable<Buffer>, 1 << 20, "token response")).toString("utf8"),
      );
    } catch (e) {
      throw new StrataError("REGISTRY_ERROR", `${realm}: invalid token response: ${errorMessage(e)}`, {
        cause: e,
      });
    }
    const token = typeof body.token === "string" && body.token ? body.token : body.access_token;
    if (typeof token !== "string" || !token)
      throw new StrataError("REGISTRY_ERROR", `${realm}: token response has no token`);
    // The token spec's minimum lifetime is 60 s; refresh 10 s early so a request never carries a stale one.
    const lifetime = typeof body.expires_in === "number" && body.expires_in >= 60 ? body.expires_in : 60;
    // Counted on this machine's clock from when the token was asked for (it was issued after
    // that): `issued_at` is the server's clock, and a skew between the two would make tokens
    // look expired on arrival (one token request per request) or live too long.
    return {
      token,
      expiresAt: asked + (lifetime - 10) * 1000,
      ...(typeof body.refresh_token === "string" && body.refresh_token
        ? { refreshToken: body.refresh_token }
        : {}),
    };
  }

  /**
   * Send a request to this registry with auth for `scopes`. A 401 with a fresh challenge
   * (another scope, an expired token) gets one new token and one more try; what comes back
   * then is the caller's to judge.
   */
  async request(
    req: Omit<HttpRequest, "url" | "authorization"> & { path?: string; url?: string },
    scopes: string[],
    opts: RequestOptions = {},
  ): Promise<HttpResponse> {
    const ep = await this.ping(req.signal);
    const url = req.url ?? `${ep.base}${req.path}`;
    let wanted = scopes;
    for (let round = 0; ; round++) {
      const authorization = await this.authorize(ep, wanted, req.signal);
      const res = await this.transport.send({ ...req, url, authorization }, opts);
      if (res.status !== 401) return res;
      const chs = parseChallenges(res.headers["www-authenticate"]);
      const bearer = chs.find((c) => c.scheme === "bearer");
      if (!bearer && !authorization && chs.some((c) => c.scheme === "basic")) {
        await res.dump();
        throw new StrataError(
          "UNAUTHENTICATED",
          `${goMethod(req.method)} "${url}": no basic auth credentials`,
        );
      }
      if (!bearer || round > 0) return res;
      await res.dump();
      if (ep.challenge?.scheme !== "bearer") ep.challenge = bearer;
      const extra = bearer.params.scope?.split(" ").filter(Boolean) ?? [];
      wanted = [...new Set([...wanted, ...extra])];
      this.tokens.delete([...new Set(wanted)].sort().join(" "));
      this.tokens.delete([...new Set(scopes)].sort().join(" "));
    }
  }

  /** A view of one repository with the scopes its operations need. */
  repository(path: string, opts: { push?: boolean; mountFrom?: string[] } = {}): RepositoryClient {
    const scopes = [`repository:${path}:${opts.push ? "pull,push" : "pull"}`];
    for (const from of opts.mountFrom ?? []) if (from !== path) scopes.push(`repository:${from}:pull`);
    return new RepositoryClient(this, path, scopes);
  }

  /** Does `GET /v2/` accept these credentials? Throws UNAUTHENTICATED with Docker's wording when not. */
  /**
   * Prove the credentials. With a token service and a password, the token is asked for
   * offline as docker's login does: a refresh token that comes back is returned, to be kept
   * (as `identitytoken`) instead of the password.
   */
  async checkLogin(signal?: AbortSignal): Promise<{ identityToken?: string }> {
    const ep = await this.ping(signal);
    if (!ep.challenge) return {};
    const url = `${ep.base}/v2/`;
    const creds = await this.credentials();
    if (ep.challenge.scheme === "basic") {
      const res = await this.request({ method: "GET", path: "/v2/", signal }, []);
      await res.dump();
      if (res.status === 200) return {};
      if (res.status === 401)
        throw new StrataError(
          "UNAUTHENTICATED",
          `login attempt to ${url} failed with status: 401 Unauthorized`,
        );
      throw new StrataError("REGISTRY_ERROR", `login attempt to ${url} failed with status: ${res.status}`);
    }
    if (!creds) throw new StrataError("UNAUTHENTICATED", `Get "${url}": unauthorized: no credentials`);
    // A token for no scope proves the password (docker's loginV2 does the same).
    this.tokens.clear();
    const t = await this.fetchToken(ep.challenge, [], signal, !creds.identityToken);
    return t.refreshToken ? { identityToken: t.refreshToken } : {};
  }
}

/** Requests on one repository; every method takes `{ signal }` last. */
export class RepositoryClient {
  constructor(
    readonly registry: RegistryClient,
    readonly path: string,
    readonly scopes: string[],
  ) {}

  request(
    req: Omit<HttpRequest, "url" | "authorization"> & { path?: string; url?: string },
    opts: RequestOptions = {},
  ) {
    return this.registry.request(req, this.scopes, opts);
  }

  /**
   * GET a manifest or index by tag or digest, at most 4 MiB, its digest checked against
   * the digest asked for, else against `Docker-Content-Digest`.
   */
  async manifest(ref: string, opts: { accept?: string; signal?: AbortSignal } = {}): Promise<RawManifest> {
    const path = `/v2/${this.path}/manifests/${ref}`;
    const res = await this.request({
      method: "GET",
      path,
      headers: { Accept: opts.accept ?? MANIFEST_ACCEPT },
      signal: opts.signal,
    });
    if (res.status !== 200) throw await registryError(res, "GET");
    const len = Number(res.header("content-length") ?? Number.NaN);
    if (Number.isFinite(len) && len > MAX_DOCUMENT_SIZE) {
      res.body.destroy();
      throw new StrataError(
        "TOO_LARGE",
        `manifest ${this.path}:${ref} is ${len} bytes, over the limit of ${MAX_DOCUMENT_SIZE}`,
      );
    }
    const raw = await readAllLimited(
      res.body as AsyncIterable<Buffer>,
      MAX_DOCUMENT_SIZE,
      `manifest ${this.path}:${ref}`,
    ).catch((e) => {
      res.body.destroy();
      throw e;
    });
    const mediaType = (res.header("content-type") ?? "").split(";")[0]!.trim();
    const expected = ref.includes(":")
      ? (ref as Digest)
      : (res.header("docker-content-digest") as Digest | undefined);
    const alg = expected ? digestAlgorithm(expected as Digest) : "sha256";
    const digest = digestOf(raw, alg === "sha512" ? "sha512" : "sha256");
    if (expected && (alg === "sha256" || alg === "sha512") && digest !== expected)
      throw new StrataError(
        "DIGEST_MISMATCH",
        `manifest ${this.path}@${expected}: digest mismatch: got ${digest}`,
      );
    return { raw, digest, mediaType };
  }

  /** HEAD a manifest: its descriptor when it exists, undefined on 404. */
  async headManifest(
    ref: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ digest?: Digest; size?: number; mediaType?: string } | undefined> {
    const res = await this.request({
      method: "HEAD",
      path: `/v2/${this.path}/manifests/${ref}`,
      headers: { Accept: MANIFEST_ACCEPT },
      signal: opts.signal,
    });
    await res.dump();
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await registryError(res, "HEAD");
    return {
      digest: res.header("docker-content-digest") as Digest | undefined,
      size: Number(res.header("content-length")),
      mediaType: res.header("content-type"),
    };
  }

  /** PUT a manifest under a tag or digest; returns the digest the registry reports (checked against ours). */
  async putManifest(
    ref: string,
    raw: Buffer,
    mediaType: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<Digest> {
    const digest = digestOf(raw);
    const res = await this.request({
      method: "PUT",
      path: `/v2/${this.path}/manifests/${ref}`,
      headers: { "Content-Type": mediaType },
      body: raw,
      signal: opts.signal,
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await registryError(res, "PUT");
    await res.dump();
    const said = res.header("docker-content-digest");
    if (said?.startsWith("sha256:") && said !== digest)
      throw new StrataError(
        "DIGEST_MISMATCH",
        `PUT manifest ${this.path}:${ref}: registry says ${said}, the manifest is ${digest}`,
      );
    return digest;
  }

  /** HEAD a blob: its size when the repository has it, undefined when not. */
  async blobExists(digest: Digest, opts: { signal?: AbortSignal } = {}): Promise<number | undefined> {
    const res = await this.request({
      method: "HEAD",
      path: `/v2/${this.path}/blobs/${digest}`,
      signal: opts.signal,
    });
    await res.dump();
    if (res.status === 404) return undefined;
    if (res.status !== 200 && res.status !== 307 && res.status !== 302)
      throw await registryError(res, "HEAD");
    const n = Number(res.header("content-length"));
    return Number.isFinite(n) ? n : 0;
  }

  /** Read a small blob (an image config) whole, verified. */
  async smallBlob(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    if (desc.size > MAX_DOCUMENT_SIZE)
      throw new StrataError(
        "TOO_LARGE",
        `blob ${desc.digest} is ${desc.size} bytes, over the limit of ${MAX_DOCUMENT_SIZE}`,
      );
    return readAllLimited(
      this.openBlob(desc, opts) as AsyncIterable<Buffer>,
      MAX_DOCUMENT_SIZE,
      `blob ${desc.digest}`,
    );
  }

  /**
   * Stream a blob, verified: more bytes than the descriptor's size fail at once, and the
   * digest is checked before the stream ends, so a consumer that commits on `end` never
   * commits bad bytes. A connection that drops mid-way is resumed with `Range` (or the
   * bytes already seen are skipped when the registry ignores Range), with the same bounded
   * retries as requests. The caller consumes or destroys the stream.
   */
  openBlob(
    desc: Descriptor,
    opts: { signal?: AbortSignal; onBytes?: (received: number) => void } = {},
  ): Readable {
    const self = this;
    const digest = desc.digest as Digest;
    const alg = digestAlgorithm(digest);
    const retry = this.registry.opts.retry;
    async function* chunks(): AsyncGenerator<Buffer> {
      const hash = createHash(alg);
      let offset = 0;
      let failures = 0;
      const started = Date.now();
      const path = `/v2/${self.path}/blobs/${digest}`;
      for (;;) {
        const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
        const res = await self.request(
          { method: "GET", path, headers, signal: opts.signal },
          { what: `download of ${digest.slice(7, 19)}` },
        );
        let skip = 0;
        if (res.status === 206 && offset > 0) {
          const m = /^bytes (\d+)-/.exec(res.header("content-range") ?? "");
          if (!m || Number(m[1]) !== offset) {
            res.body.destroy();
            throw new StrataError(
              "REGISTRY_ERROR",
              `GET "${res.url}": asked for bytes from ${offset}, got ${res.header("content-range")}`,
            );
          }
        } else if (res.status === 200) {
          skip = offset;
        } else {
          throw await registryError(res, "GET");
        }
        try {
          for await (const c of res.body as AsyncIterable<Buffer>) {
            let chunk = c;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            if (offset + chunk.length > desc.size) {
              res.body.destroy();
              throw new StrataError(
                "SIZE_MISMATCH",
                `blob ${digest}: more than the expected ${desc.size} bytes`,
              );
            }
            hash.update(chunk);
            offset += chunk.length;
            opts.onBytes?.(offset);
            yield chunk;
          }
          // A body that ends early without an error is a dropped connection too.
          if (offset < desc.size)
            throw Object.assign(new Error(`connection closed after ${offset} of ${desc.size} bytes`), {
              code: "ECONNRESET",
            });
          break;
        } catch (e) {
          if (opts.signal?.aborted || !isTransientNetworkError(e))
            throw e instanceof StrataError ? e : requestError("GET", res.url, e);
          failures++;
          const wait = Math.min(backoffMs(failures, retry.baseDelayMs), retry.maxDelayMs);
          if (failures >= retry.attempts || Date.now() + wait - started > retry.totalMs)
            throw new StrataError(
              "REGISTRY_UNAVAILABLE",
              `GET "${res.url}": ${errorMessage(e)} (gave up after ${failures} tries at ${offset} of ${desc.size} bytes)`,
              { cause: e },
            );
          self.registry.opts.onProgress?.(
            update(
              digest.slice(7, 19),
              `Retrying in ${Math.ceil(wait / 1000)} second${Math.ceil(wait / 1000) === 1 ? "" : "s"}`,
            ),
          );
          await sleep(wait, opts.signal);
        }
      }
      const got = hash.digest("hex");
      if (offset !== desc.size)
        throw new StrataError("SIZE_MISMATCH", `blob ${digest}: got ${offset} bytes, expected ${desc.size}`);
      if (got !== digestHex(digest))
        throw new StrataError("DIGEST_MISMATCH", `blob ${digest}: digest mismatch: got ${alg}:${got}`);
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
  }

  /**
   * Start an upload, or mount `digest` from `from` on the same registry when given. Returns
   * `{ mounted: true }` when the registry linked the blob, else the session's Location and
   * the registry's `OCI-Chunk-Min-Length` (0 when it names none).
   */
  async startUpload(
    opts: { mount?: { digest: Digest; from: string }; signal?: AbortSignal } = {},
  ): Promise<{ mounted: true } | { mounted: false; location: string; chunkMin: number }> {
    let path = `/v2/${this.path}/blobs/uploads/`;
    if (opts.mount)
      path += `?mount=${encodeURIComponent(opts.mount.digest)}&from=${encodeURIComponent(opts.mount.from)}`;
    const res = await this.request({ method: "POST", path, signal: opts.signal });
    if (res.status === 201 && opts.mount) {
      await res.dump();
      return { mounted: true };
    }
    if (res.status !== 202) throw await registryError(res, "POST");
    await res.dump();
    const loc = res.header("location");
    if (!loc) throw new StrataError("REGISTRY_ERROR", `POST "${res.url}": upload started without a Location`);
    const chunkMin = Number(res.header("oci-chunk-min-length") ?? 0);
    return {
      mounted: false,
      location: new URL(loc, res.url).toString(),
      chunkMin: Number.isFinite(chunkMin) ? chunkMin : 0,
    };
  }

  /** Where an upload session stands: the next byte offset it expects (GET on the Location). */
  async uploadOffset(
    location: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ offset: number; location: string }> {
    const res = await this.request({ method: "GET", url: location, signal: opts.signal });
    await res.dump();
    if (res.status !== 204 && res.status !== 200) throw await registryError(res, "GET");
    const m = /^(?:bytes=)?0-(\d+)$/.exec(res.header("range") ?? "");
    const loc = res.header("location");
    return { offset: m ? Number(m[1]) + 1 : 0, location: loc ? new URL(loc, res.url).toString() : location };
  }

  /** PATCH one chunk (one buffer, or pieces sent as they are) at `offset`; returns the next Location. */
  async patchChunk(
    location: string,
    chunk: Buffer | Buffer[],
    offset: number,
    opts: { signal?: AbortSignal; length?: number } = {},
  ): Promise<string> {
    const length = Buffer.isBuffer(chunk)
      ? chunk.length
      : (opts.length ?? chunk.reduce((n, b) => n + b.length, 0));
    const res = await this.request(
      {
        method: "PATCH",
        url: location,
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": `${offset}-${offset + length - 1}`,
          "Content-Length": String(length),
        },
        body: Buffer.isBuffer(chunk) ? chunk : () => Readable.from(chunk, { objectMode: false }),
        signal: opts.signal,
      },
      { retry: false },
    );
    if (res.status !== 202 && res.status !== 204) throw await registryError(res, "PATCH");
    await res.dump();
    const loc = res.header("location");
    return loc ? new URL(loc, res.url).toString() : location;
  }

  /** Close an upload with `PUT <location>?digest=`, carrying `body` (monolithic) or nothing (after PATCHes). */
  async finishUpload(
    location: string,
    digest: Digest,
    body: { data: RequestBody; size: number } | undefined,
    opts: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const u = new URL(location);
    u.searchParams.set("digest", digest);
    const res = await this.request(
      {
        method: "PUT",
        url: u.toString(),
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Length": String(body?.size ?? 0),
        },
        body: body?.data,
        signal: opts.signal,
      },
      { retry: false },
    );
    if (res.status !== 201 && res.status !== 204 && res.status !== 200) throw await registryError(res, "PUT");
    await res.dump();
  }

  /** Every tag, following `Link: <…>; rel="next"` pages. */
  async tags(opts: { signal?: AbortSignal; pageSize?: number } = {}): Promise<string[]> {
    const out: string[] = [];
    let next: string | undefined = `/v2/${this.path}/tags/list?n=${opts.pageSize ?? 1000}`;
    for (let pages = 0; next && pages < 10_000; pages++) {
      const res: HttpResponse = await this.request(
        next.startsWith("http")
          ? { method: "GET", url: next, signal: opts.signal }
          : { method: "GET", path: next, signal: opts.signal },
      );
      if (res.status !== 200) throw await registryError(res, "GET");
      const body = JSON.parse(
        (await readAllLimited(res.body as AsyncIterable<Buffer>, 16 << 20, "tag list")).toString("utf8"),
      ) as { tags?: unknown };
      if (Array.isArray(body.tags)) for (const t of body.tags) if (typeof t === "string") out.push(t);
      const link = res.header("link");
      const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
      next = m?.[1];
    }
    return out;
  }

  toString(): string {
    return `${this.registry.domain}/${this.path}`;
  }
}

export { goMethod };
