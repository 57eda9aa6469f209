/**
 * The lint rules: stable names, a doc line, BuildKit's message formats. The BuildKit rules copy
 * `frontend/dockerfile/linter/ruleset.go` word for word; the Strata rules are ours. A retired
 * rule name is never reused.
 */

import { goQuote } from "./text.js";

/** A rule: stable name, doc line, documentation URL and message format. */
export interface LintRule<A extends unknown[] = string[]> {
  name: string;
  description: string;
  url?: string;
  /** "buildkit" for BuildKit's rules, "strata" for ours. */
  origin: "buildkit" | "strata";
  format: (...args: A) => string;
}

const q = goQuote;

function rule<A extends unknown[]>(r: LintRule<A>): LintRule<A> {
  return r;
}

const DOCS = "https://docs.docker.com/go/dockerfile/rule/";

/** Every lint rule, by name. */
export const RULES = {
  StageNameCasing: rule({
    name: "StageNameCasing",
    description: "Stage names should be lowercase",
    url: `${DOCS}stage-name-casing/`,
    origin: "buildkit",
    format: (stage: string) => `Stage name '${stage}' should be lowercase`,
  }),
  FromAsCasing: rule({
    name: "FromAsCasing",
    description: "The 'as' keyword should match the case of the 'from' keyword",
    url: `${DOCS}from-as-casing/`,
    origin: "buildkit",
    format: (from: string, as: string) => `'${as}' and '${from}' keywords' casing do not match`,
  }),
  NoEmptyContinuation: rule({
    name: "NoEmptyContinuation",
    description: "Empty continuation lines will become errors in a future release",
    url: `${DOCS}no-empty-continuation/`,
    origin: "buildkit",
    format: () => "Empty continuation line",
  }),
  ConsistentInstructionCasing: rule({
    name: "ConsistentInstructionCasing",
    description: "All commands within the Dockerfile should use the same casing (either upper or lower)",
    url: `${DOCS}consistent-instruction-casing/`,
    origin: "buildkit",
    format: (cmd: string, casing: string) =>
      `Command '${cmd}' should match the case of the command majority (${casing})`,
  }),
  DuplicateStageName: rule({
    name: "DuplicateStageName",
    description: "Stage names should be unique",
    url: `${DOCS}duplicate-stage-name/`,
    origin: "buildkit",
    format: (stage: string) => `Duplicate stage name ${q(stage)}, stage names should be unique`,
  }),
  ReservedStageName: rule({
    name: "ReservedStageName",
    description: "Reserved words should not be used as stage names",
    url: `${DOCS}reserved-stage-name/`,
    origin: "buildkit",
    format: (stage: string) => `Stage name should not use the same name as reserved stage ${q(stage)}`,
  }),
  JSONArgsRecommended: rule({
    name: "JSONArgsRecommended",
    description:
      "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    url: `${DOCS}json-args-recommended/`,
    origin: "buildkit",
    format: (instruction: string) =>
      `JSON arguments recommended for ${instruction} to prevent unintended behavior related to OS signals`,
  }),
  MaintainerDeprecated: rule({
    name: "MaintainerDeprecated",
    description: "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    url: `${DOCS}maintainer-deprecated/`,
    origin: "buildkit",
    format: () => "Maintainer instruction is deprecated in favor of using label",
  }),
  UndefinedArgInFrom: rule({
    name: "UndefinedArgInFrom",
    description: "FROM command must use declared ARGs",
    url: `${DOCS}undefined-arg-in-from/`,
    origin: "buildkit",
    format: (arg: string, suggest?: string) =>
      `FROM argument '${arg}' is not declared${suggest ? ` (did you mean ${suggest}?)` : ""}`,
  }),
  WorkdirRelativePath: rule({
    name: "WorkdirRelativePath",
    description:
      "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    url: `${DOCS}workdir-relative-path/`,
    origin: "buildkit",
    format: (workdir: string) =>
      `Relative workdir ${q(workdir)} can have unexpected results if the base image changes`,
  }),
  UndefinedVar: rule({
    name: "UndefinedVar",
    description: "Variables should be defined before their use",
    url: `${DOCS}undefined-var/`,
    origin: "buildkit",
    format: (arg: string, suggest?: string) =>
      `Usage of undefined variable '$${arg}'${suggest ? ` (did you mean $${suggest}?)` : ""}`,
  }),
  MultipleInstructionsDisallowed: rule({
    name: "MultipleInstructionsDisallowed",
    description: "Multiple instructions of the same type should not be used in the same stage",
    url: `${DOCS}multiple-instructions-disallowed/`,
    origin: "buildkit",
    format: (instruction: string) =>
      `Multiple ${instruction} instructions should not be used in the same stage because only the last one will be used`,
  }),
  LegacyKeyValueFormat: rule({
    name: "LegacyKeyValueFormat",
    description: "Legacy key/value format with whitespace separator should not be used",
    url: `${DOCS}legacy-key-value-format/`,
    origin: "buildkit",
    format: (cmd: string) => `"${cmd} key=value" should be used instead of legacy "${cmd} key value" format`,
  }),
  RedundantTargetPlatform: rule({
    name: "RedundantTargetPlatform",
    description:
      "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    url: `${DOCS}redundant-target-platform/`,
    origin: "buildkit",
    format: (platformVar: string) =>
      `Setting platform to predefined ${platformVar} in FROM is redundant as this is the default behavior`,
  }),
  SecretsUsedInArgOrEnv: rule({
    name: "SecretsUsedInArgOrEnv",
    description: "Sensitive data should not be used in the ARG or ENV commands",
    url: `${DOCS}secrets-used-in-arg-or-env/`,
    origin: "buildkit",
    format: (instruction: string, key: string) =>
      `Do not use ARG or ENV instructions for sensitive data (${instruction} ${q(key)})`,
  }),
  InvalidDefaultArgInFrom: rule({
    name: "InvalidDefaultArgInFrom",
    description: "Default value for global ARG results in an empty or invalid base image name",
    url: `${DOCS}invalid-default-arg-in-from/`,
    origin: "buildkit",
    format: (baseName: string) =>
      `Default value for ARG ${baseName} results in empty or invalid base image name`,
  }),
  FromPlatformFlagConstDisallowed: rule({
    name: "FromPlatformFlagConstDisallowed",
    description: "FROM --platform flag should not use a constant value",
    url: `${DOCS}from-platform-flag-const-disallowed/`,
    origin: "buildkit",
    format: (platform: string) => `FROM --platform flag should not use constant value ${q(platform)}`,
  }),
  ExposeProtoCasing: rule({
    name: "ExposeProtoCasing",
    description: "Protocol in EXPOSE instruction should be lowercase",
    url: `${DOCS}expose-proto-casing/`,
    origin: "buildkit",
    format: (port: string) => `Defined protocol '${port}' in EXPOSE instruction should be lowercase`,
  }),
  ExposeInvalidFormat: rule({
    name: "ExposeInvalidFormat",
    description:
      "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
    url: `${DOCS}expose-invalid-format/`,
    origin: "buildkit",
    format: (port: string) =>
      `EXPOSE instruction should not define an IP address or host-port mapping, found '${port}'`,
  }),
  CopyIgnoredFile: rule({
    name: "CopyIgnoredFile",
    description: "Attempting to Copy file that is excluded by .dockerignore",
    url: `${DOCS}copy-ignored-file/`,
    origin: "buildkit",
    format: (cmd: string, file: string) =>
      `Attempting to ${cmd} file ${q(file)} that is excluded by .dockerignore`,
  }),

  RunAsRoot: rule({
    name: "RunAsRoot",
    description: "The final stage should switch to a non-root USER",
    origin: "strata",
    format: (user?: string) =>
      user === undefined
        ? "The final stage sets no USER, so the container runs as root; add a USER with a non-root user"
        : `The final stage runs as ${q(user)}, which is root; use a non-root user`,
  }),
  SecretInContext: rule({
    name: "SecretInContext",
    description: "COPY/ADD should not send likely secrets from the build context into the image",
    origin: "strata",
    format: (cmd: string, file: string) =>
      `${cmd} would add the likely secret ${q(file)} from the build context; exclude it in .dockerignore or mount it with RUN --mount=type=secret`,
  }),
  CacheBustingOrder: rule({
    name: "CacheBustingOrder",
    description: "Copy dependency manifests and install dependencies before copying the whole build context",
    origin: "strata",
    format: (cmd: string, tool: string, runLine: number) =>
      `${cmd} of the whole build context comes before the dependency install (${tool}) on line ${runLine}; copy only the dependency manifests first so that any source change does not rerun the install`,
  }),
  LatestBaseImage: rule({
    name: "LatestBaseImage",
    description: "Base images should be pinned to a version, not :latest or an untagged name",
    origin: "strata",
    format: (image: string) =>
      `Base image ${q(image)} is not pinned: it uses the latest tag; use a version tag (and a digest) for repeatable builds`,
  }),
  AptListsNotCleaned: rule({
    name: "AptListsNotCleaned",
    description: "apt-get install should remove /var/lib/apt/lists in the same RUN",
    origin: "strata",
    format: () =>
      'apt-get install without "rm -rf /var/lib/apt/lists/*" in the same RUN leaves the package lists in the layer',
  }),
  AddInsteadOfCopy: rule({
    name: "AddInsteadOfCopy",
    description: "Use COPY for local files and directories; ADD is for URLs, git and local archives",
    origin: "strata",
    format: (src: string) => `ADD of the local path ${q(src)} is neither an archive nor a URL; use COPY`,
  }),
} as const;

/** The name of a rule in RULES. */
export type RuleName = keyof typeof RULES;

/** Every rule name, in documentation order. */
export const RULE_NAMES = Object.keys(RULES) as RuleName[];
