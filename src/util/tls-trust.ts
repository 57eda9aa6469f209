import { readFileSync } from "node:fs";
import { errorMessage } from "./errors.js";

/**
 * Extra CA certificates, NODE_EXTRA_CA_CERTS's meaning, read when a TLS connection needs
 * them rather than at every start-up. Node itself reads that file before running any
 * JavaScript (55 ms for Debian's whole bundle on the reference machine, on every command),
 * so the `strata` launcher (bin/strata) moves the variable to STRATA_EXTRA_CA_CERTS and
 * the CLI's TLS clients (registry client, ADD and import URLs) add these certificates to
 * Node's own roots. Run as `node dist/bin/main.js`, Node has read NODE_EXTRA_CA_CERTS
 * itself and this is undefined.
 */
let cached: string[] | undefined | null = null;

/**
 * The extra CA certificates, read once. An unreadable file is what Node makes of it: a
 * warning, and the default roots only.
 */
export function extraCaCerts(): string[] | undefined {
  if (cached !== null) return cached;
  const file = process.env.STRATA_EXTRA_CA_CERTS;
  if (!file) return (cached = undefined);
  try {
    const text = readFileSync(file, "utf8");
    return (cached = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []);
  } catch (e) {
    process.stderr.write(`Warning: Ignoring extra certs from \`${file}\`, load failed: ${errorMessage(e)}\n`);
    return (cached = undefined);
  }
}

/**
 * The environment for a child process that may open TLS connections itself (a credential
 * helper): NODE_EXTRA_CA_CERTS back as the user set it.
 */
export function tlsChildEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return env.STRATA_EXTRA_CA_CERTS && !env.NODE_EXTRA_CA_CERTS
    ? { ...env, NODE_EXTRA_CA_CERTS: env.STRATA_EXTRA_CA_CERTS }
    : env;
}

/** The CA list for a TLS client: Node's roots plus the extra certificates and `more`, or undefined for Node's default. */
export function trustedCas(rootCertificates: readonly string[], more: string[] = []): string[] | undefined {
  const extra = extraCaCerts();
  if (!extra?.length && !more.length) return undefined;
  return [...rootCertificates, ...(extra ?? []), ...more];
}

/** Node's certificate-verification error codes in the words of Go's crypto/x509, as Docker prints them. */
export const TLS_VERIFY_REASONS: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "x509: certificate signed by unknown authority",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "x509: certificate signed by unknown authority",
  SELF_SIGNED_CERT_IN_CHAIN: "x509: certificate signed by unknown authority",
  DEPTH_ZERO_SELF_SIGNED_CERT: "x509: certificate signed by unknown authority",
  CERT_HAS_EXPIRED: "x509: certificate has expired or is not yet valid",
  CERT_NOT_YET_VALID: "x509: certificate has expired or is not yet valid",
  ERR_TLS_CERT_ALTNAME_INVALID: "x509: certificate is not valid for this host",
};

/**
 * The environment for a child process that opens no TLS connection (the container
 * supervisor): without NODE_EXTRA_CA_CERTS, which a Node child would read at start-up.
 */
export function tlsFreeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, NODE_EXTRA_CA_CERTS: undefined };
}

type Undici = typeof import("undici");

/** undici, loaded on first use (CommonJS: bundled, its exports may sit on the module's default). */
export async function undiciModule(): Promise<Undici> {
  const m = (await import("undici")) as Undici & { default?: Undici };
  return m.default ?? m;
}

let extraAgent: Promise<import("undici").Agent | undefined> | undefined;

/**
 * One undici agent that trusts Node's roots plus the extra CAs, for the http(s) clients
 * built on undici (ADD <url>, import <url>); undefined without extra CAs (the default
 * dispatcher then). Made once: given `ca`, every connection would build the store again.
 */
export function extraCaAgent(): Promise<import("undici").Agent | undefined> {
  extraAgent ??= (async () => {
    if (!extraCaCerts()?.length) return undefined;
    const ca = trustedCas((await import("node:tls")).rootCertificates);
    const { Agent } = await undiciModule();
    return new Agent({ connect: { ca } });
  })();
  return extraAgent;
}
