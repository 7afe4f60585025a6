/**
 * One slot budget per Ollama node, shared by all of the node's per-model Workers (DESIGN.md: "the node's
 * parallel slots are one budget shared by all its model queues, never one budget per queue").
 *
 * Each llm activity holds one of the node's `parallelism` slots (a FIFO semaphore) for the generation's duration,
 * so a node serving several models never runs more generations at once than its parallelism, whatever its model
 * queues hand it. Each model Worker still takes up to `parallelism` tasks, so one busy model can use the whole
 * node; when several are busy, the extra tasks wait here (heartbeating, cancellable) for a slot.
 * Why not a custom slot supplier (docs/decisions.md): the SDK's core reserves a slot before every poll and one
 * more ahead of it, so the idle model Workers' pollers held the shared budget and a lone busy model got half the
 * node, with calls stalled for a whole long poll (~60 s) behind permits held by pollers.
 */

/** Counts what one node runs; `maxGenerations` is the most generations that ever ran at once. */
export interface NodeSlotStats {
  parallelism: number;
  generating: number;
  waiting: number;
  maxGenerations: number;
}

/** A FIFO counting semaphore whose waiters can be aborted. */
class Semaphore {
  private waiters: { grant: () => void; signal?: AbortSignal; onAbort?: () => void }[] = [];
  constructor(
    private limit: () => number,
    public used = 0,
  ) {}

  get waiting(): number {
    return this.waiters.length;
  }

  tryTake(): boolean {
    if (this.waiters.length > 0 || this.used >= this.limit()) return false;
    this.used++;
    return true;
  }

  take(signal?: AbortSignal): Promise<void> {
    if (this.tryTake()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const waiter: (typeof this.waiters)[number] = { grant: resolve, signal };
      if (signal) {
        waiter.onAbort = () => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(abortError(signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  give(): void {
    this.used = Math.max(0, this.used - 1);
    this.wake();
  }

  /** Grants waiters while there is room (also after the limit grew). */
  wake(): void {
    while (this.waiters.length > 0 && this.used < this.limit()) {
      const w = this.waiters.shift()!;
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      this.used++;
      w.grant();
    }
  }
}

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return Object.assign(new Error('stopped waiting for a node slot'), { name: 'AbortError' });
}

export class NodeSlots {
  readonly parallelism: number;
  private readonly generations: Semaphore;
  private maxGenerations = 0;

  constructor(parallelism: number) {
    if (!Number.isInteger(parallelism) || parallelism < 1) throw new Error(`parallelism must be ≥ 1: ${parallelism}`);
    this.parallelism = parallelism;
    this.generations = new Semaphore(() => this.parallelism);
  }

  /** Waits (FIFO) for one of the node's `parallelism` generation slots; the returned function gives it back once. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    await this.generations.take(signal);
    this.maxGenerations = Math.max(this.maxGenerations, this.generations.used);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.generations.give();
    };
  }

  stats(): NodeSlotStats {
    return {
      parallelism: this.parallelism,
      generating: this.generations.used,
      waiting: this.generations.waiting,
      maxGenerations: this.maxGenerations,
    };
  }
}
