import { execFileSync } from "node:child_process";

/** Is a program on PATH? */
export function haveTool(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * For tests that need a real tool or root. On a laptop a missing one skips the suite with a
 * reason; under CI (CI=true) it is a failure, never a skip: .ci/run installs everything.
 */
export function requires(what: { tools?: string[]; root?: boolean }): { ok: boolean; reason?: string } {
  const missing = (what.tools ?? []).filter((t) => !haveTool(t));
  const needRoot = what.root && process.getuid?.() !== 0;
  const reason = [missing.length ? `missing tools: ${missing.join(", ")}` : "", needRoot ? "needs root" : ""]
    .filter(Boolean)
    .join("; ");
  if (!reason) return { ok: true };
  if (process.env.CI === "true") throw new Error(`CI requires ${reason} (install them in .ci/run)`);
  return { ok: false, reason };
}
