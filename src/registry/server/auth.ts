import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  X509Certificate,
} from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import bcrypt from "bcryptjs";
import { calculateJwkThumbprint, exportJWK, jwtVerify, SignJWT } from "jose";
import { isErrno, StrataError } from "../../util/index.js";
import type { AccessPolicy } from "./access.js";
import type { Action } from "./config.js";

/** One entry of a token's `access` claim (Docker token spec). */
export interface Grant {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Basic-auth users from an Apache htpasswd file with bcrypt hashes (`htpasswd -B`). Other
 * hash kinds are refused, as CNCF distribution does. The file is re-read when it changes.
 * A successful bcrypt check is remembered for a minute by a hash of user and password, so
 * clients that send Basic auth on every request (docker, skopeo) do not pay ~50 ms each.
 */
export class Htpasswd {
  private users = new Map<string, string>();
  private mtimeMs = -1;
  private checkedAt = 0;
  private readonly verified = new Map<string, number>();

  constructor(readonly file: string) {}

  async load(): Promise<void> {
    const st = await fsp.stat(this.file);
    if (st.mtimeMs === this.mtimeMs) return;
    const text = await fsp.readFile(this.file, "utf8");
    const users = new Map<string, string>();
    for (const [i, line] of text.split(/\r?\n/).entries()) {
      const l = line.trim();
      if (!l || l.startsWith("#")) continue;
      const c = l.indexOf(":");
      if (c <= 0) throw new StrataError("INVALID_ARGUMENT", `${this.file}:${i + 1}: not user:hash`);
      users.set(l.slice(0, c), l.slice(c + 1));
    }
    this.users = users;
    this.mtimeMs = st.mtimeMs;
    this.verified.clear();
  }

  /** Is the user still in the file (a refresh token stands for a user who may have been removed)? */
  async has(user: string): Promise<boolean> {
    await this.reload();
    return this.users.has(user);
  }

  private async reload(): Promise<void> {
    const now = Date.now();
    if (now - this.checkedAt > 1000) {
      this.checkedAt = now;
      await this.load();
    }
  }

  async verify(user: string, password: string): Promise<boolean> {
    const now = Date.now();
    await this.reload();
    const hash = this.users.get(user);
    if (!hash || !/^\$2[aby]\$\d\d\$/.test(hash)) return false;
    const key = createHash("sha256").update(`${user}\0${password}\0${hash}`).digest("hex");
    const until = this.verified.get(key);
    if (until !== undefined && until > now) return true;
    const ok = await bcrypt.compare(password, hash.replace(/^\$2y\$/, "$2a$"));
    if (ok) {
      if (this.verified.size > 10_000) this.verified.clear();
      this.verified.set(key, now + 60_000);
    }
    return ok;
  }
}

/** Failed logins per client address in a sliding window; over the limit, logins wait. */
export class FailedLogins {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly opts: { max: number; windowSeconds: number }) {}

  /** Seconds to wait before trying again, or 0 when the client may try now. */
  retryAfter(addr: string): number {
    const now = Date.now();
    const list = (this.failures.get(addr) ?? []).filter((t) => now - t < this.opts.windowSeconds * 1000);
    if (list.length === 0) this.failures.delete(addr);
    else this.failures.set(addr, list);
    if (list.length < this.opts.max) return 0;
    return Math.max(1, Math.ceil((list[0]! + this.opts.windowSeconds * 1000 - now) / 1000));
  }

  fail(addr: string): void {
    const list = this.failures.get(addr) ?? [];
    list.push(Date.now());
    this.failures.set(addr, list);
    if (this.failures.size > 100_000) this.failures.clear();
  }
}

export function parseBasicAuth(header: string | undefined): { user: string; password: string } | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
  const c = decoded.indexOf(":");
  if (c < 0) return undefined;
  return { user: decoded.slice(0, c), password: decoded.slice(c + 1) };
}

export function parseBearer(header: string | undefined): string | undefined {
  if (!header || !/^bearer /i.test(header)) return undefined;
  return header.slice(7).trim() || undefined;
}

/**
 * Parse token-request scopes: `repository:team/app:pull,push`, `registry:catalog:*`,
 * several per parameter separated by spaces. The resource class `repository(plugin)` is
 * accepted and treated as `repository`.
 */
