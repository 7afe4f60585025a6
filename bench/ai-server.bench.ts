/**
 * The AI server against Ollama itself, in the same run (docs/operations.md, Benchmarks):
 * - time to the first token and total time of a streamed chat completion through `/v1/chat/completions`
 *   (API → workflow → llm activity → side channel → SSE) vs the same request streamed straight from Ollama's
 *   `/api/chat`, paired and alternating; target ≤ 50 ms p50 added to the first token;
 * - embeddings throughput (texts/s) through `/v1/embeddings` vs Ollama's `/api/embed` with the same batch;
 *   target ≥ 0.8×;
 * - 50 concurrent streams: all complete, and the key's metered usage equals the sum of Ollama's counts.
 */
import {
  BENCH_API_KEY,
  measurePaired,
  pairedOf,
  pairedRows,
  round,
  startStack,
  summarize,
  type Bench,
  type BenchContext,
  type Row,
} from './lib';

const N = Number(process.env.BENCH_AI_N ?? (process.env.BENCH_QUICK ? 10 : 40));
const WARMUP = 3;
const CONCURRENT = Number(process.env.BENCH_AI_CONCURRENT ?? 50);
const EMBED_TEXTS = 64;
const EMBED_REPS = process.env.BENCH_QUICK ? 3 : 8;
const MESSAGES = [{ role: 'user', content: 'Answer with one word: what colour is the sky?' }];
const MAX_TOKENS = 8;

interface Timed {
  firstMs: number;
  totalMs: number;
  text: string;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** Reads a streamed response, timing the first non-empty content and the end. */
async function timedStream(url: string, init: RequestInit, contentOf: (line: string) => string): Promise<Timed> {
  const t0 = performance.now();
  const res = await fetch(url, init);
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let text = '';
  let firstMs = NaN;
  let usage: Timed['usage'];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const piece = contentOf(line);
      if (piece && Number.isNaN(firstMs)) firstMs = performance.now() - t0;
      text += piece;
      const u = /"usage":(\{[^}]*\})/.exec(line);
      if (u) usage = JSON.parse(u[1]!) as Timed['usage'];
    }
  }
  return { firstMs, totalMs: performance.now() - t0, text, usage };
}

const sseContent = (line: string) => {
  if (!line.startsWith('data: {')) return '';
  const c = JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string } }[] };
  return c.choices?.[0]?.delta?.content ?? '';
};
const ndjsonContent = (line: string) => (JSON.parse(line) as { message?: { content?: string } }).message?.content ?? '';

function viaApi(apiUrl: string, model: string, key = BENCH_API_KEY, includeUsage = false): Promise<Timed> {
  return timedStream(
    `${apiUrl}/v1/chat/completions`,
    {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model,
        messages: MESSAGES,
        max_tokens: MAX_TOKENS,
        temperature: 0,
        seed: 42,
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      }),
    },
    sseContent,
  );
}

function direct(ctx: BenchContext): Promise<Timed> {
  return timedStream(
    `${ctx.ollamaUrl}/api/chat`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: ctx.model,
        messages: MESSAGES,
        stream: true,
        options: { num_predict: MAX_TOKENS, temperature: 0, seed: 42, num_ctx: ctx.config.LLM_NUM_CTX },
        keep_alive: '24h',
      }),
    },
    ndjsonContent,
  );
}

async function embedThroughput(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < EMBED_REPS; i++) await run();
  return (EMBED_REPS * EMBED_TEXTS) / ((performance.now() - t0) / 1000);
}

