/**
 * `?waitMs=` on status routes: hold the request on Temporal's own result long poll, bounded by a timer, instead
 * of clients polling (each poll costs the API, Temporal and, on a small machine, the model CPU time).
 */
import { z } from 'zod';
import type { WorkflowHandle } from '@temporalio/client';

/** The query of a status route that can wait: `waitMs` in 0..60000 (0 = answer at once). */
export const WaitQuerySchema = z.object({ waitMs: z.coerce.number().int().min(0).max(60_000).default(0) }).strict();

/** How a wait ended: the workflow's outcome when it closed in time (so the caller need not fetch it again). */
export type CloseOutcome<R> = { closed: true; result: R } | { closed: true; error: unknown } | { closed: false };

/**
 * Resolves when the workflow closes (however it ends) or after `waitMs`, whichever comes first. When it closed,
 * the outcome is the one the long poll already read: a route answers from it instead of reading the history again.
 */
export async function waitForClose<R>(handle: WorkflowHandle, waitMs: number): Promise<CloseOutcome<R>> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    handle.result().then(
      (result: unknown): CloseOutcome<R> => ({ closed: true, result: result as R }),
      (error: unknown): CloseOutcome<R> => ({ closed: true, error }),
    ),
    new Promise<CloseOutcome<R>>((resolve) => (timer = setTimeout(() => resolve({ closed: false }), waitMs))),
  ]);
  clearTimeout(timer);
  return outcome;
}
