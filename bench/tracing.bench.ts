/**
 * What tracing costs on the prompt path. The same small deterministic request as bench/prompt.bench.ts (POST /prompts
 * → long poll GET /prompts/:id, the real model) runs N times with tracing on and N times with it off, paired and in
 * alternating order, in one process: the API (with the Temporal client's tracing interceptor), the orchestrator
 * worker and the llm worker, all with tracing's interceptors installed.
 * - on: every span recorded and exported to Zipkin's span endpoint (ZipkinExporter, batched, over HTTP to a local
 *   endpoint that accepts /api/v2/spans and counts the spans, so the export's serialisation and transport are paid)
 * - off: the same code with the sampler dropping every trace (spans are not recorded, nothing is exported)
 * Measured twice: with the real model (what a user sees), and with a scripted node that answers at once (the
 * platform's own path only, so tracing's share is not hidden behind generation time).
 * Target (docs/operations.md, Benchmarks): ≤ 5 % added at p50 (the per-iteration ratio on / off).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@temporalio/client';
import { SamplingDecision, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace-base';
import { createApp } from '../api/app';
import { createLogger } from '../common/logger';
import { createCatalog } from '../lib/llm/catalog';
import { dataConverterFor } from '../lib/codec/payload-codec';
import { clientTracing, initTracing, type Tracing } from '../lib/telemetry/tracing';
import {
  measurePaired,
  pairedRows,
  startStack,
  summarize,
  timeMs,
  type Bench,
  type BenchContext,
  type Row,
} from './lib';

const N = Number(process.env.BENCH_TRACING_N ?? (process.env.BENCH_QUICK ? 10 : 30));
/** The scripted node answers at once, so the platform's own time is the whole baseline: the stricter ratio. */
const N_FAKE = Number(process.env.BENCH_TRACING_FAKE_N ?? (process.env.BENCH_QUICK ? 20 : 60));
const FAKE_MODEL = 'tracing-fake:1b';
const WARMUP = 3;
const LONG_POLL_MS = 30_000;
const GOAL_ADDED_PCT = 5;
const PROMPT = 'Answer with one word: what colour is the sky?';
const OPTIONS = { num_predict: 8, seed: 42, temperature: 0 };
const KEY = 'bench-tracing-key';

/** Samples every trace while `on`, none while off (a dropped root drops its whole trace, across processes too). */
class SwitchSampler implements Sampler {
  on = true;
  shouldSample(): SamplingResult {
    return { decision: this.on ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD };
  }
  toString(): string {
    return 'SwitchSampler';
  }
}

