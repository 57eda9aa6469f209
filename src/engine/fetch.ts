import type { Readable } from "node:stream";
import { StrataError, trustedCas } from "../util/index.js";

/** Open an http(s) URL as a stream (`import URL`), following redirects. */
export async function openUrl(url: string, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
  // undici is CommonJS: bundled, its exports may sit on the module's default.
  const undici = (await import("undici")) as typeof import("undici") & { default?: typeof import("undici") };
  const u = undici.default ?? undici;
  const ca = trustedCas((await import("node:tls")).rootCertificates); // http may redirect to https
  const dispatcher = ca ? new u.Agent({ connect: { ca } }) : undefined;
  let target = url;
  for (let hops = 0; hops < 10; hops++) {
    const res = await u
      .request(target, { method: "GET", signal: opts.signal, dispatcher })
      .catch((e: Error) => {
        throw new StrataError("IO_ERROR", `Get "${target}": ${e.message}`, { cause: e });
      });
    if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
      await res.body.dump();
      target = new URL(String(res.headers.location), target).toString();
      continue;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new StrataError("IO_ERROR", `Get "${target}": unexpected status ${res.statusCode}`);
    }
    return res.body as unknown as Readable;
  }
  throw new StrataError("IO_ERROR", `Get "${url}": stopped after 10 redirects`);
}
