/**
 * The llm worker: one per Ollama node (OLLAMA_URL, NODE_ID).
 *
 * Why per-model queues: the worker reads the node's /api/tags and polls `ainode-llm.<model>` only for the models
 * this node serves. So Temporal never hands a call to a node that would have to pull or swap a model in, spreads a
 * model's calls over every node that has it, queues them durably while all slots are busy, and retries on another
 * node when one dies. The node's OLLAMA_NUM_PARALLEL slots are one budget shared by all its model Workers
 * (lib/llm/node-slots.ts: each generation holds one of the node's slots), never one budget per queue.
 * It also polls `ainode-node.<NODE_ID>` for operations on this node (health, warm-up, pull, refresh).
 *
 * The worker follows its node: it re-reads /api/tags every LLM_WORKER_REFRESH_MS, on SIGHUP and on the
 * `nodeRefresh` activity, starts a Worker for a model that appeared (`ollama create`, `ollama pull`) and stops,
 * gracefully, the Worker of a model that left. Only a successful answer without a model removes it: a node that
 * is briefly unreachable keeps its pollers, and Temporal keeps the calls queued meanwhile.
 *
 * A node whose calls keep failing is another matter: its circuit breaker (lib/llm/breaker.ts) opens after
 * LLM_BREAKER_FAILURES node failures in a row, and the worker stops polling the node's model queues (the node queue
 * stays) until a probe succeeds, so retries go to the healthy nodes instead of back to the sick one.
 */
import { hostname } from 'node:os';
import { Worker, type NativeConnection } from '@temporalio/worker';
import type { Ollama } from 'ollama';
import {
  createLlmActivities,
  createNodeActivities,
  createOllamaClient,
  withRequestSignal,
  WARM_KEEP_ALIVE,
} from '../activities/llm';
import type { NodeRefresh } from '../activities/llm/node';
import { dataConverterFor } from '../lib/codec/payload-codec';
import { loadConfig, type Config } from '../common/config';
import { createLogger, type Logger } from '../common/logger';
import { llmQueue, nodeQueue, normalizeModel } from '../common/task-queues';
import { NodeSlots } from '../lib/llm/node-slots';
import { guardActivities, NodeCircuit, probeNode, type BreakerOptions, type CircuitState } from '../lib/llm/breaker';
import { connectWorker, installRuntimeLogger, startWorkerTelemetry } from './shared';
import { workerTracing } from '../lib/telemetry/tracing';
import { metrics } from '../lib/telemetry/metrics';

type LlmWorkerConfig = Pick<
  Config,
  'OLLAMA_URL' | 'NODE_ID' | 'OLLAMA_NUM_PARALLEL' | 'LLM_NUM_CTX' | 'LLM_CALL_TIMEOUT_MS' | 'TEMPORAL_NAMESPACE'
> &
  Partial<
    Pick<
      Config,
      | 'LLM_NUM_PREDICT'
      | 'LLM_WORKER_REFRESH_MS'
      | 'PAYLOAD_KEYS'
      | 'LLM_BREAKER_FAILURES'
      | 'LLM_BREAKER_OPEN_MS'
      | 'LLM_BREAKER_MAX_OPEN_MS'
    >
  >;

export interface LlmWorkersOptions {
  connection: NativeConnection;
  /** Defaults to config.TEMPORAL_NAMESPACE. */
  namespace?: string;
  config: LlmWorkerConfig;
  /** How long to wait for the node to answer /api/tags before giving up (default 5 minutes). */
  waitForNodeMs?: number;
  /** Defaults to `createOllamaClient(config.OLLAMA_URL)`. */
  ollama?: Ollama;
  logger?: Logger;
  /** Load every served model in the background once its Worker exists (failures are only logged). */
  warmUp?: boolean;
  /** How often `run()` re-reads the node's models; defaults to config.LLM_WORKER_REFRESH_MS (15 s); 0: never. */
  refreshMs?: number;
  /**
   * The node's circuit breaker (lib/llm/breaker.ts), over config LLM_BREAKER_*: after that many node failures in a
   * row the node stops polling its model queues until a probe succeeds. Needs `run()`; false: off.
   */
  breaker?: false | Partial<BreakerOptions>;
}

/** A probe of a node whose circuit is open may load the model first; it gets at most this long. */
const PROBE_TIMEOUT_MS = 30_000;
/** Keep models loaded between calls: an unload would make the next call pay a cold load. */
const KEEP_ALIVE = WARM_KEEP_ALIVE;
/** In-flight generations get this long to finish when the worker (or one model's Worker) stops. */
const SHUTDOWN_GRACE = '30 seconds';
const DEFAULT_REFRESH_MS = 15_000;
/** One refresh read of /api/tags; a node slower than this counts as "did not answer" (nothing changes). */
const REFRESH_TAGS_TIMEOUT_MS = 5_000;

