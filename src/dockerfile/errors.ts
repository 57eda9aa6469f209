import { type ErrorCode, StrataError } from "../util/index.js";

/** The file name used in messages when the caller does not give one. */
export const DEFAULT_DOCKERFILE_NAME = "Dockerfile";

/**
 * A Dockerfile that does not parse, or an instruction that is malformed. Carries the 1-based
 * line range of the offending instruction (BuildKit's `parser.LocationError`) and the file name.
 *
 * Two message shapes, as BuildKit prints them:
 * - syntax errors of the text and unknown instructions: `Dockerfile:7: unknown instruction: COPPY
 *   (did you mean COPY?)`;
 * - errors of one instruction's arguments or flags (BuildKit's `instructions.parseError`):
 *   `Dockerfile parse error on line 2: FROM requires either one or three arguments`.
 *
 * `reason` is the message without any location prefix.
 */
export class DockerfileParseError extends StrataError {
  readonly line: number;
  readonly endLine: number;
  readonly file: string;
  readonly reason: string;

  constructor(
    message: string,
    opts: {
      reason: string;
      line: number;
      endLine?: number;
      file?: string;
      cause?: unknown;
      code?: ErrorCode;
    },
  ) {
    super(opts.code ?? "INVALID_ARGUMENT", message, { cause: opts.cause });
    this.name = "DockerfileParseError";
    this.line = opts.line;
    this.endLine = Math.max(opts.endLine ?? opts.line, opts.line);
    this.file = opts.file ?? DEFAULT_DOCKERFILE_NAME;
    this.reason = opts.reason;
  }
}

/** `Dockerfile:7: <reason>` */
export function syntaxError(
  reason: string,
  line: number,
  endLine?: number,
  file = DEFAULT_DOCKERFILE_NAME,
): DockerfileParseError {
  return new DockerfileParseError(`${file}:${line}: ${reason}`, { reason, line, endLine, file });
}

/** `Dockerfile parse error on line 2: <reason>` */
export function instructionError(
  reason: string,
  line: number,
  endLine?: number,
  file = DEFAULT_DOCKERFILE_NAME,
): DockerfileParseError {
  return new DockerfileParseError(`Dockerfile parse error on line ${line}: ${reason}`, {
    reason,
    line,
    endLine,
    file,
  });
}

/**
 * An error raised by a helper that does not know where it is (flag parsing, mount parsing, word
 * expansion); the caller adds the location. Kept internal to the folder.
 */
export class ReasonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReasonError";
  }
}
