/**
 * `assertModelServed`: a workflow that names a model no node serves fails fast with a non-retryable
 * ModelNotFound instead of waiting on a queue nobody polls. Run as a local activity on the orchestrator, so
 * it costs no extra task round trip; the catalog caches node answers for a second.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { ErrorType } from '../../common/errors';
import type { ModelCatalog } from './catalog';

export function createModelCheckActivities(deps: { catalog: ModelCatalog }) {
  return {
    async assertModelServed(model: string): Promise<void> {
      if (await deps.catalog.hasModel(model)) return;
      const catalog = await deps.catalog.get();
      const served = catalog.models.filter((m) => m.available).map((m) => m.name);
      throw ApplicationFailure.create({
        type: ErrorType.ModelNotFound,
        nonRetryable: true,
        message: `model "${model}" is not served by any available node (served: ${served.join(', ') || 'none'})`,
      });
    },
  };
}

export type ModelCheckActivities = ReturnType<typeof createModelCheckActivities>;
