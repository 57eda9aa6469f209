import type { ProgressSink } from "../engine/index.js";

interface Vertex {
  name: string;
  started: number;
  logs: string[];
}

/**
 * BuildKit's plain progress: `#N name`, output lines `#N 0.123 text`, `#N CACHED`,
 * `#N DONE 1.2s`, `#N ERROR: …`, a blank line after each finished step. Without a stream
 * it only remembers (quiet builds still need the failing step's output).
 */
export class PlainProgress implements ProgressSink {
  private n = 0;
  private readonly vertices = new Map<number, Vertex>();
  private failed?: number;

  constructor(private readonly out?: NodeJS.WritableStream) {}

  private write(s: string) {
    this.out?.write(s);
  }

  start(name: string): number {
    const id = ++this.n;
    this.vertices.set(id, { name, started: performance.now(), logs: [] });
    this.write(`#${id} ${name}\n`);
    return id;
  }

  log(vertex: number, line: string, fromProcess = false): void {
    const v = this.vertices.get(vertex);
    if (!v) return;
    if (fromProcess) {
      v.logs.push(line);
      if (v.logs.length > 10) v.logs.shift();
      this.write(`#${vertex} ${((performance.now() - v.started) / 1000).toFixed(3)} ${line}\n`);
    } else this.write(`#${vertex} ${line}\n`);
  }

  cached(vertex: number): void {
    this.write(`#${vertex} CACHED\n\n`);
  }

  done(vertex: number): void {
    const v = this.vertices.get(vertex);
    const secs = v ? (performance.now() - v.started) / 1000 : 0;
    this.write(`#${vertex} DONE ${secs.toFixed(1)}s\n\n`);
  }

  error(vertex: number, message: string): void {
    this.failed ??= vertex;
    this.write(`#${vertex} ERROR: ${message}\n\n`);
  }

  warn(message: string): void {
    this.write(`${message}\n`);
  }

  /** BuildKit's summary of a failed build: the step, its last output, the Dockerfile lines. */
  failure(_message: string, dockerfile: string, file: string, err: unknown): void {
    const v = this.failed !== undefined ? this.vertices.get(this.failed) : undefined;
    if (v) {
      this.write(`------\n > ${v.name}:\n`);
      for (const l of v.logs) this.write(`${l}\n`);
      this.write("------\n");
    }
    const where = (err as { where?: string })?.where ?? (err as { cause?: { where?: string } })?.cause?.where;
    const m = where ? /:(\d+)$/.exec(where) : undefined;
    if (m) {
      const line = Number(m[1]);
      const lines = dockerfile.split("\n");
      this.write(`${file}:${line}\n--------------------\n`);
      for (let i = Math.max(1, line - 2); i <= Math.min(lines.length, line + 1); i++)
        this.write(`${String(i).padStart(4)} | ${i === line ? ">>> " : "    "}${lines[i - 1]}\n`);
      this.write("--------------------\n");
    }
  }
}
