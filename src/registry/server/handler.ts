import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { type Digest, isIndexType, MediaType, parseDigest, parseIndex } from "../../oci/index.js";
import { errorMessage, readAllLimited, StrataError } from "../../util/index.js";
import type { AccessPolicy } from "./access.js";
import {
  type FailedLogins,
  grantScopes,
  type Htpasswd,
  parseBasicAuth,
  parseBearer,
  parseScopes,
  type TokenAuthority,
  type TokenClaims,
  tokenAllows,
} from "./auth.js";
import type { Action, ResolvedConfig } from "./config.js";
import { HttpError, toHttpError } from "./http-errors.js";
import { isValidName, isValidTag } from "./names.js";
import {
  compareStrings,
  isDigestRef,
  MANIFEST_TYPES,
  type Registry,
  type StoredManifest,
} from "./registry.js";
import type { Search } from "./search.js";

/** Per-request state: who the caller is and what the log line needs. */
interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  query: URLSearchParams;
  start: bigint;
  /** Captured at once: the socket is gone by the time a closed response finishes. */
  addr: string;
  user?: string;
  claims?: TokenClaims;
  /** Credentials were presented and checked (Basic or a valid token). */
  authenticated: boolean;
  bytes: number;
  error?: string;
}

type Resource = { type: "repository"; name: string; action: Action } | { type: "registry"; name: "catalog" };

const RE_MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const RE_UPLOADS = /^\/v2\/(.+)\/blobs\/uploads\/?$/;
const RE_UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/;
const RE_BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const RE_TAGS = /^\/v2\/(.+)\/tags\/list$/;
const RE_REFERRERS = /^\/v2\/(.+)\/referrers\/([^/]+)$/;

const JSON_TYPE = "application/json; charset=utf-8";

export interface HandlerDeps {
  config: ResolvedConfig;
  registry: Registry;
  policy: AccessPolicy;
  htpasswd?: Htpasswd;
  tokens?: TokenAuthority;
  failedLogins: FailedLogins;
  search: Search;
}

/** The request listener: routing, auth, and the spec's status codes and headers. */
export class RegistryHandler {
  private readonly mode: "none" | "basic" | "token";

  constructor(private readonly d: HandlerDeps) {
    this.mode = d.tokens ? "token" : d.htpasswd ? "basic" : "none";
  }

