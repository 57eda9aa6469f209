// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are Dockerfile text, where ${VAR} is literal
import { describe, expect, it } from "vitest";
import {
  type ArgCommand,
  type CopyCommand,
  DEFAULT_PATH,
  DockerfileParseError,
  type EnvCommand,
  type ExpandOptions,
  type ExpandResult,
  expandStages,
  type FromCommand,
  isValidSignal,
  type LabelCommand,
  loadDockerfile,
  parseExposedPort,
  type RunCommand,
  type UserCommand,
  type WorkdirCommand,
} from "../../../src/dockerfile/index.js";

const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };

function expand(text: string, opts: ExpandOptions = {}): ExpandResult {
  return expandStages(loadDockerfile(text), { buildPlatform: AMD64, ...opts });
}
/** The expanded commands of the target stage. */
function last(text: string, opts: ExpandOptions = {}) {
  const r = expand(text, opts);
  return r.stages[r.stages.length - 1]!.instructions;
}
function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not fail");
}

describe("global (meta) ARGs", () => {
  it("are visible in FROM lines only", () => {
    const r = expand("ARG TAG=3.19\nFROM alpine:${TAG}\nLABEL t=$TAG\nRUN echo $TAG\n");
    const s = r.stages[0]!;
    expect(s.baseName).toBe("alpine:3.19");
    expect(s.from.command.baseName).toBe("alpine:3.19");
    expect(s.from.usedArgs).toEqual(new Set(["TAG"]));
    const label = s.instructions[0]!.command as LabelCommand;
    expect(label.pairs[0]!.value).toBe("");
    expect(s.instructions[0]!.undefinedVars).toEqual(["TAG"]);
    expect(s.instructions[1]!.env.has("TAG")).toBe(false);
  });

  it("are inherited by `ARG NAME` without a value", () => {
    const ins = last("ARG TAG=3.19\nFROM alpine\nARG TAG\nLABEL t=$TAG\n");
    expect((ins[0]!.command as ArgCommand).args).toEqual([{ key: "TAG", value: "3.19" }]);
    expect((ins[1]!.command as LabelCommand).pairs[0]!.value).toBe("3.19");
    expect(ins[1]!.usedArgs).toEqual(new Set(["TAG"]));
    expect(ins[1]!.undefinedVars).toEqual([]);
  });

  it("expand defaults in order, and --build-arg overrides them", () => {
    const df = "ARG A=x\nARG B=${A}-y\nFROM img:${B}\n";
    expect(expand(df).stages[0]!.baseName).toBe("img:x-y");
    expect(expand(df, { buildArgs: { A: "q" } }).stages[0]!.baseName).toBe("img:q-y");
    expect(expand(df, { buildArgs: { B: "z" } }).stages[0]!.baseName).toBe("img:z");
    const r = expand(df);
    expect((r.metaArgs[1]!.command as ArgCommand).args[0]!.value).toBe("x-y");
    expect(r.metaArgs[1]!.usedArgs).toEqual(new Set(["A"]));
    expect(r.globalArgs.get("B")).toBe("x-y");
  });

  it("refuses a blank base name and reports the location", () => {
    const e = errorOf(() => expand("ARG IMG\nFROM ${IMG}\n"));
    expect(e).toBeInstanceOf(DockerfileParseError);
    expect(e.message).toBe("Dockerfile:2: base name (${IMG}) should not be blank");
  });
});

