/**
 * Each LLM path next to Temporal's own floor for it, in one run, with the real model, and what each step costs.
 * Every iteration runs the same bounded request (num_predict 8, seed, temperature 0, the workers' num_ctx) once
 * per variant, in an order rotated every iteration so drift on a shared machine hits all alike:
 *   direct        POST /api/generate straight to Ollama (the baseline)
 *   floor         a workflow whose only step is the llm activity on the model's queue (client.execute)
 *   workflow      promptWorkflow through the client (adds the model check and search attributes)
 *   API           POST /prompts?waitMs= → 200 with the result, one request (adds HTTP, auth, the API's model check)
 *   API + poll    POST /prompts → 202, then GET /prompts/:id?waitMs= (adds a second request and two describes)
 *   update floor  an Update whose handler runs the llm activity (a job call's floor; the job bench measures the
 *                 real SDK → gateway → Update path)
 * "added" figures are per-iteration differences (variant − direct, or variant − floor), then the percentile.
 * Goal (DESIGN.md): each path within 10 ms p50 of its floor.
 */
import type { FloorLlmInput } from './floor-workflows';
import {
  directGenerate,
  floorWorker,
  percentile,
  round,
  startStack,
  summarize,
  timeMs,
  type Bench,
  type Row,
  type Stack,
} from './lib';

const N = Number(process.env.BENCH_FLOORS_N ?? (process.env.BENCH_QUICK ? 10 : 40));
const WARMUP = 3;
const LONG_POLL_MS = 30_000;
const GOAL_OVER_FLOOR_MS = 10;
const PROMPT = 'Answer with one word: what colour is the sky?';
const OPTIONS = { num_predict: 8, seed: 42, temperature: 0 };

type Variant = 'direct' | 'floor' | 'workflow' | 'api' | 'apiPoll' | 'updateFloor';

