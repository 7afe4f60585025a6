/**
 * The executor worker: one per Docker host, polling `ainode-executor` for `runJobContainer`. At start it
 * removes containers and work dirs that a previous life of this executor left behind (it died mid-job;
 * Temporal retries that job's activity after the heartbeat timeout, here or on another executor).
 */
import { cpSync } from 'node:fs';
import { hostname, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { cleanupExecutor, createExecutorActivities, SDK_DIR, type ExecutorDeps } from '../activities/executor';
import { createStorage, ensureStorage, type Storage } from '../lib/storage/clients';
import { Admission, type AdmissionLimits } from '../lib/executor/admission';
import { assertEngineSandbox, reapExpired } from '../lib/executor/container';
import { removeStaleGatewayDirs } from '../lib/executor/stale-gateways';
import { loadConfig, type Config } from '../common/config';
import { createLogger, type Logger } from '../common/logger';
import { EXECUTOR_QUEUE } from '../common/task-queues';
import { dataConverterFor } from '../lib/codec/payload-codec';
import { connectWorker, installRuntimeLogger, runUntilSignal, startWorkerTelemetry } from './shared';
import { clientTracing, workerTracing } from '../lib/telemetry/tracing';

/** Jobs per executor at once; each is a container with its own memory and CPU limits. */
const MAX_CONCURRENT_JOBS = 16;
/** A running job is killed on shutdown past this grace (its activity is retried elsewhere). */
const SHUTDOWN_GRACE = '10 seconds';
/** Containers' memory limits may add up to this share of the host's memory; the rest is for the platform. */
const MEMORY_BUDGET_SHARE = 0.75;
/** Jobs of one tenant running at once on one executor; more wait for a slot. */
const MAX_JOBS_PER_TENANT = 4;
/** How often the reaper looks for job containers past their deadline (any executor's, e.g. one that died). */
const REAP_INTERVAL_MS = 30_000;
/** Containers without a deadline label (older executors) are reaped at this age: CONTAINER_RUN's start-to-close. */
const REAP_MAX_AGE_MS = 70 * 60_000;

export interface ExecutorWorkerOptions {
  connection: NativeConnection;
  /** For the AI gateway's Workflow Updates. */
  client: Client;
  config: Pick<Config, 'TEMPORAL_NAMESPACE' | 'JOB_RUNTIME_IMAGE' | 'DOCKER_SOCKET' | 'GATEWAY_SOCKET_DIR'> &
    Partial<Pick<Config, 'PAYLOAD_KEYS'>>;
  storage: Storage;
  docker?: Docker;
  /** Stable per host (default: the hostname); orphans are found by this label. */
  executorId?: string;
  workRoot?: string;
  logger?: Logger;
  overrides?: Partial<WorkerOptions>;
  /** Admission limits (default: 75% of the host's memory, 4 jobs per tenant). */
  admission?: Partial<AdmissionLimits>;
  reapIntervalMs?: number;
}

/** Default executor id: stable across restarts on the same host, so a restart finds its orphans. */
export function defaultExecutorId(): string {
  return `exec-${hostname()}`.replace(/[^\w.-]/g, '-');
}

export async function createExecutorWorker(
  opts: ExecutorWorkerOptions,
): Promise<{ worker: Worker; removed: string[] }> {
  const { config } = opts;
  const executorId = opts.executorId ?? defaultExecutorId();
  const workRoot = opts.workRoot ?? path.join(tmpdir(), 'ainode-jobs', executorId);
  const deps: ExecutorDeps = {
    docker: opts.docker ?? new Docker({ socketPath: config.DOCKER_SOCKET }),
    storage: opts.storage,
    client: opts.client,
    executorId,
    image: config.JOB_RUNTIME_IMAGE,
    workRoot,
    // Jobs bind-mount the SDK from the Docker host. An executor in a container (docker-compose.yml) cannot lend its
    // own files (not host paths), so it copies the SDK under its work root, which is a host path in both cases.
    sdkDir: path.join(workRoot, '.sdk'),
    socketDir: config.GATEWAY_SOCKET_DIR,
    logger: opts.logger,
    admission: new Admission({
      memoryBudgetMb: Math.floor((totalmem() / 1_048_576) * MEMORY_BUDGET_SHARE),
      maxJobsPerTenant: MAX_JOBS_PER_TENANT,
      ...opts.admission,
    }),
  };
  // Jobs get the engine's default seccomp profile: refuse to run them on an engine that has none.
  await assertEngineSandbox(deps.docker);
  const removed = await cleanupExecutor(deps);
  // Gateway socket dirs of jobs whose executor was killed (its sockets refuse connections): nobody serves them.
  const staleGateways = await removeStaleGatewayDirs(config.GATEWAY_SOCKET_DIR);
  if (staleGateways.length) {
    opts.logger?.warn({ dirs: staleGateways }, `removed ${staleGateways.length} stale gateway socket dir(s)`);
  }
  cpSync(SDK_DIR, deps.sdkDir!, { recursive: true });
  if (removed.length) opts.logger?.warn({ removed }, `removed ${removed.length} orphaned job container(s)`);
  const worker = await Worker.create({
    connection: opts.connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: EXECUTOR_QUEUE,
    dataConverter: dataConverterFor(config),
    identity: `${executorId}:${process.pid}`,
    activities: createExecutorActivities(deps),
    maxConcurrentActivityTaskExecutions: MAX_CONCURRENT_JOBS,
    // Heartbeats are how a cancel reaches a running job: send them promptly, not once per 16 s.
    maxHeartbeatThrottleInterval: '1 second',
    shutdownGraceTime: SHUTDOWN_GRACE,
    ...workerTracing({ bundled: true }),
    ...opts.overrides,
  });
  // The reaper: job containers past their deadline go, whoever started them (their executor may be dead).
  const reaper = setInterval(() => {
    if (worker.getState() === 'STOPPED' || worker.getState() === 'FAILED') {
      clearInterval(reaper);
      return;
    }
    reapExpired(deps.docker, REAP_MAX_AGE_MS).then(
      (ids) => ids.length && opts.logger?.warn({ ids }, `reaped ${ids.length} job container(s) past their deadline`),
      (err: unknown) => opts.logger?.warn({ err }, 'container reaper failed'),
    );
  }, opts.reapIntervalMs ?? REAP_INTERVAL_MS);
  reaper.unref();
  return { worker, removed };
}

async function main(): Promise<void> {
  const config = loadConfig();
  installRuntimeLogger(config.LOG_LEVEL, config.TEMPORAL_METRICS_PORT);
  const logger = createLogger('executor', config);
  const telemetry = await startWorkerTelemetry('executor', config, logger);
  const storage = createStorage(config);
  const connection = await connectWorker(config);
  const clientConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    await ensureStorage(storage);
    const client = new Client({
      connection: clientConnection,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter: dataConverterFor(config),
      // The AI gateway's updates carry the job activity's trace context on to the llm activity.
      interceptors: clientTracing(),
    });
    const { worker } = await createExecutorWorker({
      connection,
      client,
      config,
      storage,
      logger,
      executorId: config.EXECUTOR_ID,
    });
    logger.info(`executor worker polling ${EXECUTOR_QUEUE} on ${config.TEMPORAL_ADDRESS}`);
    await runUntilSignal([worker]);
  } finally {
    await connection.close();
    await clientConnection.close();
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
