import { describe, expect, it } from "vitest";
import {
  DockerfileParseError,
  formatGoDuration,
  goQuote,
  type Node,
  nodeArgs,
  parseDockerfile,
  parseGoDuration,
} from "../../../src/dockerfile/index.js";
import { dump, dumpNode } from "./dump.js";

function err(text: string | Uint8Array, file?: string): DockerfileParseError {
  try {
    parseDockerfile(text, file ? { file } : {});
  } catch (e) {
    expect(e).toBeInstanceOf(DockerfileParseError);
    return e as DockerfileParseError;
  }
  throw new Error("did not fail");
}
const nodes = (text: string): Node[] => parseDockerfile(text).children;

describe("directives", () => {
  it("are read only before the first instruction or other comment", () => {
    const r = parseDockerfile(
      "# syntax=docker/dockerfile:1\n# Escape = `\n# check=skip=all\nFROM a\n# escape=\\\n",
    );
    expect(r.escapeToken).toBe("`");
    expect(r.directives).toEqual([
      { name: "syntax", value: "docker/dockerfile:1", line: 1 },
      { name: "escape", value: "`", line: 2 },
      { name: "check", value: "skip=all", line: 3 },
    ]);
    expect(parseDockerfile("# a comment\n# escape=`\nFROM a\n").escapeToken).toBe("\\");
    expect(parseDockerfile("\n# escape=`\nFROM a\n").escapeToken).toBe("\\");
    expect(parseDockerfile("# unknown=1\n# escape=`\nFROM a\n").escapeToken).toBe("\\");
  });

  it("are not comments of the first instruction", () => {
    const r = parseDockerfile("# syntax=x\n# about a\nFROM a\n");
    expect(r.children[0]!.comments).toEqual(["about a"]);
  });

  it("ignore a byte order mark", () => {
    const r = parseDockerfile(Buffer.from("\uFEFF# escape=`\nFROM a\nRUN x `\n  y\n"));
    expect(r.escapeToken).toBe("`");
    expect(r.children[1]!.args).toEqual(["x   y"]);
  });

  it("refuse a repeated directive and a bad escape token", () => {
    expect(err("# escape=`\n# escape=\\\nFROM a\n").message).toBe(
      "Dockerfile:2: only one escape parser directive can be used",
    );
    expect(err("# escape=x\nFROM a\n").message).toBe(
      "Dockerfile:1: invalid escape token 'x' does not match ` or \\",
    );
  });
});

describe("line handling", () => {
  it("joins continuations, skipping comments and empty lines, and warns on the empty ones", () => {
    const r = parseDockerfile("FROM a\nRUN one \\\n  # a comment\n\n  two \\\n   \n  three\n");
    expect(r.children[1]!.args).toEqual(["one   two   three"]);
    expect(r.children[1]).toMatchObject({ startLine: 2, endLine: 7 });
    expect(r.warnings).toEqual([
      {
        rule: "NoEmptyContinuation",
        short: "Empty continuation line found in: RUN one   two   three",
        detail: "Empty continuation lines will become errors in a future release",
        url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
        line: 7,
      },
    ]);
  });

  it("uses the backtick as escape when asked, and CRLF line ends", () => {
    const r = parseDockerfile("# escape=`\r\nFROM a\r\nRUN dir c:\\ `\r\n  && echo\r\n");
    expect(r.children[1]!.args).toEqual(["dir c:\\   && echo"]);
  });

  it("keeps an escaped escape at the end of a line", () => {
    expect(nodes("FROM a\nENV A b\\\\\nENV C d\n").map((n) => n.args)).toEqual([
      ["a"],
      ["A", "b\\\\", ""],
      ["C", "d", ""],
    ]);
  });

  it("collects the comments above an instruction; an empty # resets them", () => {
    const n = nodes("# one\n# two\nFROM a\n# three\n#\n# four\nRUN x\nRUN y\n");
    expect(n.map((x) => x.comments)).toEqual([["one", "two"], ["four"], []]);
  });

  it("is case-insensitive in instruction names and keeps the word as written", () => {
    const n = nodes("from a\nRuN x\nCOPY a b\n");
    expect(n.map((x) => [x.value, x.command])).toEqual([
      ["from", "from"],
      ["RuN", "run"],
      ["COPY", "copy"],
    ]);
  });

  it("keeps unknown instructions for the instructions step to refuse", () => {
    expect(dumpNode(nodes("FROM a\nFOO bar baz\n")[1]!)).toBe('foo ""');
  });
});

