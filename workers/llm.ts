/**
 * The llm worker: one per Ollama node (OLLAMA_URL, NODE_ID).
 *
 * Why per-model queues: at start the worker reads the node's /api/tags and polls `ainode-llm.<model>` only
 * for the models this node serves. So Temporal never hands a call to a node that would have to pull or swap
 * a model in, spreads a model's calls over every node that has it, queues them durably while all slots are
 * busy, and retries on another node when one dies. Slots per model = OLLAMA_NUM_PARALLEL, as in Ollama.
 * It also polls `ainode-node.<NODE_ID>` for operations on this node (health, warm-up, pull).
 */
import { hostname } from 'node:os';
import { Worker, type NativeConnection } from '@temporalio/worker';
import type { Ollama } from 'ollama';
import { createLlmActivities, createNodeActivities, createOllamaClient, WARM_KEEP_ALIVE } from '../activities/llm';
import { loadConfig, type Config } from '../common/config';
import { createLogger, type Logger } from '../common/logger';
import { llmQueue, nodeQueue, normalizeModel } from '../common/task-queues';
import { connectWorker, installRuntimeLogger, runUntilSignal } from './shared';

type LlmWorkerConfig = Pick<
  Config,
  'OLLAMA_URL' | 'NODE_ID' | 'OLLAMA_NUM_PARALLEL' | 'LLM_NUM_CTX' | 'LLM_CALL_TIMEOUT_MS' | 'TEMPORAL_NAMESPACE'
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
  /** Load every served model in the background once the workers exist (failures are only logged). */
  warmUp?: boolean;
}

/** Keep models loaded between calls: an unload would make the next call pay a cold load. */
const KEEP_ALIVE = WARM_KEEP_ALIVE;
/** In-flight generations get this long to finish when the worker stops. */
const SHUTDOWN_GRACE = '30 seconds';

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
      const tags = await ollama.list();
      return [...new Set(tags.models.map((m) => normalizeModel(m.name)))].sort();
    } catch (err) {
      const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
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

/**
 * One Worker per model the node serves, on `llmQueue(model)`, plus one on `nodeQueue(NODE_ID)`.
 * The caller runs them (`Promise.all(workers.map((w) => w.run()))`) and shuts them down.
 */
export async function createLlmWorkers(opts: LlmWorkersOptions): Promise<Worker[]> {
  const { config, connection } = opts;
  const namespace = opts.namespace ?? config.TEMPORAL_NAMESPACE;
  const ollama = opts.ollama ?? createOllamaClient(config.OLLAMA_URL);
  const nodeId = config.NODE_ID;
  const models = await servedModels(ollama, { id: nodeId, url: config.OLLAMA_URL }, opts);
  if (models.length === 0)
    opts.logger?.warn(`Ollama node ${nodeId} serves no model: only ${nodeQueue(nodeId)} is polled`);
  else opts.logger?.info({ nodeId, models }, `llm worker polls ${models.map(llmQueue).join(', ')}`);

  const identity = `${nodeId}:${process.pid}@${hostname()}`;
  const llm = createLlmActivities({
    ollama,
    nodeId,
    numCtx: config.LLM_NUM_CTX,
    callTimeoutMs: config.LLM_CALL_TIMEOUT_MS,
    keepAlive: KEEP_ALIVE,
  });
  const modelWorkers = models.map((model) =>
    Worker.create({
      connection,
      namespace,
      identity,
      taskQueue: llmQueue(model),
      activities: llm,
      maxConcurrentActivityTaskExecutions: config.OLLAMA_NUM_PARALLEL,
      shutdownGraceTime: SHUTDOWN_GRACE,
    }),
  );
  const nodeWorker = Worker.create({
    connection,
    namespace,
    identity,
    taskQueue: nodeQueue(nodeId),
    activities: createNodeActivities({ ollama, nodeId, numCtx: config.LLM_NUM_CTX, keepAlive: KEEP_ALIVE }),
    maxConcurrentActivityTaskExecutions: 2,
    shutdownGraceTime: SHUTDOWN_GRACE,
  });
  const workers = await Promise.all([...modelWorkers, nodeWorker]);
  if (opts.warmUp) void warmUpModels(ollama, config, models, opts.logger);
  return workers;
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
  installRuntimeLogger(config.LOG_LEVEL);
  const logger = createLogger('llm-worker', config);
  const connection = await connectWorker(config);
  try {
    const workers = await createLlmWorkers({ connection, config, logger, warmUp: true });
    await runUntilSignal(workers);
  } finally {
    await connection.close();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
