/**
 * The one answer to "can work for this model start now, and if not, which error?". The API turns a problem
 * into 400 `model_not_found` / 503 `model_unavailable` (api/model-check.ts); the orchestrator's
 * `assertModelServed` activity into a non-retryable ApplicationFailure of the same type; the catalog's
 * `hasModel` is `ok`.
 */
import { ErrorType } from '../../common/errors';
import { normalizeModel } from '../../common/task-queues';
import type { Catalog, CatalogModel } from './catalog';

/** Why work for a model cannot start: no node lists it, or it is listed but cannot run now. */
export type ModelProblem =
  | { type: typeof ErrorType.ModelNotFound; model: string; served: string[]; message: string }
  | { type: typeof ErrorType.ModelUnavailable; model: string; reason: string; message: string };

export type ModelCheck = { ok: true; entry: CatalogModel } | ({ ok: false } & ModelProblem);

export interface ModelCheckOptions {
  /**
   * Pollers on the model's queue when the catalog could not count them (a catalog without a Temporal client);
   * undefined when unknown. Only 0 makes an otherwise available model unavailable.
   */
  countPollers?: (queue: string) => Promise<number | undefined>;
  /** Where a client can look next, appended to the message (the API says `GET /models`). */
  seeAlso?: string;
}

/** The catalog's entry for `model` (`gemma3` means `gemma3:latest`), available or not; undefined if no node lists it. */
export function findModel(catalog: Catalog, model: string): CatalogModel | undefined {
  const name = normalizeModel(model);
  return catalog.models.find((m) => m.name === name);
}

/** Checks `model` against one catalog answer. */
export async function checkModel(
  catalog: Catalog,
  model: string,
  options: ModelCheckOptions = {},
): Promise<ModelCheck> {
  const { seeAlso } = options;
  const entry = findModel(catalog, model);
  if (!entry) {
    const served = catalog.models.filter((m) => m.available).map((m) => m.name);
    const list = served.join(', ') || 'none';
    return {
      ok: false,
      type: ErrorType.ModelNotFound,
      model,
      served,
      message: `No node serves model "${model}" (served: ${list}${seeAlso ? `; see ${seeAlso}` : ''})`,
    };
  }
  let reason = entry.unavailableReason;
  if (!reason && entry.pollers === undefined && options.countPollers) {
    if ((await options.countPollers(entry.queue)) === 0) reason = `no llm worker polls ${entry.queue}`;
  }
  if (!entry.available && !reason) reason = 'unknown reason';
  if (!reason) return { ok: true, entry };
  return {
    ok: false,
    type: ErrorType.ModelUnavailable,
    model: entry.name,
    reason,
    message: `Model "${entry.name}" is unavailable right now: ${reason}; retry later${seeAlso ? ` (see ${seeAlso})` : ''}`,
  };
}
