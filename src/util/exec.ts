import { spawn } from "node:child_process";
import { StrataError } from "./errors.js";

/**
 * Run a system tool (tar, mount, setfattr…) to completion, optionally feeding it a stream
 * on stdin. Resolves on exit status 0; otherwise rejects with the tool's own stderr, so
 * the user sees why (`tar: …: Cannot open: No such file or directory`).
 */
export function runTool(
  cmd: string,
  args: string[],
  opts: { input?: NodeJS.ReadableStream } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: [opts.input ? "pipe" : "ignore", "ignore", "pipe"] });
    const err: Buffer[] = [];
    p.stderr!.on("data", (c: Buffer) => err.push(c));
    if (opts.input) {
      opts.input.on("error", (e) => {
        p.kill();
        reject(e);
      });
      p.stdin!.on("error", () => {}); // the tool's exit status reports what went wrong
      opts.input.pipe(p.stdin!);
    }
    p.on("error", reject);
    p.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(
            new StrataError(
              "IO_ERROR",
              `${cmd} ${args[0] ?? ""} failed: ${Buffer.concat(err).toString().trim()}`,
            ),
          ),
    );
  });
}
