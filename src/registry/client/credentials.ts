import { execFile } from "node:child_process";
import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DOCKER_HUB_INDEX_SERVER, isDockerHub } from "../../reference/index.js";
import { errorMessage, fsyncDir, isErrno, StrataError, tempNameFor, tlsChildEnv } from "../../util/index.js";

/** What a registry login needs (docker's types.AuthConfig, the parts that matter to a client). */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** An OAuth refresh token: exchanged at the token service for access tokens. */
  identityToken?: string;
  /** A bearer token sent to the registry as it is. */
  registryToken?: string;
}

/** Where a client looks credentials up, by the key Docker's config.json uses (see credentialsKey). */
export interface CredentialSource {
  get(key: string): Promise<AuthConfig | undefined>;
}

/** Credentials held in memory (tests, `login -u/-p` before they are stored). */
export class StaticCredentials implements CredentialSource {
  constructor(private readonly byKey: Record<string, AuthConfig>) {}

  async get(key: string): Promise<AuthConfig | undefined> {
    return this.byKey[key] ?? this.byKey[convertToHostname(key)];
  }
}

/**
 * The key under which Docker keeps a registry's credentials: Docker Hub's index server URL
 * (`https://index.docker.io/v1/`) for docker.io, else the registry's `host[:port]`.
 */
export function credentialsKey(domain: string): string {
  return isDockerHub(domain) || domain === DOCKER_HUB_INDEX_SERVER ? DOCKER_HUB_INDEX_SERVER : domain;
}