/** Accepts Zipkin's span POSTs and counts the spans (a stand-in for Zipkin's collector, without its JVM's CPU). */
async function startSpanSink(): Promise<{ url: string; spans: () => number; close(): Promise<void> }> {
  let spans = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/api/v2/spans') {
        spans += (JSON.parse(body) as unknown[]).length;
        res.writeHead(202).end();
      } else res.writeHead(404).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2/spans`,
    spans: () => spans,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

interface Phase {
  label: string;
  n: number;
  llm: 'real' | 'fake';
}

/** One stack (workers with tracing's interceptors, the API with the traced client), measured on vs off. */
async function measure(ctx: BenchContext, phase: Phase, sampler: SwitchSampler, tracing: Tracing): Promise<Row[]> {
  const stack = await startStack(ctx, {
    workflows: 'orchestrator',
    api: false,
    ...(phase.llm === 'real'
      ? { llm: 'real' as const }
      : { llm: 'fake' as const, fake: { model: FAKE_MODEL, script: () => 'Blue.' } }),
  });
  const model = phase.llm === 'real' ? ctx.model : FAKE_MODEL;
  let server: http.Server | undefined;
  try {
    const config = { ...stack.config, API_KEYS: new Map([[KEY, 'bench']]), API_RATE_LIMIT_PER_MINUTE: 1_000_000 };
    // The API as api/server.ts builds it: a Temporal client with the tracing interceptor.
    const temporal = new Client({
      connection: stack.client.connection,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter: dataConverterFor(config),
      interceptors: clientTracing(),
    });
    const catalog = createCatalog({
      nodes: config.OLLAMA_NODES,
      nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
      staleMs: config.CATALOG_STALE_MS,
      temporal,
      namespace: config.TEMPORAL_NAMESPACE,
    });
    const app = createApp({ config, temporal, storage: stack.storage, catalog, logger: createLogger('api', config) });
    const listening = app.listen(0, '127.0.0.1');
    server = listening;
    await new Promise((r) => listening.once('listening', r));
    const base = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
    const call = async (method: string, url: string, json?: unknown) => {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: json === undefined ? undefined : JSON.stringify(json),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const viaApi = async (): Promise<string> => {
      const res = await call('POST', '/prompts', { modelId: model, prompt: PROMPT, options: OPTIONS });
      if (res.status !== 202) throw new Error(`POST /prompts answered ${res.status} ${JSON.stringify(res.body)}`);
      for (;;) {
        const r = await call('GET', `/prompts/${String(res.body.id)}?waitMs=${LONG_POLL_MS}`);
        if (r.status !== 200) throw new Error(`GET /prompts answered ${r.status} ${JSON.stringify(r.body)}`);
        if (r.body.status === 'completed') return String((r.body.result as { content?: string })?.content ?? '');
        if (r.body.status !== 'running') throw new Error(`prompt ended ${String(r.body.status)}`);
      }
    };
    const timed = (on: boolean) => () => {
      sampler.on = on;
      return timeMs(viaApi);
    };
    const paired = await measurePaired({
      n: phase.n,
      warmup: WARMUP,
      signal: ctx.signal,
      baseline: timed(false),
      subject: timed(true),
    });
    await tracing.spanProcessor.forceFlush();
    const pct = summarize(paired.ratios.map((r) => (r - 1) * 100));
    const name = `tracing (${phase.label})`;
    return [
      ...pairedRows(name, paired, { baseline: 'tracing off', subject: 'tracing on' }),
      {
        bench: name,
        metric: 'tracing on: added p50 (paired, %)',
        value: Math.round(pct.p50 * 10) / 10,
        unit: '%',
        goal: `≤ ${GOAL_ADDED_PCT} % p50 added`,
        pass: pct.p50 <= GOAL_ADDED_PCT,
        note: `p95 ${Math.round(pct.p95 * 10) / 10} %; per iteration on/off − 1, POST /prompts → result`,
      },
    ];
  } finally {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await stack.stop();
  }
}

export const bench: Bench = {
  name: 'tracing',
  async run(ctx) {
    const sink = await startSpanSink();
    const sampler = new SwitchSampler();
    // Before the workers and the client exist: their interceptors and the workflow sink use this provider.
    const tracing = initTracing('bench', { OTEL_EXPORTER_ZIPKIN_ENDPOINT: sink.url }, { sampler });
    if (!tracing) throw new Error('tracing is disabled (OTEL_SDK_DISABLED)');
    try {
      const rows: Row[] = [];
      for (const phase of [
        { label: 'real model', n: N, llm: 'real' },
        { label: 'scripted node', n: N_FAKE, llm: 'fake' },
      ] satisfies Phase[]) {
        rows.push(...(await measure(ctx, phase, sampler, tracing)));
      }
      const traced = N + N_FAKE + 2 * WARMUP;
      rows.push({
        bench: 'tracing',
        metric: 'spans exported per traced prompt',
        value: Math.round((sink.spans() / traced) * 10) / 10,
        unit: 'spans',
        // Every traced request reaches Zipkin's endpoint with its whole tree (API, client, workflow, activity, Ollama).
        pass: sink.spans() > 0,
        note: `${sink.spans()} spans reached the Zipkin endpoint over ${traced} traced prompts (and their polls)`,
      });
      return rows;
    } finally {
      await tracing.shutdown();
      await sink.close();
    }
  },
};
