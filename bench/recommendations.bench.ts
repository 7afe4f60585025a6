/**
 * Recommendations over gRPC against Ollama itself, in the same run (issue 12; docs/operations.md, Benchmarks):
 * - time to the first chunk of `recommendation.RecommendationService/Recommend` (real `@grpc/grpc-js` client → API →
 *   workflow → analysis → llm activity → side channel → gRPC stream) vs the same chat request streamed straight from
 *   Ollama's `/api/chat`, paired and alternating; target ≤ 50 ms p50 added. Payloads are encrypted (PAYLOAD_KEYS), as
 *   `npm start` runs them.
 * - 50 concurrent streams: every one ends with its final message.
 */
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { createApp } from '../api/app';
import { loadRecommendationProto, startGrpcServer } from '../api/grpc/server';
import { createLogger } from '../common/logger';
import { parsePayloadKeys } from '../common/payload-keys';
import { createCatalog } from '../lib/llm/catalog';
import { analyzeContext } from '../lib/recommend/analysis';
import { newPayloadKeySpec } from '../lib/codec/payload-codec';
import { StreamHub } from '../lib/stream/hub';
import { recommendationMessages } from '../workflows/recommendation-workflow';
import {
  BENCH_API_KEY,
  measurePaired,
  pairedOf,
  pairedRows,
  startStack,
  type Bench,
  type BenchContext,
  type Row,
} from './lib';

const N = Number(process.env.BENCH_REC_N ?? (process.env.BENCH_QUICK ? 10 : 40));
const WARMUP = 3;
const CONCURRENT = Number(process.env.BENCH_REC_CONCURRENT ?? 50);
/** Short generations: the first chunk is what is measured, and both sides generate the same bound. */
const NUM_PREDICT = 16;
const CONTEXT = {
  visited_sites: [
    { url: 'https://github.com/temporalio/sdk-typescript', title: 'Temporal TypeScript SDK' },
    { url: 'https://stackoverflow.com/questions/1/grpc-streaming-node', title: 'gRPC streaming in Node' },
  ],
  search_queries: ['temporal workflow typescript', 'grpc node streaming'],
  time_spent: { 'github.com': 1200, 'stackoverflow.com': 300 },
};
const REQUEST = {
  user_id: 'bench-user',
  browser_context: JSON.stringify(CONTEXT),
  content_type: 'technical',
  content_period: 'recent',
};

interface Timed {
  firstMs: number;
  totalMs: number;
  final: boolean;
  /** The run's workflow id (x-recommendation-id). */
  id?: string;
}

type RecommendClient = grpc.Client & {
  Recommend(
    req: Record<string, string>,
    md?: grpc.Metadata,
  ): grpc.ClientReadableStream<{ content: string; is_final: string }>;
};

