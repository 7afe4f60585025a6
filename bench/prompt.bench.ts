/**
 * What a durable one-shot prompt costs over calling Ollama directly. The same small deterministic request
 * (num_predict 8, fixed seed, temperature 0, the worker's num_ctx so the model is never reloaded) goes N times
 * straight to Ollama and N times through the API: POST /prompts → long poll GET /prompts/:id?waitMs=, with
 * the API, the orchestrator worker and the llm worker running in this process against the bench services.
 * Each iteration times both back to back (the order swapped every iteration) so drift on a shared machine hits
 * both sides alike; "added" is the p50 / p95 of the per-iteration differences.
 * Target (docs/operations.md, Benchmarks): ≤ 50 ms p50 added.
 */
import { directGenerate, measurePaired, pairedRows, startStack, timeMs, type Bench, type Row, type Stack } from './lib';

const N = Number(process.env.BENCH_PROMPT_N ?? (process.env.BENCH_QUICK ? 10 : 40));
const WARMUP = 3;
const LONG_POLL_MS = 30_000;
const GOAL_ADDED_P50_MS = 50;
const PROMPT = 'Answer with one word: what colour is the sky?';
const OPTIONS = { num_predict: 8, seed: 42, temperature: 0 };

async function viaApi(stack: Stack, model: string): Promise<string> {
  const res = await stack.api('POST', '/prompts', { json: { modelId: model, prompt: PROMPT, options: OPTIONS } });
  const started = res.body as { id?: string };
  if (res.status !== 202 || !started.id)
    throw new Error(`POST /prompts answered ${res.status} ${JSON.stringify(started)}`);
  for (;;) {
    // A long poll, as a client should wait: the API holds the request until the workflow closes.
    const r = await stack.api('GET', `/prompts/${started.id}?waitMs=${LONG_POLL_MS}`);
    const s = r.body as { status?: string; result?: { content: string }; error?: unknown };
    if (r.status !== 200) throw new Error(`GET /prompts/${started.id} answered ${r.status} ${JSON.stringify(s)}`);
    if (s.status === 'completed') return s.result?.content ?? '';
    if (s.status !== 'running') throw new Error(`prompt ${started.id} ended ${s.status}: ${JSON.stringify(s.error)}`);
  }
}

export const bench: Bench = {
  name: 'prompt',
  async run(ctx) {
    const stack = await startStack(ctx, { workflows: 'orchestrator', llm: 'real', api: true });
    try {
      const directText = await directGenerate(ctx, PROMPT, OPTIONS);
      const apiText = await viaApi(stack, ctx.model);
      const paired = await measurePaired({
        n: N,
        warmup: WARMUP,
        signal: ctx.signal,
        baseline: () => timeMs(() => directGenerate(ctx, PROMPT, OPTIONS)),
        subject: () => timeMs(() => viaApi(stack, ctx.model)),
      });
      const sameOutput = directText === apiText;
      const rows: Row[] = [
        ...pairedRows(
          'prompt',
          paired,
          { baseline: 'direct Ollama', subject: 'POST /prompts → result' },
          { goalAddedMs: GOAL_ADDED_P50_MS, note: 'per pair: API − direct, alternating order; GET ?waitMs= long poll' },
        ),
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
