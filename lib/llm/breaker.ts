/**
 * A circuit breaker for one Ollama node, held by that node's llm worker.
 *
 * Why: every node that serves a model polls the model's queue, and a node that fails fast (500s, refused
 * connections) polls again at once, so it takes a large share of the retries too: a call could spend all its
 * attempts on one sick node next to a healthy one. When a node fails `failures` times in a row, the circuit
 * opens: the worker stops polling its model queues (workers/llm.ts), so Temporal hands the calls, retries
 * included, to the other nodes; a task it already holds fails fast with a retryable NodeUnavailable. After
 * `openMs` it probes the node with a one-token generation; a failed probe waits twice as long (up to `maxOpenMs`),
 * a successful one closes the circuit and the worker polls again. A healthy call pays one counter reset.
 * Only node faults count (common/errors.ts: NodeUnavailable, OllamaError, InferenceTimeout, OutOfMemory); a bad
 * request, an unknown model or a cancel says nothing about the node.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Ollama } from 'ollama';
import { ErrorType } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { withRequestSignal } from './client';

export interface BreakerOptions {
  /** Node failures in a row that open the circuit; 0 turns the breaker off. */
  failures: number;
  /** Wait before the first probe; doubled after each failed probe, up to `maxOpenMs`. */
  openMs: number;
  maxOpenMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failures: 3, openMs: 10_000, maxOpenMs: 120_000 };

export type CircuitState = 'closed' | 'open' | 'probing';

/** The failure types that say the node itself is failing. */
const NODE_FAULTS: ReadonlySet<string> = new Set([
  ErrorType.NodeUnavailable,
  ErrorType.OllamaError,
  ErrorType.InferenceTimeout,
  ErrorType.OutOfMemory,
]);

/** Whether `err` (what an llm activity threw) is a node fault. */
export function isNodeFault(err: unknown): boolean {
  if (!(err instanceof ApplicationFailure)) return false;
  return typeof err.type === 'string' && NODE_FAULTS.has(err.type);
}

export interface NodeCircuitOptions extends Partial<BreakerOptions> {
  nodeId: string;
  /** Resolves when the node served a real request; rejects otherwise (it must bound its own time). */
  probe: () => Promise<void>;
  /** The circuit opened: stop taking work. */
  onOpen?: () => void;
  /** A probe succeeded: take work again. */
  onClose?: () => void;
  logger?: Logger;
}

export class NodeCircuit {
  readonly options: BreakerOptions;
  private current: CircuitState = 'closed';
  private consecutive = 0;
  private waitMs: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** When the circuit last closed after a probe: a node that fails again soon after waits longer next time. */
  private closedAt: number | undefined;
  /** How often it opened, and how many probes ran (for logs and tests). */
  trips = 0;
  probes = 0;

  constructor(private readonly opts: NodeCircuitOptions) {
    this.options = {
      failures: opts.failures ?? DEFAULT_BREAKER.failures,
      openMs: opts.openMs ?? DEFAULT_BREAKER.openMs,
      maxOpenMs: Math.max(opts.maxOpenMs ?? DEFAULT_BREAKER.maxOpenMs, opts.openMs ?? DEFAULT_BREAKER.openMs),
    };
    this.waitMs = this.options.openMs;
  }

  get state(): CircuitState {
    return this.current;
  }

  /** True while the node must not take work (open, or being probed). */
  get isOpen(): boolean {
    return this.current !== 'closed';
  }

  /** A call succeeded. */
  success(): void {
    this.consecutive = 0;
  }

  /** A call failed with `err`; node faults count towards opening the circuit. */
  failure(err: unknown): void {
    if (this.current !== 'closed' || this.stopped || this.options.failures <= 0 || !isNodeFault(err)) return;
    this.consecutive++;
    if (this.consecutive >= this.options.failures) this.open(err as ApplicationFailure);
  }