describe("stage ARGs and ENV", () => {
  it("--build-arg replaces a default at the ARG", () => {
    const text = "FROM a\nARG V=1\nRUN echo $V\nWORKDIR /v$V\n";
    expect((last(text)[2]!.command as WorkdirCommand).path).toBe("/v1");
    const ins = last(text, { buildArgs: { V: "2" } });
    expect((ins[2]!.command as WorkdirCommand).path).toBe("/v2");
    expect(ins[1]!.env.get("V")).toBe("2");
    expect(ins[1]!.usedArgs).toEqual(new Set(["V"]));
  });

  it("an ARG is not visible before it is declared", () => {
    const ins = last("FROM a\nUSER $U\nARG U=app\nUSER $U\n", { buildArgs: { U: "x" } });
    expect((ins[0]!.command as UserCommand).user).toBe("");
    expect(ins[0]!.undefinedVars).toEqual(["U"]);
    expect((ins[2]!.command as UserCommand).user).toBe("x");
  });

  it("ENV overrides an ARG of the same name", () => {
    const ins = last("FROM a\nARG V=arg\nENV V=env\nWORKDIR /$V\nRUN x\n", { buildArgs: { V: "cli" } });
    expect((ins[2]!.command as WorkdirCommand).path).toBe("/env");
    expect(ins[2]!.usedArgs).toEqual(new Set());
    expect(ins[3]!.env.get("V")).toBe("env");
  });

  it("ENV expands keys and values, and keeps earlier values for later pairs", () => {
    const ins = last('FROM a\nENV A=1 B="$A two"\nENV C=${B}!\n');
    expect((ins[0]!.command as EnvCommand).pairs).toEqual([
      { key: "A", value: "1", noDelim: false },
      { key: "B", value: " two", noDelim: false },
    ]);
    expect((ins[1]!.command as EnvCommand).pairs[0]!.value).toBe(" two!");
    const r = expand('FROM a\nENV A=1 B="$A two"\n');
    expect(r.stages[0]!.imageEnv.get("PATH")).toBe(DEFAULT_PATH);
    expect(r.stages[0]!.imageEnv.get("B")).toBe(" two");
  });

  it("declared ARGs without a value are not undefined", () => {
    const ins = last("FROM a\nARG X\nRUN echo\nWORKDIR /$X\n");
    expect(ins[2]!.undefinedVars).toEqual([]);
    expect((ins[2]!.command as WorkdirCommand).path).toBe("/");
  });

  it("RUN is not expanded but sees every ARG in scope", () => {
    const ins = last("FROM a\nARG A=1 B\nENV E=2\nRUN echo $A $B $E\n", { buildArgs: { B: "b" } });
    const run = ins[2]!;
    expect((run.command as RunCommand).cmdLine).toEqual(["echo $A $B $E"]);
    expect(run.usedArgs).toEqual(new Set(["A", "B"]));
    expect(Object.fromEntries(run.env)).toMatchObject({ A: "1", B: "b", E: "2" });
  });

  it("proxy args reach RUN without ARG and are never unused", () => {
    const r = expand("FROM a\nRUN curl x\nWORKDIR /$HTTP_PROXY\n", {
      buildArgs: { HTTP_PROXY: "http://p:3128", no_proxy: "localhost", OTHER: "1" },
    });
    const ins = r.stages[0]!.instructions;
    expect(ins[0]!.env.get("HTTP_PROXY")).toBe("http://p:3128");
    expect(ins[0]!.env.get("no_proxy")).toBe("localhost");
    expect(ins[0]!.usedArgs.has("HTTP_PROXY")).toBe(true);
    expect((ins[1]!.command as WorkdirCommand).path).toBe("/");
    expect(r.unusedBuildArgs).toEqual(["OTHER"]);
    expect(r.warnings).toEqual(["[Warning] One or more build-args [OTHER] were not consumed"]);
  });

  it("reports every unused build arg, sorted", () => {
    const r = expand("ARG USED\nFROM a\n", { buildArgs: { ZED: "1", USED: "2", ALPHA: "3" } });
    expect(r.warnings).toEqual(["[Warning] One or more build-args [ALPHA ZED] were not consumed"]);
    expect(expand("FROM a\n").warnings).toEqual([]);
  });
});

