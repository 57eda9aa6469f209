/**
 * Docker image references, as distribution/reference and docker/cli read and print
 * them. Pure: no I/O. See README.md.
 */
export { grammar } from "./grammar.js";
export { BAD_PATTERN, familiarMatch, pathMatch } from "./match.js";
export {
  DEFAULT_DOMAIN,
  DEFAULT_TAG,
  familiarName,
  familiarString,
  LEGACY_DEFAULT_DOMAIN,
  OFFICIAL_REPO_PREFIX,
  parseAnyReference,
  parseDockerRef,
  parseNamed,
  parseNormalizedNamed,
  splitDockerDomain,
  withDefaultTag,
} from "./normalize.js";
export {
  type AnyReference,
  type DigestReference,
  isNamed,
  isNameOnly,
  NAME_TOTAL_LENGTH_MAX,
  type ParseOptions,
  parseReference,
  REFERENCE_ERRORS,
  type Reference,
  referenceString,
  repositoryName,
  splitDomain,
  trimNamed,
  validateTag,
  withDigest,
  withName,
  withTag,
} from "./reference.js";
export {
  DOCKER_HUB_INDEX_SERVER,
  DOCKER_HUB_REGISTRY_HOST,
  type IndexInfo,
  indexInfo,
  isDockerHub,
  isLoopbackHost,
  parseIPv4,
  parseIPv6,
  registryHost,
  splitHostPort,
} from "./registry.js";
export { compareCodePoints, sortReferences } from "./sort.js";
