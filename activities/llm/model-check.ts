/**
 * `assertModelServed`: a workflow that names a model fails fast instead of waiting on a queue nobody polls:
 * non-retryable ModelNotFound when no node lists it, non-retryable ModelUnavailable when nodes list it but no
 * reachable node or no llm worker serves it (e.g. created on a node after its worker last read the node's tags).
 * Run as a local activity on the orchestrator, so it costs no extra task round trip; the catalog caches node
 * answers for a second. The check itself is lib/llm/model-check.ts, shared with the API.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { pollerCounts, type ModelCatalog } from '../../lib/llm/catalog';
import { checkModel } from '../../lib/llm/model-check';

/** The Worker's client from the activity context, or undefined (e.g. a MockActivityEnvironment without one). */
function activityClient(): Client | undefined {
  try {
    return Context.current().client;
  } catch {
    return undefined;
  }
}

export function createModelCheckActivities(deps: { catalog: ModelCatalog }) {
  return {
    async assertModelServed(model: string): Promise<void> {
      // A catalog without a Temporal client (the orchestrator's) cannot count pollers: ask with the Worker's.
      const client = activityClient();
      const countPollers = client
        ? async (queue: string) => (await pollerCounts(client, Context.current().info.namespace, [queue])).get(queue)
        : undefined;
      const check = await checkModel(await deps.catalog.get(), model, { countPollers });
      if (check.ok) return;
      // Non-retryable, both: a workflow must not wait forever on a queue nobody polls; the caller may retry later.
      throw ApplicationFailure.create({ type: check.type, nonRetryable: true, message: check.message });
    },
  };
}

export type ModelCheckActivities = ReturnType<typeof createModelCheckActivities>;
