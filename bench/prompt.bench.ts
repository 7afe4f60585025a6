/**
 * What a durable one-shot prompt costs over calling Ollama directly. The same small deterministic request
 * (num_predict 8, fixed seed, temperature 0, the worker's num_ctx so the model is never reloaded) goes N times
 * straight to Ollama and N times through the API: POST /prompts → poll GET /prompts/:id every 5 ms, with the
 * API, the orchestrator worker and the llm worker running in this process against the bench services.
 * Calls alternate in pairs (the order swapped every pair) so drift on a shared machine hits both sides alike.
 * Target (DESIGN.md): ≤ 50 ms p50 added.
 */
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { createApp } from '../api/app';
import { createCatalog } from '../lib/llm/catalog';
import { createStorage, ensureStorage } from '../lib/storage/clients';
import { createLogger } from '../common/logger';
import { createLlmWorkers } from '../workers/llm';
import { createOrchestratorWorker } from '../workers/orchestrator';
import { ratio, round, summarize, timeMs, type Bench, type BenchContext, type Row, directGenerate } from './lib';

const N = Number(process.env.BENCH_PROMPT_N ?? 20);
const WARMUP = 3;
const LONG_POLL_MS = 30_000;
const GOAL_ADDED_P50_MS = 50;
const PROMPT = 'Answer with one word: what colour is the sky?';
const OPTIONS = { num_predict: 8, seed: 42, temperature: 0 };
const API_KEY = 'bench-key-0001';

interface Stack {
  apiUrl: string;
  stop(): Promise<void>;
}

/** API + orchestrator + llm worker, in process, on the bench services. */
async function startStack(ctx: BenchContext): Promise<Stack> {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  } catch {
    // installed by an earlier bench in this process
  }
  const config = { ...ctx.config, API_KEYS: new Map([[API_KEY, 'bench']]), API_RATE_LIMIT_PER_MINUTE: 1_000_000 };
  const storage = createStorage(config);
  await ensureStorage(storage);
  const workerConnection = await NativeConnection.connect({ address: ctx.temporalAddress });
  const clientConnection = await Connection.connect({ address: ctx.temporalAddress });
  const temporal = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });

  const workers: Worker[] = [
    await createOrchestratorWorker({ connection: workerConnection, config, storage }),
    ...(await createLlmWorkers({ connection: workerConnection, config, warmUp: false })),
  ];
  const running = Promise.all(workers.map((w) => w.run()));

  const catalog = createCatalog({
    nodes: config.OLLAMA_NODES,
    nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
    temporal,
    namespace: config.TEMPORAL_NAMESPACE,
  });
  const app = createApp({ config, temporal, storage, catalog, logger: createLogger('api', config) });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiUrl,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
      await clientConnection.close();
      await workerConnection.close();
      storage.close();
    },
  };
}

async function viaApi(apiUrl: string, model: string): Promise<string> {
  const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
  const res = await fetch(`${apiUrl}/prompts`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ modelId: model, prompt: PROMPT, options: OPTIONS }),
  });
  const started = (await res.json()) as { id?: string };
  if (res.status !== 202 || !started.id)
    throw new Error(`POST /prompts answered ${res.status} ${JSON.stringify(started)}`);
  for (;;) {
    // A long poll, as a client should wait: the API holds the request until the workflow closes.
    const r = await fetch(`${apiUrl}/prompts/${started.id}?waitMs=${LONG_POLL_MS}`, { headers });
    const s = (await r.json()) as { status?: string; result?: { content: string }; error?: unknown };
    if (r.status !== 200) throw new Error(`GET /prompts/${started.id} answered ${r.status} ${JSON.stringify(s)}`);
    if (s.status === 'completed') return s.result?.content ?? '';
    if (s.status !== 'running') throw new Error(`prompt ${started.id} ended ${s.status}: ${JSON.stringify(s.error)}`);
  }
}

export const bench: Bench = {
  name: 'prompt',
  async run(ctx) {
    const stack = await startStack(ctx);
    try {
      let directText = '';
      let apiText = '';
      for (let i = 0; i < WARMUP; i++) {
        directText = await directGenerate(ctx, PROMPT, OPTIONS);
        apiText = await viaApi(stack.apiUrl, ctx.model);
      }
      const d: number[] = [];
      const a: number[] = [];
      const diff: number[] = [];
      for (let i = 0; i < N; i++) {
        ctx.signal.throwIfAborted();
        // Swap the order every pair, so "runs right after the other kind" cannot favour one side.
        let dt = 0;
        let at = 0;
        if (i % 2 === 0) {
          dt = await timeMs(() => directGenerate(ctx, PROMPT, OPTIONS));
          at = await timeMs(() => viaApi(stack.apiUrl, ctx.model));
        } else {
          at = await timeMs(() => viaApi(stack.apiUrl, ctx.model));
          dt = await timeMs(() => directGenerate(ctx, PROMPT, OPTIONS));
        }
        d.push(dt);
        a.push(at);
        diff.push(at - dt);
      }
      const ds = summarize(d);
      const as = summarize(a);
      const added = summarize(diff);
      const base = { bench: 'prompt', unit: 'ms' };
      const sameOutput = directText === apiText;
      const rows: Row[] = [
        { ...base, metric: `direct Ollama p50 (n=${N})`, value: round(ds.p50) },
        { ...base, metric: 'direct Ollama p95', value: round(ds.p95) },
        {
          ...base,
          metric: 'POST /prompts → result p50',
          value: round(as.p50),
          baseline: round(ds.p50),
          ratio: ratio(as.p50, ds.p50),
        },
        {
          ...base,
          metric: 'POST /prompts → result p95',
          value: round(as.p95),
          baseline: round(ds.p95),
          ratio: ratio(as.p95, ds.p95),
        },
        {
          ...base,
          metric: 'added p50 (paired)',
          value: round(added.p50),
          goal: `≤ ${GOAL_ADDED_P50_MS} ms`,
          pass: added.p50 <= GOAL_ADDED_P50_MS,
          note: `p50(api) − p50(direct) = ${round(as.p50 - ds.p50)} ms; GET ?waitMs= long poll`,
        },
        { ...base, metric: 'added p95 (paired)', value: round(added.p95) },
        {
          bench: 'prompt',
          metric: 'same output as direct',
          value: sameOutput ? 1 : 0,
          unit: 'bool',
          pass: sameOutput,
          note: sameOutput
            ? JSON.stringify(apiText.slice(0, 40))
            : `direct ${JSON.stringify(directText)} vs api ${JSON.stringify(apiText)}`,
        },
      ];
      return rows;
    } finally {
      await stack.stop();
    }
  },
};
