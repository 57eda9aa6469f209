/**
 * Progress of a pull or push as Docker's JSON messages describe it: an optional id (a short
 * layer ID, or a tag), a status ("Pulling fs layer", "Pushed") and, while bytes move, a
 * progress counter. Library code only emits these; cli/ renders them (bars on a TTY, plain
 * lines otherwise) and the Engine API would send them as they are.
 */
export interface TransferProgress {
  /** Bytes done; absent in a status update without numbers (Docker's empty progressDetail). */
  current?: number;
  /** Bytes expected in all; absent when unknown. */
  total?: number;
  /** Unix seconds when the transfer started (for the time-left estimate). */
  start?: number;
}

export interface ProgressEvent {
  id?: string;
  status: string;
  /**
   * Present (maybe empty) on per-layer status updates, which a terminal redraws in place
   * on the layer's line; absent on messages (`Pulling from …`, `Digest: …`), which are
   * plain lines.
   */
  progress?: TransferProgress;
}

/** A per-layer status update without numbers ("Pull complete"): Docker's `progressDetail: {}`. */
export function update(id: string, status: string): ProgressEvent {
  return { id, status, progress: {} };
}

export type ProgressSink = (e: ProgressEvent) => void;

/** A sink that drops everything. */
export const noProgress: ProgressSink = () => {};

/**
 * Rate-limit byte counters: emit at most every `intervalMs` and always on the last byte, so
 * a fast loopback transfer does not flood the terminal (Docker's progress reader does the
 * same with a 512 KiB / 100 ms rule).
 */
export class ProgressThrottle {
  private last = 0;
  private readonly start = Math.floor(Date.now() / 1000);

  constructor(
    private readonly sink: ProgressSink,
    private readonly id: string,
    private readonly status: string,
    private readonly total: number | undefined,
    private readonly intervalMs = 100,
  ) {}

  update(current: number): void {
    const now = Date.now();
    const done = this.total !== undefined && current >= this.total;
    if (!done && now - this.last < this.intervalMs) return;
    this.last = now;
    this.sink({
      id: this.id,
      status: this.status,
      progress: { current, total: this.total, start: this.start },
    });
  }
}
