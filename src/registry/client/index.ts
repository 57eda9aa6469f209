/**
 * The registry client: the OCI distribution protocol (and Docker registry v2) over
 * HTTP(S). Transport with TLS settings per registry, bounded retries and safe redirects;
 * Bearer and Basic auth with Docker's config.json and credential helpers; lazy
 * RemoteImage/RemoteIndex views; concurrent verified pulls into a consumer's LayerSink and
 * pushes from its PushLayer sources. It never touches the local store: engine/ connects
 * them. See README.md.
 */
export { type Challenge, parseChallenges } from "./challenge.js";
export {
  type AuthConfig,
  type CredentialSource,
  convertToHostname,
  credentialsKey,
  DockerConfig,
  dockerConfigDir,
  StaticCredentials,
  type StoredIn,
} from "./credentials.js";
export { registryError } from "./errors.js";
export {
  DeflatePool,
  ParallelGzip,
  type ParallelGzipOptions,
  parallelGzip,
  sampledEntropy,
  storedBlocks,
} from "./gzip.js";
export { Limiter, SingleFlight } from "./limiter.js";
export {
  type ClientOptions,
  isInsecureRegistry,
  type ResolvedClientOptions,
  type RetryOptions,
  resolveOptions,
} from "./options.js";
export {
  noProgress,
  type ProgressEvent,
  type ProgressSink,
  ProgressThrottle,
  type TransferProgress,
  update,
} from "./progress.js";
export { type LayerSink, type PullLayersOptions, type PullLayersResult, pullLayers } from "./pull.js";
export {
  type KnownBlob,
  type PushedLayer,
  type PushImageInput,
  type PushImageOptions,
  type PushImageResult,
  type PushLayer,
  type PushOutcome,
  pushId,
  pushImage,
} from "./push.js";
export { MANIFEST_ACCEPT, type RawManifest, RegistryClient, RepositoryClient } from "./registry.js";
export {
  indexView,
  type RemoteImage,
  type RemoteIndex,
  type RemoteLayer,
  type ResolveOptions,
  resolveImage,
} from "./remote.js";
export { type SearchResult, searchIndex } from "./search.js";
export { Transport } from "./transport.js";

import type { AuthConfig } from "./credentials.js";
import { type ClientOptions, type ResolvedClientOptions, resolveOptions } from "./options.js";
import { RegistryClient } from "./registry.js";
import { Transport } from "./transport.js";

/**
 * The entry point: one per operation (a pull, a push, a login). Holds the transport (its
 * connection pools) and one RegistryClient per registry, so tokens and the /v2/ ping are
 * shared by everything the operation does. close() ends the pools.
 */
export class Client {
  readonly opts: ResolvedClientOptions;
  readonly transport: Transport;
  private readonly registries = new Map<string, RegistryClient>();

  constructor(opts: ClientOptions = {}) {
    this.opts = resolveOptions(opts);
    this.transport = new Transport(this.opts);
  }

  /** The client for a reference's domain (`docker.io`, `127.0.0.1:5000`). `auth` overrides stored credentials. */
  registry(domain: string, auth?: AuthConfig): RegistryClient {
    const key = auth ? `${domain}\0${JSON.stringify(auth)}` : domain;
    let r = this.registries.get(key);
    if (!r) {
      r = new RegistryClient(this.transport, this.opts, domain, auth);
      this.registries.set(key, r);
    }
    return r;
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
