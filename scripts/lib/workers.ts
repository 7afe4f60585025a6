/**
 * Running in-process Temporal workers for tests and benchmarks: start them all, and stop them once, waiting
 * until each has drained. One helper instead of the same shutdown lines in every file.
 */
import type { Worker } from '@temporalio/worker';

export interface RunningWorkers {
  readonly workers: Worker[];
  /** Adds workers started later (e.g. a second node) to the same stop. */
  add(...more: Worker[]): void;
  /** Shuts down every worker still running and waits for all of them; safe to call more than once. */
  stop(): Promise<void>;
}

export function runWorkers(workers: Worker[]): RunningWorkers {
  const all: Worker[] = [];
  const running: Promise<void>[] = [];
  const add = (...more: Worker[]) => {
    for (const w of more) {
      all.push(w);
      running.push(w.run());
    }
  };
  add(...workers);
  let stopping: Promise<void> | undefined;
  return {
    workers: all,
    add,
    stop() {
      stopping ??= (async () => {
        for (const w of all) if (w.getState() === 'RUNNING') w.shutdown();
        // A worker that failed while running already rejected its run(); stopping must still finish.
        await Promise.allSettled(running);
      })();
      return stopping;
    },
  };
}
