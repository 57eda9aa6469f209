// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are Dockerfile text, where ${VAR} is literal
import { describe, expect, it } from "vitest";
import {
  type AddCommand,
  type ArgCommand,
  type CmdCommand,
  type Command,
  type CopyCommand,
  DockerfileParseError,
  type EntrypointCommand,
  type EnvCommand,
  type ExposeCommand,
  findStage,
  type HealthcheckCommand,
  type LabelCommand,
  loadDockerfile,
  type OnbuildCommand,
  type RunCommand,
  type ShellCommand,
  type VolumeCommand,
} from "../../../src/dockerfile/index.js";

/** The commands of the only (or last) stage. */
function cmds(text: string): Command[] {
  const df = loadDockerfile(text);
  return df.stages[df.stages.length - 1]!.commands;
}
function one<T extends Command>(line: string): T {
  return cmds(`FROM scratch\n${line}\n`)[0] as T;
}
function errorOf(text: string): DockerfileParseError {
  try {
    loadDockerfile(text);
  } catch (e) {
    expect(e).toBeInstanceOf(DockerfileParseError);
    return e as DockerfileParseError;
  }
  throw new Error(`loadDockerfile(${JSON.stringify(text)}) did not fail`);
}

describe("stages and meta ARGs", () => {
  it("groups commands into stages and keeps ARGs before FROM apart", () => {
    const df = loadDockerfile(
      "ARG GO=1.22\nARG BASE\nFROM golang:${GO} AS Build\nRUN go build\nFROM --platform=$BUILDPLATFORM alpine\nCOPY --from=build /out /\n",
    );
    expect(df.metaArgs.map((a) => a.args)).toEqual([[{ key: "GO", value: "1.22" }], [{ key: "BASE" }]]);
    expect(df.stages).toHaveLength(2);
    expect(df.stages[0]!.name).toBe("build");
    expect(df.stages[0]!.from).toMatchObject({ kind: "from", baseName: "golang:${GO}", stageName: "build" });
    expect(df.stages[1]!.from.platform).toBe("$BUILDPLATFORM");
    expect(df.stages[1]!.index).toBe(1);
    expect(findStage(df, "BUILD")).toBe(df.stages[0]);
    expect(findStage(df, "1")).toBe(df.stages[1]);
    expect(findStage(df, "nope")).toBeUndefined();
  });

  it("keeps locations, source code and doc comments", () => {
    const df = loadDockerfile(
      "# base the base image\nFROM alpine AS base\n# V the version\nARG V=1\nRUN a \\\n  b\n",
    );
    const s = df.stages[0]!;
    expect(s.docComment).toBe("the base image");
    expect(s.from.location).toEqual({ startLine: 2, endLine: 2 });
    const arg = s.commands[0] as ArgCommand;
    expect(arg.args[0]!.docComment).toBe("the version");
    expect(s.commands[1]!.location).toEqual({ startLine: 5, endLine: 6 });
    expect(s.commands[1]!.code).toBe("RUN a   b");
  });

  it("refuses an instruction before the first FROM other than ARG", () => {
    expect(errorOf("RUN x\nFROM a\n").message).toBe("Dockerfile:1: no build stage in current context");
  });

  it("reports unknown instructions with a suggestion and the file name", () => {
    const text = "FROM a\n\n\n\n\n\nCOPPY . .\n";
    const e = errorOf(text);
    expect(e.message).toBe("Dockerfile:7: unknown instruction: COPPY (did you mean COPY?)");
    expect(e.line).toBe(7);
    expect(e.reason).toBe("unknown instruction: COPPY (did you mean COPY?)");
    expect(() => loadDockerfile(text, { file: "build/Dockerfile.dev" })).toThrow(
      "build/Dockerfile.dev:7: unknown instruction: COPPY (did you mean COPY?)",
    );
    expect(errorOf("FROM a\ncoppy . .\n").message).toContain("(did you mean copy?)");
    expect(errorOf("FROM a\nXYZZY\n").message).toBe("Dockerfile:2: unknown instruction: XYZZY");
  });

  it("checks FROM", () => {
    expect(errorOf("FROM a b\n").message).toBe(
      "Dockerfile parse error on line 1: FROM requires either one or three arguments",
    );
    expect(errorOf("FROM\n").message).toContain("FROM requires either one or three arguments");
    expect(errorOf("FROM a AS 1x\n").message).toContain(
      'invalid name for build stage: "1x", name can\'t start with a number or contain symbols',
    );
    expect(errorOf("FROM --platfrom=x a\n").message).toBe(
      "Dockerfile parse error on line 1: Unknown flag: platfrom (did you mean platform?)",
    );
    expect(errorOf("FROM --plat=x a\n").reason).toBe("Unknown flag: plat");
  });
});

