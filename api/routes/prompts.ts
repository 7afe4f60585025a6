/**
 * One-shot prompts: `POST /prompts` starts a durable `promptWorkflow` (one llm activity on the model's pinned
 * queue) and answers 202 at once, or with `?waitMs=` 200 and the result when it finishes within that;
 * `GET /prompts/:id` reports its status and result; `POST /prompts/:id/cancel` stops it (and the generation on
 * its node). An `Idempotency-Key` maps to a deterministic workflow id per
 * tenant, so a retried POST returns the same prompt. `options.num_predict` is bounded (LLM_NUM_PREDICT).
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Client, WorkflowExecutionDescription, WorkflowHandle } from '@temporalio/client';
import { HttpError } from '../../common/errors';
import { requireModel } from '../model-check';
import { numPredictProblem } from '../../common/llm-bounds';
import { ChatMessageSchema, LlmOptionsSchema } from '../../contracts/llm';
import { normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import { idempotencyKeyOf, idempotentId, bodyHash } from '../idempotency';
import { acceptedBody, AcceptedSchema, CancellingSchema, ownedWorkflow, webUiLink } from '../workflow-routes';
import { WaitQuerySchema, waitForClose, type CloseOutcome } from '../long-poll';
import { tenantOf } from '../middleware/auth';
import { describeFailure } from '../middleware/errors';
import { registerRoute } from '../openapi';
import type { promptWorkflow } from '../../workflows/prompt-workflow';
import type { PromptWorkflowResult } from '../../contracts/prompt';
import { SearchAttributeKey } from '../../common/search-attributes';

export const PromptBodySchema = z
  .object({
    modelId: z.string().trim().min(1).max(200).describe('A model from GET /models, e.g. gemma3:270m'),
    prompt: z.string().min(1).max(200_000).optional().describe('A single prompt (give this or messages)'),
    messages: z.array(ChatMessageSchema).min(1).max(500).optional().describe('A chat (give this or prompt)'),
    system: z.string().max(200_000).optional().describe('System prompt, with prompt only'),
    options: LlmOptionsSchema.optional(),
    format: z
      .union([z.literal('json'), z.record(z.string(), z.unknown())])
      .optional()
      .describe("'json' or a JSON schema (structured output)"),
  })
  .strict()
  .superRefine((b, ctx) => {
    if ((b.prompt === undefined) === (b.messages === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'give exactly one of prompt or messages' });
    }
    if (b.system !== undefined && b.messages !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['system'], message: 'with messages, put the system prompt in a message' });
    }
  });
export type PromptBody = z.infer<typeof PromptBodySchema>;

const IdParamsSchema = z.object({ id: z.string().regex(/^prompt-[\w-]{1,100}$/, 'not a prompt id') });
const StatusSchema = z.object({
  id: z.string(),
  status: z.enum(['running', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out', 'unknown']),
  modelId: z.string().optional(),
  startedAt: z.string().optional(),
  closedAt: z.string().optional(),
  result: z
    .object({
      content: z.string(),
      model: z.string(),
      nodeId: z.string(),
      usage: z.record(z.string(), z.number()),
      doneReason: z
        .string()
        .optional()
        .describe("'stop'; 'length' (num_predict reached) or 'repetition' (a loop was cut off): cut-off answers"),
    })
    .optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  webUiUrl: z.string().optional().describe('The run in the Temporal Web UI: only for operators (X-Operator-Key)'),
});

registerRoute({
  method: 'post',
  path: '/prompts',
  summary: 'Run one prompt or chat durably on the model’s pinned queue',
  body: PromptBodySchema,
  headers: { 'Idempotency-Key': 'The same key (per tenant) returns the same prompt instead of starting another' },
  query: WaitQuerySchema,
  responses: {
    200: {
      description: 'With waitMs: the prompt finished within it; the same body as GET /prompts/:id (times: GET)',
      body: StatusSchema,
    },
    202: { description: 'Started (and, with waitMs, not finished within it); poll statusUrl', body: AcceptedSchema },
    400: 'Invalid body (options.num_predict above the prompt maximum or unbounded), or no node serves the model (model_not_found)',
    409: 'The Idempotency-Key was used with a different body',
  },
});
registerRoute({
  method: 'get',
  path: '/prompts/:id',
  summary: 'Status and, once completed, the result of a prompt',
  params: IdParamsSchema,
  query: WaitQuerySchema,
  responses: { 200: { description: 'The prompt', body: StatusSchema }, 404: 'No such prompt for this tenant' },
});
registerRoute({
  method: 'post',
  path: '/prompts/:id/cancel',
  summary: 'Cancel a running prompt (its generation on the node is aborted)',
  params: IdParamsSchema,
  responses: {
    202: { description: 'Cancelling; GET /prompts/:id reports cancelled', body: CancellingSchema },
    404: 'No such prompt for this tenant',
    409: 'The prompt already finished',
  },
});

const STATUS: Record<string, z.infer<typeof StatusSchema>['status']> = {
  RUNNING: 'running',
  CONTINUED_AS_NEW: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed_out',
};

export function promptsRouter(deps: ApiDeps): Router {
  const { config, temporal, catalog } = deps;
  const router = Router();

  router.post('/prompts', async (req, res) => {
    const tenant = tenantOf(req);
    const body = parse(PromptBodySchema, req.body, 'body');
    const { waitMs } = parse(WaitQuerySchema, req.query, 'query');
    // The schema (shared with other callers) allows Ollama's whole range; a prompt may not run unbounded.
    const numPredict = numPredictProblem('prompt', body.options?.num_predict, config.LLM_NUM_PREDICT);
    if (numPredict) {
      const field = 'body.options.num_predict';
      throw new HttpError(400, 'invalid_request', `${field}: ${numPredict}`, {
        issues: [{ field, reason: numPredict }],
      });
    }
    const idemKey = idempotencyKeyOf(req);
    const modelId = normalizeModel(body.modelId);
    // Reject before any workflow starts: the workflow would fail fast too, but a 400 is clearer.
    await requireModel(catalog, modelId);
    const requestHash = bodyHash(body);
    const id = idempotentId('prompt', tenant, idemKey);
    try {
      await temporal.workflow.start<typeof promptWorkflow>('promptWorkflow', {
        taskQueue: ORCHESTRATOR_QUEUE,
        workflowId: id,
        // The model was checked just above: the workflow skips its own check (a local activity's round).
        args: [{ ...body, modelId, modelChecked: true }],
        // Same key while running → the running one; after it closed → rejected, and we answer with it below.
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: SearchAttributeKey.Kind, value: 'prompt' },
          { key: SearchAttributeKey.ModelId, value: modelId },
          { key: SearchAttributeKey.TenantId, value: tenant },
        ],
        memo: { tenant, requestHash },
        staticSummary: `prompt on ${modelId} for ${tenant}`,
      });
    } catch (err) {
      if (!(idemKey && err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    if (idemKey) await assertSameRequest(temporal, id, tenant, requestHash);
    // ?waitMs=: one request for the answer. Finished in time → 200 with the result (as GET reports it); else 202.
    if (waitMs > 0) {
      const handle = temporal.workflow.getHandle<typeof promptWorkflow>(id);
      const outcome = await waitForClose<PromptWorkflowResult>(handle, waitMs);
      if (outcome.closed && 'result' in outcome) {
        const out: z.infer<typeof StatusSchema> = {
          id,
          status: 'completed',
          modelId,
          result: resultBody(outcome.result),
          ...webUiLink(config, req, id),
        };
        res.location(`/prompts/${id}`).json(out);
        return;
      }
      if (outcome.closed) {
        // Failed, cancelled, terminated or timed out: which one, and when, is GET's answer.
        res.location(`/prompts/${id}`).json(await promptStatus(handle, id, req, outcome));
        return;
      }
    }
    res
      .status(202)
      .location(`/prompts/${id}`)
      .json(acceptedBody(config, 'prompts', id, req));
  });

  router.get('/prompts/:id', async (req: Request, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { waitMs } = parse(WaitQuerySchema, req.query, 'query');
    const { handle, desc } = await ownedWorkflow<typeof promptWorkflow>(temporal, req, id, 'Prompt');
    let outcome: CloseOutcome<PromptWorkflowResult> = { closed: false };
    if (waitMs > 0 && desc.status.name === 'RUNNING') {
      outcome = await waitForClose<PromptWorkflowResult>(handle, waitMs);
    }
    res.json(await promptStatus(handle, id, req, outcome, outcome.closed ? undefined : desc));
  });

  router.post('/prompts/:id/cancel', async (req: Request, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { handle, desc } = await ownedWorkflow<typeof promptWorkflow>(temporal, req, id, 'Prompt');
    const status = STATUS[desc.status.name] ?? 'unknown';
    if (status !== 'running') throw new HttpError(409, 'conflict', `Prompt ${id} already ${status}`);
    // The workflow cancels its llm activity, whose next heartbeat tells it to abort the Ollama stream.
    await handle.cancel();
    res.status(202).json({ id, status: 'cancelling' });
  });

  /**
   * GET's body: status and times from a description (`desc`, or a fresh one: a wait that saw the close needs the
   * close's time), the result from the long poll's outcome when it has one, else from the history.
   */
  async function promptStatus(
    handle: WorkflowHandle<typeof promptWorkflow>,
    id: string,
    req: Request,
    outcome: CloseOutcome<PromptWorkflowResult>,
    described?: WorkflowExecutionDescription,
  ): Promise<z.infer<typeof StatusSchema>> {
    const desc = described ?? (await handle.describe());
    const status = STATUS[desc.status.name] ?? 'unknown';
    const out: z.infer<typeof StatusSchema> = {
      id,
      status,
      modelId: desc.typedSearchAttributes.get(SearchAttributeKey.ModelId),
      startedAt: desc.startTime.toISOString(),
      ...(desc.closeTime ? { closedAt: desc.closeTime.toISOString() } : {}),
      ...webUiLink(config, req, id),
    };
    if (status !== 'running' && status !== 'unknown') {
      try {
        // The long poll's outcome when it saw the close; else (answered at once) the history's.
        if (outcome.closed && 'error' in outcome) throw outcome.error;
        out.result = resultBody(outcome.closed && 'result' in outcome ? outcome.result : await handle.result());
      } catch (err) {
        out.error = describeFailure(err);
      }
    }
    return out;
  }

  return router;
}

function resultBody(r: PromptWorkflowResult): NonNullable<z.infer<typeof StatusSchema>['result']> {
  return {
    content: r.content,
    model: r.model,
    nodeId: r.nodeId,
    usage: { ...r.usage },
    ...(r.doneReason ? { doneReason: r.doneReason } : {}),
  };
}

/** An Idempotency-Key reused with a different body is a client bug: 409 rather than a silent wrong answer. */
async function assertSameRequest(temporal: Client, id: string, tenant: string, requestHash: string): Promise<void> {
  const desc = await temporal.workflow.getHandle(id).describe();
  if (desc.memo?.tenant !== tenant || desc.memo?.requestHash !== requestHash) {
    throw new HttpError(409, 'idempotency_conflict', 'This Idempotency-Key was already used with a different request');
  }
}
