/**
 * Observability against real parts: a Temporal dev server, the moto emulator, a scripted Ollama node (exact token
 * counts), the production API app and workers with tracing on, spans exported to an in-memory exporter.
 * - One trace: `POST /prompts` and `POST /v1/chat/completions` each make one trace holding the API's HTTP span, the
 *   client's start span, the workflow's span, the llm activity's span and the Ollama call's span; the response's
 *   `traceparent` names it, and a caller's `traceparent` is continued.
 * - Metrics: the API's /metrics exposes the named series and its counters move after a call; a worker's metrics
 *   endpoint carries the app's series followed by the Temporal runtime's own.
 */
import net from 'node:net';
import request from 'supertest';
import { Client } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Express } from 'express';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import type { Config } from '../../common/config';
import { ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import { clientTracing, initTracing, type Tracing } from '../../lib/telemetry/tracing';
import { startMetricsServer, type MetricsServer } from '../../lib/telemetry/metrics';
import { createLogger } from '../../common/logger';
import { registerBacklogMetrics } from '../../lib/telemetry/backlog';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { testApp } from '../helpers/api';
import { startTestWorkers } from '../helpers/workers';
import type { RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(240_000);

const KEY = 'tele-key-a';
const MODEL = 'trace-fake:1b';
const NODE = 'trace-node';
const REPLY = 'Blue, like the sky on a clear day.';

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;
let ollama: FakeOllama;
let config: Config;
let app: Express;
let tracing: Tracing;
let temporalMetricsPort: number;
const exported = new InMemorySpanExporter();

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** The spans of one trace, once they hold every name in `names` (workflow spans arrive through a sink, a bit later). */
async function traceWith(traceId: string, names: RegExp[]): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await tracing.spanProcessor.forceFlush();
    const spans = exported.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const missing = names.filter((n) => !spans.some((s) => n.test(s.name)));
    if (missing.length === 0) return spans;
    if (Date.now() > deadline) {
      throw new Error(`trace ${traceId} lacks ${missing.join(', ')}; has ${spans.map((s) => s.name).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const traceIdOf = (traceparent: string | undefined) =>
  /^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$/.exec(traceparent ?? '')?.[1];

/** The value of one series in Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return 0;
}

beforeAll(async () => {
  // The Temporal runtime's own Prometheus endpoint, as a worker started with TEMPORAL_METRICS_PORT has it.
  temporalMetricsPort = await freePort();
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${temporalMetricsPort}` } } },
  });
  tracing = initTracing('ainode-test', {}, { processors: [new SimpleSpanProcessor(exported)] })!;
  env = await createTemporalEnv();
  ollama = await startFakeOllama({ models: [MODEL], script: () => REPLY });
  config = testConfig({
    API_KEYS: `${KEY}:tenant-t`,
    S3_BUCKET: uid('tele'),
    OLLAMA_NODES: `${NODE}=${ollama.url}`,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = await startTestWorkers(env, {
    config,
    storage,
    workflowsPath: require.resolve('../../workflows'),
    nodes: [{ id: NODE, url: ollama.url }],
  });
  // The API's Temporal client as api/server.ts builds it: with the tracing interceptor.
  const temporal = new Client({ connection: env.connection, namespace: 'default', interceptors: clientTracing() });
  registerBacklogMetrics(temporal, 'default', () => [ORCHESTRATOR_QUEUE]);
  app = testApp(env, { config, storage, temporal });
});

afterAll(async () => {
  await workers?.stop();
  await env?.teardown();
  await ollama?.close();
  storage?.close();
  await tracing?.shutdown();
});

async function promptResult(id: string): Promise<{ status: string; result?: { content: string } }> {
  for (;;) {
    const r = await request(app).get(`/prompts/${id}?waitMs=20000`).set('authorization', `Bearer ${KEY}`);
    expect(r.status).toBe(200);
    if (r.body.status !== 'running') return r.body as { status: string; result?: { content: string } };
  }
}

