import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

export type StepStatus = "CACHED" | "DONE" | "ERROR" | "RUNNING";

/** One vertex of BuildKit's plain progress (`#N name`, then `#N CACHED|DONE …|ERROR: …`). */
export interface Step {
  id: number;
  name: string;
  status: StepStatus;
}

/** Every vertex of a plain progress stream, in the order they started. */
export function parseProgress(text: string): Step[] {
  const steps = new Map<number, Step>();
  for (const line of text.split("\n")) {
    const m = /^#(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const id = Number(m[1]);
    const rest = m[2]!;
    const s = steps.get(id);
    if (!s) steps.set(id, { id, name: rest, status: "RUNNING" });
    else if (rest === "CACHED") s.status = "CACHED";
    else if (/^DONE \d/.test(rest)) s.status = "DONE";
    else if (rest.startsWith("ERROR")) s.status = "ERROR";
  }
  return [...steps.values()];
}

/**
 * The Dockerfile steps (`[2/5] RUN …`, `[stage 1/3] COPY …`) with their status; FROM lines and
 * [internal] vertices left out. Names lose their `[n/m] ` prefix: `RUN echo hi`.
 */
export function dockerfileSteps(text: string): { name: string; status: StepStatus }[] {
  return parseProgress(text)
    .filter((s) => /^\[[^\]]*\d+\/\d+\] /.test(s.name) && !/^\[[^\]]*\] FROM /.test(s.name))
    .map((s) => ({ name: s.name.replace(/^\[[^\]]*\] /, ""), status: s.status }));
}

/** Names of the Dockerfile steps that ran (not from the cache). */
export const ranSteps = (text: string) =>
  dockerfileSteps(text)
    .filter((s) => s.status === "DONE")
    .map((s) => s.name);

/** Names of the Dockerfile steps that came from the cache. */
export const cachedSteps = (text: string) =>
  dockerfileSteps(text)
    .filter((s) => s.status === "CACHED")
    .map((s) => s.name);

export type ContextSpec = Record<
  string,
  string | { data?: string; mode?: number; symlink?: string; dir?: boolean }
>;

/** Write a build context: files (text or with a mode), symlinks, empty directories. */
export function writeContext(dir: string, files: ContextSpec): void {
  mkdirSync(dir, { recursive: true });
  for (const [rel, f] of Object.entries(files)) {
    const p = path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    const spec = typeof f === "string" ? { data: f } : f;
    if (spec.dir) mkdirSync(p, { recursive: true });
    else if (spec.symlink !== undefined) symlinkSync(spec.symlink, p);
    else writeFileSync(p, spec.data ?? "", { mode: spec.mode ?? 0o644 });
  }
}

/** Mount points under a directory still listed in /proc/mounts (a build must leave none). */
export function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Active or temporary snapshot directories left in a store (`active-…`, `tmp-…`). */
export function danglingSnapshots(root: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(path.join(root, "snapshots"));
  } catch {
    return [];
  }
  return names.filter((n) => /^(active|tmp)-/.test(n));
}
