/**
 * Agent graphs. (1) Parallel generation: infraDesignWorkflow with a plan of 8 independent resources (one
 * level, 8 concurrent `generate` activities) against the same workflow with the 8 resources chained (8 levels,
 * strictly sequential), on an llm worker with 8 slots. The node is a scripted Ollama with a fixed latency per
 * generation, so the number measures the orchestration's parallelism (Temporal + the engine's fan-out), not
 * the CPU/GPU. Each run pairs one sequential and one parallel design back to back (alternating which goes
 * first); the per-run ratio is the parallel level's span over the median single generation of the sequential
 * design. Target: the median of those ratios ≤ 1.3.
 * (2) Engine overhead per step (state merge through reducers + edge routing) in the workflow sandbox, as the
 * median of paired differences between a long and a short graph, and the latency of the `graphState` query.
 */
import { designStatusQuery, graphResumeSignal, graphStateQuery } from '../contracts/definitions';
import type { DesignStatus } from '../contracts/design';
import { createDesignActivities } from '../activities/design';
import { createTerraformActivities } from '../activities/terraform';
import type { FakeRequest } from '../test/helpers/fake-ollama';
import {
  measurePaired,
  percentile,
  round,
  sleep,
  startStack,
  summarize,
  timeMs,
  type Bench,
  type BenchContext,
  type Row,
} from './lib';

const MODEL = 'bench-design:1b';
const RESOURCES = 8;
const GEN_LATENCY_MS = Number(process.env.BENCH_DESIGN_GEN_MS ?? 400);
const QUICK = Boolean(process.env.BENCH_QUICK);
/** Paired sequential + parallel designs; the ratio reported is their median. */
const RUNS = Number(process.env.BENCH_DESIGN_RUNS ?? (QUICK ? 3 : 10));
const STEP_N = 200;
const STEP_RUNS = QUICK ? 3 : 10;
const QUERIES = QUICK ? 20 : 50;
const GOAL_RATIO = 1.3;

const nodeOf = (r: FakeRequest) => /ainode design: (\w+)/.exec(r.messages[0]?.content ?? '')?.[1] ?? '';

function plan(chained: boolean) {
  return {
    resources: Array.from({ length: RESOURCES }, (_, i) => ({
      id: `b${i}`,
      type: 'aws_s3_bucket',
      name: `b${i}`,
      dependsOn: chained && i > 0 ? [`b${i - 1}`] : [],
      requirements: 'a bucket',
    })),
  };
}

/** Generate steps of a finished design: span of the phase, and the median single step. */
function generatePhase(status: DesignStatus, steps: { node: string; startedAt: number; durationMs: number }[]) {
  const gen = steps.filter((s) => s.node === 'generate');
  if (gen.length !== RESOURCES)
    throw new Error(`design ${status.designId} (${status.phase}): ${gen.length} generate steps, not ${RESOURCES}`);
  const start = Math.min(...gen.map((s) => s.startedAt));
  const end = Math.max(...gen.map((s) => s.startedAt + s.durationMs));
  return {
    spanMs: end - start,
    medianMs: percentile(
      gen.map((s) => s.durationMs),
      50,
    ),
  };
}