  readonly listener = (req: IncomingMessage, res: ServerResponse): void => {
    const raw = req.url ?? "/";
    const q = raw.indexOf("?");
    const ctx: Ctx = {
      req,
      res,
      path: q < 0 ? raw : raw.slice(0, q),
      query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)),
      start: process.hrtime.bigint(),
      addr: req.socket?.remoteAddress ?? "-",
      authenticated: false,
      bytes: 0,
    };
    res.setHeader("Docker-Distribution-API-Version", "registry/2.0");
    if (this.d.config.logRequests) res.once("finish", () => this.logLine(ctx));
    this.route(ctx).catch((e) => this.fail(ctx, e));
  };

  private logLine(ctx: Ctx): void {
    const ms = Number(process.hrtime.bigint() - ctx.start) / 1e6;
    const err = ctx.error ? ` error=${JSON.stringify(ctx.error)}` : "";
    try {
      this.d.config.logger(
        `${ctx.addr} ${ctx.user ?? "-"} "${ctx.req.method} ${ctx.req.url}" ${ctx.res.statusCode} ${ctx.bytes} ${ms.toFixed(1)}ms${err}`,
      );
    } catch {
      // A failing log sink must not take the server down.
    }
  }

  private fail(ctx: Ctx, e: unknown): void {
    const he = toHttpError(e);
    ctx.error = he.status >= 500 ? errorMessage(e) : undefined;
    const { res } = ctx;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [k, v] of Object.entries(he.headers)) res.setHeader(k, v);
    const body = Buffer.from(
      JSON.stringify({
        errors: [
          { code: he.code, message: he.message, ...(he.detail !== undefined ? { detail: he.detail } : {}) },
        ],
      }),
    );
    this.send(ctx, he.status, body, JSON_TYPE);
  }

  private send(ctx: Ctx, status: number, body?: Buffer, contentType?: string): void {
    const { res } = ctx;
    res.statusCode = status;
    if (contentType) res.setHeader("Content-Type", contentType);
    res.setHeader("Content-Length", body ? body.length : 0);
    if (body && ctx.req.method !== "HEAD") ctx.bytes = body.length;
    // A body the client sent but we did not read (an early error) must not be parsed as the
    // next request; Node drains it, and we close the connection if it is large.
    if (!ctx.req.complete && Number(ctx.req.headers["content-length"] ?? 0) > 1024 * 1024)
      res.setHeader("Connection", "close");
    res.end(body);
  }

  private sendJson(ctx: Ctx, status: number, value: unknown, headers: Record<string, string> = {}): void {
    for (const [k, v] of Object.entries(headers)) ctx.res.setHeader(k, v);
    this.send(ctx, status, Buffer.from(JSON.stringify(value)), JSON_TYPE);
  }

  // ---- routing -----------------------------------------------------------------------

  private async route(ctx: Ctx): Promise<void> {
    const { path } = ctx;
    const method = ctx.req.method ?? "GET";
    if (path === "/v2/" || path === "/v2") {
      onlyMethods(method, ["GET", "HEAD"]);
      await this.authenticate(ctx);
      if (this.mode !== "none" && !ctx.authenticated) this.deny(ctx, undefined);
      return this.sendJson(ctx, 200, {});
    }
    if (path.startsWith("/v2/")) return this.routeV2(ctx, method);
    if (path === "/token") return this.token(ctx, method);
    if (path === "/v1/search") return this.search(ctx, method);
    if (path === "/v1/_ping") {
      ctx.res.setHeader("X-Docker-Registry-Version", "2.0");
      ctx.res.setHeader("X-Docker-Registry-Standalone", "true");
      return this.sendJson(ctx, 200, { standalone: true });
    }
    throw new HttpError(404, "UNSUPPORTED", "not found");
  }

  private async routeV2(ctx: Ctx, method: string): Promise<void> {
    const { path } = ctx;
    if (path === "/v2/_catalog") {
      onlyMethods(method, ["GET"]);
      await this.authorize(ctx, { type: "registry", name: "catalog" });
      return this.catalog(ctx);
    }
    let m: RegExpExecArray | null;
    if ((m = RE_MANIFEST.exec(path))) {
      const name = checkName(m[1]!);
      const ref = decodeURIComponent(m[2]!);
      onlyMethods(method, ["GET", "HEAD", "PUT", "DELETE"]);
      const action: Action = method === "PUT" ? "push" : method === "DELETE" ? "delete" : "pull";
      checkReference(ref, method === "PUT");
      await this.authorize(ctx, { type: "repository", name, action });
      if (method === "PUT") return this.putManifest(ctx, name, ref);
      if (method === "DELETE") {
        await this.d.registry.deleteManifest(name, ref);
        return this.send(ctx, 202);
      }
      return this.getManifest(ctx, name, ref);
    }
    if ((m = RE_UPLOADS.exec(path))) {
      const name = checkName(m[1]!);
      onlyMethods(method, ["POST"]);
      await this.authorize(ctx, { type: "repository", name, action: "push" });
      return this.startUpload(ctx, name);
    }
    if ((m = RE_UPLOAD.exec(path))) {
      const name = checkName(m[1]!);
      const id = m[2]!;
      onlyMethods(method, ["GET", "PATCH", "PUT", "DELETE"]);
      await this.authorize(ctx, { type: "repository", name, action: "push" });
      return this.upload(ctx, method, name, id);
    }
    if ((m = RE_BLOB.exec(path))) {
      const name = checkName(m[1]!);
      onlyMethods(method, ["GET", "HEAD", "DELETE"]);
      const digest = parseDigestParam(decodeURIComponent(m[2]!));
      const action: Action = method === "DELETE" ? "delete" : "pull";
      await this.authorize(ctx, { type: "repository", name, action });
      if (method === "DELETE") {
        await this.d.registry.deleteBlob(name, digest);
        return this.send(ctx, 202);
      }
      return this.getBlob(ctx, name, digest);
    }
    if ((m = RE_TAGS.exec(path))) {
      const name = checkName(m[1]!);
      onlyMethods(method, ["GET"]);
      await this.authorize(ctx, { type: "repository", name, action: "pull" });
      const tags = await this.d.registry.listTags(name);
      const page = paginate(ctx, tags, `/v2/${name}/tags/list`);
      return this.sendJson(ctx, 200, { name, tags: page });
    }
    if ((m = RE_REFERRERS.exec(path))) {
      const name = checkName(m[1]!);
      onlyMethods(method, ["GET"]);
      const digest = parseDigestParam(decodeURIComponent(m[2]!));
      await this.authorize(ctx, { type: "repository", name, action: "pull" });
      const artifactType = ctx.query.get("artifactType") ?? undefined;
      const manifests = await this.d.registry.referrers(name, digest, artifactType);
      if (artifactType !== undefined) ctx.res.setHeader("OCI-Filters-Applied", "artifactType");
      const body = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }),
      );
      return this.send(ctx, 200, body, MediaType.OciIndex);
    }
    // A path under /v2/ that matches no route: either a bad name or an unknown endpoint.
    throw new HttpError(404, "NAME_UNKNOWN", "unknown endpoint or repository");
  }

  // ---- auth --------------------------------------------------------------------------

  /** Check the credentials the request carries, if any. Bad credentials are a 401 (or 429). */
  private async authenticate(ctx: Ctx): Promise<void> {
    if (this.mode === "none") return;
    const header = ctx.req.headers.authorization;
    if (this.mode === "basic" || ctx.path === "/v1/search") {
      const creds = parseBasicAuth(header);
      if (creds) {
        await this.checkPassword(ctx, creds.user, creds.password);
        return;
      }
      if (this.mode === "basic") return;
    }
    const token = parseBearer(header);
    if (!token || !this.d.tokens) return;
    try {
      ctx.claims = await this.d.tokens.verify(token);
    } catch (e) {
      throw new HttpError(401, "UNAUTHORIZED", errorMessage(e), {
        "WWW-Authenticate": `${this.challenge(ctx, undefined)},error="invalid_token"`,
      });
    }
    ctx.user = ctx.claims.sub;
    ctx.authenticated = true;
  }

  private async checkPassword(ctx: Ctx, user: string, password: string): Promise<void> {
    const addr = ctx.addr;
    const wait = this.d.failedLogins.retryAfter(addr);
    if (wait > 0)
      throw new HttpError(429, "TOOMANYREQUESTS", "too many failed login attempts", {
        "Retry-After": String(wait),
      });
    const ok = this.d.htpasswd ? await this.d.htpasswd.verify(user, password) : false;
    if (!ok) {
      this.d.failedLogins.fail(addr);
      throw new HttpError(401, "UNAUTHORIZED", "authentication required", {
        "WWW-Authenticate": this.basicChallenge(),
      });
    }
    ctx.user = user;
    ctx.authenticated = true;
  }

  private basicChallenge(): string {
    return `Basic realm="${this.d.config.htpasswd?.realm ?? "Strata Registry"}"`;
  }

  private challenge(ctx: Ctx, resource: Resource | undefined): string {
    if (this.mode !== "token") return this.basicChallenge();
    const t = this.d.config.token!;
    const proto = this.d.config.tls ? "https" : "http";
    const realm = t.realm ?? `${proto}://${ctx.req.headers.host ?? "localhost"}/token`;
    let s = `Bearer realm="${realm}",service="${t.service}"`;
    if (resource) s += `,scope="${scopeString(resource)}"`;
    return s;
  }

  private can(ctx: Ctx, r: Resource): boolean {
    if (this.mode === "none") return true;
    if (this.mode === "token") {
      if (!ctx.claims) return false;
      return r.type === "registry"
        ? tokenAllows(ctx.claims, "registry", "catalog", "*")
        : tokenAllows(ctx.claims, "repository", r.name, r.action);
    }
    return r.type === "registry"
      ? this.d.policy.catalogAllowed(ctx.user)
      : this.d.policy.allowed(ctx.user, r.name, r.action);
  }

  /** A missing login is 401 with a challenge; a known caller without the right is 403. */
  private deny(ctx: Ctx, r: Resource | undefined): never {
    let known = ctx.authenticated && ctx.user !== undefined;
    // A token of ours that lacks a scope may only lack it because the client did not ask:
    // it is a 403 only when our own rules would refuse the user anyway.
    if (known && this.mode === "token" && r) {
      known =
        ctx.claims?.ownIssuer === true &&
        !(r.type === "registry"
          ? this.d.policy.catalogAllowed(ctx.user)
          : this.d.policy.allowed(ctx.user, r.name, r.action));
    }
    const detail = r
      ? [{ Type: r.type, Name: r.name, Action: r.type === "registry" ? "*" : r.action }]
      : undefined;
    // The 403 carries the access record as its detail, like the 401: docker's client turns
    // an error with neither detail nor a message of its own into a bare code, which its
    // push does not recognise as final and retries five times over 50 seconds.
    if (known) throw new HttpError(403, "DENIED", "requested access to the resource is denied", {}, detail);
    const ch = this.challenge(ctx, r);
    const extra = this.mode === "token" && ctx.claims ? ',error="insufficient_scope"' : "";
    throw new HttpError(
      401,
      "UNAUTHORIZED",
      "authentication required",
      { "WWW-Authenticate": ch + extra },
      detail,
    );
  }

  private async authorize(ctx: Ctx, r: Resource): Promise<void> {
    await this.authenticate(ctx);
    if (!this.can(ctx, r)) this.deny(ctx, r);
  }

  // ---- blobs -------------------------------------------------------------------------

  private async getBlob(ctx: Ctx, name: string, digest: Digest): Promise<void> {
    const st = await this.d.registry.statBlob(name, digest);
    if (!st) throw new HttpError(404, "BLOB_UNKNOWN", "blob unknown to registry", {}, digest);
    const { req, res } = ctx;
    const etag = `"${digest}"`;
    res.setHeader("Docker-Content-Digest", digest);
    res.setHeader("ETag", etag);
    res.setHeader("Accept-Ranges", "bytes");
    res.setHeader("Cache-Control", "max-age=31536000");
    if (req.headers["if-none-match"] === etag) return this.send(ctx, 304);
    let range: { start: number; end: number } | undefined;
    const rh = req.headers.range;
    if (rh !== undefined && st.size > 0) {
      range = parseRange(rh, st.size);
      if (!range) {
        res.setHeader("Content-Range", `bytes */${st.size}`);
        throw new HttpError(416, "BLOB_UNKNOWN", "requested range not satisfiable");
      }
    }
    res.setHeader("Content-Type", "application/octet-stream");
    const length = range ? range.end - range.start + 1 : st.size;
    res.setHeader("Content-Length", length);
    if (range) res.setHeader("Content-Range", `bytes ${range.start}-${range.end}/${st.size}`);
    res.statusCode = range ? 206 : 200;
    if (req.method === "HEAD" || length === 0) {
      res.end();
      return;
    }
    const stream = await this.d.registry.openBlob(digest, range);
    ctx.bytes = length;
    await pipeline(stream, res);
  }

  // ---- uploads -----------------------------------------------------------------------

  private uploadHeaders(ctx: Ctx, name: string, id: string, size: number): void {
    ctx.res.setHeader("Location", `/v2/${name}/blobs/uploads/${id}`);
    ctx.res.setHeader("Range", `0-${Math.max(0, size - 1)}`);
    ctx.res.setHeader("Docker-Upload-UUID", id);
  }

  private async startUpload(ctx: Ctx, name: string): Promise<void> {
    const { query, res } = ctx;
    const reg = this.d.registry;
    const mount = query.get("mount");
    if (mount !== null) {
      const digest = parseDigestParam(mount);
      const from = query.get("from");
      if (
        from !== null &&
        isValidName(from) &&
        this.can(ctx, { type: "repository", name: from, action: "pull" }) &&
        (await reg.mountBlob(name, from, digest))
      ) {
        res.setHeader("Location", `/v2/${name}/blobs/${digest}`);
        res.setHeader("Docker-Content-Digest", digest);
        return this.send(ctx, 201);
      }
    }
    const digestParam = mount === null ? query.get("digest") : null;
    if (digestParam !== null) {
      const digest = parseDigestParam(digestParam);
      const s = await reg.startUpload(name);
      try {
        await reg.finishUpload(name, s.id, digest, ctx.req, { length: contentLength(ctx) });
      } catch (e) {
        await reg.cancelUpload(name, s.id).catch(() => {});
        throw e;
      }
      res.setHeader("Location", `/v2/${name}/blobs/${digest}`);
      res.setHeader("Docker-Content-Digest", digest);
      return this.send(ctx, 201);
    }
    const alg = query.get("digest-algorithm");
    if (alg !== null && alg !== "sha256" && alg !== "sha512")
      throw new HttpError(400, "DIGEST_INVALID", `unsupported digest algorithm ${alg}`);
    const s = await reg.startUpload(name);
    // A POST that carries bytes without ?digest= starts the session with them (Docker's
    // older clients do this); normally the body is empty.
    const status = hasBody(ctx.req)
      ? await reg.appendUpload(name, s.id, ctx.req, { length: contentLength(ctx) })
      : s;
    this.uploadHeaders(ctx, name, s.id, status.size);
    res.setHeader("OCI-Chunk-Min-Length", String(this.d.config.limits.chunkMinLength));
    return this.send(ctx, 202);
  }

  private async upload(ctx: Ctx, method: string, name: string, id: string): Promise<void> {
    const reg = this.d.registry;
    const withRange = async <T>(fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof StrataError && e.code === "UPLOAD_RANGE_INVALID") {
          const st = await reg.uploadStatus(name, id);
          this.uploadHeaders(ctx, name, id, st.size);
        }
        throw e;
      }
    };
    switch (method) {
      case "GET": {
        const st = await reg.uploadStatus(name, id);
        this.uploadHeaders(ctx, name, id, st.size);
        return this.send(ctx, 204);
      }
      case "DELETE":
        await reg.cancelUpload(name, id);
        return this.send(ctx, 204);
      case "PATCH": {
        const range = parseContentRange(ctx.req.headers["content-range"]);
        const st = await withRange(() =>
          reg.appendUpload(name, id, ctx.req, { range, length: contentLength(ctx) }),
        );
        this.uploadHeaders(ctx, name, id, st.size);
        return this.send(ctx, 202);
      }
      default: {
        const d = ctx.query.get("digest");
        if (d === null) throw new HttpError(400, "DIGEST_INVALID", "the digest query parameter is required");
        const digest = parseDigestParam(d);
        const range = parseContentRange(ctx.req.headers["content-range"]);
        const body = hasBody(ctx.req) ? ctx.req : undefined;
        await withRange(() =>
          reg.finishUpload(name, id, digest, body, { range, length: contentLength(ctx) }),
        );
        ctx.res.setHeader("Location", `/v2/${name}/blobs/${digest}`);
        ctx.res.setHeader("Docker-Content-Digest", digest);
        return this.send(ctx, 201);
      }
    }
  }

  // ---- manifests ---------------------------------------------------------------------

  private async getManifest(ctx: Ctx, name: string, ref: string): Promise<void> {
    let m = await this.d.registry.getManifest(name, ref);
    const accept = parseAccept(ctx.req.headers.accept);
    if (accept.length > 0 && !accept.includes(m.mediaType) && !accept.includes("*/*")) {
      m = await this.negotiate(name, m, accept);
    }
    const { res } = ctx;
    const etag = `"${m.digest}"`;
    res.setHeader("Docker-Content-Digest", m.digest);
    res.setHeader("ETag", etag);
    if (ctx.req.headers["if-none-match"] === etag) return this.send(ctx, 304);
    return this.send(ctx, 200, m.raw, m.mediaType);
  }

  /**
   * The client does not accept the stored type. For an index or manifest list, serve the
   * linux/amd64 image if its type is accepted (what CNCF distribution and Docker Hub do for
   * old clients); otherwise the manifest is unknown to this client.
   */
  private async negotiate(name: string, m: StoredManifest, accept: string[]): Promise<StoredManifest> {
    if (isIndexType(m.mediaType)) {
      const idx = parseIndex(m.raw).value;
      const child = idx.manifests.find(
        (d) => d.platform?.os === "linux" && d.platform.architecture === "amd64",
      );
      if (child && accept.includes(child.mediaType)) {
        const c = await this.d.registry.getManifest(name, child.digest);
        if (accept.includes(c.mediaType)) return c;
      }
    }
    throw new HttpError(
      404,
      "MANIFEST_UNKNOWN",
      `manifest of type ${m.mediaType} does not match the Accept header`,
    );
  }

  private async putManifest(ctx: Ctx, name: string, ref: string): Promise<void> {
    const max = this.d.config.limits.maxManifestSize;
    const len = contentLength(ctx);
    if (len !== undefined && len > max)
      throw new HttpError(413, "SIZE_INVALID", `manifest is ${len} bytes, over the limit of ${max}`);
    const tags = ctx.query.getAll("tag");
    for (const t of tags)
      if (!isValidTag(t)) throw new HttpError(400, "TAG_INVALID", `invalid tag ${JSON.stringify(t)}`);
    const raw = await readAllLimited(ctx.req, max, "manifest");
    const r = await this.d.registry.putManifest(
      name,
      ref,
      raw,
      ctx.req.headers["content-type"],
      isDigestRef(ref) ? tags : [],
    );
    const { res } = ctx;
    res.setHeader("Location", `/v2/${name}/manifests/${r.digest}`);
    res.setHeader("Docker-Content-Digest", r.digest);
    if (r.subject) res.setHeader("OCI-Subject", r.subject);
    if (tags.length && isDigestRef(ref)) res.setHeader("OCI-Tag", r.tags);
    return this.send(ctx, 201);
  }

  // ---- listings ----------------------------------------------------------------------

  private async catalog(ctx: Ctx): Promise<void> {
    const all = await this.d.registry.repositories();
    const visible = all.filter(
      (n) => this.can(ctx, { type: "repository", name: n, action: "pull" }) || this.mode === "token",
    );
    // With tokens, the catalog grant is the permission (the token cannot list every repository).
    const page = paginate(ctx, visible, "/v2/_catalog", 1000);
    return this.sendJson(ctx, 200, { repositories: page });
  }

  private async search(ctx: Ctx, method: string): Promise<void> {
    onlyMethods(method, ["GET"]);
    await this.authenticate(ctx);
    const q = ctx.query.get("q") ?? "";
    const n = clampInt(ctx.query.get("n"), 25, 1, 100);
    const page = clampInt(ctx.query.get("page"), 1, 1, 100_000);
    const userPolicy = this.mode === "none" ? undefined : ctx.user;
    const result = await this.d.search.search(q, n, page, (repo) =>
      this.mode === "none" ? true : this.d.policy.allowed(userPolicy, repo, "pull"),
    );
    return this.sendJson(ctx, 200, result);
  }

  // ---- token service -----------------------------------------------------------------

  private async token(ctx: Ctx, method: string): Promise<void> {
    const tokens = this.d.tokens;
    if (!tokens?.canIssue) throw new HttpError(404, "UNSUPPORTED", "this registry has no token service");
    onlyMethods(method, ["GET", "POST"]);
    let params = ctx.query;
    let creds = parseBasicAuth(ctx.req.headers.authorization);
    let offline = params.get("offline_token") === "true";
    let refreshed: string | undefined;
    if (method === "POST") {
      params = new URLSearchParams(
        (await readAllLimited(ctx.req, 64 * 1024, "token request")).toString("utf8"),
      );
      const grant = params.get("grant_type");
      if (grant === "password") {
        creds = { user: params.get("username") ?? "", password: params.get("password") ?? "" };
        offline = params.get("access_type") === "offline";
      } else if (grant === "refresh_token") {
        // The user the refresh token names, if they still exist (it is a password's stand-in).
        const rt = params.get("refresh_token") ?? "";
        let user: string;
        try {
          user = await tokens.verifyRefresh(rt);
        } catch (e) {
          return this.sendJson(ctx, 401, { error: "invalid_grant", error_description: errorMessage(e) });
        }
        if (!(await this.d.htpasswd?.has(user)))
          return this.sendJson(ctx, 401, { error: "invalid_grant", error_description: "unknown user" });
        ctx.user = user;
        ctx.authenticated = true;
        creds = undefined;
        refreshed = rt;
      } else
        return this.sendJson(ctx, 400, {
          error: "unsupported_grant_type",
          error_description: `grant_type ${grant}`,
        });
    }
    if (creds) await this.checkPassword(ctx, creds.user, creds.password);
    const granted = grantScopes(this.d.policy, ctx.user, parseScopes(params.getAll("scope")));
    const t = await tokens.issue(ctx.user, granted);
    // An offline token (docker login's identity token) only for a user who proved a password.
    const refresh =
      refreshed ?? (offline && creds && ctx.user ? await tokens.issueRefresh(ctx.user) : undefined);
    return this.sendJson(ctx, 200, {
      token: t.token,
      access_token: t.token,
      expires_in: t.expiresIn,
      issued_at: t.issuedAt.toISOString(),
      ...(refresh ? { refresh_token: refresh } : {}),
    });
  }
}

