/**
 * Agent graphs. (1) Parallel generation: infraDesignWorkflow with a plan of 8 independent resources (one
 * level, 8 concurrent `generate` activities) against the same workflow with the 8 resources chained (8 levels,
 * strictly sequential), on an llm worker with 8 slots. The node is a scripted Ollama with a fixed latency per
 * generation, so the number measures the orchestration's parallelism (Temporal + the engine's fan-out), not
 * the CPU/GPU. Target: the parallel level takes ≤ 1.3 × the slowest single generation of the sequential run.
 * (2) Engine overhead per step (state merge through reducers + edge routing) in the workflow sandbox, and the
 * latency of the `graphState` query.
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Ollama } from 'ollama';
import { createLlmActivities } from '../activities/llm';
import { createDesignActivities } from '../activities/design';
import { createStorage, ensureStorage } from '../lib/storage/clients';
import { createTerraformActivities } from '../activities/terraform';
import { llmQueue } from '../common/task-queues';
import { designStatusQuery, graphResumeSignal, graphStateQuery } from '../contracts/definitions';
import type { DesignStatus } from '../contracts/design';
import { startFakeOllama, type FakeRequest } from '../test/helpers/fake-ollama';
import { round, summarize, timeMs, type Bench, type BenchContext, type Row } from './lib';

const MODEL = 'bench-design:1b';
const RESOURCES = 8;
const GEN_LATENCY_MS = Number(process.env.BENCH_DESIGN_GEN_MS ?? 400);
const STEP_N = 200;
const QUERIES = 50;

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

/** Generate steps of a finished design: span of the phase, and the slowest single step. */
function generatePhase(status: DesignStatus, steps: { node: string; startedAt: number; durationMs: number }[]) {
  const gen = steps.filter((s) => s.node === 'generate');
  const start = Math.min(...gen.map((s) => s.startedAt));
  const end = Math.max(...gen.map((s) => s.startedAt + s.durationMs));
  return { count: gen.length, spanMs: end - start, slowestMs: Math.max(...gen.map((s) => s.durationMs)), status };
}

export const bench: Bench = {
  name: 'design',
  async run(ctx: BenchContext): Promise<Row[]> {
    try {
      Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
    } catch {
      // installed by an earlier bench in this process
    }
    let chained = false;
    const fake = await startFakeOllama({
      models: [MODEL],
      script: async (req) => {
        const node = nodeOf(req);
        if (node === 'route') return JSON.stringify({ category: 'infrastructure', reply: '' });
        if (node === 'gather') return JSON.stringify({ requirements: { region: 'eu-west-1' }, questions: [] });
        if (node === 'plan') return JSON.stringify(plan(chained));
        if (node === 'generate') {
          await new Promise((r) => setTimeout(r, GEN_LATENCY_MS));
          return JSON.stringify({ attributes: { bucket: 'bench' } });
        }
        return '{}';
      },
    });
    const storage = createStorage({ ...ctx.config, S3_BUCKET: `bench-design-${Date.now()}` });
    await ensureStorage(storage);
    const workerConnection = await NativeConnection.connect({ address: ctx.temporalAddress });
    const connection = await Connection.connect({ address: ctx.temporalAddress });
    const client = new Client({ connection });
    const taskQueue = `bench-design-${Date.now()}`;
    const quiet = {
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
    };
    const workers = [
      await Worker.create({
        connection: workerConnection,
        taskQueue: llmQueue(MODEL),
        maxConcurrentActivityTaskExecutions: RESOURCES,
        activities: createLlmActivities({
          ollama: new Ollama({ host: fake.url }),
          nodeId: 'bench',
          numCtx: 2048,
          callTimeoutMs: 60_000,
        }),
      }),
      await Worker.create({
        connection: workerConnection,
        taskQueue,
        workflowBundle: await bundleWorkflowCode({
          workflowsPath: require.resolve('./design-bench-workflows'),
          logger: { ...quiet, log: () => undefined },
        }),
        activities: { ...createTerraformActivities({ terraformBin: null }), ...createDesignActivities({ storage }) },
      }),
    ];
    const running = Promise.all(workers.map((w) => w.run()));
    const rows: Row[] = [];
    try {
      const runDesign = async (chain: boolean) => {
        chained = chain;
        const designId = `bench-design-${chain ? 'seq' : 'par'}-${Date.now()}`;
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
      const seq = await runDesign(true);
      const par = await runDesign(false);
      ctx.log(`design: sequential ${seq.spanMs} ms (${seq.count} steps), parallel ${par.spanMs} ms`);
      const r = par.spanMs / seq.slowestMs;
      rows.push(
        {
          bench: 'design',
          metric: `generate ${RESOURCES} independent resources (parallel level)`,
          value: par.spanMs,
          unit: 'ms',
          baseline: seq.slowestMs,
          ratio: round(r),
          goal: '≤ 1.3 × the slowest single generation',
          pass: r <= 1.3,
          note: `scripted node, ${GEN_LATENCY_MS} ms per generation, 8 slots`,
        },
        {
          bench: 'design',
          metric: `generate ${RESOURCES} chained resources (sequential levels)`,
          value: seq.spanMs,
          unit: 'ms',
          baseline: par.spanMs,
          ratio: round(seq.spanMs / par.spanMs),
          note: 'the same workflow with each resource depending on the previous one',
        },
      );

      // Engine overhead: a graph of trivial nodes (no activities) — total time per step beyond a 2-step graph.
      const routing = async (limit: number) =>
        timeMs(() =>
          client.workflow.execute('graphRoutingWorkflow', {
            taskQueue,
            workflowId: `bench-graph-${limit}-${Date.now()}`,
            args: [limit, STEP_N + 10],
          }),
        );
      await routing(1);
      const small = await routing(1);
      const big = await routing(STEP_N / 2);
      const perStep = (big - small) / (STEP_N - 2);
      rows.push({
        bench: 'design',
        metric: 'engine overhead per step (state merge + routing, in the sandbox)',
        value: round(perStep, 3),
        unit: 'ms',
        note: `${STEP_N}-step graph vs a 2-step one, end to end on the dev server`,
      });

      // Query latency while a graph waits on an interrupt.
      const waiting = await client.workflow.start('graphInterruptWorkflow', {
        taskQueue,
        workflowId: `bench-interrupt-${Date.now()}`,
        args: [{ timeout: '10 minutes' }],
      });
      while ((await waiting.query(graphStateQuery)).status !== 'interrupted')
        await new Promise((r) => setTimeout(r, 20));
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
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running.catch(() => undefined);
      await connection.close();
      await workerConnection.close();
      await fake.close();
      storage.close();
    }
  },
};