describe("platform ARGs", () => {
  const text =
    "FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETOS TARGETARCH TARGETPLATFORM BUILDPLATFORM TARGETSTAGE\n" +
    "RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build\nLABEL p=$TARGETPLATFORM b=$BUILDPLATFORM s=$TARGETSTAGE\n";

  it("come from the caller's platforms and must be declared in a stage", () => {
    const r = expand(text, { buildPlatform: AMD64, targetPlatform: ARM64 });
    const s = r.stages[0]!;
    expect(s.from.command.platform).toBe("linux/amd64");
    expect(s.platform).toEqual({ os: "linux", architecture: "amd64" });
    const env = s.instructions[1]!.env;
    expect(env.get("TARGETOS")).toBe("linux");
    expect(env.get("TARGETARCH")).toBe("arm64");
    const label = s.instructions[2]!.command as LabelCommand;
    expect(label.pairs.map((p) => p.value)).toEqual(["linux/arm64/v8", "linux/amd64", "build"]);
  });

  it("are not visible without ARG", () => {
    const ins = last("FROM a\nLABEL p=$TARGETPLATFORM\n", { targetPlatform: ARM64 });
    expect((ins[0]!.command as LabelCommand).pairs[0]!.value).toBe("");
  });

  it("TARGETSTAGE is the target, or default", () => {
    expect(expand("FROM a\n").globalArgs.get("TARGETSTAGE")).toBe("default");
    // As BuildKit: the target as the caller wrote it, else the last stage's name.
    expect(expand("FROM a AS one\nFROM a AS two\n", { target: "ONE" }).globalArgs.get("TARGETSTAGE")).toBe(
      "ONE",
    );
    expect(expand("FROM a AS one\nFROM a AS two\n").globalArgs.get("TARGETSTAGE")).toBe("two");
    expect(expand("FROM a\n", { buildArgs: { TARGETOS: "windows" } }).globalArgs.get("TARGETOS")).toBe(
      "windows",
    );
  });

  it("refuses an empty or bad platform", () => {
    expect(errorOf(() => expand("FROM --platform=$NOPE a\n")).message).toBe(
      "Dockerfile:1: empty platform value from expression $NOPE",
    );
    expect(errorOf(() => expand("FROM --platform=a/b/c/d x\n")).message).toMatch(
      /^Dockerfile:1: failed to parse platform a\/b\/c\/d: /,
    );
  });
});