// ---- small parsers -------------------------------------------------------------------

function onlyMethods(method: string, allowed: string[]): void {
  if (!allowed.includes(method))
    throw new HttpError(405, "UNSUPPORTED", `method ${method} is not allowed here`, {
      Allow: allowed.join(", "),
    });
}

function checkName(raw: string): string {
  const name = raw;
  if (!isValidName(name))
    throw new HttpError(400, "NAME_INVALID", "invalid repository name", {}, { name: name.slice(0, 300) });
  return name;
}

function checkReference(ref: string, forPut: boolean): void {
  if (isDigestRef(ref)) {
    parseDigestParam(ref);
    return;
  }
  if (!isValidTag(ref)) {
    if (forPut) throw new HttpError(400, "TAG_INVALID", `invalid tag ${JSON.stringify(ref.slice(0, 200))}`);
    throw new HttpError(404, "MANIFEST_UNKNOWN", "manifest unknown");
  }
}

function parseDigestParam(s: string): Digest {
  try {
    return parseDigest(s);
  } catch (e) {
    throw new HttpError(400, "DIGEST_INVALID", `invalid digest: ${errorMessage(e)}`);
  }
}

function contentLength(ctx: Ctx): number | undefined {
  const v = ctx.req.headers["content-length"];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new HttpError(400, "SIZE_INVALID", "invalid Content-Length");
  return n;
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

/** `Content-Range: <start>-<end>` (the spec's form), also `bytes <start>-<end>/<total>`. */
function parseContentRange(h: string | undefined): { start: number; end: number } | undefined {
  if (h === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(h.trim());
  if (!m) throw new HttpError(416, "BLOB_UPLOAD_INVALID", `invalid Content-Range ${JSON.stringify(h)}`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start)
    throw new HttpError(416, "BLOB_UPLOAD_INVALID", `invalid Content-Range ${JSON.stringify(h)}`);
  return { start, end };
}

/** A single `bytes=` range, clipped to the blob; undefined when unsatisfiable or malformed. */
function parseRange(h: string, size: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return undefined;
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return undefined;
  return { start, end };
}

function parseAccept(h: string | string[] | undefined): string[] {
  if (h === undefined) return [];
  const all = Array.isArray(h) ? h.join(",") : h;
  return all
    .split(",")
    .map((s) => s.split(";")[0]!.trim())
    .filter(Boolean);
}

function scopeString(r: Resource): string {
  if (r.type === "registry") return "registry:catalog:*";
  // Docker asks for pull with push; asking for both saves the client a second round trip.
  const actions = r.action === "push" ? "pull,push" : r.action;
  return `repository:${r.name}:${actions}`;
}

function clampInt(v: string | null, dflt: number, min: number, max: number): number {
  if (v === null || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n)) return dflt;
  return Math.min(max, Math.max(min, n));
}

/** `n`/`last` pagination with a `Link: <...>; rel="next"` header when more entries follow. */
function paginate(ctx: Ctx, all: string[], base: string, defaultN?: number): string[] {
  const nRaw = ctx.query.get("n");
  const last = ctx.query.get("last");
  let n: number | undefined = defaultN;
  if (nRaw !== null && nRaw !== "") {
    if (!/^\d+$/.test(nRaw))
      throw new HttpError(400, "PAGINATION_NUMBER_INVALID", `invalid n ${JSON.stringify(nRaw)}`);
    n = Number(nRaw);
  }
  let rest = last ? all.filter((t) => compareStrings(t, last) > 0) : all;
  if (n === undefined) return rest;
  const page = rest.slice(0, n);
  rest = rest.slice(n);
  if (n > 0 && rest.length > 0) {
    const next = `${base}?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}`;
    ctx.res.setHeader("Link", `<${next}>; rel="next"`);
  }
  return page;
}

export { MANIFEST_TYPES };
