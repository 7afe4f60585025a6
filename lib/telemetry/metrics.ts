/**
 * Prometheus metrics (prom-client), one registry per process. The API serves them at `GET /metrics`; each worker
 * serves them with `startMetricsServer` (METRICS_PORT), followed by the Temporal SDK's own runtime metrics when the
 * runtime exports them (TEMPORAL_METRICS_PORT), so one scrape target per process has both.
 * Label values are bounded: routes are Express route templates (never raw paths), models and nodes come from the
 * nodes' tags, tenants from API_KEYS.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'ainode_' });

const secondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export const metrics = {
  httpRequests: new Counter({
    name: 'ainode_http_requests_total',
    help: 'HTTP requests answered by the API, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  }),
  httpDuration: new Histogram({
    name: 'ainode_http_request_duration_seconds',
    help: 'Time to answer an HTTP request (to the last byte), by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: secondsBuckets,
    registers: [registry],
  }),
  grpcRequests: new Counter({
    name: 'ainode_grpc_requests_total',
    help: 'gRPC calls answered by the API, by method and outcome (ok or error)',
    labelNames: ['method', 'outcome'] as const,
    registers: [registry],
  }),
  llmCalls: new Counter({
    name: 'ainode_llm_calls_total',
    help: 'Ollama calls made by llm activities, by node, model, kind (chat, generate, embed) and outcome',
    labelNames: ['node', 'model', 'kind', 'outcome'] as const,
    registers: [registry],
  }),
  llmTokens: new Counter({
    name: 'ainode_llm_tokens_total',
    help: 'Tokens counted by Ollama (prompt_eval_count, eval_count), by node, model and type (prompt, completion)',
    labelNames: ['node', 'model', 'type'] as const,
    registers: [registry],
  }),
  llmTokensPerSecond: new Histogram({
    name: 'ainode_llm_tokens_per_second',
    help: 'Generation speed of one call (eval_count / eval_duration), by node and model',
    labelNames: ['node', 'model'] as const,
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    registers: [registry],
  }),
  llmCallDuration: new Histogram({
    name: 'ainode_llm_call_duration_seconds',
    help: 'Wall time of one Ollama call as the llm activity saw it, by node, model and kind',
    labelNames: ['node', 'model', 'kind'] as const,
    buckets: secondsBuckets,
    registers: [registry],
  }),
  modelLoad: new Histogram({
    name: 'ainode_llm_model_load_seconds',
    help: "Ollama's load_duration of a call (near 0 when the model was already loaded), by node and model",
    labelNames: ['node', 'model'] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  }),
  slotsInUse: new Gauge({
    name: 'ainode_llm_slots_in_use',
    help: 'Ollama calls in flight on a node (its parallel slots in use)',
    labelNames: ['node'] as const,
    registers: [registry],
  }),
  slots: new Gauge({
    name: 'ainode_llm_slots',
    help: "A node's parallel slots (OLLAMA_NUM_PARALLEL)",
    labelNames: ['node'] as const,
    registers: [registry],
  }),
  jobOutcomes: new Counter({
    name: 'ainode_job_outcomes_total',
    help: 'Finished jobs by outcome (succeeded, failed, timed_out, cancelled, ...)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  chatReplies: new Counter({
    name: 'ainode_chat_replies_total',
    help: 'Chat replies delivered, by the agent that answered and the way out (callback or outbox)',
    labelNames: ['agent', 'via'] as const,
    registers: [registry],
  }),
  usageTokens: new Counter({
    name: 'ainode_usage_tokens_total',
    help: 'Metered tokens written to the usage table, by tenant, model and kind of work',
    labelNames: ['tenant', 'model', 'kind'] as const,
    registers: [registry],
  }),
  gatewayCalls: new Counter({
    name: 'ainode_gateway_calls_total',
    help: "LLM calls from job containers through the executor's AI gateway, by outcome (ok or an error code)",
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
};

/**
 * `ainode_task_queue_backlog{queue}`: each queue's approximate backlog from DescribeTaskQueue (report_stats),
 * read when scraped. `queues` names the queues of the moment (e.g. every model queue in the catalog).
 */
export function registerQueueBacklog(opts: {
  queues: () => Promise<string[]> | string[];
  describe: (queue: string) => Promise<{ backlog: number; pollers: number } | undefined>;
}): void {
  const existing = registry.getSingleMetric('ainode_task_queue_backlog');
  if (existing) registry.removeSingleMetric('ainode_task_queue_backlog');
  if (registry.getSingleMetric('ainode_task_queue_pollers')) registry.removeSingleMetric('ainode_task_queue_pollers');
  const pollers = new Gauge({
    name: 'ainode_task_queue_pollers',
    help: 'Workers polling a task queue (DescribeTaskQueue), read when scraped',
    labelNames: ['queue'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'ainode_task_queue_backlog',
    help: "A task queue's approximate backlog (DescribeTaskQueue report_stats), read when scraped",
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      pollers.reset();
      const queues = await opts.queues();
      await Promise.all(
        queues.map(async (queue) => {
          const d = await opts.describe(queue).catch(() => undefined);
          if (!d) return;
          this.set({ queue }, d.backlog);
          pollers.set({ queue }, d.pollers);
        }),
      );
    },
  });
}

/** This process's metrics in Prometheus' text format, then `extra` (e.g. the Temporal runtime's). */
export async function metricsText(extra?: () => Promise<string>): Promise<string> {
  const own = await registry.metrics();
  const more = extra ? await extra().catch(() => '') : '';
  return more ? `${own}\n${more}` : own;
}

export const METRICS_CONTENT_TYPE = registry.contentType;

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` on its own port (workers have no HTTP server of their own). With `temporalMetricsUrl` the
 * Temporal runtime's Prometheus text (served by the SDK's core on TEMPORAL_METRICS_PORT) is appended.
 */
export async function startMetricsServer(opts: {
  port: number;
  host?: string;
  temporalMetricsUrl?: string;
}): Promise<MetricsServer> {
  const temporal = opts.temporalMetricsUrl;
  const extra = temporal
    ? async () => {
        const res = await fetch(temporal, { signal: AbortSignal.timeout(2_000) });
        return res.ok ? res.text() : '';
      }
    : undefined;
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metricsText(extra).then(
      (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
    );
  });
  server.listen(opts.port, opts.host ?? '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
