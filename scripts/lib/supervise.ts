/**
 * Keeps one child process of the dev stack running: when it exits without being asked to, it is started again
 * after a backoff that doubles per quick crash (and resets once a run lasted), and the supervisor says so. A
 * process that crashes in a loop (several exits within a short window) is reported with the last lines of its
 * log, then still restarted at the longest backoff, since what it waits for (a port, a service) may come back.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export interface RestartPolicy {
  /** Delay before the first restart. */
  initialDelayMs: number;
  /** Longest delay between restarts. */
  maxDelayMs: number;
  /** A run that lasted this long was healthy: the next crash starts the backoff over. */
  healthyAfterMs: number;
  /** `crashLoopCount` exits within `crashLoopWindowMs` are a crash loop. */
  crashLoopCount: number;
  crashLoopWindowMs: number;
  /** How many of the log's last lines a crash-loop report shows. */
  logLines: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  healthyAfterMs: 60_000,
  crashLoopCount: 4,
  crashLoopWindowMs: 120_000,
  logLines: 20,
};

/** The delay before restart number `consecutive` (1 = the first after a healthy run): doubling, capped. */
export function restartDelayMs(consecutive: number, policy: Pick<RestartPolicy, 'initialDelayMs' | 'maxDelayMs'>) {
  const n = Math.max(1, consecutive);
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(n - 1, 30));
}

/** The last `n` lines of a file (at most its last 64 KiB are read); empty when it cannot be read. */
export function lastLines(file: string, n: number): string[] {
  try {
    const size = statSync(file).size;
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    const lines = buf.toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-n);
  } catch {
    return [];
  }
}

export interface SupervisedOptions {
  name: string;
  /** Starts a fresh process (called once at once, and again for each restart). */
  start: () => ChildProcess;
  /** Where the process logs (for the crash-loop report). */
  logFile: string;
  policy?: Partial<RestartPolicy>;
  say: (msg: string) => void;
  warn: (msg: string) => void;
}

/** One supervised process; `proc` is the current one. */
export class SupervisedProcess {
  proc: ChildProcess;
  /** Restarts so far. */
  restarts = 0;
  /** Crash loops reported so far. */
  crashLoops = 0;
  private readonly policy: RestartPolicy;
  private consecutive = 0;
  private exits: number[] = [];
  private startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private inLoop = false;

  constructor(private readonly opts: SupervisedOptions) {
    this.policy = { ...DEFAULT_RESTART_POLICY, ...opts.policy };
    this.proc = this.spawn();
  }

  /** No more restarts (a pending one is cancelled); stopping the current process is the caller's. */
  stopRestarting(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private spawn(): ChildProcess {
    const proc = this.opts.start();
    this.startedAt = Date.now();
    proc.once('exit', (code, signal) => this.onExit(code, signal));
    return proc;
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopped) return;
    const now = Date.now();
    const { policy, opts } = this;
    if (now - this.startedAt >= policy.healthyAfterMs) {
      this.consecutive = 0;
      this.inLoop = false;
    }
    this.consecutive++;
    this.exits = [...this.exits.filter((t) => now - t < policy.crashLoopWindowMs), now];
    const how = signal ?? `code ${code}`;
    if (this.exits.length >= policy.crashLoopCount && !this.inLoop) {
      this.inLoop = true;
      this.crashLoops++;
      const lines = lastLines(opts.logFile, policy.logLines);
      opts.warn(
        `${opts.name} is crashing in a loop (${this.exits.length} exits in ${Math.round(policy.crashLoopWindowMs / 1000)} s, ` +
          `last: ${how}); its last ${lines.length} log lines (${opts.logFile}):\n` +
          lines.map((l) => `    ${l}`).join('\n'),
      );
    }
    const delay = this.inLoop ? policy.maxDelayMs : restartDelayMs(this.consecutive, policy);
    opts.warn(`${opts.name} exited (${how}); restarting it in ${formatMs(delay)} (restart ${this.restarts + 1})`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.restarts++;
      this.proc = this.spawn();
      opts.say(`${opts.name} restarted (pid ${this.proc.pid}, restart ${this.restarts})`);
    }, delay);
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s` : `${ms} ms`;
}
