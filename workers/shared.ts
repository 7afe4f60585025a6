/** Boring entry-point plumbing shared by every worker role. */
import { NativeConnection, Runtime, DefaultLogger, type Worker } from '@temporalio/worker';
import type { Config } from '../common/config';
import type { Logger } from '../common/logger';
import { initTracing, type TracingConfig } from '../lib/telemetry/tracing';
import { startMetricsServer } from '../lib/telemetry/metrics';

export async function connectWorker(config: Pick<Config, 'TEMPORAL_ADDRESS'>): Promise<NativeConnection> {
  return NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
}

/**
 * Installs the Temporal runtime once per process: its log level, and with `metricsPort` > 0 the SDK's own
 * Prometheus metrics (task slots, poll latency, schedule-to-start, sticky cache, ...) on 127.0.0.1:<port>.
 */
export function installRuntimeLogger(level: string, metricsPort = 0): void {
  const map: Record<string, 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'> = {
    trace: 'TRACE',
    debug: 'DEBUG',
    info: 'INFO',
    warn: 'WARN',
    error: 'ERROR',
    fatal: 'ERROR',
    silent: 'ERROR',
  };
  Runtime.install({
    logger: new DefaultLogger(map[level] ?? 'INFO'),
    shutdownSignals: [],
    ...(metricsPort > 0
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${metricsPort}` } } } }
      : {}),
  });
}

/**
 * A worker process's telemetry: tracing (lib/telemetry/tracing.ts, service `role`) and, with METRICS_PORT, a
 * Prometheus endpoint with the app's metrics followed by the Temporal runtime's (TEMPORAL_METRICS_PORT).
 * `stop` flushes spans and closes the endpoint.
 */
export async function startWorkerTelemetry(
  role: string,
  config: TracingConfig & Pick<Config, 'METRICS_PORT' | 'METRICS_HOST' | 'TEMPORAL_METRICS_PORT'>,
  logger?: Logger,
): Promise<{ stop(): Promise<void> }> {
  const tracing = initTracing(role, config);
  if (tracing) logger?.info({ traces: tracing.exportsTo }, `tracing on (${tracing.exportsTo})`);
  const server =
    config.METRICS_PORT > 0
      ? await startMetricsServer({
          port: config.METRICS_PORT,
          host: config.METRICS_HOST,
          temporalMetricsUrl:
            config.TEMPORAL_METRICS_PORT > 0 ? `http://127.0.0.1:${config.TEMPORAL_METRICS_PORT}/metrics` : undefined,
        })
      : undefined;
  if (server) logger?.info({ url: server.url }, `metrics on ${server.url}`);
  return {
    async stop() {
      await server?.close();
      await tracing?.shutdown();
    },
  };
}

/**
 * Runs workers until SIGINT/SIGTERM, then shuts them down once (Temporal drains in-flight tasks up to the
 * workers' shutdownGraceTime) and exits; a second signal exits at once.
 */
export async function runUntilSignal(workers: Worker[], onStop?: () => Promise<void>): Promise<void> {
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await onStop?.();
  }
}
