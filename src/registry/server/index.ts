/**
 * The registry server: an OCI distribution-spec v1.1 registry over a StorageDriver, with
 * htpasswd Basic auth, Docker token auth, access rules, search, gc and fsck. See README.md.
 */
export { AccessPolicy } from "./access.js";
export {
  type AccessRule,
  type Action,
  loadConfigFile,
  type RegistryConfig,
  type RegistryConfigFile,
  registryConfigSchema,
  resolveConfig,
} from "./config.js";
export { FsDriver } from "./fs-driver.js";
export { checkRegistry, collectGarbage, type FsckReport, type GcOptions, type GcReport } from "./gc.js";
export { LAYOUT_VERSION } from "./layout.js";
export { isValidName, isValidTag, NAME_RE, TAG_RE } from "./names.js";
export { Registry } from "./registry.js";
export { isLoopback, parseAddr, type RunningRegistry, startRegistryServer } from "./server.js";
export type { AppendWriter, FileInfo, StorageDriver } from "./storage.js";
