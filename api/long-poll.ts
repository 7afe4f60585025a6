/**
 * `?waitMs=` on status routes: hold the request on Temporal's own result long poll, bounded by a timer, instead
 * of clients polling (each poll costs the API, Temporal and, on a small machine, the model CPU time).
 */
import { z } from 'zod';
import type { WorkflowHandle } from '@temporalio/client';

/** The query of a status route that can wait: `waitMs` in 0..60000 (0 = answer at once). */
export const WaitQuerySchema = z.object({ waitMs: z.coerce.number().int().min(0).max(60_000).default(0) }).strict();

/** Resolves when the workflow closes (however it ends) or after `waitMs`, whichever comes first. */
export async function waitForClose(handle: WorkflowHandle, waitMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    handle.result().catch(() => undefined), // failures are reported by the route from the workflow's state
    new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs))),
  ]);
  clearTimeout(timer);
}
