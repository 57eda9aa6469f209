/**
 * Build progress as events, rendered by cli/ (BuildKit's plain lines or a tty view) or by
 * the daemon. Library code never prints.
 */
export interface ProgressSink {
  /** A new step (BuildKit's vertex); returns its number. */
  start(name: string): number;
  /** A line of the step's output (`fromProcess`: the RUN process wrote it). */
  log(vertex: number, line: string, fromProcess?: boolean): void;
  cached(vertex: number): void;
  done(vertex: number): void;
  error(vertex: number, message: string): void;
  /** A warning for the whole build (unused build args, lint rules). */
  warn(message: string): void;
}

/** A sink that records nothing (quiet builds, tests). */
export const nullProgress: ProgressSink = {
  start: (() => {
    let n = 0;
    return () => ++n;
  })(),
  log: () => {},
  cached: () => {},
  done: () => {},
  error: () => {},
  warn: () => {},
};
