import path from "node:path/posix";
import { parseDockerfile } from "../dockerfile/index.js";
import type { ContainerConfig } from "../oci/index.js";
import { StrataError } from "../util/index.js";

const ALLOWED = new Set([
  "cmd",
  "entrypoint",
  "env",
  "expose",
  "label",
  "onbuild",
  "stopsignal",
  "user",
  "volume",
  "workdir",
]);

/**
 * Apply `--change` instructions (import, commit) to a container config, as Docker's
 * commit/import do: only the metadata instructions, shell forms wrapped in /bin/sh -c.
 */
export function applyChanges(changes: string[], base: ContainerConfig = {}): ContainerConfig {
  const c: ContainerConfig = structuredClone(base);
  for (const change of changes) {
    const parsed = parseDockerfile(change);
    for (const node of parsed.children) {
      const cmd = node.command;
      if (!ALLOWED.has(cmd))
        throw new StrataError(
          "INVALID_ARGUMENT",
          `${node.value.toUpperCase()} is not a valid change command`,
        );
      const args = node.args;
      const shellForm = (a: string[]) => (node.json ? a : ["/bin/sh", "-c", a.join(" ")]);
      switch (cmd) {
        case "cmd":
          c.Cmd = shellForm(args);
          break;
        case "entrypoint":
          c.Entrypoint = shellForm(args);
          break;
        case "env": {
          const env = [...(c.Env ?? [])];
          for (let i = 0; i + 1 < args.length; i += 3) {
            const k = args[i]!;
            const v = unquote(args[i + 1]!);
            const at = env.findIndex((e) => e.startsWith(`${k}=`));
            if (at >= 0) env[at] = `${k}=${v}`;
            else env.push(`${k}=${v}`);
          }
          c.Env = env;
          break;
        }
        case "label": {
          const labels = { ...(c.Labels ?? {}) };
          for (let i = 0; i + 1 < args.length; i += 3) labels[unquote(args[i]!)] = unquote(args[i + 1]!);
          c.Labels = labels;
          break;
        }
        case "expose": {
          const ports = { ...(c.ExposedPorts ?? {}) };
          for (const p of args) ports[p.includes("/") ? p.toLowerCase() : `${p}/tcp`] = {};
          c.ExposedPorts = ports;
          break;
        }
        case "volume": {
          const vols = { ...(c.Volumes ?? {}) };
          for (const v of args) if (v.trim()) vols[v] = {};
          c.Volumes = vols;
          break;
        }
        case "user":
          c.User = args[0] ?? "";
          break;
        case "workdir": {
          const w = args[0] ?? "";
          c.WorkingDir = path.isAbsolute(w) ? path.normalize(w) : path.join(c.WorkingDir || "/", w);
          break;
        }
        case "stopsignal":
          c.StopSignal = args[0];
          break;
        case "onbuild":
          c.OnBuild = [...(c.OnBuild ?? []), node.original.replace(/^\s*onbuild\s+/i, "")];
          break;
      }
    }
  }
  return c;
}

/** The parser keeps quotes in name=value words (expansion removes them); no variables here. */
function unquote(s: string): string {
  let out = "";
  let q: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === q) q = undefined;
      else if (c === "\\" && q === '"' && i + 1 < s.length) out += s[++i];
      else out += c;
    } else if (c === '"' || c === "'") q = c;
    else if (c === "\\" && i + 1 < s.length) out += s[++i];
    else out += c;
  }
  return out;
}
