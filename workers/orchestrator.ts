/**
 * The orchestrator worker: every workflow, plus the light activities they need (storage, validation,
 * channel replies) on `ainode-orchestrator`. LLM calls are not here: they run on the llm workers'
 * per-model queues, and job containers on the executor's queue.
 */
import v8 from 'node:v8';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { createStorage, ensureStorage, type Storage } from '../lib/storage/clients';
import { createChatActivities } from '../activities/chat';
import { createChannelActivities } from '../activities/channel';
import { createJobsActivities } from '../activities/jobs';
import { createUsageActivities } from '../activities/usage';
import { createTerraformActivities } from '../activities/terraform';
import { createDesignActivities } from '../activities/design';
import { createVectorActivities } from '../activities/vector';
import { createRecommendActivities } from '../activities/recommend';
import { createVectorBackend, type VectorBackend } from '../lib/vector';
import { createCatalog } from '../lib/llm/catalog';
import { createModelCheckActivities } from '../activities/llm/model-check';
import { loadConfig, type Config } from '../common/config';
import { createLogger, type Logger } from '../common/logger';
import { ORCHESTRATOR_QUEUE } from '../common/task-queues';
import { dataConverterFor } from '../lib/codec/payload-codec';
import { connectWorker, installRuntimeLogger, runUntilSignal, startWorkerTelemetry } from './shared';
import { workerTracing } from '../lib/telemetry/tracing';

export interface OrchestratorWorkerOptions {
  connection: NativeConnection;
  /** Defaults to config.TEMPORAL_NAMESPACE. */
  namespace?: string;
  config: Config;
  storage: Storage;
  logger?: Logger;
  /** The vector store ingestion writes to; default: the one config selects (VECTOR_STORE). */
  vectors?: VectorBackend;
  /**
   * Extra Worker options, e.g. a test's own `taskQueue` or a prebuilt `workflowBundle` (bundled once per
   * suite); a bundle replaces `workflowsPath`.
   */
  overrides?: Partial<WorkerOptions>;
}

/** In-flight activities get this long to finish when the worker stops. */
const SHUTDOWN_GRACE = '10 seconds';

/**
 * Workflow runs kept in memory between their tasks (the sticky cache). The SDK's default follows the V8 heap limit
 * (about 2,300 runs on a 4 GB heap), and each cached run holds its own copy of the bundle's modules and its state:
 * 1,000 open chats took 2.3 GB with that default (3.9 GB while they were answered) and 1.5 GB with this bound
 * (bench/rss, one run each). A run evicted from the cache replays its history at its next task; a chat's history is short (it
 * continues as new every CHAT_TURN_LIMIT turns). 250 keeps 200 chats in conversation cached (docs/decisions.md,
 * "Chats at load").
 */
export const ORCHESTRATOR_MAX_CACHED_WORKFLOWS = 250;

/**
 * Heap a cached run needs (a chat answered once, bench/rss: 250 fit in a 256 MB old space, not in 160 MB), and the
 * rest of the thread's heap limit: its own modules and V8's young generation (48 MB of the limit V8 reports).
 */
const CACHED_RUN_MB = 0.75;
const WORKFLOW_THREAD_BASE_MB = 112;

/**
 * How many runs the sticky cache may hold in a heap of `heapLimitMb` (V8's limit, per isolate: the workflow thread
 * has the same as the main thread): ORCHESTRATOR_MAX_CACHED_WORKFLOWS, fewer in a smaller heap, so a low
 * `--max-old-space-size` (ORCHESTRATOR_HEAP_MB) evicts sooner instead of running the workflow thread out of heap.
 */
export function cachedWorkflowsFor(heapLimitMb = v8.getHeapStatistics().heap_size_limit / 2 ** 20): number {
  const fit = Math.floor((heapLimitMb - WORKFLOW_THREAD_BASE_MB) / CACHED_RUN_MB);
  return Math.max(10, Math.min(ORCHESTRATOR_MAX_CACHED_WORKFLOWS, fit));
}

export async function createOrchestratorWorker(opts: OrchestratorWorkerOptions): Promise<Worker> {
  const { connection, config, overrides = {} } = opts;

  // The catalog answers "is this model served?" for workflows (local activity assertModelServed).
  const catalog = createCatalog({ nodes: config.OLLAMA_NODES, nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS });
  const activities = {
    ...createModelCheckActivities({ catalog }),
    // ---- domain activities: each workflow's helper spreads its factory here (deps from `opts`), e.g.
    // ...createJobActivities({ storage: opts.storage, config, logger: opts.logger }),
    ...createChatActivities({ storage: opts.storage }),
    ...createChannelActivities({
      storage: opts.storage,
      callbackUrl: config.CHANNEL_CALLBACK_URL,
      secret: config.CHANNEL_WEBHOOK_SECRET,
    }),
    ...createJobsActivities({ storage: opts.storage, config }),
    ...createUsageActivities({ storage: opts.storage, config }),
    ...createTerraformActivities(),
    ...createDesignActivities({ storage: opts.storage }),
    ...createVectorActivities({ storage: opts.storage, vectors: opts.vectors ?? createVectorBackend(config) }),
    ...createRecommendActivities(),
    // ---- end of domain activities
  };

  return Worker.create({
    connection,
    namespace: opts.namespace ?? config.TEMPORAL_NAMESPACE,
    taskQueue: ORCHESTRATOR_QUEUE,
    dataConverter: dataConverterFor(config),
    // A prebuilt bundle skips webpack at start (faster, and ~100 MB less RSS); tests may pass their own.
    ...(overrides.workflowBundle
      ? {}
      : config.WORKFLOW_BUNDLE_PATH
        ? { workflowBundle: { codePath: config.WORKFLOW_BUNDLE_PATH } }
        : { workflowsPath: require.resolve('../workflows') }),
    activities,
    shutdownGraceTime: SHUTDOWN_GRACE,
    maxCachedWorkflows: cachedWorkflowsFor(),
    // Traces workflows and activities; a prebuilt bundle has the workflow interceptors built in.
    ...workerTracing({ bundled: Boolean(overrides.workflowBundle ?? config.WORKFLOW_BUNDLE_PATH) }),
    ...overrides,
  });
}

async function main(): Promise<void> {
  const config = loadConfig();
  installRuntimeLogger(config.LOG_LEVEL, config.TEMPORAL_METRICS_PORT);
  const logger = createLogger('orchestrator', config);
  const telemetry = await startWorkerTelemetry('orchestrator', config, logger);
  const storage = createStorage(config);
  const connection = await connectWorker(config);
  try {
    // Buckets and tables are created idempotently, so every process may do it at start.
    await ensureStorage(storage);
    const worker = await createOrchestratorWorker({ connection, config, storage, logger });
    const heapMb = Math.round(v8.getHeapStatistics().heap_size_limit / 2 ** 20);
    logger.info(
      `orchestrator worker polling ${ORCHESTRATOR_QUEUE} on ${config.TEMPORAL_ADDRESS}; ` +
        `caching up to ${cachedWorkflowsFor()} workflow runs in a ${heapMb} MB heap`,
    );
    await runUntilSignal([worker]);
  } finally {
    await connection.close();
    storage.close();
    await telemetry.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
