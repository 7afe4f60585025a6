/**
 * The one check the API makes before starting work for a model: 400 `model_not_found` when no node lists it
 * (the message names the models that are served), 503 `model_unavailable` with Retry-After when a node lists it
 * but it cannot run now (its nodes are down, or no llm worker polls its queue yet). The check itself is
 * lib/llm/model-check.ts, shared with the workflows' assertModelServed.
 */
import type { CatalogModel, ModelCatalog } from '../lib/llm/catalog';
import { checkModel } from '../lib/llm/model-check';
import { ErrorType } from '../common/errors';
import { typedHttpError } from './middleware/errors';

/**
 * Resolves to the catalog entry of `modelId` when it is available; throws an HttpError otherwise.
 * `gemma3` means `gemma3:latest`.
 */
export async function requireModel(catalog: ModelCatalog, modelId: string): Promise<CatalogModel> {
  const check = await checkModel(await catalog.get(), modelId, { seeAlso: 'GET /models' });
  if (check.ok) return check.entry;
  const details =
    check.type === ErrorType.ModelNotFound
      ? { model: check.model, served: check.served }
      : { model: check.model, reason: check.reason };
  throw typedHttpError(check.type, check.message, details);
}
