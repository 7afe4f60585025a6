/**
 * What routes that start and read workflows share: the Temporal Web UI link of a run, the 202 bodies
 * (`running` with statusUrl, and webUiUrl for operators only; `cancelling`) and the tenant-checked handle of a workflow.
 */
import type { Request } from 'express';
import { z } from 'zod';
import {
  isGrpcCancelledError,
  isGrpcDeadlineError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
  type Workflow,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import type { Config } from '../common/config';
import { HttpError } from '../common/errors';
import { assertTenant, isOperator } from './middleware/auth';

/** The run's page in the Temporal Web UI. */
export function webUiUrl(config: Pick<Config, 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>, workflowId: string): string {
  const ns = encodeURIComponent(config.TEMPORAL_NAMESPACE);
  return `${config.TEMPORAL_UI_URL}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`;
}

/** `{ webUiUrl }` for an operator's request (X-Operator-Key), else nothing: tenants are not sent to the Web UI. */
export function webUiLink(
  config: Pick<Config, 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE' | 'OPERATOR_API_KEYS'>,
  req: Request | undefined,
  workflowId: string,
): { webUiUrl?: string } {
  return req && isOperator(req, config.OPERATOR_API_KEYS) ? { webUiUrl: webUiUrl(config, workflowId) } : {};
}

export const AcceptedSchema = z.object({
  id: z.string(),
  status: z.literal('running'),
  statusUrl: z.string(),
  webUiUrl: z.string().optional().describe('The run in the Temporal Web UI: only for operators (X-Operator-Key)'),
});
export const CancellingSchema = z.object({ id: z.string(), status: z.literal('cancelling') });

/** The 202 body of a started workflow whose status is `GET /<collection>/:id`. */
export function acceptedBody(
  config: Pick<Config, 'API_PUBLIC_URL' | 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE' | 'OPERATOR_API_KEYS'>,
  collection: string,
  id: string,
  req?: Request,
): z.infer<typeof AcceptedSchema> {
  return {
    id,
    status: 'running',
    statusUrl: `${config.API_PUBLIC_URL}/${collection}/${id}`,
    ...webUiLink(config, req, id),
  };
}

/**
 * The workflow's handle and description, after the tenant check: a workflow started for another tenant (its
 * memo's `tenant`) is a 404 like a missing one; an unknown id is a 404 from the error middleware.
 */
export async function ownedWorkflow<T extends Workflow = Workflow>(
  temporal: Client,
  req: Request,
  id: string,
  what: string,
): Promise<{ handle: WorkflowHandle<T>; desc: WorkflowExecutionDescription }> {
  const handle = temporal.workflow.getHandle<T>(id);
  const desc = await handle.describe();
  assertTenant(typeof desc.memo?.tenant === 'string' ? desc.memo.tenant : undefined, req, what);
  return { handle, desc };
}

/**
 * A query or Update to a running workflow, which only a worker can answer, bounded by WORKFLOW_QUERY_TIMEOUT_MS.
 * No answer in time (its workers are down or overloaded) is a 503 `workers_unavailable` with Retry-After, at
 * once: nothing is lost (the workflow's state is in Temporal and it continues when a worker polls again), and
 * the client is not held for the server's own ~30 s query timeout, after which it used to get a 500.
 */
export async function askWorkflow<R>(
  temporal: Client,
  config: Pick<Config, 'WORKFLOW_QUERY_TIMEOUT_MS'>,
  what: string,
  ask: () => Promise<R>,
): Promise<R> {
  try {
    return await temporal.withDeadline(Date.now() + config.WORKFLOW_QUERY_TIMEOUT_MS, ask);
  } catch (err) {
    // At the deadline the client may end the call as CANCELLED rather than DEADLINE_EXCEEDED (seen under load):
    // nothing else cancels these calls, so both mean no worker answered in time.
    if (
      isGrpcDeadlineError(err) ||
      isGrpcCancelledError(err) ||
      err instanceof WorkflowUpdateRPCTimeoutOrCancelledError
    ) {
      throw workersUnavailable(config, what);
    }
    throw err;
  }
}

export function workersUnavailable(config: Pick<Config, 'WORKFLOW_QUERY_TIMEOUT_MS'>, what: string): HttpError {
  const seconds = Math.round(config.WORKFLOW_QUERY_TIMEOUT_MS / 100) / 10;
  return new HttpError(
    503,
    'workers_unavailable',
    `${what} is running, but no worker answered within ${seconds} s: its workers are down or busy. Nothing is lost; ` +
      'it continues when they poll again. Retry later',
    undefined,
    { 'Retry-After': '5' },
  );
}