describe("stages, targets and dependencies", () => {
  const text =
    "FROM alpine AS base\nARG V=1\nENV E=e\nONBUILD RUN echo onbuild\n" +
    "FROM base AS build\nRUN make\n" +
    "FROM alpine AS unused\nRUN ${X:?must be set}\nWORKDIR ${X:?must}\n" +
    "FROM scratch\nCOPY --from=build /out /\n";

  it("expands only the stages the target reaches", () => {
    const r = expand(text);
    expect(r.stages.map((s) => s.index)).toEqual([0, 1, 3]);
    expect(r.target).toBe(3);
    expect(r.stages[2]!.dependsOn).toEqual([1]);
    expect(r.stages[1]!.baseStage).toBe(0);
  });

  it("fails on errors of unreached stages only when asked for all stages", () => {
    expect(errorOf(() => expand(text, { allStages: true })).message).toBe(
      'Dockerfile:9: failed to process "${X:?must}": X: must',
    );
  });

  it("a stage built on a stage inherits its environment, ARGs and ONBUILD triggers", () => {
    const r = expand(text, { target: "build" });
    const build = r.stages.find((s) => s.name === "build")!;
    expect(build.instructions[0]!.onbuild).toBe(true);
    expect((build.instructions[0]!.command as RunCommand).cmdLine).toEqual(["echo onbuild"]);
    expect(build.instructions[0]!.command.location.startLine).toBe(5);
    expect(build.instructions[1]!.env.get("V")).toBe("1");
    expect(build.instructions[1]!.usedArgs).toEqual(new Set(["V"]));
    expect(build.declaredArgs).toEqual(["V"]);
    expect(build.imageEnv.get("E")).toBe("e");
    expect(build.imageEnv.has("V")).toBe(false);
  });

  it("fails on a bad ONBUILD trigger only when the stage is built", () => {
    const text = "FROM a AS base\nONBUILD RUN --nope x\nFROM base AS child\nFROM a AS other\n";
    expect(expand(text).stages.map((s) => s.name)).toEqual(["other"]);
    expect(errorOf(() => expand(text, { target: "child" })).message).toBe("Dockerfile:3: Unknown flag: nope");
  });

  it("uses base image config given by the caller", () => {
    const r = expand("FROM node:20\nWORKDIR $NODE_HOME\n", {
      baseImage: (ref) =>
        ref === "node:20"
          ? { env: ["PATH=/x", "NODE_HOME=/opt/node"], onBuild: ["LABEL from=onbuild"] }
          : undefined,
    });
    const ins = r.stages[0]!.instructions;
    expect(ins[0]!.onbuild).toBe(true);
    expect((ins[1]!.command as WorkdirCommand).path).toBe("/opt/node");
    expect(r.stages[0]!.imageEnv.get("PATH")).toBe("/x");
  });

  it("refuses an unknown target with a suggestion", () => {
    expect(errorOf(() => expand(text, { target: "buidl" })).message).toBe(
      'target stage "buidl" could not be found (did you mean build?)',
    );
  });

  it("refuses COPY --from with a variable, a later stage or a bad index", () => {
    expect(errorOf(() => expand("FROM a AS x\nARG S=x\nCOPY --from=$S / /\n")).message).toContain(
      "variable expansion is not supported for --from",
    );
    expect(
      errorOf(() => expand("FROM a\nCOPY --from=later / /\nFROM b AS later\n", { target: "0" })).message,
    ).toMatch(/could not be found|cannot copy from stage/);
    expect(
      errorOf(() => expand("FROM a AS first\nCOPY --from=later / /\nFROM b AS later\n", { allStages: true }))
        .message,
    ).toBe(
      'Dockerfile:2: cannot copy from stage "later", it needs to be defined before current stage "first"',
    );
    expect(errorOf(() => expand("FROM a\nCOPY --from=5 / /\n")).message).toBe(
      "Dockerfile:2: invalid stage index 5",
    );
    expect(errorOf(() => expand("FROM a AS x\nCOPY --from=x / /\n")).message).toBe(
      "Dockerfile:1: circular dependency detected on stage: x",
    );
  });

  it("treats an unknown --from as an image", () => {
    const r = expand("FROM a\nCOPY --from=nginx:latest /etc/nginx /etc/nginx\n");
    expect(r.stages[0]!.dependsOn).toEqual([]);
    expect((r.stages[0]!.instructions[0]!.command as CopyCommand).from).toBe("nginx:latest");
  });
});