function grpcClient(port: number): RecommendClient {
  const loaded = grpc.loadPackageDefinition(loadRecommendationProto()) as unknown as {
    recommendation: { RecommendationService: grpc.ServiceClientConstructor };
  };
  return new loaded.recommendation.RecommendationService(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as RecommendClient;
}

function viaGrpc(client: RecommendClient): Promise<Timed> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${BENCH_API_KEY}`);
  const t0 = performance.now();
  let firstMs = NaN;
  let final = false;
  let id: string | undefined;
  return new Promise((resolve, reject) => {
    const call = client.Recommend(REQUEST, md);
    call.on('metadata', (m) => (id = m.get('x-recommendation-id')[0] as string | undefined));
    call.on('data', (m: { content: string; is_final: string }) => {
      if (m.content && Number.isNaN(firstMs)) firstMs = performance.now() - t0;
      if (m.is_final === 'true') final = true;
    });
    call.on('error', reject);
    call.on('end', () => resolve({ firstMs, totalMs: performance.now() - t0, final, id }));
  });
}

async function direct(ctx: BenchContext): Promise<Timed> {
  const messages = recommendationMessages(analyzeContext(CONTEXT), {
    contentType: 'technical',
    contentPeriod: 'recent',
  });
  const t0 = performance.now();
  const res = await fetch(`${ctx.ollamaUrl}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: ctx.model,
      messages,
      stream: true,
      options: { num_predict: NUM_PREDICT, temperature: 0.3, num_ctx: ctx.config.LLM_NUM_CTX },
      keep_alive: '24h',
    }),
  });
  if (!res.ok || !res.body) throw new Error(`direct /api/chat answered ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let firstMs = NaN;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const piece = (JSON.parse(line) as { message?: { content?: string } }).message?.content;
      if (piece && Number.isNaN(firstMs)) firstMs = performance.now() - t0;
    }
  }
  return { firstMs, totalMs: performance.now() - t0, final: true };
}

export const bench: Bench = {
  name: 'recommendations',
  async run(ctx) {
    const keys = parsePayloadKeys(newPayloadKeySpec('bench'));
    if ('problems' in keys) throw new Error(keys.problems.join('; '));
    const stack = await startStack(ctx, {
      workflows: 'orchestrator',
      llm: 'real',
      config: {
        RECOMMEND_MODEL: ctx.model,
        RECOMMEND_NUM_PREDICT: NUM_PREDICT,
        AI_REQUESTS_PER_MINUTE: 1_000_000,
        AI_TOKENS_PER_MINUTE: 0,
        AI_DAILY_TOKEN_BUDGET: 0,
        PAYLOAD_KEYS: keys.keys,
      },
    });
    // The API process as api/server.ts builds it: one StreamHub for HTTP (where llm workers push tokens) and gRPC.
    const { config, client, storage } = stack;
    const streams = new StreamHub();
    const catalog = createCatalog({
      nodes: config.OLLAMA_NODES,
      nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
      staleMs: config.CATALOG_STALE_MS,
      temporal: client,
      namespace: config.TEMPORAL_NAMESPACE,
    });
    const deps = { config, temporal: client, storage, catalog, logger: createLogger('api', config), streams };
    const http = createApp(deps).listen(0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => http.once('listening', resolve).once('error', reject));
    const internalUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const server = await startGrpcServer({ deps, hub: streams, host: '127.0.0.1', port: 0, internalUrl });
    const rpc = grpcClient(server.port);
    const ids: string[] = [];
    const recommend = async () => {
      const t = await viaGrpc(rpc);
      if (t.id) ids.push(t.id);
      return t;
    };
    try {
      const rows: Row[] = [];
      const firsts = { baseline: [] as number[], subject: [] as number[] };
      const paired = await measurePaired({
        n: N,
        warmup: WARMUP,
        signal: ctx.signal,
        baseline: async () => {
          const t = await direct(ctx);
          firsts.baseline.push(t.firstMs);
          return t.totalMs;
        },
        subject: async () => {
          const t = await recommend();
          if (!t.final) throw new Error('a gRPC stream ended without its final message');
          firsts.subject.push(t.firstMs);
          return t.totalMs;
        },
      });
      rows.push(
        ...pairedRows(
          'recommendations',
          pairedOf(firsts.baseline.slice(WARMUP), firsts.subject.slice(WARMUP)),
          {
            baseline: 'first chunk, direct Ollama stream',
            subject: 'first chunk, gRPC Recommend (encrypted payloads)',
          },
          {
            goalAddedMs: 50,
            note: `per pair: gRPC − direct, alternating order; same messages, num_predict ${NUM_PREDICT}, real model`,
          },
        ),
        ...pairedRows('recommendations', paired, {
          baseline: 'total, direct Ollama stream',
          subject: 'total, gRPC Recommend',
        }),
      );

      // ---- concurrent streams
      const t0 = performance.now();
      const outcomes = await Promise.allSettled(Array.from({ length: CONCURRENT }, () => recommend()));
      const seconds = (performance.now() - t0) / 1000;
      const completed = outcomes.filter((o) => o.status === 'fulfilled' && o.value.final).length;
      const reasons = [
        ...new Set(
          outcomes.flatMap((o) => (o.status === 'rejected' ? [String((o.reason as Error).message).slice(0, 80)] : [])),
        ),
      ];
      rows.push({
        bench: 'recommendations',
        metric: `${CONCURRENT} concurrent gRPC streams completed`,
        value: completed,
        unit: 'streams',
        baseline: CONCURRENT,
        goal: `all ${CONCURRENT} complete`,
        pass: completed === CONCURRENT,
        note: `in ${seconds.toFixed(1)} s${reasons.length ? `; failures: ${reasons.join(' | ')}` : ''}`,
      });
      return rows;
    } finally {
      // A run meters its usage after the stream's final message: let every run finish before the workers stop, so
      // no encrypted workflow task is left for the next bench's (codec-less) orchestrator on the same server.
      await Promise.allSettled(ids.map((id) => client.workflow.getHandle(id).result()));
      rpc.close();
      await server.close(1000);
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      streams.close();
      await stack.stop();
    }
  },
};
