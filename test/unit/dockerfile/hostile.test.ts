// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are Dockerfile text, where ${VAR} is literal
import { describe, expect, it } from "vitest";
import {
  DockerfileParseError,
  expandStages,
  lint,
  loadDockerfile,
  parseDockerfile,
} from "../../../src/dockerfile/index.js";

const AMD64 = { os: "linux", architecture: "amd64" };

/** Runs fn, expects a DockerfileParseError matching `message`, and a bounded time. */
function rejects(fn: () => unknown, message: RegExp | string, maxMs = 5000): DockerfileParseError {
  const t0 = performance.now();
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t0;
  expect(err, "should fail").toBeInstanceOf(DockerfileParseError);
  expect((err as Error).message).toMatch(message);
  expect(ms).toBeLessThan(maxMs);
  return err as DockerfileParseError;
}

function within<T>(fn: () => T, maxMs = 5000): T {
  const t0 = performance.now();
  const r = fn();
  expect(performance.now() - t0).toBeLessThan(maxMs);
  return r;
}

describe("hostile input", () => {
  it("a 10 MB single-line Dockerfile is refused quickly, as text and as bytes", () => {
    const line = `RUN ${"a".repeat(10 * 1024 * 1024)}`;
    rejects(
      () => parseDockerfile(line),
      "Dockerfile:1: dockerfile line greater than max allowed size of 65535",
    );
    rejects(
      () => parseDockerfile(Buffer.from(`FROM a\n${line}\n`)),
      "Dockerfile:2: dockerfile line greater than max allowed size of 65535",
    );
  });

  it("counts the line limit in UTF-8 bytes", () => {
    const multi = "é".repeat(40000); // 80000 bytes, 40000 UTF-16 units
    rejects(() => parseDockerfile(`FROM a\nLABEL x=${multi}\n`), /max allowed size of 65535/);
    expect(parseDockerfile(`FROM a\nLABEL x=${"é".repeat(30000)}\n`).children).toHaveLength(2);
  });

  it("a 10 MB Dockerfile of many lines parses in bounded time", () => {
    const body = "RUN echo hello world && true\n".repeat(360000);
    // Linear work (about 1 µs a line); the bound only catches quadratic behaviour on a busy machine.
    const r = within(() => parseDockerfile(`FROM a\n${body}`), 15000);
    expect(r.children).toHaveLength(360001);
  });

  it("a 10 MB logical line made of continuations parses in bounded time", () => {
    const r = within(
      () => parseDockerfile(`FROM a\nRUN x \\\n${"  && echo hello \\\n".repeat(600000)}  && done\n`),
      15000,
    );
    expect(r.children[1]!.args[0]!.length).toBeGreaterThan(9_000_000);
  });

  it("deeply nested ${…} is a clear error, not a stack overflow", () => {
    const depth = 10000; // 60 KB: under the 64 KiB line limit
    const word = `${"${A:-".repeat(depth)}x${"}".repeat(depth)}`;
    const df = loadDockerfile(`FROM a\nWORKDIR /${word}\n`);
    const e = rejects(() => expandStages(df, { buildPlatform: AMD64 }), /^Dockerfile:2: .*nested/);
    expect(e.line).toBe(2);
    expect(e.code).toBe("TOO_LARGE");
    // The same word in FROM and in a RUN line with a heredoc marker.
    rejects(() => expandStages(loadDockerfile(`FROM ${word}\n`), { buildPlatform: AMD64 }), /nested/);
    const r = within(() => parseDockerfile(`FROM a\nRUN ${word} <<EOF\nhi\nEOF\n`));
    expect(r.children.length).toBeGreaterThan(1);
  });

  it("nested JSON in the exec form falls back to the shell form quickly", () => {
    const r = within(() => parseDockerfile(`FROM a\nCMD ${"[".repeat(60000)}\n`));
    expect(r.children[1]!.json).toBe(false);
    const deep = `${"[".repeat(20000)}${"]".repeat(20000)}`;
    expect(within(() => parseDockerfile(`FROM a\nCMD ${deep}\n`)).children[1]!.json).toBe(false);
  });

  it("nested ONBUILD is refused", () => {
    rejects(() => parseDockerfile(`FROM a\n${"ONBUILD ".repeat(5000)}RUN x\n`), /ONBUILD nested too deeply/);
    rejects(
      () => loadDockerfile("FROM a\nONBUILD ONBUILD RUN x\n"),
      "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
    );
  });

  it("an unterminated heredoc is refused with its line", () => {
    const e = rejects(
      () => parseDockerfile("FROM a\nRUN <<EOF\necho hi\n"),
      'Dockerfile:2: unterminated heredoc "EOF"',
    );
    expect(e.endLine).toBe(3);
    rejects(() => parseDockerfile(`FROM a\nRUN ${"<<A ".repeat(10000)}\nA\n`), /unterminated heredoc/);
    rejects(
      () => parseDockerfile(`FROM a\nCOPY <<EOF /x\n${"line\n".repeat(500000)}`),
      /unterminated heredoc/,
    );
  });

  it("NUL bytes are refused with their line", () => {
    rejects(
      () => parseDockerfile("FROM a\nRUN echo \0\n"),
      "Dockerfile:2: the Dockerfile contains a NUL byte",
    );
    rejects(() => parseDockerfile(Buffer.from("FROM a\0\n")), /^Dockerfile:1: .*NUL byte/);
  });

  it("invalid UTF-8 is refused with its line and byte offset", () => {
    const bad: [number[], number][] = [
      [[0xff], 8],
      [[0xc3], 8], // truncated
      [[0xc0, 0xaf], 8], // overlong
      [[0xed, 0xa0, 0x80], 8], // UTF-16 surrogate
      [[0xf4, 0x90, 0x80, 0x80], 8], // above U+10FFFF
      [[0x80], 8], // stray continuation byte
    ];
    for (const [bytes, offset] of bad) {
      const buf = Buffer.concat([Buffer.from("FROM a\nX"), Buffer.from(bytes), Buffer.from("\n")]);
      const e = rejects(() => parseDockerfile(buf, { file: "Dockerfile.bad" }), /invalid UTF-8/);
      expect(e.message).toBe(
        `Dockerfile.bad:2: invalid UTF-8 byte sequence at byte offset ${offset}; a Dockerfile must be UTF-8 text`,
      );
    }
    rejects(() => parseDockerfile("FROM a\nRUN \ud800\n"), /^Dockerfile:2: invalid UTF-8/);
    expect(parseDockerfile(Buffer.from("FROM a\nLABEL x=\u{1f600}\n")).children[1]!.args).toEqual([
      "x",
      "\u{1f600}",
      "=",
    ]);
  });

  it("lint survives what the build would refuse", () => {
    const ws = within(() => lint(`FROM a:1\nWORKDIR ${"${X:-".repeat(3000)}${"}".repeat(3000)}\nUSER app\n`));
    expect(Array.isArray(ws)).toBe(true);
  });
});