describe("what each instruction expands", () => {
  it("COPY/ADD words and flags, but not --from or --exclude", () => {
    const ins = last(
      "FROM a\nARG U=1000 M=0644 D=/app S=src SUM=sha256:x\n" +
        "COPY --chown=$U:$U --chmod=$M --exclude=$S/*.md $S/ ${D}/\nADD --checksum=$SUM --chown=$U $S.tgz $D\n",
    );
    const copy = ins[1]!.command as CopyCommand;
    expect(copy).toMatchObject({ chown: "1000:1000", chmod: "0644", sources: ["src/"], dest: "/app/" });
    expect(copy.exclude).toEqual(["$S/*.md"]);
    expect(ins[1]!.usedArgs).toEqual(new Set(["U", "M", "S", "D"]));
    expect(ins[2]!.command).toMatchObject({
      checksum: "sha256:x",
      chown: "1000",
      sources: ["src.tgz"],
      dest: "/app",
    });
  });

  it("unquoted COPY heredocs are expanded with quotes kept; quoted ones are not", () => {
    const ins = last("FROM a\nARG N=world\nCOPY <<EOF <<'RAW' /x/\nhello \"$N\" '${N}'\nEOF\nraw $N\nRAW\n");
    const copy = ins[1]!.command as CopyCommand;
    expect(copy.heredocs).toEqual([
      { path: "EOF", data: "hello \"world\" 'world'\n", expand: true },
      { path: "RAW", data: "raw $N\n", expand: false },
    ]);
  });

  it("EXPOSE splits expanded ports; VOLUME, USER, STOPSIGNAL, LABEL expand", () => {
    const ins = last(
      'FROM a\nARG PORTS="80 443" SIG=TERM\nEXPOSE $PORTS 8080\nVOLUME /data/$SIG\nUSER u$SIG\nSTOPSIGNAL SIG$SIG\nLABEL "k$SIG"=v\n',
    );
    expect(ins[1]!.command).toMatchObject({ kind: "expose", ports: ["80", "443", "8080"] });
    expect(ins[2]!.command).toMatchObject({ volumes: ["/data/TERM"] });
    expect(ins[3]!.command).toMatchObject({ user: "uTERM" });
    expect(ins[4]!.command).toMatchObject({ signal: "SIGTERM" });
    expect((ins[5]!.command as LabelCommand).pairs[0]!.key).toBe("kTERM");
  });

  it("RUN --mount values expand; CMD, ENTRYPOINT, HEALTHCHECK, ONBUILD do not", () => {
    const ins = last(
      "FROM a\nARG T=cache C=/root/.cache\nRUN --mount=type=$T,target=$C pip install\nCMD echo $C\nENTRYPOINT $C\n" +
        "HEALTHCHECK CMD $C\nONBUILD RUN $C\n",
    );
    expect((ins[1]!.command as RunCommand).mounts[0]).toMatchObject({
      type: "cache",
      target: "/root/.cache",
    });
    expect(ins[2]!.command).toMatchObject({ cmdLine: ["echo $C"] });
    expect(ins[3]!.command).toMatchObject({ cmdLine: ["$C"] });
    expect(ins[4]!.command).toMatchObject({ health: { test: ["CMD-SHELL", "$C"] } });
    expect(ins[5]!.command).toMatchObject({ expression: "RUN $C" });
  });

  it("checks EXPOSE ports as BuildKit, and turns them into config keys", () => {
    expect(parseExposedPort("80")).toEqual(["80/tcp"]);
    expect(parseExposedPort("8000-8002/UDP")).toEqual(["8000/udp", "8001/udp", "8002/udp"]);
    expect(parseExposedPort("[::1]:8080:80/tcp")).toEqual(["80/tcp"]);
    expect(() => parseExposedPort("80/icmp")).toThrow('invalid port: "80/icmp": invalid proto: icmp');
    expect(() => parseExposedPort("99999")).toThrow("invalid containerPort: 99999");
    expect(() => parseExposedPort("/tcp")).toThrow('invalid port: "/tcp": no port specified');
    expect(errorOf(() => last("FROM a\nARG P=http\nEXPOSE $P\n")).message).toBe(
      "Dockerfile:3: invalid containerPort: http",
    );
  });

  it("refuses a bad stop signal and a bad expansion, with the line", () => {
    expect(errorOf(() => last("FROM a\nSTOPSIGNAL SIGNOPE\n")).message).toBe(
      "Dockerfile:2: Invalid signal: SIGNOPE",
    );
    expect(errorOf(() => last("FROM a\nWORKDIR ${oops\n")).message).toMatch(
      /^Dockerfile:2: failed to process "\$\{oops": /,
    );
    expect(isValidSignal("9")).toBe(true);
    expect(isValidSignal("0")).toBe(false);
    expect(isValidSignal("rtmin+3")).toBe(true);
  });

  it("uses the escape directive for expansion", () => {
    const ins = last("# escape=`\nFROM a\nENV P=C:\\dir`$X\n");
    expect((ins[0]!.command as EnvCommand).pairs[0]!.value).toBe("C:\\dir$X");
  });

  it("does not change its input", () => {
    const df = loadDockerfile("ARG T=1\nFROM a:$T\nARG V=2\nENV X=$V\n");
    const before = JSON.stringify(df);
    const r = expandStages(df, { buildPlatform: AMD64 });
    expect(JSON.stringify(df)).toBe(before);
    expect((r.stages[0]!.from.original as FromCommand).baseName).toBe("a:$T");
  });
});
