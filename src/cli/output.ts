import { alignColumns, formatTable, parseTemplate, StrataError } from "../util/index.js";

/** Where commands write; tests and the daemon can capture it. */
export interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdoutIsTTY: boolean;
}

export function defaultIo(): Io {
  return {
    out: process.stdout,
    err: process.stderr,
    stdin: process.stdin,
    stdoutIsTTY: !!process.stdout.isTTY,
  };
}

/** A command failure that carries the exit status (125 for usage errors, as docker). */
export class ExitError extends Error {
  constructor(
    message: string,
    readonly status = 1,
    /** The command already printed its error in its own format (BuildKit's ERROR: lines). */
    readonly printed = false,
  ) {
    super(message);
  }
}

/**
 * Render rows the way docker's formatter does: "table" (the default table), "json" (one
 * object per line), "table <template>" or a bare Go template per row.
 */
export function renderRows(
  format: string | undefined,
  defaultTable: string,
  rows: Record<string, unknown>[],
  headers: Record<string, string>,
): string {
  const f = format === undefined || format === "" || format === "table" ? defaultTable : format;
  if (f === "json") return rows.map((r) => `${jsonLine(r)}\n`).join("");
  if (f.startsWith("table")) {
    const text = formatTable(f, rows, headers);
    return text.endsWith("\n") || text === "" ? text : `${text}\n`;
  }
  const t = parseTemplate(f);
  return rows.map((r) => `${t.execute(r)}\n`).join("");
}

/** Go's encoding/json compact form with HTML escaping, as `{{json .}}` prints. */
export function jsonLine(v: unknown): string {
  return JSON.stringify(v).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Plain aligned columns with docker's tabwriter settings (minwidth 10, padding 3). */
export function table(header: string[], rows: string[][]): string {
  const text = alignColumns([header, ...rows], { minWidth: 10, padding: 3 });
  return text.endsWith("\n") ? text : `${text}\n`;
}

/** `[y/N]` confirmation on the terminal; false when stdin is not interactive and says nothing. */
export async function confirm(io: Io, question: string): Promise<boolean> {
  io.out.write(`${question} [y/N] `);
  const line = await readLine(io.stdin);
  return /^y(es)?$/i.test(line.trim());
}

async function readLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (c: Buffer | string) => {
      buf += c.toString();
      const i = buf.indexOf("\n");
      if (i >= 0) {
        cleanup();
        resolve(buf.slice(0, i));
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(buf);
    };
    const cleanup = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.pause();
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.resume();
  });
}

/** Collect repeated `-f key=value` flags into a filter map. */
export function collectFilter(value: string, prev: Record<string, string[]> = {}): Record<string, string[]> {
  const i = value.indexOf("=");
  if (i <= 0) throw new StrataError("INVALID_ARGUMENT", `bad format of filter (expected name=value)`);
  const k = value.slice(0, i).trim().toLowerCase();
  const v = value.slice(i + 1);
  return { ...prev, [k]: [...(prev[k] ?? []), v] };
}

export function collect(value: string, prev: string[] = []): string[] {
  return [...prev, value];
}

/** docker's stringutils.Ellipsis: cut to n characters, the last one an ellipsis. */
export function ellipsis(s: string, n: number): string {
  const chars = [...s];
  if (chars.length <= n) return s;
  return `${chars.slice(0, n - 1).join("")}…`;
}