describe('one trace from the API to the Ollama call', () => {
  it('POST /prompts: HTTP, workflow, activity and Ollama spans share the trace id the response names', async () => {
    const res = await request(app)
      .post('/prompts')
      .set('authorization', `Bearer ${KEY}`)
      .send({ modelId: MODEL, prompt: 'What colour is the sky?' });
    expect(res.status).toBe(202);
    const traceId = traceIdOf(res.headers.traceparent);
    expect(traceId).toBeDefined();
    const done = await promptResult(res.body.id as string);
    expect(done.status).toBe('completed');
    expect(done.result?.content).toBe(REPLY);

    const spans = await traceWith(traceId!, [
      /^POST \/prompts$/,
      /^StartWorkflow:promptWorkflow$/,
      /^RunWorkflow:promptWorkflow$/,
      /^StartActivity:llmGenerate$/,
      /^RunActivity:llmGenerate$/,
      /^ollama generate$/,
    ]);
    const http = spans.find((s) => s.name === 'POST /prompts')!;
    expect(http.attributes['http.response.status_code']).toBe(202);
    expect(http.parentSpanId).toBeUndefined();
    // Each span hangs under the one before it: the workflow's spans (workflows/tracing.ts) continue the client's
    // trace and hand it on to the activity.
    const named = (name: string) => spans.find((s) => s.name === name)!;
    const run = named('RunWorkflow:promptWorkflow');
    expect(run.parentSpanId).toBe(named('StartWorkflow:promptWorkflow').spanContext().spanId);
    expect(run.status.code).toBe(1); // OK
    expect(run.attributes.workflowId).toBe(res.body.id);
    expect(named('StartActivity:llmGenerate').parentSpanId).toBe(run.spanContext().spanId);
    expect(named('RunActivity:llmGenerate').parentSpanId).toBe(named('StartActivity:llmGenerate').spanContext().spanId);
    // The Ollama span hangs under the activity's, with what the model did.
    const activity = spans.find((s) => s.name === 'RunActivity:llmGenerate')!;
    const call = spans.find((s) => s.name === 'ollama generate')!;
    expect(call.parentSpanId).toBe(activity.spanContext().spanId);
    expect(call.attributes['gen_ai.request.model']).toBe(MODEL);
    expect(call.attributes['ainode.node_id']).toBe(NODE);
    expect(call.attributes['gen_ai.usage.output_tokens']).toBe(REPLY.split(' ').length);
    expect(call.attributes['gen_ai.usage.input_tokens']).toBeGreaterThan(0);
    expect(call.attributes['ollama.eval_duration_ms']).toBeGreaterThan(0);
    // Each process names itself; here they all share one provider.
    expect(call.resource.attributes['service.name']).toBe('ainode-test');
  });

  it("POST /v1/chat/completions continues a caller's traceparent down to the Ollama chat call", async () => {
    const callerTrace = 'a'.repeat(31) + '1';
    const callerSpan = 'b'.repeat(16);
    const res = await request(app)
      .post('/v1/chat/completions')
      .set('authorization', `Bearer ${KEY}`)
      .set('traceparent', `00-${callerTrace}-${callerSpan}-01`)
      .send({ model: MODEL, messages: [{ role: 'user', content: 'Which colour?' }], max_tokens: 16 });
    expect(res.status).toBe(200);
    expect(res.body.choices[0].message.content).toBe(REPLY);
    expect(traceIdOf(res.headers.traceparent)).toBe(callerTrace);
    const spans = await traceWith(callerTrace, [
      /^POST \/v1\/chat\/completions$/,
      /^RunWorkflow:/,
      /^RunActivity:llmChat$/,
      /^ollama chat$/,
    ]);
    expect(spans.find((s) => s.name === 'POST /v1/chat/completions')!.parentSpanId).toBe(callerSpan);
  });

  it('logs inside a request carry its trace id (the production logger, request logging on)', async () => {
    const lines: string[] = [];
    const logger = createLogger('api', { LOG_LEVEL: 'info' }, { write: (l: string) => void lines.push(l) });
    const logged = testApp(env, { config: { ...config, LOG_LEVEL: 'info' }, storage, logger });
    const res = await request(logged).get('/models').set('authorization', `Bearer ${KEY}`);
    expect(res.status).toBe(200);
    const traceId = traceIdOf(res.headers.traceparent)!;
    const entries = lines.map((l) => JSON.parse(l) as { trace_id?: string; msg?: string });
    expect(entries.find((e) => e.msg === 'request completed')?.trace_id).toBe(traceId);
  });
});

describe('metrics', () => {
  it('the API exposes the named series, and its counters move after a call', async () => {
    const before = await request(app).get('/metrics');
    expect(before.status).toBe(200);
    expect(before.headers['content-type']).toMatch(/^text\/plain/);
    const labels = { route: '/prompts', method: 'POST', status: '202' };
    const n0 = sample(before.text, 'ainode_http_requests_total', labels);
    const tokens0 = sample(before.text, 'ainode_llm_tokens_total', { node: NODE, model: MODEL, type: 'completion' });

    const res = await request(app)
      .post('/prompts')
      .set('authorization', `Bearer ${KEY}`)
      .send({ modelId: MODEL, prompt: 'Again: what colour is the sky?' });
    expect(res.status).toBe(202);
    expect((await promptResult(res.body.id as string)).status).toBe('completed');

    const after = (await request(app).get('/metrics')).text;
    expect(sample(after, 'ainode_http_requests_total', labels)).toBe(n0 + 1);
    // The in-process llm worker shares this registry: the call's tokens, speed and slots are here too.
    expect(sample(after, 'ainode_llm_tokens_total', { node: NODE, model: MODEL, type: 'completion' })).toBe(
      tokens0 + REPLY.split(' ').length,
    );
    for (const series of [
      'ainode_http_request_duration_seconds_bucket',
      'ainode_llm_calls_total',
      'ainode_llm_tokens_per_second_bucket',
      'ainode_llm_model_load_seconds_bucket',
      'ainode_llm_call_duration_seconds_bucket',
      'ainode_llm_slots_in_use',
      'ainode_llm_slots',
      'ainode_usage_tokens_total',
    ]) {
      expect(after).toMatch(new RegExp(`^${series}\\{`, 'm'));
    }
    expect(after).toMatch(new RegExp(`^ainode_task_queue_backlog\\{queue="${ORCHESTRATOR_QUEUE}"\\} \\d+`, 'm'));
    expect(after).toMatch(new RegExp(`^ainode_task_queue_pollers\\{queue="${ORCHESTRATOR_QUEUE}"\\} [1-9]`, 'm'));
    // Route labels are templates, never raw ids.
    expect(after).toMatch(/^ainode_http_requests_total\{route="\/prompts\/:id",method="GET",status="200"\}/m);
    expect(after).not.toMatch(/route="\/prompts\/prompt-/);
  });

  it("a worker's endpoint serves the app's series followed by the Temporal runtime's own", async () => {
    let server: MetricsServer | undefined;
    try {
      server = await startMetricsServer({
        port: 0,
        temporalMetricsUrl: `http://127.0.0.1:${temporalMetricsPort}/metrics`,
      });
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toMatch(/^ainode_llm_calls_total\{/m);
      // The SDK's core counts its polls and task slots (names from the Rust core, prefixed temporal_).
      expect(text).toMatch(/^temporal_\w+/m);
      const missing = await fetch(server.url.replace('/metrics', '/other'));
      expect(missing.status).toBe(404);
    } finally {
      await server?.close();
    }
  });
});
