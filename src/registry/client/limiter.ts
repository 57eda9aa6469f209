/**
 * A counting semaphore: at most `limit` jobs run at once, the rest wait in FIFO order.
 * `waiting()` tells a caller that its job will queue, so it can report "Waiting".
 */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`limiter: limit must be >= 1, got ${limit}`);
  }

  /** True when a job submitted now would have to wait for a slot. */
  full(): boolean {
    return this.active >= this.limit;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/** Identical concurrent work shared by key (buildkit's flightcontrol): the second caller gets the first's promise. */
export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  has(key: string): boolean {
    return this.inflight.has(key);
  }

  do(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) return running;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