/** docker/cli's ConvertToHostname: `https://host:5000/v2/` -> `host:5000`. */
export function convertToHostname(url: string): string {
  const stripped = url.replace(/^https?:\/\//, "");
  return stripped.split("/", 1)[0]!;
}

/** The directory of Docker's client config: `$DOCKER_CONFIG`, else `~/.docker`. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG ? path.resolve(env.DOCKER_CONFIG) : path.join(os.homedir(), ".docker");
}

interface FileAuth {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
  [k: string]: unknown;
}

interface ConfigDoc {
  auths?: Record<string, FileAuth>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

/** Where `store` put the credentials: a helper, or the file in plain (base64) text. */
export type StoredIn = { helper: string } | { file: string };

/**
 * Docker's `config.json` with its credential stores, read and written like docker/cli so a
 * `docker login` works for Strata and the other way round: `auths` entries (base64
 * `user:password`, or an `identitytoken`), `credsStore` (one helper for every registry) and
 * `credHelpers` (a helper per registry), through the `docker-credential-<name>` protocol
 * (`get`/`store`/`erase` with the server on stdin and JSON on stdout). Fields Strata does not
 * know are kept when the file is rewritten.
 */
export class DockerConfig implements CredentialSource {
  readonly file: string;

  constructor(
    readonly dir: string = dockerConfigDir(),
    private readonly opts: { helperTimeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ) {
    this.file = path.join(dir, "config.json");
  }

  async read(): Promise<ConfigDoc> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, "utf8");
    } catch (e) {
      if (isErrno(e, "ENOENT")) return {};
      throw new StrataError("CREDENTIALS_ERROR", `cannot read ${this.file}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
    if (text.trim() === "") return {};
    try {
      const doc = JSON.parse(text) as unknown;
      if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error("not a JSON object");
      return doc as ConfigDoc;
    } catch (e) {
      throw new StrataError("CREDENTIALS_ERROR", `${this.file}: invalid JSON: ${errorMessage(e)}`, {
        cause: e,
      });
    }
  }

  private helperFor(doc: ConfigDoc, key: string): string | undefined {
    return (
      doc.credHelpers?.[key] ?? doc.credHelpers?.[convertToHostname(key)] ?? (doc.credsStore || undefined)
    );
  }

  async get(key: string): Promise<AuthConfig | undefined> {
    const doc = await this.read();
    const helper = this.helperFor(doc, key);
    if (helper) {
      const out = await this.runHelper(helper, "get", key);
      if (out === undefined) return undefined;
      let parsed: { Username?: unknown; Secret?: unknown };
      try {
        parsed = JSON.parse(out) as typeof parsed;
      } catch (e) {
        throw new StrataError("CREDENTIALS_ERROR", `docker-credential-${helper}: invalid JSON on stdout`, {
          cause: e,
        });
      }
      const user = typeof parsed.Username === "string" ? parsed.Username : "";
      const secret = typeof parsed.Secret === "string" ? parsed.Secret : "";
      if (!secret && !user) return undefined;
      return user === "<token>" ? { identityToken: secret } : { username: user, password: secret };
    }
    const auths = doc.auths ?? {};
    let entry = auths[key];
    if (entry === undefined) {
      const host = convertToHostname(key);
      for (const [k, v] of Object.entries(auths)) if (convertToHostname(k) === host) entry ??= v;
    }
    return entry ? decodeFileAuth(entry, this.file) : undefined;
  }

  /**
   * Save credentials for `key`. With a helper the secret goes to it and the file keeps an
   * empty entry (as docker does); otherwise the file holds base64 `user:password`.
   */
  async store(key: string, auth: AuthConfig): Promise<StoredIn> {
    const doc = await this.read();
    const helper = this.helperFor(doc, key);
    doc.auths ??= {};
    if (helper) {
      const username = auth.identityToken ? "<token>" : (auth.username ?? "");
      const secret = auth.identityToken ?? auth.password ?? "";
      await this.runHelper(
        helper,
        "store",
        JSON.stringify({ ServerURL: key, Username: username, Secret: secret }),
      );
      doc.auths[key] = {};
      await this.write(doc);
      return { helper };
    }
    const entry: FileAuth = {};
    if (auth.username !== undefined || auth.password !== undefined)
      entry.auth = Buffer.from(`${auth.username ?? ""}:${auth.password ?? ""}`).toString("base64");
    if (auth.identityToken) entry.identitytoken = auth.identityToken;
    doc.auths[key] = entry;
    await this.write(doc);
    return { file: this.file };
  }

  /** Remove credentials for `key` (any spelling of the same host); false when there were none. */
  async erase(key: string): Promise<boolean> {
    const doc = await this.read();
    const helper = this.helperFor(doc, key);
    let found = false;
    if (helper) {
      const had = await this.runHelper(helper, "get", key);
      if (had !== undefined) {
        await this.runHelper(helper, "erase", key);
        found = true;
      }
    }
    const host = convertToHostname(key);
    for (const k of Object.keys(doc.auths ?? {})) {
      if (k === key || convertToHostname(k) === host) {
        delete doc.auths![k];
        found = true;
      }
    }
    if (found) await this.write(doc);
    return found;
  }

  /** docker/cli writes the file with tabs, mode 0600, by temp file and rename. */
  private async write(doc: ConfigDoc): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = tempNameFor(this.file);
    try {
      await fsp.writeFile(tmp, JSON.stringify(doc, null, "\t"), { mode: 0o600 });
      await fsp.rename(tmp, this.file);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw new StrataError("CREDENTIALS_ERROR", `cannot write ${this.file}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
    await fsyncDir(this.dir).catch(() => {});
  }

  /**
   * Run `docker-credential-<helper> <action>` with `input` on stdin. For `get`, a "not found"
   * answer is undefined; any other failure is a CREDENTIALS_ERROR naming the helper.
   */
  private runHelper(
    helper: string,
    action: "get" | "store" | "erase",
    input: string,
  ): Promise<string | undefined> {
    const program = `docker-credential-${helper}`;
    return new Promise((resolve, reject) => {
      const child = execFile(
        program,
        [action],
        {
          timeout: this.opts.helperTimeoutMs ?? 30_000,
          env: tlsChildEnv(this.opts.env ?? process.env),
          maxBuffer: 1 << 20,
        },
        (err, stdout, stderr) => {
          const out = String(stdout).trim();
          if (!err) return resolve(out);
          if (action === "get" && /credentials not found/i.test(`${out} ${stderr}`))
            return resolve(undefined);
          const why = isErrno(err, "ENOENT")
            ? `${program} not found in PATH`
            : `${program} ${action}: ${(out || String(stderr).trim() || err.message).split("\n")[0]}`;
          reject(
            new StrataError("CREDENTIALS_ERROR", `error getting credentials - err: ${why}`, { cause: err }),
          );
        },
      );
      child.stdin?.on("error", () => {});
      child.stdin?.end(input);
    });
  }
}

function decodeFileAuth(e: FileAuth, file: string): AuthConfig {
  const out: AuthConfig = {};
  if (typeof e.auth === "string" && e.auth !== "") {
    const decoded = Buffer.from(e.auth, "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i < 0) throw new StrataError("CREDENTIALS_ERROR", `${file}: invalid auth configuration file`);
    out.username = decoded.slice(0, i);
    out.password = decoded.slice(i + 1);
  } else {
    if (typeof e.username === "string") out.username = e.username;
    if (typeof e.password === "string") out.password = e.password;
  }
  if (typeof e.identitytoken === "string" && e.identitytoken) out.identityToken = e.identitytoken;
  if (typeof e.registrytoken === "string" && e.registrytoken) out.registryToken = e.registrytoken;
  return out;
}
