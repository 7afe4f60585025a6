/**
 * API entry point: config → storage → Temporal client → catalog → Express app and the gRPC recommendation service
 * (one StreamHub for both: llm workers push tokens to this process's HTTP port); stops once on SIGINT/SIGTERM.
 */
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../common/config';
import { createLogger } from '../common/logger';
import { createStorage, ensureStorage } from '../lib/storage/clients';
import { createCatalog } from '../lib/llm/catalog';
import { createApp } from './app';
import { createHttpServer } from './http-server';
import { dataConverterFor } from '../lib/codec/payload-codec';
import { StreamHub } from '../lib/stream/hub';
import { startGrpcServer, type RunningGrpcServer } from './grpc/server';
import { clientTracing, initTracing } from '../lib/telemetry/tracing';
import { registerBacklogMetrics } from '../lib/telemetry/backlog';
import { EXECUTOR_QUEUE, ORCHESTRATOR_QUEUE } from '../common/task-queues';

/** How long in-flight requests get to finish on shutdown before connections are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

async function run(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('api', config);
  // Before the app and the Temporal client exist: their spans need the provider.
  const tracing = initTracing('api', config);
  if (tracing) logger.info({ traces: tracing.exportsTo }, `tracing on (${tracing.exportsTo})`);
  const storage = createStorage(config);
  let connection: Connection | undefined;
  let server: Server | undefined;
  let grpcServer: RunningGrpcServer | undefined;
  const streams = new StreamHub();
  try {
    await ensureStorage(storage);
    connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    const temporal = new Client({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter: dataConverterFor(config),
      // Starts, signals and updates carry the request's trace context (lib/telemetry/tracing.ts).
      interceptors: clientTracing(),
    });
    if (!config.PAYLOAD_KEYS.length)
      logger.warn('PAYLOAD_KEYS is empty: Temporal histories hold payloads in plaintext');
    const catalog = createCatalog({
      nodes: config.OLLAMA_NODES,
      nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
      staleMs: config.CATALOG_STALE_MS,
      temporal,
      namespace: config.TEMPORAL_NAMESPACE,
    });
    // GET /metrics reads every queue's backlog on each scrape: the orchestrator's, the executor's, each model's.
    registerBacklogMetrics(temporal, config.TEMPORAL_NAMESPACE, async () => [
      ORCHESTRATOR_QUEUE,
      EXECUTOR_QUEUE,
      ...(await catalog.get()).models.map((m) => m.queue),
    ]);
    const app = createApp({ config, temporal, storage, catalog, logger, streams });
    // Header and body timeouts against slow clients (api/http-server.ts).
    const listening = createHttpServer(app).listen(config.API_PORT, config.API_HOST);
    server = listening;
    await new Promise<void>((resolve, reject) => {
      listening.once('listening', resolve);
      listening.once('error', reject);
    });
    logger.info({ url: `http://${config.API_HOST}:${config.API_PORT}`, docs: '/openapi.json' }, 'API listening');
    const localHost = config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST;
    grpcServer = await startGrpcServer({
      deps: { config, temporal, storage, catalog, logger, streams },
      hub: streams,
      host: config.API_HOST,
      port: config.GRPC_PORT,
      internalUrl: config.API_INTERNAL_URL ?? `http://${localHost}:${config.API_PORT}`,
    });
    logger.info(
      { url: `${config.API_HOST}:${grpcServer.port}`, service: 'recommendation.RecommendationService' },
      'gRPC listening',
    );

    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    logger.info('shutting down');
    await grpcServer.close(SHUTDOWN_GRACE_MS);
    const closed = new Promise<void>((resolve) => listening.close(() => resolve()));
    listening.closeIdleConnections();
    const timer = setTimeout(() => listening.closeAllConnections(), SHUTDOWN_GRACE_MS);
    await closed;
    clearTimeout(timer);
  } finally {
    if (server?.listening) server.close();
    grpcServer?.server.forceShutdown();
    streams.close();
    await connection?.close();
    storage.close();
    await tracing?.shutdown();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
