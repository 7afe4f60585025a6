/**
 * The Temporal floor on this machine, on the same dev server the other benches use: a workflow with no
 * activity against the same workflow with one no-op activity, and a bare 300 ms `setTimeout` against a workflow
 * that sleeps a 300 ms timer. Every ainode path (prompt, job LLM call, chat reply) pays at least one activity
 * round trip, so the added latencies in the other benches read against it. Each pair runs back to back in
 * alternating order; the added figures are per-iteration differences. Also the same empty workflow in the
 * production bundle (workflows/index.ts, with tracing's workflow interceptors, as scripts/bundle-workflows.ts builds it)
 * against the one-file floor bundle: what our own modules cost every new run.
 */
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../lib/telemetry/tracing';
import { measurePaired, pairedRows, SILENT_LOGGER, sleep, startStack, timeMs, type Bench } from './lib';

const N = Number(process.env.BENCH_FLOOR_N ?? (process.env.BENCH_QUICK ? 10 : 60));
const WARMUP = 3;
const TIMER_MS = 300;

export const bench: Bench = {
  name: 'temporal-floor',
  async run(ctx) {
    const productionQueue = `bench-floor-production-${Date.now().toString(36)}`;
    const stack = await startStack(ctx, {
      workflows: { path: require.resolve('./floor-workflows'), activities: { floorNoop: async () => 1 } },
      workers: async ({ connection }) => [
        await Worker.create({
          connection,
          taskQueue: productionQueue,
          workflowBundle: await bundleWorkflowCode({
            workflowsPath: require.resolve('./floor-workflows-production'),
            workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
            logger: SILENT_LOGGER,
          }),
        }),
      ],
    });
    try {
      let seq = 0;
      const workflow = (type: string, args: unknown[] = [], taskQueue = stack.taskQueue) =>
        timeMs(() =>
          stack.client.workflow.execute(type, {
            taskQueue,
            workflowId: `${stack.taskQueue}-${type}-${seq++}`,
            args,
          }),
        );
      const activity = await measurePaired({
        n: N,
        warmup: WARMUP, // the first runs warm up the worker and caches
        signal: ctx.signal,
        baseline: () => workflow('floorEmpty'),
        subject: () => workflow('floorOneActivity'),
      });
      const bundle = await measurePaired({
        n: N,
        warmup: WARMUP,
        signal: ctx.signal,
        baseline: () => workflow('floorEmpty'),
        subject: () => workflow('floorEmpty', [], productionQueue),
      });
      const timer = await measurePaired({
        n: N,
        warmup: WARMUP,
        signal: ctx.signal,
        baseline: () => timeMs(() => sleep(TIMER_MS)),
        subject: () => workflow('floorTimer', [TIMER_MS]),
      });
      return [
        ...pairedRows(
          'temporal-floor',
          activity,
          { baseline: 'workflow, no activity', subject: 'workflow + one no-op activity' },
          { note: 'what one activity round trip costs here' },
        ),
        ...pairedRows(
          'temporal-floor',
          bundle,
          { baseline: 'workflow, no activity', subject: 'same workflow in the production bundle' },
          { note: 'what our workflow modules cost each new run (evaluated again per run); zod kept out' },
        ),
        ...pairedRows(
          'temporal-floor',
          timer,
          { baseline: `bare setTimeout ${TIMER_MS} ms`, subject: `workflow + one ${TIMER_MS} ms timer` },
          {
            note:
              'includes the workflow round trip (row "no activity"); history.timerProcessorMaxTimeShift ' +
              '(temporal-config) bounds how late a timer fires',
          },
        ),
      ];
    } finally {
      await stack.stop();
    }
  },
};