export const bench: Bench = {
  name: 'floors',
  async run(ctx) {
    const floorQueue = `bench-floors-${Date.now().toString(36)}`;
    const stack: Stack = await startStack(ctx, {
      workflows: 'orchestrator',
      llm: 'real',
      api: true,
      workers: async (s) => [await floorWorker(s.connection, floorQueue)],
    });
    const input: FloorLlmInput = {
      model: ctx.model,
      request: { model: ctx.model, prompt: PROMPT, kind: 'prompt', options: OPTIONS },
    };
    let seq = 0;
    const host = await stack.client.workflow.start('floorLlmHost', {
      taskQueue: floorQueue,
      workflowId: `${floorQueue}-host`,
    });
    /** The API variant's two requests, timed apart: POST (start) and the long-poll GET (wait + result). */
    const apiPost: number[] = [];
    const apiGet: number[] = [];
    const run: Record<Variant, () => Promise<unknown>> = {
      direct: () => directGenerate(ctx, PROMPT, OPTIONS),
      floor: () =>
        stack.client.workflow.execute('floorLlmPrompt', {
          taskQueue: floorQueue,
          workflowId: `${floorQueue}-p-${seq++}`,
          args: [input],
        }),
      workflow: () =>
        stack.client.workflow.execute('promptWorkflow', {
          taskQueue: stack.taskQueue,
          workflowId: `${floorQueue}-w-${seq++}`,
          args: [{ modelId: ctx.model, prompt: PROMPT, options: OPTIONS }],
        }),
      api: async () => {
        const res = await stack.api('POST', `/prompts?waitMs=${LONG_POLL_MS}`, {
          json: { modelId: ctx.model, prompt: PROMPT, options: OPTIONS },
        });
        if (res.status !== 200 || res.body.status !== 'completed') {
          throw new Error(`POST /prompts?waitMs answered ${res.status} ${JSON.stringify(res.body)}`);
        }
      },
      apiPoll: async () => {
        const t0 = performance.now();
        const res = await stack.api('POST', '/prompts', {
          json: { modelId: ctx.model, prompt: PROMPT, options: OPTIONS },
        });
        const t1 = performance.now();
        if (res.status !== 202) throw new Error(`POST /prompts answered ${res.status} ${JSON.stringify(res.body)}`);
        for (;;) {
          const r = await stack.api('GET', `/prompts/${res.body.id}?waitMs=${LONG_POLL_MS}`);
          if (r.status !== 200) throw new Error(`GET /prompts answered ${r.status} ${JSON.stringify(r.body)}`);
          if (r.body.status === 'completed') break;
          if (r.body.status !== 'running') throw new Error(`prompt ended ${r.body.status}`);
        }
        apiPost.push(t1 - t0);
        apiGet.push(performance.now() - t1);
      },
      updateFloor: () => host.executeUpdate('floorLlmCall', { args: [input] }),
    };
    const variants = Object.keys(run) as Variant[];
    const ms: Record<Variant, number[]> = {
      direct: [],
      floor: [],
      workflow: [],
      api: [],
      apiPoll: [],
      updateFloor: [],
    };
    try {
      for (let i = 0; i < WARMUP + N; i++) {
        ctx.signal.throwIfAborted();
        const order = variants.map((_, k) => variants[(i + k) % variants.length]!);
        const got = {} as Record<Variant, number>;
        for (const v of order) got[v] = await timeMs(run[v]);
        if (i < WARMUP) {
          apiPost.length = apiGet.length = 0;
          continue;
        }
        for (const v of variants) ms[v].push(got[v]);
      }
      await host.signal('floorStop');
    } finally {
      await stack.stop();
    }

    const diff = (a: Variant, b: Variant) => ms[a].map((x, i) => x - ms[b][i]!);
    const rows: Row[] = [];
    const B = 'floors';
    const d = summarize(ms.direct);
    rows.push({
      bench: B,
      metric: `direct Ollama p50 (n=${d.n})`,
      value: round(d.p50),
      unit: 'ms',
      note: `p95 ${round(d.p95)} ms`,
    });
    const addedRow = (v: Variant, label: string, note: string, goal?: { over: Variant; what: string }) => {
      const added = summarize(diff(v, 'direct'));
      rows.push({
        bench: B,
        metric: `${label}: added over direct p50 (paired)`,
        value: round(added.p50),
        unit: 'ms',
        note: `p95 ${round(added.p95)} ms (paired); ${note}`,
      });
      if (goal) {
        const over = summarize(diff(v, goal.over));
        const floorAdded = percentile(diff(goal.over, 'direct'), 50);
        rows.push({
          bench: B,
          metric: `${label}: over ${goal.what} p50 (paired)`,
          value: round(over.p50),
          unit: 'ms',
          baseline: round(floorAdded),
          goal: `≤ ${GOAL_OVER_FLOOR_MS} ms over the floor`,
          pass: over.p50 <= GOAL_OVER_FLOOR_MS,
          note: `p95 ${round(over.p95)} ms (paired); baseline = the floor's own added p50`,
        });
      }
    };
    addedRow(
      'floor',
      'prompt floor (workflow + llm activity)',
      'Temporal: start, workflow task, activity task, result',
    );
    addedRow('workflow', 'promptWorkflow via client', 'floor + model check (local activity) + search attributes', {
      over: 'floor',
      what: 'the prompt floor',
    });
    addedRow('api', 'POST /prompts?waitMs → result', 'one request: workflow + HTTP, auth, the API’s model check', {
      over: 'floor',
      what: 'the prompt floor',
    });
    addedRow(
      'apiPoll',
      'POST /prompts → 202, GET ?waitMs → result',
      'two requests, a describe before and after the wait',
      {
        over: 'floor',
        what: 'the prompt floor',
      },
    );
    const post = summarize(apiPost);
    const get = summarize(apiGet);
    rows.push(
      {
        bench: B,
        metric: 'API: POST /prompts → 202 p50',
        value: round(post.p50),
        unit: 'ms',
        note: `p95 ${round(post.p95)} ms; validation, model check, workflow start`,
      },
      {
        bench: B,
        metric: 'API: GET ?waitMs → result p50',
        value: round(get.p50),
        unit: 'ms',
        note: `p95 ${round(get.p95)} ms; describe, wait for the result, describe + result`,
      },
    );
    addedRow(
      'updateFloor',
      'job-call floor (Update → llm activity → result)',
      'compare the job bench’s “SDK call inside a job: added”',
    );
    return rows;
  },
};