  /** The failure a call gets while the circuit is open: retryable, so Temporal retries it on another node. */
  unavailable(): ApplicationFailure {
    return ApplicationFailure.create({
      type: ErrorType.NodeUnavailable,
      message: `Ollama node ${this.opts.nodeId} is failing (circuit open after ${this.options.failures} failures in a row): not taking calls until a probe succeeds`,
      details: [{ nodeId: this.opts.nodeId, circuit: this.current }],
    });
  }

  /** Stops probing (the worker is stopping). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private open(cause: ApplicationFailure): void {
    const now = Date.now();
    // Failing again within a long wait of the last recovery: the node flaps, so the wait keeps growing.
    const flapping = this.closedAt !== undefined && now - this.closedAt < this.options.maxOpenMs;
    this.waitMs = flapping ? Math.min(this.waitMs * 2, this.options.maxOpenMs) : this.options.openMs;
    this.current = 'open';
    this.consecutive = 0;
    this.trips++;
    this.opts.logger?.warn(
      { nodeId: this.opts.nodeId, failures: this.options.failures, lastError: cause.message, probeInMs: this.waitMs },
      `Ollama node ${this.opts.nodeId} failed ${this.options.failures} calls in a row: circuit open, not polling its model queues; probing in ${this.waitMs} ms`,
    );
    this.opts.onOpen?.();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probeNow(), this.waitMs);
    this.timer.unref?.();
  }

  private async probeNow(): Promise<void> {
    this.current = 'probing';
    this.probes++;
    try {
      await this.opts.probe();
    } catch (err) {
      if (this.stopped) return;
      this.current = 'open';
      this.waitMs = Math.min(this.waitMs * 2, this.options.maxOpenMs);
      this.opts.logger?.warn(
        { nodeId: this.opts.nodeId, err: (err as Error)?.message ?? String(err), probeInMs: this.waitMs },
        `probe of Ollama node ${this.opts.nodeId} failed; next probe in ${this.waitMs} ms`,
      );
      this.schedule();
      return;
    }
    if (this.stopped) return;
    this.current = 'closed';
    this.consecutive = 0;
    this.closedAt = Date.now();
    this.opts.logger?.info(
      { nodeId: this.opts.nodeId },
      `probe of Ollama node ${this.opts.nodeId} succeeded: circuit closed, polling its model queues again`,
    );
    this.opts.onClose?.();
  }
}

/**
 * `activities` with every call counted by `circuit`: while it is open a call fails fast (retryable
 * NodeUnavailable) without reaching the node. Names and arguments are unchanged.
 */
export function guardActivities<T extends object>(activities: T, circuit: NodeCircuit): T {
  const guarded: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    if (typeof fn !== 'function') {
      guarded[name] = fn;
      continue;
    }
    const call = fn as (...args: unknown[]) => Promise<unknown>;
    guarded[name] = (...args: unknown[]): Promise<unknown> => {
      if (circuit.isOpen) return Promise.reject(circuit.unavailable());
      return call.apply(activities, args).then(
        (value) => {
          circuit.success();
          return value;
        },
        (err: unknown) => {
          circuit.failure(err);
          throw err;
        },
      );
    };
  }
  return guarded as T;
}

/** The prompt of a probe: one token from the model, so a runner that loads but cannot generate fails it. */
export const PROBE_PROMPT = 'Say OK.';

/**
 * One probe of a node: a one-token generation of `model` with the worker's num_ctx (so nothing reloads), within
 * `timeoutMs`. Without a model (the node serves none now) its `/api/tags` must answer.
 */
export async function probeNode(
  ollama: Ollama,
  opts: { model?: string; numCtx: number; keepAlive?: string | number; timeoutMs: number },
): Promise<void> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const call: () => Promise<unknown> = opts.model
    ? () =>
        ollama.generate({
          model: opts.model!,
          prompt: PROBE_PROMPT,
          stream: false,
          options: { num_predict: 1, num_ctx: opts.numCtx },
          ...(opts.keepAlive === undefined ? {} : { keep_alive: opts.keepAlive }),
        })
    : () => ollama.list();
  try {
    // The signal aborts a createOllamaClient request; the timer also bounds any other client.
    await Promise.race([
      withRequestSignal(signal, call),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`probe timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
