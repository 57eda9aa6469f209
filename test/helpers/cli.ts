import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export const REPO = path.resolve(import.meta.dirname, "../..");
export const STRATA_BIN = path.join(REPO, "dist/bin/main.js");
/** The `strata` command as installed (`npm link`): a shell launcher in front of STRATA_BIN. */
export const STRATA_LAUNCHER = path.join(REPO, "bin/strata");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built `strata` CLI with its own store root. */
export function strata(
  root: string,
  args: string[],
  opts: {
    input?: Buffer | string;
    env?: NodeJS.ProcessEnv;
    stdoutFile?: number;
    /** Through bin/strata instead of `node dist/bin/main.js`. */
    launcher?: boolean;
  } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = opts.launcher ? [STRATA_LAUNCHER] : [process.execPath, STRATA_BIN];
    const p = spawn(cmd!, [...pre, "--root", root, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on("data", (c) => out.push(c));
    p.stderr.on("data", (c) => err.push(c));
    p.on("error", reject);
    p.on("close", (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    if (opts.input !== undefined) p.stdin.end(opts.input);
    else p.stdin.end();
  });
}

/** Like strata() but returns stdout as bytes (for `save` to stdout). */
export function strataBytes(
  root: string,
  args: string[],
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [STRATA_BIN, "--root", root, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on("data", (c) => out.push(c));
    p.stderr.on("data", (c) => err.push(c));
    p.on("error", reject);
    p.on("close", (code) =>
      resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }),
    );
  });
}

export function tempDir(prefix = "strata-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