export function parseScopes(values: string[]): Grant[] {
  const out: Grant[] = [];
  for (const v of values) {
    for (const s of v.split(" ").filter(Boolean)) {
      const first = s.indexOf(":");
      const last = s.lastIndexOf(":");
      if (first <= 0 || last === first) continue;
      const type = s.slice(0, first).replace(/\(.*\)$/, "");
      out.push({
        type,
        name: s.slice(first + 1, last),
        actions: s
          .slice(last + 1)
          .split(",")
          .filter(Boolean),
      });
    }
  }
  return out;
}

/** What a user may get for the requested scopes: the intersection with the access rules. */
export function grantScopes(policy: AccessPolicy, user: string | undefined, requested: Grant[]): Grant[] {
  const out: Grant[] = [];
  for (const g of requested) {
    if (g.type === "repository") {
      const allowed = policy.actions(user, g.name);
      const actions = g.actions.includes("*")
        ? allowed
        : g.actions.filter((a) => allowed.includes(a as Action));
      out.push({ type: "repository", name: g.name, actions });
    } else if (g.type === "registry" && g.name === "catalog") {
      out.push({ type: "registry", name: "catalog", actions: policy.catalogAllowed(user) ? ["*"] : [] });
    }
  }
  return out;
}

export interface TokenClaims {
  sub?: string;
  access: Grant[];
  /** Set on tokens our own service issued: the access rules that decided them are ours. */
  ownIssuer: boolean;
}

/**
 * Docker token auth: sign tokens (when this server is its own token service) and verify
 * them (ours, or an external service's, given its public key). Tokens are JWTs with the
 * token spec's claims: iss, sub, aud (the service), exp, nbf, iat, jti, access.
 */
export class TokenAuthority {
  private readonly verifiedCache = new Map<string, { claims: TokenClaims; exp: number }>();

  private constructor(
    readonly issuer: string,
    readonly service: string,
    readonly expiresIn: number,
    private readonly signing: { key: KeyObject; alg: string; kid: string } | undefined,
    private readonly verifyKey: KeyObject,
    private readonly verifyAlgs: string[],
  ) {}

  /** Our own token service: the signing key from `signingKeyFile`, or generated under `root`. */
  static async own(opts: {
    issuer: string;
    service: string;
    expiresIn: number;
    signingKeyFile?: string;
    root: string;
  }): Promise<TokenAuthority> {
    let pem: string;
    if (opts.signingKeyFile) pem = await fsp.readFile(opts.signingKeyFile, "utf8");
    else {
      const file = path.join(opts.root, "token", "signing-key.pem");
      try {
        pem = await fsp.readFile(file, "utf8");
      } catch (e) {
        if (!isErrno(e, "ENOENT")) throw e;
        const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
        await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
        await fsp.writeFile(file, pem, { mode: 0o600, flag: "wx" }).catch(async (err) => {
          if (!isErrno(err, "EEXIST")) throw err;
          pem = await fsp.readFile(file, "utf8");
        });
      }
    }
    const key = createPrivateKey(pem);
    const alg = algFor(key);
    const pub = createPublicKey(key);
    const kid = await calculateJwkThumbprint(await exportJWK(pub));
    return new TokenAuthority(opts.issuer, opts.service, opts.expiresIn, { key, alg, kid }, pub, [alg]);
  }

  /** Trust an external token service: its public key or certificate (PEM). */
  static async external(opts: {
    issuer: string;
    service: string;
    publicKeyFile: string;
  }): Promise<TokenAuthority> {
    const pem = await fsp.readFile(opts.publicKeyFile, "utf8");
    const pub = pem.includes("BEGIN CERTIFICATE") ? new X509Certificate(pem).publicKey : createPublicKey(pem);
    const alg = algFor(pub);
    const algs = alg.startsWith("RS") ? ["RS256", "RS384", "RS512", "PS256"] : [alg];
    return new TokenAuthority(opts.issuer, opts.service, 300, undefined, pub, algs);
  }

  get canIssue(): boolean {
    return this.signing !== undefined;
  }