describe("flags", () => {
  it("refuses unknown, duplicate and malformed flags", () => {
    expect(errorOf("FROM a\nCOPY --foo=bar a b\n").message).toBe(
      "Dockerfile parse error on line 2: Unknown flag: foo (did you mean from?)",
    );
    expect(errorOf("FROM a\nCOPY --zzzzzz a b\n").message).toBe(
      "Dockerfile parse error on line 2: Unknown flag: zzzzzz",
    );
    expect(errorOf("FROM a\nCOPY --from=a --from=b a b\n").reason).toBe("duplicate flag specified: --from");
    expect(errorOf("FROM a\nCOPY --from a b\n").reason).toBe("missing a value on flag: --from");
    expect(errorOf("FROM a\nCOPY --link=maybe a b\n").reason).toBe(
      "expecting boolean value for flag --link, not: maybe",
    );
    expect(errorOf("FROM a\nCOPY --link= a b\n").reason).toBe("missing a value on flag: --link");
    expect(errorOf("FROM a\nENV --x=1 a=b\n").reason).toBe("Unknown flag: x");
  });

  it("parses the COPY flags", () => {
    const c = one<CopyCommand>(
      'COPY --from=build --chown=1000:1000 --chmod=0755 --link --parents --exclude=*.md --exclude="a b" src/ lib/ /app/',
    );
    expect(c).toMatchObject({
      kind: "copy",
      sources: ["src/", "lib/"],
      dest: "/app/",
      from: "build",
      chown: "1000:1000",
      chmod: "0755",
      link: true,
      parents: true,
      exclude: ["*.md", "a b"],
      heredocs: [],
    });
  });

  it("parses the ADD flags", () => {
    const a = one<AddCommand>(
      "ADD --checksum=sha256:abc --keep-git-dir=false --unpack --link https://example.com/x.tgz /x",
    );
    expect(a).toMatchObject({
      kind: "add",
      sources: ["https://example.com/x.tgz"],
      dest: "/x",
      checksum: "sha256:abc",
      keepGitDir: false,
      unpack: true,
      link: true,
    });
    expect(one<AddCommand>("ADD a b").keepGitDir).toBeUndefined();
    expect(errorOf("FROM a\nADD --from=x a b\n").reason).toBe("Unknown flag: from");
    expect(errorOf("FROM a\nADD --parents a b\n").reason).toContain("Unknown flag: parents");
  });

  it("needs a destination", () => {
    expect(errorOf("FROM a\nCOPY a\n").reason).toBe(
      "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
    );
    expect(errorOf("FROM a\nADD a\n").reason).toContain("ADD requires at least two arguments");
  });
});

