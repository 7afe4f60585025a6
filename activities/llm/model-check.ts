/**
 * `assertModelServed`: a workflow that names a model fails fast instead of waiting on a queue nobody polls:
 * non-retryable ModelNotFound when no node lists it, non-retryable ModelUnavailable when nodes list it but no
 * reachable node or no llm worker serves it (e.g. created on a node after its worker last read the node's tags).
 * Run as a local activity on the orchestrator, so it costs no extra task round trip; the catalog caches node
 * answers for a second.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ErrorType } from '../../common/errors';
import { findModel, pollerCounts, type ModelCatalog } from '../../lib/llm/catalog';

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
      const catalog = await deps.catalog.get();
      const entry = findModel(catalog, model);
      if (!entry) {
        const served = catalog.models.filter((m) => m.available).map((m) => m.name);
        throw ApplicationFailure.create({
          type: ErrorType.ModelNotFound,
          nonRetryable: true,
          message: `model "${model}" is not served by any available node (served: ${served.join(', ') || 'none'})`,
        });
      }
      let reason = entry.unavailableReason;
      // A catalog without a Temporal client (the orchestrator's) cannot count pollers: ask with the Worker's.
      const client = entry.available && entry.pollers === undefined ? activityClient() : undefined;
      if (client) {
        const counts = await pollerCounts(client, Context.current().info.namespace, [entry.queue]);
        if (counts.get(entry.queue) === 0) reason = `no llm worker polls ${entry.queue}`;
      }
      if (!reason) return;
      // Non-retryable: a workflow must not wait forever on a queue nobody polls; the caller may retry later.
      throw ApplicationFailure.create({
        type: ErrorType.ModelUnavailable,
        nonRetryable: true,
        message: `model "${entry.name}" is listed by a node but unavailable: ${reason}`,
      });
    },
  };
}

export type ModelCheckActivities = ReturnType<typeof createModelCheckActivities>;
