// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are Dockerfile text, where ${VAR} is literal
import { describe, expect, it } from "vitest";
import {
  isLikelySecretPath,
  isSecretKey,
  isValidImageReference,
  type LintOptions,
  type LintWarning,
  lint,
  lintDockerfile,
  lintFailure,
  loadDockerfile,
  parseCheckOptions,
  RULE_NAMES,
  RULES,
  type RuleName,
} from "../../../src/dockerfile/index.js";

const AMD64 = { os: "linux", architecture: "amd64" };
/** A tail that keeps the Strata rules about the final stage quiet. */
const OK_TAIL = "USER app\n";

function run(text: string, opts: LintOptions = {}): LintWarning[] {
  return lint(text, { buildPlatform: AMD64, ...opts });
}
function only(rule: RuleName, text: string, opts: LintOptions = {}): LintWarning[] {
  return run(text, opts).filter((w) => w.rule === rule);
}
function fires(rule: RuleName, text: string, opts: LintOptions = {}): LintWarning {
  const ws = only(rule, text, opts);
  expect(ws, `${rule} should fire on:\n${text}`).not.toEqual([]);
  return ws[0]!;
}
function quiet(rule: RuleName, text: string, opts: LintOptions = {}): void {
  expect(only(rule, text, opts), `${rule} should not fire on:\n${text}`).toEqual([]);
}