describe("RUN", () => {
  it("shell and exec forms", () => {
    expect(one<RunCommand>("RUN echo hi")).toMatchObject({ cmdLine: ["echo hi"], prependShell: true });
    expect(one<RunCommand>('RUN ["echo", "hi"]')).toMatchObject({
      cmdLine: ["echo", "hi"],
      prependShell: false,
    });
    expect(one<RunCommand>("RUN ['echo', 'hi']").cmdLine).toEqual(["['echo', 'hi']"]);
  });

  it("parses mounts, network, security and devices", () => {
    const r = one<RunCommand>(
      "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked --mount=type=secret,id=tok,env=TOKEN,required " +
        "--mount=type=tmpfs,target=/tmp,size=64m --mount=type=bind,from=build,source=/out,target=/in,rw " +
        "--network=none --security=insecure --device=vendor.com/gpu=all,required pip install x",
    );
    expect(r.mounts).toEqual([
      {
        type: "cache",
        from: "",
        source: "",
        target: "/root/.cache",
        readOnly: false,
        sizeLimit: 0,
        cacheId: "pip",
        cacheSharing: "locked",
        required: false,
      },
      {
        type: "secret",
        from: "",
        source: "",
        target: "",
        readOnly: true,
        sizeLimit: 0,
        cacheId: "tok",
        required: true,
        env: "TOKEN",
      },
      {
        type: "tmpfs",
        from: "",
        source: "",
        target: "/tmp",
        readOnly: false,
        sizeLimit: 64 * 1024 * 1024,
        cacheId: "",
        required: false,
      },
      {
        type: "bind",
        from: "build",
        source: "/out",
        target: "/in",
        readOnly: false,
        sizeLimit: 0,
        cacheId: "",
        required: false,
      },
    ]);
    expect(r.mountSpecs).toHaveLength(4);
    expect(r.network).toBe("none");
    expect(r.security).toBe("insecure");
    expect(r.devices).toEqual([{ name: "vendor.com/gpu=all", required: true }]);
    expect(r.flagsUsed).toEqual(["mount", "network", "security", "device"]);
    const plain = one<RunCommand>("RUN x");
    expect(plain).toMatchObject({ network: "default", security: "sandbox", mounts: [], flagsUsed: [] });
  });

  it("rejects bad mounts and modes", () => {
    expect(errorOf("FROM a\nRUN --mount=type=cahce,target=/x y\n").reason).toBe(
      'unsupported mount type "cahce" (did you mean cache?)',
    );
    expect(errorOf("FROM a\nRUN --mount=type=bind,targte=/x y\n").reason).toBe(
      "unexpected key 'targte' in 'targte=/x' (did you mean target?)",
    );
    expect(errorOf("FROM a\nRUN --mount=type=bind,mode=0700,target=/x y\n").reason).toBe(
      'mode not allowed for "bind" type mounts',
    );
    expect(errorOf("FROM a\nRUN --mount=type=secret y\n").reason).toBe(
      "invalid secret mount. one of source, target required",
    );
    expect(errorOf("FROM a\nRUN --mount=from=$X,target=/x y\n").reason).toBe(
      "'from' doesn't support variable expansion, define alias stage instead",
    );
    expect(errorOf('FROM a\nRUN --mount=type=bind,tar\\"get=/x y\n').reason).toContain(
      "failed to parse csv mounts",
    );
    expect(errorOf("FROM a\nRUN --network=bridge y\n").reason).toBe('invalid network mode "bridge"');
    expect(errorOf("FROM a\nRUN --security=root y\n").reason).toBe('security "root" is not valid');
  });

  it("defers mounts that use variables to expansion", () => {
    const r = one<RunCommand>("RUN --mount=type=$T,target=/x y");
    expect(r.mounts).toEqual([]);
    expect(r.mountSpecs).toEqual(["type=$T,target=/x"]);
  });

  it("carries heredocs", () => {
    const r = cmds("FROM a\nRUN <<EOF bash\necho $HOME\nEOF\n")[0] as RunCommand;
    expect(r.cmdLine).toEqual(["<<EOF bash"]);
    expect(r.heredocs).toEqual([{ name: "EOF", data: "echo $HOME\n", chomp: false }]);
  });
});

describe("COPY/ADD heredocs", () => {
  it("turns heredoc sources into inline files", () => {
    const c = cmds(
      "FROM a\nCOPY <<-one <<'two' x.txt /dest/\n\thello $A\n\tone\nraw $B\ntwo\n",
    )[0] as CopyCommand;
    expect(c.sources).toEqual(["x.txt"]);
    expect(c.dest).toBe("/dest/");
    expect(c.heredocs).toEqual([
      { path: "one", data: "hello $A\n", expand: true },
      { path: "two", data: "raw $B\n", expand: false },
    ]);
  });

  it("refuses a heredoc destination", () => {
    expect(errorOf("FROM a\nCOPY x <<EOF\nhi\nEOF\n").reason).toBe(
      "COPY cannot accept a heredoc as a destination",
    );
  });
});