export const bench: Bench = {
  name: 'ai-server',
  async run(ctx) {
    const meterKey = `bench-ai-meter-${Date.now()}`;
    const stack = await startStack(ctx, {
      workflows: 'orchestrator',
      llm: 'real',
      api: true,
      config: {
        API_KEYS: new Map([
          [BENCH_API_KEY, 'bench'],
          [meterKey, 'bench-meter'],
        ]),
        AI_REQUESTS_PER_MINUTE: 1_000_000,
        AI_TOKENS_PER_MINUTE: 0,
        AI_DAILY_TOKEN_BUDGET: 0,
      },
    });
    const apiUrl = stack.apiUrl!;
    try {
      const rows: Row[] = [];
      // ---- first token and total, paired
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
          const t = await viaApi(apiUrl, ctx.model);
          firsts.subject.push(t.firstMs);
          return t.totalMs;
        },
      });
      // measurePaired keeps warmups out of its arrays; drop them from the first-token arrays the same way.
      const firstPaired = pairedOf(firsts.baseline.slice(WARMUP), firsts.subject.slice(WARMUP));
      rows.push(
        ...pairedRows(
          'ai-server',
          firstPaired,
          { baseline: 'first token, direct Ollama stream', subject: 'first token, /v1/chat/completions stream' },
          { goalAddedMs: 50, note: 'per pair: API − direct, alternating order; same request, real model' },
        ),
        ...pairedRows('ai-server', paired, {
          baseline: 'total, direct Ollama stream',
          subject: 'total, /v1/chat/completions stream',
        }),
      );

      // ---- embeddings throughput
      const texts = Array.from({ length: EMBED_TEXTS }, (_, i) => `sentence number ${i} about delivery and returns`);
      const embedDirect = () =>
        fetch(`${ctx.ollamaUrl}/api/embed`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: ctx.model, input: texts, options: { num_ctx: ctx.config.LLM_NUM_CTX } }),
        }).then(async (r) => {
          if (!r.ok) throw new Error(`direct embed ${r.status}`);
          return r.json();
        });
      const embedApi = () =>
        stack.api('POST', '/v1/embeddings', { json: { model: ctx.model, input: texts } }).then((r) => {
          if (r.status !== 200) throw new Error(`/v1/embeddings ${r.status} ${JSON.stringify(r.body)}`);
        });
      await embedDirect();
      await embedApi();
      const directTps = await embedThroughput(embedDirect);
      const apiTps = await embedThroughput(embedApi);
      rows.push(
        {
          bench: 'ai-server',
          metric: `embeddings, direct /api/embed (${EMBED_TEXTS} texts a call)`,
          value: round(directTps),
          unit: 'texts/s',
        },
        {
          bench: 'ai-server',
          metric: 'embeddings, /v1/embeddings',
          value: round(apiTps),
          unit: 'texts/s',
          baseline: round(directTps),
          ratio: round(apiTps / directTps),
          goal: '≥ 0.8× direct',
          pass: apiTps / directTps >= 0.8,
        },
      );

      // ---- concurrent streams, metered exactly
      const t0 = performance.now();
      const results = await Promise.allSettled(
        Array.from({ length: CONCURRENT }, () => viaApi(apiUrl, ctx.model, meterKey, true)),
      );
      const wall = performance.now() - t0;
      const ok = results.flatMap((r) => (r.status === 'fulfilled' && r.value.usage ? [r.value] : []));
      const summed = ok.reduce((n, r) => n + r.usage!.total_tokens, 0);
      // Usage rows are written by the workflow right after the answer: wait until all are there.
      let metered = -1;
      for (let i = 0; i < 100; i++) {
        const u = await fetch(`${apiUrl}/usage`, { headers: { authorization: `Bearer ${meterKey}` } });
        const body = (await u.json()) as { rows: { calls: number; total: number }[] };
        const calls = body.rows.reduce((n, r) => n + r.calls, 0);
        metered = body.rows.reduce((n, r) => n + r.total, 0);
        if (calls >= ok.length) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const first = summarize(ok.map((r) => r.firstMs));
      rows.push(
        {
          bench: 'ai-server',
          metric: `${CONCURRENT} concurrent streams completed`,
          value: ok.length,
          unit: 'streams',
          goal: `all ${CONCURRENT}`,
          pass: ok.length === CONCURRENT,
          note: `wall ${round(wall)} ms; first token p50 ${round(first.p50)} / p95 ${round(first.p95)} ms`,
        },
        {
          bench: 'ai-server',
          metric: 'metered tokens of the key (GET /usage) = sum of Ollama’s counts',
          value: metered,
          unit: 'tokens',
          baseline: summed,
          goal: 'equal',
          pass: metered === summed && ok.length === CONCURRENT,
        },
      );
      return rows;
    } finally {
      await stack.stop();
    }
  },
};