  async issue(
    sub: string | undefined,
    access: Grant[],
  ): Promise<{ token: string; expiresIn: number; issuedAt: Date }> {
    if (!this.signing) throw new StrataError("UNSUPPORTED", "this registry trusts an external token service");
    const now = new Date();
    const iat = Math.floor(now.getTime() / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: this.signing.alg, typ: "JWT", kid: this.signing.kid })
      .setIssuer(this.issuer)
      .setSubject(sub ?? "")
      .setAudience(this.service)
      .setIssuedAt(iat)
      .setNotBefore(iat - 10)
      .setExpirationTime(iat + this.expiresIn)
      .setJti(randomUUID())
      .sign(this.signing.key);
    return { token, expiresIn: this.expiresIn, issuedAt: now };
  }

  /** Lifetime of a refresh token (an `identitytoken` docker keeps in its config), seconds. */
  static readonly REFRESH_LIFETIME = 30 * 24 * 3600;

  /**
   * A refresh token for `sub` (the OAuth2 offline token docker's login asks for): signed like
   * access tokens but marked, granting nothing itself; the token endpoint trades it for
   * access tokens with `grant_type=refresh_token`.
   */
  async issueRefresh(sub: string): Promise<string> {
    if (!this.signing) throw new StrataError("UNSUPPORTED", "this registry trusts an external token service");
    const iat = Math.floor(Date.now() / 1000);
    return new SignJWT({ strata_refresh: true })
      .setProtectedHeader({ alg: this.signing.alg, typ: "JWT", kid: this.signing.kid })
      .setIssuer(this.issuer)
      .setSubject(sub)
      .setAudience(this.service)
      .setIssuedAt(iat)
      .setExpirationTime(iat + TokenAuthority.REFRESH_LIFETIME)
      .setJti(randomUUID())
      .sign(this.signing.key);
  }

  /** A token's claims once its signature, issuer and audience check out; else UNAUTHENTICATED. */
  private async verifiedPayload(
    token: string,
    what: string,
    clockTolerance?: number,
  ): Promise<Record<string, unknown>> {
    try {
      const { payload } = await jwtVerify(token, this.verifyKey, {
        issuer: this.issuer,
        audience: this.service,
        algorithms: this.verifyAlgs,
        clockTolerance,
      });
      return payload;
    } catch (e) {
      throw new StrataError("UNAUTHENTICATED", `${what}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** The user a refresh token was issued to. Throws UNAUTHENTICATED. */
  async verifyRefresh(token: string): Promise<string> {
    const payload = await this.verifiedPayload(token, "invalid refresh token");
    if (payload.strata_refresh !== true || typeof payload.sub !== "string" || !payload.sub)
      throw new StrataError("UNAUTHENTICATED", "invalid refresh token: not a refresh token");
    return payload.sub;
  }

  /** Verify signature, issuer, audience and times. Throws UNAUTHENTICATED. */
  async verify(token: string): Promise<TokenClaims> {
    const now = Date.now();
    const hit = this.verifiedCache.get(token);
    if (hit && hit.exp > now) return hit.claims;
    const payload = await this.verifiedPayload(token, "invalid token", 30);
    // A refresh token is only for the token endpoint.
    if (payload.strata_refresh !== undefined)
      throw new StrataError("UNAUTHENTICATED", "invalid token: a refresh token is not an access token");
    const access = Array.isArray(payload.access)
      ? (payload.access as unknown[]).flatMap((g): Grant[] => {
          const o = g as Partial<Grant>;
          return typeof o?.type === "string" && typeof o.name === "string" && Array.isArray(o.actions)
            ? [
                {
                  type: o.type,
                  name: o.name,
                  actions: o.actions.filter((a): a is string => typeof a === "string"),
                },
              ]
            : [];
        })
      : [];
    const claims: TokenClaims = {
      ...(typeof payload.sub === "string" && payload.sub ? { sub: payload.sub } : {}),
      access,
      ownIssuer: this.canIssue,
    };
    if (this.verifiedCache.size > 10_000) this.verifiedCache.clear();
    const exp = typeof payload.exp === "number" ? payload.exp * 1000 : now + 60_000;
    this.verifiedCache.set(token, { claims, exp });
    return claims;
  }
}

function algFor(key: KeyObject): string {
  const t = key.asymmetricKeyType;
  if (t === "rsa") return "RS256";
  if (t === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1" || curve === "P-256") return "ES256";
    if (curve === "secp384r1" || curve === "P-384") return "ES384";
    if (curve === "secp521r1" || curve === "P-521") return "ES512";
  }
  if (t === "ed25519") return "EdDSA";
  throw new StrataError("UNSUPPORTED", `token keys must be RSA, EC P-256/384/521 or Ed25519, not ${t}`);
}

/** Does a token grant `action` (or `*`) on the resource? */
export function tokenAllows(claims: TokenClaims, type: string, name: string, action: string): boolean {
  return claims.access.some(
    (g) => g.type === type && g.name === name && (g.actions.includes(action) || g.actions.includes("*")),
  );
}