describe("ENV, LABEL, ARG", () => {
  it("parses pairs in both forms", () => {
    expect(one<EnvCommand>('ENV A=1 B="x y"').pairs).toEqual([
      { key: "A", value: "1", noDelim: false },
      { key: "B", value: '"x y"', noDelim: false },
    ]);
    expect(one<EnvCommand>("ENV A the rest").pairs).toEqual([{ key: "A", value: "the rest", noDelim: true }]);
    expect(one<LabelCommand>('LABEL org.opencontainers.image.title="x"').pairs).toEqual([
      { key: "org.opencontainers.image.title", value: '"x"', noDelim: false },
    ]);
  });

  it("gives BuildKit's errors", () => {
    expect(errorOf("FROM a\nENV =foo\n").message).toBe(
      "Dockerfile parse error on line 2: ENV names can not be blank",
    );
    expect(errorOf("FROM a\nLABEL =foo\n").reason).toBe("LABEL names can not be blank");
    expect(errorOf("FROM a\nENV\n").reason).toBe("ENV requires at least one argument");
    expect(errorOf("FROM a\nENV A=1 B\n").message).toBe(
      `Dockerfile:2: Syntax error - can't find = in "B". Must be of the form: name=value`,
    );
    expect(errorOf("FROM a\nENV PATH\n").message).toBe("Dockerfile:2: ENV must have two arguments");
    expect(errorOf("FROM a\nARG\n").reason).toBe("ARG requires at least one argument");
    expect(errorOf("FROM a\nARG =x\n").reason).toBe("ARG names can not be blank");
  });

  it("parses ARG with and without defaults", () => {
    expect(one<ArgCommand>('ARG A B=2 C="x y" D=').args).toEqual([
      { key: "A" },
      { key: "B", value: "2" },
      { key: "C", value: '"x y"' },
      { key: "D", value: "" },
    ]);
  });
});

describe("CMD, ENTRYPOINT, SHELL", () => {
  it("keeps the form", () => {
    expect(one<CmdCommand>("CMD node server.js")).toMatchObject({
      cmdLine: ["node server.js"],
      prependShell: true,
    });
    expect(one<CmdCommand>('CMD ["node", "server.js"]')).toMatchObject({
      cmdLine: ["node", "server.js"],
      prependShell: false,
    });
    expect(one<EntrypointCommand>("ENTRYPOINT []").cmdLine).toEqual([]);
    expect(one<ShellCommand>('SHELL ["/bin/bash", "-c"]').shell).toEqual(["/bin/bash", "-c"]);
  });

  it("refuses a shell-form SHELL", () => {
    expect(errorOf("FROM a\nSHELL /bin/bash -c\n").reason).toBe(
      "SHELL requires the arguments to be in JSON form",
    );
    expect(errorOf("FROM a\nSHELL []\n").reason).toBe("SHELL requires at least one argument");
  });
});