/** The models in an `/api/tags` answer, normalized and deduplicated (`x` and `x:latest` are one model, one queue). */
function modelsOf(tags: { models: { name: string }[] }): string[] {
  return [...new Set(tags.models.map((m) => normalizeModel(m.name)))].sort();
}

/** A short reason for a failed request: `ECONNREFUSED`, `timed out after 5000 ms`, ... */
function whyFailed(err: unknown, timeoutMs?: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string } };
  const timedOut = e?.name === 'TimeoutError' || e?.name === 'AbortError';
  if (timedOut && timeoutMs !== undefined) return `timed out after ${timeoutMs} ms`;
  return e?.cause?.code ?? e?.message ?? String(err);
}

/**
 * The models a node serves, normalized and deduplicated (`x` and `x:latest` are one model, one queue).
 * Retries with a clear message while the node is not up yet (e.g. it starts alongside the worker).
 */
export async function servedModels(
  ollama: Ollama,
  node: { id: string; url: string },
  opts: { waitMs?: number; logger?: Logger } = {},
): Promise<string[]> {
  const deadline = Date.now() + (opts.waitMs ?? 300_000);
  for (let attempt = 1, delay = 500; ; attempt++, delay = Math.min(delay * 2, 5_000)) {
    try {
      return modelsOf(await ollama.list());
    } catch (err) {
      const why = whyFailed(err);
      if (Date.now() + delay > deadline) {
        throw new Error(
          `Ollama node ${node.id} at ${node.url} did not answer /api/tags (${why}); is \`ollama serve\` running?`,
        );
      }
      opts.logger?.warn(`waiting for Ollama node ${node.id} at ${node.url} (${why}); attempt ${attempt}, retrying`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** One read of the node's models for a refresh: no retry, bounded by `timeoutMs`. */
export async function readServedModels(
  ollama: Ollama,
  timeoutMs = REFRESH_TAGS_TIMEOUT_MS,
): Promise<{ models: string[] } | { error: string }> {
  const signal = AbortSignal.timeout(timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  try {
    // The signal aborts a createOllamaClient request; the timer also bounds any other client.
    const tags = await Promise.race([
      withRequestSignal(signal, () => ollama.list()),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { name: 'TimeoutError' })), timeoutMs);
      }),
    ]);
    return { models: modelsOf(tags) };
  } catch (err) {
    return { error: whyFailed(err, timeoutMs) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What a refresh changes, given the models polled now and the node's answer: start the new ones, stop the
 * ones gone. `served` undefined means the node did not answer: nothing changes.
 */
export function planRefresh(
  current: Iterable<string>,
  served: readonly string[] | undefined,
): { start: string[]; stop: string[] } {
  if (served === undefined) return { start: [], stop: [] };
  const have = new Set(current);
  const want = new Set(served.map(normalizeModel));
  return {
    start: [...want].filter((m) => !have.has(m)).sort(),
    stop: [...have].filter((m) => !want.has(m)).sort(),
  };
}

/** The llm workers of one node, following the node's models. */
export interface LlmNode {
  readonly nodeId: string;
  /** The models whose queues are polled now, sorted. */
  readonly models: string[];
  /** The Workers now: one per model (sorted by model), then the node queue's. */
  readonly workers: Worker[];
  /**
   * Re-reads the node's models once and starts / stops model Workers (a stopped one drains first). Never throws:
   * a node that did not answer changes nothing and is reported in `error`. Calls run one at a time.
   */
  refresh(): Promise<NodeRefresh>;
  /**
   * Runs every Worker, and those that refreshes add, with a refresh every `refreshMs`, until `shutdown()`.
   * Rejects when a Worker fails (after stopping the others).
   */
  run(): Promise<void>;
  /** Stops the refreshes and every Worker gracefully; resolves once all have stopped. Idempotent. */
  shutdown(): Promise<void>;
  /** The node's circuit breaker: `open` or `probing` while its model queues are not polled; `off` without one. */
  readonly circuit: CircuitState | 'off';
}

interface Slot {
  queue: string;
  worker: Worker;
  running?: Promise<void>;
  /** Stopped on purpose because its model left the node (its end does not stop the node). */
  retired: boolean;
}

/**
 * One Worker per model the node serves, on `llmQueue(model)`, plus one on `nodeQueue(NODE_ID)`, kept in step
 * with the node's `/api/tags` while `run()` runs.
 */
export async function createLlmNode(opts: LlmWorkersOptions): Promise<LlmNode> {
  const { config, connection, logger } = opts;
  const namespace = opts.namespace ?? config.TEMPORAL_NAMESPACE;
  const ollama = opts.ollama ?? createOllamaClient(config.OLLAMA_URL);
  const nodeId = config.NODE_ID;
  const url = config.OLLAMA_URL;
  const refreshMs = opts.refreshMs ?? config.LLM_WORKER_REFRESH_MS ?? DEFAULT_REFRESH_MS;
  const initial = await servedModels(ollama, { id: nodeId, url }, opts);
  if (initial.length === 0) logger?.warn(`Ollama node ${nodeId} serves no model: only ${nodeQueue(nodeId)} is polled`);
  else logger?.info({ nodeId, models: initial }, `llm worker polls ${initial.map(llmQueue).join(', ')}`);

  const identity = `${nodeId}:${process.pid}@${hostname()}`;
  metrics.slots.set({ node: nodeId }, config.OLLAMA_NUM_PARALLEL);
  metrics.slotsInUse.set({ node: nodeId }, 0);
  const dataConverter = dataConverterFor(config);
  const nodeSlots = new NodeSlots(config.OLLAMA_NUM_PARALLEL);
  const llm = createLlmActivities({
    ollama,
    nodeId,
    numCtx: config.LLM_NUM_CTX,
    callTimeoutMs: config.LLM_CALL_TIMEOUT_MS,
    numPredict: config.LLM_NUM_PREDICT,
    keepAlive: KEEP_ALIVE,
    slots: nodeSlots,
  });
  const breaker = opts.breaker === false ? undefined : opts.breaker;
  const failures = breaker?.failures ?? config.LLM_BREAKER_FAILURES;
  const circuit =
    opts.breaker === false || failures === 0
      ? undefined
      : new NodeCircuit({
          nodeId,
          failures,
          openMs: breaker?.openMs ?? config.LLM_BREAKER_OPEN_MS,
          maxOpenMs: breaker?.maxOpenMs ?? config.LLM_BREAKER_MAX_OPEN_MS,
          logger,
          probe: () =>
            probeNode(ollama, {
              model: [...held][0] ?? models()[0],
              numCtx: config.LLM_NUM_CTX,
              keepAlive: KEEP_ALIVE,
              timeoutMs: Math.min(config.LLM_CALL_TIMEOUT_MS, PROBE_TIMEOUT_MS),
            }),
          onOpen: () => void holdModels(),
          onClose: () => void releaseModels(),
        });
  const activities = circuit ? guardActivities(llm, circuit) : llm;
  /**
   * A model's Worker: up to OLLAMA_NUM_PARALLEL tasks, so one busy model can use the whole node; the generations of
   * all of them draw on `nodeSlots`, the node's one budget (lib/llm/node-slots.ts).
   */
  const createModelWorker = (model: string) =>
    Worker.create({
      connection,
      namespace,
      identity,
      dataConverter,
      taskQueue: llmQueue(model),
      activities,
      // Each activity's span, and the Ollama call's inside it (lib/telemetry/llm.ts).
      ...workerTracing({ bundled: true }),
      maxConcurrentActivityTaskExecutions: config.OLLAMA_NUM_PARALLEL,
      shutdownGraceTime: SHUTDOWN_GRACE,
    });

  const byModel = new Map<string, Slot>();
  /** Models the node serves whose queues are not polled while its circuit is open (their Workers stopped). */
  const held = new Set<string>();
  let holding = false;
  /** Workers of models that left, still draining: run() waits for them too. */
  const draining = new Set<Promise<void>>();
  let phase: 'created' | 'running' | 'stopping' = 'created';
  let fatal: unknown;
  let timer: NodeJS.Timeout | undefined;
  let lastReadFailed = false;
  let refreshChain: Promise<unknown> = Promise.resolve();
  let finished: Promise<void> | undefined;
  let resolveStopRequested!: () => void;
  const stopRequested = new Promise<void>((r) => (resolveStopRequested = r));

  const models = () => [...byModel.keys()].sort();
  const slots = () => [...models().map((m) => byModel.get(m)!), nodeSlot];

  function launch(slot: Slot): void {
    slot.running = slot.worker.run().then(
      // A Worker ends on its own only when asked to (e.g. the runtime's SIGINT/SIGTERM handler): stop them all.
      () => {
        if (!slot.retired) void shutdown();
      },
      (err: unknown) => {
        if (slot.retired) logger?.error({ err, nodeId }, `the Worker on ${slot.queue} failed while stopping`);
        else {
          fatal ??= err;
          void shutdown();
        }
      },
    );
  }

  /** Stops one slot's Worker gracefully (a never-run Worker is run and stopped at once, to release it). */
  async function retire(slot: Slot): Promise<void> {
    slot.retired = true;
    if (slot.worker.getState() === 'INITIALIZED') launch(slot);
    if (slot.worker.getState() === 'RUNNING') slot.worker.shutdown();
    const running = slot.running ?? Promise.resolve();
    draining.add(running);
    await running;
    draining.delete(running);
  }

  async function startModel(model: string): Promise<boolean> {
    const queue = llmQueue(model);
    let worker: Worker;
    try {
      worker = await createModelWorker(model);
    } catch (err) {
      logger?.error({ err, nodeId, model }, `could not start a Worker on ${queue}; the next refresh tries again`);
      return false;
    }
    const slot: Slot = { queue, worker, retired: false };
    if (phase === 'stopping') {
      await retire(slot);
      return false;
    }
    byModel.set(model, slot);
    if (phase === 'running') launch(slot);
    logger?.info({ nodeId, model, queue }, `model ${model} appeared on node ${nodeId}: now polling ${queue}`);
    if (opts.warmUp) void warmUpModels(ollama, config, [model], logger);
    return true;
  }

  async function stopModel(model: string): Promise<void> {
    const slot = byModel.get(model);
    if (!slot) return;
    byModel.delete(model);
    logger?.info(
      { nodeId, model, queue: slot.queue },
      `model ${model} left node ${nodeId}: stopping the Worker on ${slot.queue} (in-flight calls finish first)`,
    );
    await retire(slot);
    logger?.info({ nodeId, model, queue: slot.queue }, `stopped polling ${slot.queue}`);
  }

  /** The circuit opened: stop polling every model queue (in-flight calls finish first); the node queue stays. */
  function holdModels(): Promise<void> {
    if (phase !== 'running') return Promise.resolve();
    holding = true;
    return serial(async () => {
      if (!holding) return;
      const now = models();
      for (const model of now) held.add(model);
      await Promise.all(
        now.map(async (model) => {
          const slot = byModel.get(model);
          if (!slot) return;
          byModel.delete(model);
          await retire(slot);
        }),
      );
      logger?.warn(
        { nodeId, models: now },
        `stopped polling ${now.map(llmQueue).join(', ')} while the circuit is open`,
      );
    });
  }

  /** A probe succeeded: poll the held model queues again. */
  function releaseModels(): Promise<void> {
    holding = false;
    return serial(async () => {
      if (holding) return;
      const models = [...held];
      held.clear();
      // A model whose Worker cannot start now is started by the next refresh (it is served and not polled).
      for (const model of models) await startModel(model);
    });
  }

  async function refreshOnce(): Promise<NodeRefresh> {
    const report = (extra: Partial<NodeRefresh> = {}): NodeRefresh => ({
      nodeId,
      models: models(),
      started: [],
      stopped: [],
      ...extra,
    });
    if (phase === 'stopping') return report({ error: 'the worker is stopping' });
    const read = await readServedModels(ollama);
    if ('error' in read) {
      // Logged once per outage, not on every tick.
      if (!lastReadFailed) {
        logger?.warn(
          { nodeId, url, error: read.error },
          `Ollama node ${nodeId} did not answer /api/tags (${read.error}); keeping its ${byModel.size} model queue(s)`,
        );
      }
      lastReadFailed = true;
      return report({ error: read.error });
    }
    if (lastReadFailed) logger?.info({ nodeId, url }, `Ollama node ${nodeId} answers /api/tags again`);
    lastReadFailed = false;
    const plan = planRefresh([...byModel.keys(), ...held], read.models);
    const started: string[] = [];
    for (const model of plan.start) {
      if (holding) held.add(model);
      else if (await startModel(model)) started.push(model);
    }
    await Promise.all(plan.stop.map((model) => (held.delete(model) ? undefined : stopModel(model))));
    return report({ started, stopped: plan.stop });
  }

  /** Refreshes and circuit holds run one at a time, in order. */
  function serial<T>(step: () => Promise<T>): Promise<T> {
    const next = refreshChain.then(step, step);
    refreshChain = next.catch(() => undefined);
    return next;
  }

  function refresh(): Promise<NodeRefresh> {
    return serial(refreshOnce);
  }

  function scheduleRefresh(): void {
    if (refreshMs <= 0 || phase !== 'running') return;
    timer = setTimeout(() => void refresh().finally(scheduleRefresh), refreshMs);
  }

  function shutdown(): Promise<void> {
    if (phase !== 'stopping') {
      const neverRan = phase === 'created';
      phase = 'stopping';
      clearTimeout(timer);
      circuit?.stop();
      for (const slot of slots()) {
        if (neverRan) launch(slot);
        if (slot.worker.getState() === 'RUNNING') slot.worker.shutdown();
      }
      resolveStopRequested();
      finished ??= settle();
    }
    return finished!.catch(() => undefined);
  }

  /** Resolves once every Worker (and a refresh in progress) has ended; rejects with the first fatal error. */
  async function settle(): Promise<void> {
    await stopRequested;
    await refreshChain;
    await Promise.allSettled([...slots().map((s) => s.running), ...draining]);
    if (fatal !== undefined) throw fatal;
  }

  const nodeSlot: Slot = {
    queue: nodeQueue(nodeId),
    retired: false,
    worker: await Worker.create({
      connection,
      namespace,
      identity,
      dataConverter,
      ...workerTracing({ bundled: true }),
      taskQueue: nodeQueue(nodeId),
      activities: createNodeActivities({
        ollama,
        nodeId,
        numCtx: config.LLM_NUM_CTX,
        keepAlive: KEEP_ALIVE,
        refresh: () => refresh(),
      }),
      maxConcurrentActivityTaskExecutions: 2,
      shutdownGraceTime: SHUTDOWN_GRACE,
    }),
  };
  const created = await Promise.allSettled(initial.map(async (m) => [m, await createModelWorker(m)] as const));
  const failed = created.find((r) => r.status === 'rejected');
  for (const r of created)
    if (r.status === 'fulfilled')
      byModel.set(r.value[0], { queue: llmQueue(r.value[0]), worker: r.value[1], retired: false });
  if (failed) {
    await shutdown();
    throw failed.reason;
  }
  if (opts.warmUp) void warmUpModels(ollama, config, initial, logger);

  return {
    nodeId,
    get models() {
      return models();
    },
    get workers() {
      return slots().map((s) => s.worker);
    },
    refresh,
    get circuit() {
      return circuit?.state ?? 'off';
    },
    async run() {
      if (phase !== 'created') throw new Error(`the llm workers of node ${nodeId} were already run or stopped`);
      phase = 'running';
      for (const slot of slots()) launch(slot);
      scheduleRefresh();
      finished = settle();
      return finished;
    },
    shutdown,
  };
}

/**
 * The Workers of `createLlmNode` as a fixed set (no refresh, no circuit breaker: it needs `run()`): for callers that run and stop Workers themselves,
 * e.g. `Promise.all(workers.map((w) => w.run()))`.
 */
export async function createLlmWorkers(opts: LlmWorkersOptions): Promise<Worker[]> {
  return (await createLlmNode({ ...opts, refreshMs: 0, breaker: false })).workers;
}

/** Loads every served model with the worker's num_ctx and keep-alive, one at a time. Logs, never throws. */
export async function warmUpModels(
  ollama: Ollama,
  config: Pick<Config, 'NODE_ID' | 'LLM_NUM_CTX'>,
  models: string[],
  logger?: Logger,
): Promise<void> {
  for (const model of models) {
    const t0 = Date.now();
    // An empty prompt only loads the model (Ollama's documented way to preload it).
    await ollama.generate({ model, prompt: '', keep_alive: KEEP_ALIVE, options: { num_ctx: config.LLM_NUM_CTX } }).then(
      () => logger?.info(`warmed up ${model} on ${config.NODE_ID} in ${Date.now() - t0} ms`),
      (err: unknown) => logger?.warn(`could not warm up ${model} on ${config.NODE_ID}: ${(err as Error).message}`),
    );
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  installRuntimeLogger(config.LOG_LEVEL, config.TEMPORAL_METRICS_PORT);
  const logger = createLogger('llm-worker', config);
  const telemetry = await startWorkerTelemetry(`llm-${config.NODE_ID}`, config, logger);
  const connection = await connectWorker(config);
  try {
    const node = await createLlmNode({ connection, config, logger, warmUp: true });
    let signals = 0;
    const stop = () => {
      if (signals++) process.exit(1);
      void node.shutdown();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // `kill -HUP <pid>` after `ollama create` / `ollama rm`: pick the change up now, not at the next tick.
    process.on('SIGHUP', () => {
      logger.info(`SIGHUP: re-reading the models of node ${config.NODE_ID}`);
      void node.refresh();
    });
    await node.run();
  } finally {
    await connection.close();
    await telemetry.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
