import type { Readable } from "node:stream";
import { extraCaAgent, StrataError, undiciModule } from "../util/index.js";

/** Open an http(s) URL as a stream (`import URL`), following redirects. */
export async function openUrl(url: string, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
  const u = await undiciModule();
  const dispatcher = await extraCaAgent(); // also for http: it may redirect to https
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
