/**
 * The one check the API makes before starting work for a model: 400 `model_not_found` when no node lists it
 * (the message names the models that are served), 503 `model_unavailable` with Retry-After when a node lists it
 * but it cannot run now (its nodes are down, or no llm worker polls its queue yet).
 */
import { findModel, type CatalogModel, type ModelCatalog } from '../lib/llm/catalog';
import { ErrorType } from '../common/errors';
import { typedHttpError } from './middleware/errors';

/**
 * Resolves to the catalog entry of `modelId` when it is available; throws an HttpError otherwise.
 * `gemma3` means `gemma3:latest`.
 */
export async function requireModel(catalog: ModelCatalog, modelId: string): Promise<CatalogModel> {
  const current = await catalog.get();
  const entry = findModel(current, modelId);
  if (!entry) {
    const served = current.models.filter((m) => m.available).map((m) => m.name);
    throw typedHttpError(
      ErrorType.ModelNotFound,
      `No node serves model "${modelId}" (served: ${served.join(', ') || 'none'}; see GET /models)`,
      { model: modelId, served },
    );
  }
  if (!entry.available) {
    throw typedHttpError(
      ErrorType.ModelUnavailable,
      `Model "${entry.name}" is unavailable right now: ${entry.unavailableReason ?? 'unknown reason'}; retry later (see GET /models)`,
      { model: entry.name, reason: entry.unavailableReason },
    );
  }
  return entry;
}