describe("HEALTHCHECK", () => {
  it("parses options and the command", () => {
    const h = one<HealthcheckCommand>(
      "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=500ms --retries=3 CMD curl -f http://localhost/",
    );
    expect(h.health).toEqual({
      test: ["CMD-SHELL", "curl -f http://localhost/"],
      interval: 30e9,
      timeout: 90e9,
      startPeriod: 5e9,
      startInterval: 500e6,
      retries: 3,
    });
    expect(one<HealthcheckCommand>('HEALTHCHECK CMD ["/bin/check", "-q"]').health.test).toEqual([
      "CMD",
      "/bin/check",
      "-q",
    ]);
    expect(one<HealthcheckCommand>("HEALTHCHECK NONE").health.test).toEqual(["NONE"]);
  });

  it("gives BuildKit's errors", () => {
    expect(errorOf("FROM a\nHEALTHCHECK\n").reason).toBe("HEALTHCHECK requires at least one argument");
    expect(errorOf("FROM a\nHEALTHCHECK NONE x\n").reason).toBe("HEALTHCHECK NONE takes no arguments");
    expect(errorOf("FROM a\nHEALTHCHECK CMD\n").reason).toBe("Missing command after HEALTHCHECK CMD");
    expect(errorOf("FROM a\nHEALTHCHECK CONNECT TCP 7000\n").reason).toBe(
      'Unknown type "CONNECT" in HEALTHCHECK (try CMD)',
    );
    expect(errorOf("FROM a\nHEALTHCHECK --interval=1us CMD x\n").reason).toBe(
      'Interval "interval" cannot be less than 1ms',
    );
    expect(errorOf("FROM a\nHEALTHCHECK --timeout=5 CMD x\n").reason).toBe(
      'time: missing unit in duration "5"',
    );
    expect(errorOf("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").reason).toBe(
      "--retries cannot be negative (-1)",
    );
    expect(errorOf("FROM a\nHEALTHCHECK --retries=x CMD x\n").reason).toBe(
      'strconv.ParseInt: parsing "x": invalid syntax',
    );
  });
});

describe("the other instructions", () => {
  it("EXPOSE sorts its ports; VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER", () => {
    expect(one<ExposeCommand>("EXPOSE 8080/tcp 443 80").ports).toEqual(["443", "80", "8080/tcp"]);
    expect(one<VolumeCommand>('VOLUME ["/a", "/b"]').volumes).toEqual(["/a", "/b"]);
    expect(one<Command>("USER app:app")).toMatchObject({ kind: "user", user: "app:app" });
    expect(one<Command>("WORKDIR /srv/app")).toMatchObject({ kind: "workdir", path: "/srv/app" });
    expect(one<Command>("STOPSIGNAL SIGINT")).toMatchObject({ kind: "stopsignal", signal: "SIGINT" });
    expect(one<Command>("MAINTAINER me <me@x>")).toMatchObject({
      kind: "maintainer",
      maintainer: "me <me@x>",
    });
    expect(errorOf("FROM a\nUSER\n").reason).toBe("USER requires exactly one argument");
    expect(errorOf("FROM a\nWORKDIR\n").reason).toBe("WORKDIR requires exactly one argument");
    expect(errorOf("FROM a\nEXPOSE\n").reason).toBe("EXPOSE requires at least one argument");
    expect(errorOf('FROM a\nVOLUME [" "]\n').reason).toBe("VOLUME specified can not be an empty string");
  });

  it("ONBUILD keeps the trigger expression and refuses FROM/ONBUILD/MAINTAINER", () => {
    expect(one<OnbuildCommand>("ONBUILD RUN echo hi")).toMatchObject({
      kind: "onbuild",
      expression: "RUN echo hi",
    });
    expect(one<OnbuildCommand>("onbuild  copy . /app").expression).toBe("copy . /app");
    const ob = cmds("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n")[0] as OnbuildCommand;
    expect(ob.expression).toBe("RUN <<EOF\necho hi\nEOF");
    expect(errorOf("FROM a\nONBUILD ONBUILD RUN x\n").reason).toBe(
      "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
    );
    expect(errorOf("FROM a\nONBUILD FROM x\n").reason).toBe("FROM isn't allowed as an ONBUILD trigger");
    expect(errorOf("FROM a\nONBUILD maintainer x\n").reason).toBe(
      "MAINTAINER isn't allowed as an ONBUILD trigger",
    );
    expect(errorOf("FROM a\nONBUILD\n").reason).toBe("ONBUILD requires at least one argument");
  });

  it("is case-insensitive in instruction names", () => {
    const c = cmds("from a\nrun x\nCoPy a b\n");
    expect(c.map((x) => [x.kind, x.name])).toEqual([
      ["run", "run"],
      ["copy", "CoPy"],
    ]);
  });
});
