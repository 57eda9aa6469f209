import type { ProgressEvent } from "../engine/index.js";
import { humanSize } from "../util/index.js";

/** Go's time.Duration String() for whole seconds: "0s", "45s", "2m5s", "1h0m3s". */
export function goDurationSeconds(total: number): string {
  const s = Math.max(0, Math.trunc(total));
  if (s < 60) return `${s}s`;
  const m = Math.trunc(s / 60);
  if (m < 60) return `${m}m${s % 60}s`;
  return `${Math.trunc(m / 60)}h${m % 60}m${s % 60}s`;
}

/**
 * docker's JSONProgress.String(): `[=====>      ]  12.35MB/30.1MB 3s`. The bar needs a
 * terminal wider than 110 columns, the time left one wider than 50; sizes are go-units
 * HumanSize (4 significant digits) padded to 8.
 */
export function progressString(p: ProgressEvent["progress"], width: number, nowMs = Date.now()): string {
  if (!p) return "";
  const total = p.total ?? 0;
  const current = p.current ?? 0;
  if (current <= 0 && total <= 0) return "";
  if (total <= 0) return humanSize(current, 4).padStart(8);
  let percentage = Math.trunc(Math.trunc((current / total) * 100) / 2);
  if (percentage > 50) percentage = 50;
  let bar = "";
  if (width > 110) bar = `[${"=".repeat(percentage)}>${" ".repeat(Math.max(0, 50 - percentage))}] `;
  let numbers = `${humanSize(current, 4).padStart(8)}/${humanSize(total, 4)}`;
  if (current > total) numbers = humanSize(current, 4).padStart(8);
  let timeLeft = "";
  if (current > 0 && p.start && p.start > 0 && percentage < 50 && width > 50) {
    const fromStartNs = (nowMs - p.start * 1000) * 1e6;
    const perEntry = Math.trunc(fromStartNs / current);
    const leftNs = (total - current) * perEntry;
    timeLeft = ` ${goDurationSeconds(Math.trunc(leftNs / 1e9))}`;
  }
  return bar + numbers + timeLeft;
}

/**
 * Docker's DisplayJSONMessagesStream: on a terminal one line per layer ID, redrawn in
 * place with cursor movements (the bars live); otherwise one plain line per status, and
 * byte-progress updates are left out. Lines without an ID (`Digest:`, `Status:`) end the
 * group of live lines.
 */
export class JsonMessageRenderer {
  private readonly ids = new Map<string, number>();

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly opts: { isTerminal: boolean; width?: number },
  ) {}

  private width(): number {
    return this.opts.width ?? (this.out as { columns?: number }).columns ?? 200;
  }

  write(m: ProgressEvent): void {
    const tty = this.opts.isTerminal;
    // Status updates (with a progress object, empty or not) own a line; messages do not.
    const positioned = m.id !== undefined && m.progress !== undefined;
    const bar = progressString(m.progress, this.width());
    if (!tty && positioned && bar !== "") return;
    let s = "";
    let diff = 0;
    if (positioned) {
      let line = this.ids.get(m.id!);
      if (line === undefined) {
        line = this.ids.size;
        this.ids.set(m.id!, line);
        if (tty) s += "\n";
      }
      diff = this.ids.size - line;
      if (tty) s += `\x1b[${diff}A`;
    } else {
      this.ids.clear();
    }
    let endl = "";
    if (tty && m.progress !== undefined) {
      s += "\x1b[2K\r";
      endl = "\r";
    }
    if (m.id !== undefined) s += `${m.id}: `;
    if (tty && m.progress !== undefined) s += `${m.status} ${bar}${endl}`;
    else s += `${m.status}${endl}\n`;
    if (tty && positioned) s += `\x1b[${diff}B`;
    this.out.write(s);
  }
}
