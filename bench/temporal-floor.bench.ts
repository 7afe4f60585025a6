/**
 * The Temporal floor on this machine: a workflow with no activity, with one no-op activity, and with one
 * 300 ms timer, on the same dev server the other benches use. Every ainode path (prompt, job LLM call, chat
 * reply) pays at least one activity round trip, so the added latencies in the other benches read against it.
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { round, summarize, type Bench, type Row } from './lib';

const N = Number(process.env.BENCH_FLOOR_N ?? 30);
const TIMER_MS = 300;

export const bench: Bench = {
  name: 'temporal-floor',
  async run(ctx) {
    try {
      Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
    } catch {
      // installed by an earlier bench in this process
    }
    const taskQueue = `floor-${Date.now()}`;
    const connection = await NativeConnection.connect({ address: ctx.temporalAddress });
    const clientConnection = await Connection.connect({ address: ctx.temporalAddress });
    const client = new Client({ connection: clientConnection });
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowsPath: require.resolve('./floor-workflows'),
      activities: { floorNoop: async () => 1 },
    });
    const running = worker.run();
    const rows: Row[] = [];
    try {
      const time = async (type: string, args: unknown[]) => {
        const ms: number[] = [];
        for (let i = 0; i < N + 3 && !ctx.signal.aborted; i++) {
          const t0 = performance.now();
          await client.workflow.execute(type, { taskQueue, workflowId: `${taskQueue}-${type}-${i}`, args });
          if (i >= 3) ms.push(performance.now() - t0); // the first runs warm up the worker and caches
        }
        return summarize(ms);
      };
      const empty = await time('floorEmpty', []);
      const one = await time('floorOneActivity', []);
      const timer = await time('floorTimer', [TIMER_MS]);
      rows.push(
        {
          bench: 'temporal-floor',
          metric: `workflow, no activity p50 (n=${N})`,
          value: round(empty.p50, 1),
          unit: 'ms',
        },
        {
          bench: 'temporal-floor',
          metric: 'workflow + one no-op activity p50',
          value: round(one.p50, 1),
          unit: 'ms',
          baseline: round(empty.p50, 1),
          note: `p95 ${round(one.p95, 1)} ms: one activity round trip costs ${round(one.p50 - empty.p50, 1)} ms here`,
        },
        {
          bench: 'temporal-floor',
          metric: `workflow + one ${TIMER_MS} ms timer p50`,
          value: round(timer.p50, 1),
          unit: 'ms',
          baseline: TIMER_MS,
          note: 'history.timerProcessorMaxTimeShift (temporal-config) bounds how late a timer fires',
        },
      );
    } finally {
      worker.shutdown();
      await running;
      await clientConnection.close();
      await connection.close();
    }
    return rows;
  },
};