export const bench: Bench = {
  name: 'design',
  async run(ctx: BenchContext): Promise<Row[]> {
    let chained = false;
    const stack = await startStack(ctx, {
      llm: 'fake',
      fake: {
        model: MODEL,
        slots: RESOURCES,
        script: async (req) => {
          const node = nodeOf(req);
          if (node === 'route') return JSON.stringify({ category: 'infrastructure', reply: '' });
          if (node === 'gather') return JSON.stringify({ requirements: { region: 'eu-west-1' }, questions: [] });
          if (node === 'plan') return JSON.stringify(plan(chained));
          if (node === 'generate') {
            await sleep(GEN_LATENCY_MS);
            return JSON.stringify({ attributes: { bucket: 'bench' } });
          }
          return '{}';
        },
      },
      workflows: {
        path: require.resolve('./design-bench-workflows'),
        activities: ({ storage }) => ({
          ...createTerraformActivities({ terraformBin: null }),
          ...createDesignActivities({ storage }),
        }),
      },
      config: { S3_BUCKET: `bench-design-${Date.now()}` },
    });
    const { client, taskQueue } = stack;
    const rows: Row[] = [];
    try {
      let seq = 0;
      const runDesign = async (chain: boolean) => {
        chained = chain;
        const designId = `bench-design-${chain ? 'seq' : 'par'}-${Date.now()}-${seq++}`;
        const handle = await client.workflow.start('infraDesignWorkflow', {
          taskQueue,
          workflowId: designId,
          args: [{ designId, request: '8 buckets', model: MODEL, followUpWindow: '1 second' }],
        });
        await handle.result();
        const snap = await handle.query(graphStateQuery);
        return generatePhase(await handle.query(designStatusQuery), snap.steps);
      };
      await runDesign(false); // warm-up: bundles loaded, connections open
      // Per run: the sequential design gives the single-generation time (median of its 8 steps) and the
      // sequential span, the parallel design the span of its one level; the two alternate which goes first.
      const seqSpans: number[] = [];
      const designs = await measurePaired({
        n: RUNS,
        signal: ctx.signal,
        baseline: async () => {
          const d = await runDesign(true);
          seqSpans.push(d.spanMs);
          return d.medianMs;
        },
        subject: async () => (await runDesign(false)).spanMs,
      });
      const parSpans = designs.subject;
      const r = percentile(designs.ratios, 50);
      const seqRatios = seqSpans.map((span, i) => span / parSpans[i]!);
      const range = (xs: number[]) => `${round(Math.min(...xs))}–${round(Math.max(...xs))}`;
      ctx.log(
        `design: ${RUNS} paired runs, parallel / single generation: ${designs.ratios.map((x) => round(x)).join(' ')}`,
      );
      rows.push(
        {
          bench: 'design',
          metric: `generate ${RESOURCES} independent resources (parallel level) p50`,
          value: round(percentile(parSpans, 50)),
          unit: 'ms',
          baseline: round(percentile(designs.baseline, 50)),
          ratio: round(r),
          goal: `≤ ${GOAL_RATIO} × a single generation (median of per-run ratios)`,
          pass: r <= GOAL_RATIO,
          note: `n=${RUNS} paired runs, ratios ${range(designs.ratios)}; baseline: median generate step of the sequential design in the same run; scripted node, ${GEN_LATENCY_MS} ms per generation, ${RESOURCES} slots`,
        },
        {
          bench: 'design',
          metric: `generate ${RESOURCES} chained resources (sequential levels) p50`,
          value: round(percentile(seqSpans, 50)),
          unit: 'ms',
          baseline: round(percentile(parSpans, 50)),
          ratio: round(percentile(seqRatios, 50)),
          note: `the same workflow with each resource depending on the previous one; ratio: median of ${RUNS} per-run ratios (${range(seqRatios)})`,
        },
      );

      // Engine overhead: a graph of trivial nodes (no activities), long vs short, paired and alternating.
      let wf = 0;
      const routing = (limit: number) =>
        timeMs(() =>
          client.workflow.execute('graphRoutingWorkflow', {
            taskQueue,
            workflowId: `bench-graph-${limit}-${Date.now()}-${wf++}`,
            args: [limit, STEP_N + 10],
          }),
        );
      const graphs = await measurePaired({
        n: STEP_RUNS,
        warmup: 1,
        signal: ctx.signal,
        baseline: () => routing(1),
        subject: () => routing(STEP_N / 2),
      });
      const perStep = percentile(graphs.added, 50) / (STEP_N - 2);
      rows.push({
        bench: 'design',
        metric: 'engine overhead per step (state merge + routing, in the sandbox)',
        value: round(perStep, 3),
        unit: 'ms',
        note: `median of ${STEP_RUNS} paired differences, ${STEP_N}-step graph − 2-step graph, ÷ ${STEP_N - 2}; end to end on the dev server`,
      });

      // Query latency while a graph waits on an interrupt.
      const waiting = await client.workflow.start('graphInterruptWorkflow', {
        taskQueue,
        workflowId: `bench-interrupt-${Date.now()}`,
        args: [{ timeout: '10 minutes' }],
      });
      while ((await waiting.query(graphStateQuery)).status !== 'interrupted') await sleep(20);
      const times: number[] = [];
      for (let i = 0; i < QUERIES; i++) times.push(await timeMs(() => waiting.query(graphStateQuery)));
      await waiting.signal(graphResumeSignal, 'done');
      await waiting.result();
      const q = summarize(times);
      rows.push({
        bench: 'design',
        metric: 'graphState query p50',
        value: round(q.p50),
        unit: 'ms',
        note: `p95 ${round(q.p95)} ms, n=${q.n}`,
      });
      return rows;
    } finally {
      await stack.stop();
    }
  },
};