describe("flags and forms", () => {
  it("extracts leading -- words, processing quotes and escapes, until a bare --", () => {
    const n = nodes('FROM a\nCOPY --chown="a b" --x=\\"y --link -- --notaflag /d\n')[1]!;
    expect(n.flags).toEqual(["--chown=a b", '--x="y', "--link"]);
    expect(n.args).toEqual(["--notaflag", "/d"]);
  });

  it("collects repeated --mount flags in order", () => {
    expect(
      nodes("FROM a\nRUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b x\n")[1]!.flags,
    ).toEqual(["--mount=type=cache,target=/a", "--mount=type=tmpfs,target=/b"]);
  });

  it("exec form is JSON; invalid JSON falls back to the shell form", () => {
    const [, a, b, c, d] = nodes('FROM a\nCMD ["a", "b"]\nCMD [\'a\']\nCMD ["a",\nENTRYPOINT [1]x\n');
    expect([a!.json, a!.args]).toEqual([true, ["a", "b"]]);
    expect([b!.json, b!.args]).toEqual([false, ["['a']"]]);
    expect([c!.json, c!.args]).toEqual([false, ['["a",']]);
    expect([d!.json, d!.args]).toEqual([false, ["[1]x"]]);
    expect(err('FROM a\nRUN ["a", 1]\n').message).toBe(
      "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only",
    );
  });

  it("splits each instruction's arguments its own way", () => {
    const n = nodes(
      'FROM a AS b\nCOPY "a b" c\nVOLUME ["/v"]\nEXPOSE 80  443\nUSER a b\nARG x="1 2" y\nLABEL a=1 "b c"=2\nHEALTHCHECK --retries=3 CMD curl x\n',
    );
    expect(n.map((x) => x.args)).toEqual([
      ["a", "AS", "b"],
      ['"a', 'b"', "c"],
      ["/v"],
      ["80", "443"],
      ["a b"],
      ['x="1 2"', "y"],
      ["a", "1", "=", '"b c"', "2", "="],
      ["CMD", "curl x"],
    ]);
  });

  it("wraps the ONBUILD trigger", () => {
    const n = nodes("FROM a\nONBUILD RUN --mount=type=cache,target=/x make\n")[1]!;
    expect(dumpNode(n)).toBe('onbuild (run ["--mount=type=cache,target=/x"] "make")');
    expect(nodeArgs(n)).toEqual(["RUN", "make"]);
    expect(n.child!.startLine).toBe(2);
  });
});

describe("heredocs", () => {
  it("reads several heredocs of one instruction, in order, with their line range", () => {
    const r = parseDockerfile("FROM a\nCOPY <<one <<two /d/\n1\none\n2\ntwo\nRUN x\n");
    const c = r.children[1]!;
    expect(c.heredocs.map((h) => [h.name, h.content])).toEqual([
      ["one", "1\n"],
      ["two", "2\n"],
    ]);
    expect([c.startLine, c.endLine]).toEqual([2, 6]);
    expect(r.children[2]!.startLine).toBe(7);
  });

  it("handles <<-, quoted delimiters and file descriptors", () => {
    const r = parseDockerfile('FROM a\nRUN 3<<-"END" cat\n\tx $A\n\tEND\n');
    expect(r.children[1]!.heredocs).toEqual([
      { name: "END", content: "\tx $A\n", expand: false, chomp: true, fileDescriptor: 3 },
    ]);
  });

  it("works under ONBUILD and ADD, not in JSON form or other instructions", () => {
    expect(nodes("FROM a\nONBUILD RUN <<X\nhi\nX\n")[1]!.heredocs.map((h) => h.name)).toEqual(["X"]);
    expect(nodes("FROM a\nADD <<X /x\nhi\nX\n")[1]!.heredocs.map((h) => h.content)).toEqual(["hi\n"]);
    expect(nodes('FROM a\nRUN ["cat", "<<X"]\nX\n').map((n) => n.value)).toEqual(["FROM", "RUN", "X"]);
    expect(nodes("FROM a\nLABEL x=<<X\nX\n").map((n) => n.value)).toEqual(["FROM", "LABEL", "X"]);
  });

  it("refuses an unterminated heredoc with its location", () => {
    const e = err("FROM a\nRUN <<EOF\necho hi\n");
    expect(e.message).toBe('Dockerfile:2: unterminated heredoc "EOF"');
    expect([e.line, e.endLine]).toEqual([2, 3]);
  });
});

describe("errors", () => {
  it("carry the line and the file name", () => {
    const e = err("FROM a\n\nENV\tPATH\n", "app/Dockerfile.dev");
    expect(e.message).toBe("app/Dockerfile.dev:3: ENV must have two arguments");
    expect(e).toMatchObject({
      line: 3,
      endLine: 3,
      file: "app/Dockerfile.dev",
      reason: "ENV must have two arguments",
    });
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.kind).toBe("invalidArgument");
  });

  it("refuse an empty file or one with only comments", () => {
    expect(err("").message).toBe("Dockerfile:1: file with no instructions");
    expect(err("# a\n\n# b\n").message).toBe("Dockerfile:3: file with no instructions");
  });
});

describe("helpers", () => {
  it("goQuote writes strings as Go's strconv.Quote", () => {
    expect(goQuote('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(goQuote("\x00\x07\x1b\x7f\t")).toBe('"\\x00\\a\\x1b\\x7f\\t"');
    expect(goQuote("♥ é")).toBe('"♥ é"');
    expect(goQuote("\u00a0\u2028\u200b")).toBe('"\\u00a0\\u2028\\u200b"');
    expect(goQuote("\u{e0001}")).toBe('"\\U000e0001"');
  });

  it("Go durations", () => {
    expect(parseGoDuration("1h2m3.5s")).toBe(3723.5e9);
    expect(parseGoDuration("-1.5ms")).toBe(-1.5e6);
    expect(parseGoDuration("0")).toBe(0);
    expect(() => parseGoDuration("1x")).toThrow('time: unknown unit "x" in duration "1x"');
    expect(() => parseGoDuration("")).toThrow('time: invalid duration ""');
    expect(formatGoDuration(90e9)).toBe("1m30s");
    expect(formatGoDuration(1e6)).toBe("1ms");
  });

  it("the dump helper reproduces BuildKit's format", () => {
    expect(dump(parseDockerfile("FROM a\nCOPY --from=x a b\nCMD []\n"))).toBe(
      '(from "a")\n(copy ["--from=x"] "a" "b")\n(cmd)\n',
    );
  });
});