describe("BuildKit rules", () => {
  it("JSONArgsRecommended", () => {
    const w = fires("JSONArgsRecommended", `FROM alpine:3\n${OK_TAIL}CMD node server.js\n`);
    expect(w).toMatchObject({
      message: "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
      line: 3,
      url: "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
    });
    expect(fires("JSONArgsRecommended", "FROM alpine:3\nentrypoint run\n").message).toContain(
      "for entrypoint",
    );
    quiet("JSONArgsRecommended", 'FROM alpine:3\nCMD ["node", "server.js"]\n');
    quiet("JSONArgsRecommended", 'FROM alpine:3\nSHELL ["/bin/bash", "-c"]\nCMD node server.js\n');
  });

  it("StageNameCasing", () => {
    expect(fires("StageNameCasing", "FROM alpine:3 AS Build\n").message).toBe(
      "Stage name 'Build' should be lowercase",
    );
    quiet("StageNameCasing", "FROM alpine:3 AS build\n");
  });

  it("FromAsCasing", () => {
    expect(fires("FromAsCasing", "FROM alpine:3 as build\n").message).toBe(
      "'as' and 'FROM' keywords' casing do not match",
    );
    expect(fires("FromAsCasing", "from alpine:3 AS build\n").message).toBe(
      "'AS' and 'from' keywords' casing do not match",
    );
    quiet("FromAsCasing", "FROM alpine:3 AS build\nfrom alpine:3 as two\nFrom alpine:3 as three\n");
  });

  it("ConsistentInstructionCasing", () => {
    const ws = only("ConsistentInstructionCasing", "FROM alpine:3\nRUN a\nrun b\nCopy a b\n");
    expect(ws.map((w) => [w.line, w.message])).toEqual([
      [3, "Command 'run' should match the case of the command majority (uppercase)"],
      [4, "Command 'Copy' should match the case of the command majority (uppercase)"],
    ]);
    expect(fires("ConsistentInstructionCasing", "from alpine:3\nrun a\nRUN b\n").message).toContain(
      "(lowercase)",
    );
    quiet("ConsistentInstructionCasing", "from alpine:3\nrun a\n");
  });

  it("DuplicateStageName", () => {
    const w = fires("DuplicateStageName", "FROM alpine:3 AS a\nFROM alpine:3 AS A\n");
    expect(w).toMatchObject({ message: 'Duplicate stage name "a", stage names should be unique', line: 2 });
    quiet("DuplicateStageName", "FROM alpine:3 AS a\nFROM alpine:3 AS b\n");
  });

  it("ReservedStageName", () => {
    expect(fires("ReservedStageName", "FROM alpine:3 AS context\n").message).toBe(
      'Stage name should not use the same name as reserved stage "context"',
    );
    fires("ReservedStageName", "FROM alpine:3 AS scratch\n");
    quiet("ReservedStageName", "FROM alpine:3 AS ctx\n");
  });

  it("MaintainerDeprecated", () => {
    expect(fires("MaintainerDeprecated", "FROM alpine:3\nMAINTAINER me\n")).toMatchObject({
      message: "Maintainer instruction is deprecated in favor of using label",
      line: 2,
    });
    quiet("MaintainerDeprecated", 'FROM alpine:3\nLABEL org.opencontainers.image.authors="me"\n');
  });

  it("UndefinedVar", () => {
    const w = fires("UndefinedVar", "FROM alpine:3\nENV FOOBAR=/x\nCOPY $FOOBAZ /x\n");
    expect(w).toMatchObject({
      message: "Usage of undefined variable '$FOOBAZ' (did you mean $FOOBAR?)",
      line: 3,
    });
    expect(fires("UndefinedVar", "FROM alpine:3\nWORKDIR /$zzz\n").message).toBe(
      "Usage of undefined variable '$zzz'",
    );
    quiet("UndefinedVar", "FROM alpine:3\nARG V\nENV E=1\nCOPY $V$E$PATH /x\nRUN echo $NOT_CHECKED\n");
    quiet("UndefinedVar", "ARG A B=$A\nFROM alpine:3\nARG A B=$A\n");
  });

  it("UndefinedArgInFrom", () => {
    const w = fires("UndefinedArgInFrom", "ARG VERSION=3\nFROM alpine:${VERSIO}\n");
    expect(w).toMatchObject({
      message: "FROM argument 'VERSIO' is not declared (did you mean VERSION?)",
      line: 2,
    });
    quiet(
      "UndefinedArgInFrom",
      "ARG VERSION\nFROM alpine:${VERSION:-3}\nFROM --platform=$BUILDPLATFORM alpine:3\n",
    );
  });

  it("WorkdirRelativePath", () => {
    expect(fires("WorkdirRelativePath", "FROM alpine:3\nWORKDIR app\n").message).toBe(
      'Relative workdir "app" can have unexpected results if the base image changes',
    );
    quiet("WorkdirRelativePath", "FROM alpine:3\nWORKDIR /app\nWORKDIR sub\n");
    quiet("WorkdirRelativePath", "FROM alpine:3 AS base\nWORKDIR /app\nFROM base\nWORKDIR sub\n");
  });

  it("MultipleInstructionsDisallowed", () => {
    const w = fires("MultipleInstructionsDisallowed", 'FROM alpine:3\nCMD ["a"]\nCMD ["b"]\n');
    expect(w).toMatchObject({
      message:
        "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
      line: 2,
    });
    fires("MultipleInstructionsDisallowed", 'FROM alpine:3\nHEALTHCHECK NONE\nHEALTHCHECK CMD ["x"]\n');
    quiet(
      "MultipleInstructionsDisallowed",
      'FROM alpine:3 AS a\nCMD ["a"]\nFROM a\nCMD ["b"]\nENTRYPOINT ["c"]\n',
    );
  });

  it("SecretsUsedInArgOrEnv", () => {
    expect(fires("SecretsUsedInArgOrEnv", "FROM alpine:3\nARG GITHUB_TOKEN\n").message).toBe(
      'Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")',
    );
    expect(fires("SecretsUsedInArgOrEnv", "FROM alpine:3\nENV DB_PASSWORD=x\n").message).toContain(
      '(ENV "DB_PASSWORD")',
    );
    quiet("SecretsUsedInArgOrEnv", "FROM alpine:3\nARG PUBLIC_KEY TOKEN_FILE KEYBOARD\nENV VERSION=1\n");
    expect(isSecretKey("api_key")).toBe(true);
    expect(isSecretKey("AUTH")).toBe(true);
    expect(isSecretKey("AUTHOR")).toBe(false);
  });

  it("LegacyKeyValueFormat", () => {
    expect(fires("LegacyKeyValueFormat", "FROM alpine:3\nENV A b c\n").message).toBe(
      '"ENV key=value" should be used instead of legacy "ENV key value" format',
    );
    expect(fires("LegacyKeyValueFormat", "FROM alpine:3\nlabel a b\n").message).toContain(
      '"label key=value"',
    );
    quiet("LegacyKeyValueFormat", "FROM alpine:3\nENV A=b\nLABEL a=b\n");
  });

  it("InvalidDefaultArgInFrom", () => {
    expect(
      fires("InvalidDefaultArgInFrom", "ARG TAG\nFROM alpine:${TAG}\n", { buildArgs: { TAG: "3" } }).message,
    ).toBe("Default value for ARG alpine:${TAG} results in empty or invalid base image name");
    fires("InvalidDefaultArgInFrom", "ARG IMG\nFROM ${IMG}\n", { buildArgs: { IMG: "alpine:3" } });
    quiet("InvalidDefaultArgInFrom", "ARG TAG=3\nFROM alpine:${TAG}\n");
    quiet("InvalidDefaultArgInFrom", "ARG TAG\nFROM alpine:${TAG:-3}\nFROM scratch\n");
  });

  it("FromPlatformFlagConstDisallowed", () => {
    expect(
      fires("FromPlatformFlagConstDisallowed", "FROM --platform=linux/arm64 alpine:3 AS build\n").message,
    ).toBe('FROM --platform flag should not use constant value "linux/arm64"');
    quiet("FromPlatformFlagConstDisallowed", "FROM --platform=linux/arm64 alpine:3 AS build-arm64\n");
    quiet("FromPlatformFlagConstDisallowed", "FROM --platform=$BUILDPLATFORM alpine:3\n");
  });

  it("CopyIgnoredFile", () => {
    const isIgnored = (p: string) => p === "secret.txt" || p.startsWith("node_modules");
    const w = fires("CopyIgnoredFile", "FROM alpine:3\nCOPY ./secret.txt /x\nADD node_modules/a /y\n", {
      isIgnored,
    });
    expect(w).toMatchObject({
      message: 'Attempting to Copy file "secret.txt" that is excluded by .dockerignore',
      line: 2,
    });
    expect(only("CopyIgnoredFile", "FROM alpine:3\nADD node_modules/a /y\n", { isIgnored })[0]!.message).toBe(
      'Attempting to Add file "node_modules/a" that is excluded by .dockerignore',
    );
    quiet(
      "CopyIgnoredFile",
      "FROM alpine:3 AS b\nFROM alpine:3\nCOPY --from=b secret.txt /x\nCOPY app.js /x\n",
      {
        isIgnored,
      },
    );
    quiet("CopyIgnoredFile", "FROM alpine:3\nCOPY secret.txt /x\n");
  });

  it("CopyIgnoredFile from .dockerignore patterns, with BuildKit's special cases", () => {
    const text = "FROM alpine:3\nCOPY . /app\nCOPY node_modules/x /x\nCOPY src/app.js /y\n";
    expect(only("CopyIgnoredFile", text, { dockerignore: ["node_modules"] }).map((w) => w.line)).toEqual([3]);
    expect(only("CopyIgnoredFile", text, { dockerignore: ["*", "!src"] })).toEqual([]);
    expect(only("CopyIgnoredFile", text, { dockerignore: ["**"] }).map((w) => w.message)).toEqual([
      'Attempting to Copy file "." that is excluded by .dockerignore',
      'Attempting to Copy file "node_modules/x" that is excluded by .dockerignore',
      'Attempting to Copy file "src/app.js" that is excluded by .dockerignore',
    ]);
  });

  it("RedundantTargetPlatform", () => {
    expect(fires("RedundantTargetPlatform", "FROM --platform=$TARGETPLATFORM alpine:3\n").message).toBe(
      "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    );
    fires("RedundantTargetPlatform", "FROM --platform=${TARGETPLATFORM} alpine:3\n");
    quiet("RedundantTargetPlatform", "FROM --platform=$BUILDPLATFORM alpine:3\n");
  });

  it("ExposeProtoCasing", () => {
    expect(fires("ExposeProtoCasing", "FROM alpine:3\nEXPOSE 80/TCP\n").message).toBe(
      "Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
    );
    quiet("ExposeProtoCasing", "FROM alpine:3\nEXPOSE 80/tcp 53/udp 8080\n");
  });

  it("ExposeInvalidFormat", () => {
    expect(fires("ExposeInvalidFormat", "FROM alpine:3\nEXPOSE 127.0.0.1:8080:80\n").message).toBe(
      "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'",
    );
    fires("ExposeInvalidFormat", "FROM alpine:3\nEXPOSE 8080:80\n");
    quiet("ExposeInvalidFormat", "FROM alpine:3\nEXPOSE 80 8000-8010/udp\n");
  });

  it("NoEmptyContinuation", () => {
    expect(fires("NoEmptyContinuation", "FROM alpine:3\nRUN a \\\n\n  b\n")).toMatchObject({
      message: "Empty continuation line",
      line: 4,
    });
    quiet("NoEmptyContinuation", "FROM alpine:3\nRUN a \\\n  b\n");
  });
});

describe("Strata rules", () => {
  it("RunAsRoot", () => {
    expect(fires("RunAsRoot", "FROM alpine:3\nRUN x\n")).toMatchObject({
      message: "The final stage sets no USER, so the container runs as root; add a USER with a non-root user",
      line: 1,
    });
    expect(fires("RunAsRoot", "FROM alpine:3\nUSER app\nUSER 0:0\n")).toMatchObject({
      message: 'The final stage runs as "0:0", which is root; use a non-root user',
      line: 3,
    });
    fires("RunAsRoot", "FROM alpine:3 AS a\nUSER app\nFROM alpine:3\n");
    quiet("RunAsRoot", "FROM alpine:3\nUSER 1000:1000\n");
    quiet("RunAsRoot", "FROM alpine:3 AS base\nUSER app\nFROM base\nRUN x\n");
    quiet("RunAsRoot", "FROM gcr.io/distroless/static:nonroot\n", {
      baseImage: () => ({ user: "65532" }),
    });
    quiet("RunAsRoot", "FROM alpine:3\nUSER root\nFROM alpine:3\nUSER app\n");
  });

  it("SecretInContext", () => {
    const contextFiles = [
      "app.js",
      ".env",
      "certs/server.pem",
      "keys/id_ed25519",
      "home/.aws/credentials",
      "README.md",
    ];
    const ws = only("SecretInContext", "FROM alpine:3\nCOPY . /app\n", { contextFiles });
    expect(ws.map((w) => w.message)).toEqual([
      'COPY would add the likely secret ".env" from the build context; exclude it in .dockerignore or mount it with RUN --mount=type=secret',
      expect.stringContaining('"certs/server.pem"'),
      expect.stringContaining('"keys/id_ed25519"'),
      expect.stringContaining('"home/.aws/credentials"'),
    ]);
    expect(
      only("SecretInContext", "FROM alpine:3\nADD certs/ /c\n", { contextFiles }).map((w) => w.message),
    ).toEqual([expect.stringContaining('ADD would add the likely secret "certs/server.pem"')]);
    expect(only("SecretInContext", "FROM alpine:3\nCOPY *.js /app\n", { contextFiles })).toEqual([]);
    quiet("SecretInContext", "FROM alpine:3\nCOPY . /app\n", {
      contextFiles,
      isIgnored: (p) => isLikelySecretPath(p),
    });
    quiet("SecretInContext", "FROM alpine:3 AS b\nFROM alpine:3\nCOPY --from=b . /app\n", { contextFiles });
    expect(
      only("SecretInContext", "FROM alpine:3\nCOPY . /app\n", {
        contextFiles,
        dockerignore: ["**/*.pem", "**/.aws", ".env", "!keys"],
      }).map((w) => w.message),
    ).toEqual([expect.stringContaining('"keys/id_ed25519"')]);
    const byCallback = only("SecretInContext", "FROM alpine:3\nCOPY conf /c\n", {
      contextFiles: (src) => (src === "conf" ? ["conf/.npmrc", "conf/app.yml"] : []),
    });
    expect(byCallback.map((w) => w.message)).toEqual([expect.stringContaining('"conf/.npmrc"')]);
    expect(isLikelySecretPath(".env.production")).toBe(true);
    expect(isLikelySecretPath(".env.example")).toBe(false);
    expect(isLikelySecretPath("id_rsa.pub")).toBe(false);
    expect(isLikelySecretPath(".ssh/config")).toBe(true);
    expect(isLikelySecretPath(".git-credentials")).toBe(true);
    expect(isLikelySecretPath("src/keyboard.ts")).toBe(false);
  });

  it("CacheBustingOrder", () => {
    const w = fires("CacheBustingOrder", "FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\n");
    expect(w).toMatchObject({
      line: 3,
      message:
        "COPY of the whole build context comes before the dependency install (npm install) on line 4; copy only the dependency manifests first so that any source change does not rerun the install",
    });
    for (const run of [
      "pip install -r requirements.txt",
      "yarn",
      "pnpm install",
      "go mod download",
      "bundle install",
      "apt-get install -y curl",
      "apk add --no-cache git",
    ]) {
      fires("CacheBustingOrder", `FROM x:1\nCOPY ./ /src\nRUN ${run}\n`);
    }
    quiet(
      "CacheBustingOrder",
      "FROM node:20\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\n",
    );
    quiet("CacheBustingOrder", "FROM node:20 AS b\nFROM node:20\nCOPY --from=b . .\nRUN npm ci\n");
  });

  it("LatestBaseImage", () => {
    expect(fires("LatestBaseImage", "FROM node\n").message).toBe(
      'Base image "node" is not pinned: it uses the latest tag; use a version tag (and a digest) for repeatable builds',
    );
    fires("LatestBaseImage", "FROM registry.example.com:5000/team/app:latest\n");
    fires("LatestBaseImage", "ARG IMG=alpine\nFROM $IMG\n");
    quiet("LatestBaseImage", "FROM node:20\nFROM scratch\nFROM node@sha256:" + "a".repeat(64) + "\n");
    quiet("LatestBaseImage", "FROM registry.example.com:5000/app:1.2 AS base\nFROM base\n");
  });

  it("AptListsNotCleaned", () => {
    expect(
      fires("AptListsNotCleaned", "FROM debian:12\nRUN apt-get update && apt-get install -y curl\n"),
    ).toMatchObject({
      line: 2,
      message:
        'apt-get install without "rm -rf /var/lib/apt/lists/*" in the same RUN leaves the package lists in the layer',
    });
    quiet(
      "AptListsNotCleaned",
      "FROM debian:12\nRUN apt-get update && apt-get install -y curl \\\n && rm -rf /var/lib/apt/lists/*\n",
    );
    quiet(
      "AptListsNotCleaned",
      "FROM debian:12\nRUN --mount=type=cache,target=/var/lib/apt/lists apt-get update && apt-get install -y curl\n",
    );
    quiet("AptListsNotCleaned", "FROM debian:12\nRUN apt-get update\n");
  });

  it("AddInsteadOfCopy", () => {
    expect(fires("AddInsteadOfCopy", "FROM alpine:3\nADD app.js /app/\n").message).toBe(
      'ADD of the local path "app.js" is neither an archive nor a URL; use COPY',
    );
    quiet(
      "AddInsteadOfCopy",
      "FROM alpine:3\nADD rootfs.tar.gz /\nADD https://example.com/x /x\nCOPY app.js /app/\n",
    );
    quiet(
      "AddInsteadOfCopy",
      "FROM alpine:3\nADD --checksum=sha256:abc x /x\nADD git@github.com:a/b.git /src\n",
    );
  });
});

describe("configuration", () => {
  const text = "# check=skip=JSONArgsRecommended,RunAsRoot\nFROM alpine:3\nCMD run\nmaintainer me\n";

  it("honours # check=skip=…", () => {
    const rules = run(text).map((w) => w.rule);
    expect(rules).not.toContain("JSONArgsRecommended");
    expect(rules).not.toContain("RunAsRoot");
    expect(rules).toContain("MaintainerDeprecated");
  });

  it("honours skip=all and error=true", () => {
    expect(run("# check=skip=all\nFROM node\nCMD run\n")).toEqual([]);
    const r = lintDockerfile("# check=error=true\nFROM alpine:3\nUSER app\nCMD run\n", {
      buildPlatform: AMD64,
    });
    expect(r.config.error).toBe(true);
    expect(lintFailure(r.warnings, r.config)).toBe("lint violation found for rules: JSONArgsRecommended");
    const clean = lintDockerfile('# check=error=true\nFROM alpine:3\nUSER app\nCMD ["run"]\n', {
      buildPlatform: AMD64,
    });
    expect(lintFailure(clean.warnings, clean.config)).toBeUndefined();
  });

  it("honours a check comment above one instruction and the caller's skip list", () => {
    const ws = run("FROM alpine:3\nUSER app\n# check=skip=JSONArgsRecommended\nCMD a\nENTRYPOINT b\n");
    expect(ws.filter((w) => w.rule === "JSONArgsRecommended").map((w) => w.line)).toEqual([5]);
    expect(run("FROM node\n", { skip: ["LatestBaseImage", "RunAsRoot"] })).toEqual([]);
  });

  it("parses check options like BuildKit", () => {
    expect(parseCheckOptions(" skip = A, B ;error=1")).toMatchObject({
      skip: new Set(["A", "B"]),
      error: true,
    });
    expect(() => parseCheckOptions("nope")).toThrow('invalid check option "nope"');
    expect(() => parseCheckOptions("colour=red")).toThrow('invalid check option "colour"');
    expect(() => parseCheckOptions("error=maybe")).toThrow(
      'failed to parse check option "error=maybe": strconv.ParseBool: parsing "maybe": invalid syntax',
    );
    expect(() => lint("# check=bad\nFROM a:1\n")).toThrow("Dockerfile:1: failed to parse check options");
  });

  it("returns findings sorted by line, and keeps going when expansion fails", () => {
    const r = lintDockerfile("FROM node\nMAINTAINER x\nWORKDIR ${X:?needed}\n", { buildPlatform: AMD64 });
    expect(r.error?.message).toBe('Dockerfile:3: failed to process "${X:?needed}": X: needed');
    expect(r.warnings.map((w) => w.rule)).toEqual(["MaintainerDeprecated"]);
    const sorted = run("FROM node\nCMD a\nMAINTAINER x\n").map((w) => w.line);
    expect([...sorted].sort((a, b) => a - b)).toEqual(sorted);
  });

  it("lints a Dockerfile object as well as text, and all stages without a target", () => {
    const df = loadDockerfile("FROM alpine:3 AS unused\nWORKDIR rel\nFROM alpine:3 AS final\nUSER app\n");
    expect(lint(df, { buildPlatform: AMD64 }).map((w) => w.rule)).toEqual(["WorkdirRelativePath"]);
    const targeted = lintDockerfile(df, { buildPlatform: AMD64, target: "final" });
    expect(targeted.error).toBeUndefined();
    expect(targeted.warnings).toEqual([]);
  });

  it("documents every rule", () => {
    for (const name of RULE_NAMES) {
      const r = RULES[name];
      expect(r.name).toBe(name);
      expect(r.description.length).toBeGreaterThan(10);
      if (r.origin === "buildkit")
        expect(r.url).toMatch(/^https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\//);
    }
    expect(RULE_NAMES).toHaveLength(new Set(RULE_NAMES).size);
  });
});

describe("image references", () => {
  it("follows the distribution grammar", () => {
    for (const ok of [
      "alpine",
      "alpine:3.19",
      "docker.io/library/alpine",
      "localhost:5000/a/b:c",
      "a@sha256:" + "0".repeat(64),
    ]) {
      expect(isValidImageReference(ok), ok).toBe(true);
    }
    for (const bad of ["", "Alpine", "alpine:", ":3", "a b", "a".repeat(64).replace(/a/g, "f")]) {
      expect(isValidImageReference(bad), bad).toBe(false);
    }
  });
});
