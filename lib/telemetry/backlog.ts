/**
 * Task queue backlog and pollers for `ainode_task_queue_backlog` / `ainode_task_queue_pollers`, from
 * DescribeTaskQueue with report_stats: the orchestrator queue's workflow tasks, every other queue's activity tasks
 * (the llm calls waiting for a slot, the jobs waiting for an executor).
 */
import type { Client } from '@temporalio/client';
import { ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import { registerQueueBacklog } from './metrics';

const DESCRIBE_TIMEOUT_MS = 2_000;
// Proto enum values (temporal.api.enums.v1), as lib/llm/catalog.ts spells them.
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

export async function describeBacklog(
  client: Pick<Client, 'connection' | 'workflowService'>,
  namespace: string,
  queue: string,
): Promise<{ backlog: number; pollers: number } | undefined> {
  const type = queue === ORCHESTRATOR_QUEUE ? TASK_QUEUE_TYPE_WORKFLOW : TASK_QUEUE_TYPE_ACTIVITY;
  const res = await client.connection.withDeadline(Date.now() + DESCRIBE_TIMEOUT_MS, () =>
    client.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: queue, kind: TASK_QUEUE_KIND_NORMAL },
      taskQueueType: type,
      reportStats: true,
    }),
  );
  return { backlog: Number(res.stats?.approximateBacklogCount ?? 0), pollers: res.pollers?.length ?? 0 };
}

/** Registers the backlog gauges of `queues()` (read on each scrape) over this client. */
export function registerBacklogMetrics(
  client: Pick<Client, 'connection' | 'workflowService'>,
  namespace: string,
  queues: () => Promise<string[]> | string[],
): void {
  registerQueueBacklog({ queues, describe: (q) => describeBacklog(client, namespace, q) });
}
