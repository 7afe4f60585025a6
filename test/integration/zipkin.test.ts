/**
 * The dev stack's trace backend for real: the Zipkin server that setup installed (scripts/lib/install-zipkin.sh),
 * started the way `npm start` starts it (scripts/lib/observability.ts), receives what a process exports with
 * OTEL_EXPORTER_ZIPKIN_ENDPOINT: the API's HTTP server span (production middleware) and an Ollama call's span under
 * it, in one trace that Zipkin's query API returns with their service name and attributes.
 */
import path from 'node:path';
import { tmpdir } from 'node:os';
import express from 'express';
import request from 'supertest';
import { freePort, type Service } from '../../scripts/lib/services';
import { startZipkin, zipkinSpansEndpoint } from '../../scripts/lib/observability';
import { readToolchain } from '../../scripts/lib/toolchain';
import { httpTracing } from '../../api/middleware/tracing';
import { initTracing, type Tracing } from '../../lib/telemetry/tracing';
import { traceOllamaCall } from '../../lib/telemetry/llm';

jest.setTimeout(240_000);

let zipkin: Service | undefined;
let tracing: Tracing;

beforeAll(async () => {
  zipkin = await startZipkin(readToolchain(), {
    port: await freePort(),
    logFile: path.join(tmpdir(), `ainode-zipkin-test-${process.pid}.log`),
  });
  tracing = initTracing('ainode-api', { OTEL_EXPORTER_ZIPKIN_ENDPOINT: zipkinSpansEndpoint(zipkin.url) })!;
});

afterAll(async () => {
  await tracing?.shutdown();
  await zipkin?.stop();
});

interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind?: string;
  localEndpoint?: { serviceName?: string };
  tags?: Record<string, string>;
}

it('receives one trace with the HTTP span and the Ollama call under it', async () => {
  const app = express();
  app.use(httpTracing);
  app.get('/items/:id', (_req, res, next) => {
    traceOllamaCall({ node: 'node-z', model: 'smollm2:135m', op: 'generate', kind: 'prompt' }, async () => ({
      model: 'smollm2:135m',
      doneReason: 'stop',
      usage: { promptTokens: 12, completionTokens: 5, evalDurationMs: 50, loadDurationMs: 1 },
    })).then(() => res.json({ ok: true }), next);
  });
  const res = await request(app).get('/items/42');
  expect(res.status).toBe(200);
  const traceId = /^00-([0-9a-f]{32})-/.exec(String(res.headers.traceparent))?.[1];
  expect(traceId).toBeDefined();
  await tracing.spanProcessor.forceFlush();

  // Zipkin indexes asynchronously: ask until both spans are there.
  let spans: ZipkinSpan[] = [];
  const deadline = Date.now() + 30_000;
  while (spans.length < 2 && Date.now() < deadline) {
    const r = await fetch(`${zipkin!.url}/api/v2/trace/${traceId}`);
    spans = r.ok ? ((await r.json()) as ZipkinSpan[]) : [];
    if (spans.length < 2) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const http = spans.find((s) => s.name === 'get /items/:id');
  const call = spans.find((s) => s.name === 'ollama generate');
  expect(http?.kind).toBe('SERVER');
  expect(http?.localEndpoint?.serviceName).toBe('ainode-api');
  expect(http?.tags?.['http.route']).toBe('/items/:id');
  expect(call?.parentId).toBe(http?.id);
  expect(call?.tags?.['gen_ai.usage.output_tokens']).toBe('5');
  expect(call?.tags?.['ainode.node_id']).toBe('node-z');
  expect(Number(call?.tags?.['ollama.tokens_per_second'])).toBe(100);
});
