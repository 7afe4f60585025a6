/**
 * Infrastructure designs: `POST /designs` starts a design workflow (the v2 graph, or v1) and answers 202;
 * the status comes from the workflow's `designStatus` query; answers are a signal with an answerId (202 at once,
 * durable while no worker runs, applied once per id), or with `?wait=true` a Workflow Update that validates and
 * acknowledges them synchronously (409 when nothing waits); `POST /designs/:id/cancel` cancels
 * the workflow (running llm activities learn it from their heartbeats); files stream from S3.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Request } from 'express';
import { z } from 'zod';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowExecutionDescription } from '@temporalio/client';
import { HttpError } from '../../common/errors';
import { requireModel } from '../model-check';
import { idempotencyKeyOf, idempotentId } from '../idempotency';

import { normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import {
  acceptedBody,
  AcceptedSchema,
  askWorkflow,
  CancellingSchema,
  ownedWorkflow,
  webUiLink,
} from '../workflow-routes';
import { tenantOf } from '../middleware/auth';
import { describeFailure } from '../middleware/errors';
import { registerRoute } from '../openapi';
import { designViewsRouter } from './design-views';
import {
  designAnswersSignal,
  designMessageSignal,
  designStatusQuery,
  submitDesignAnswersUpdate,
} from '../../contracts/definitions';
import { designFileKey, type DesignResult, type InfraDesignInput } from '../../contracts/design';
import { SearchAttributeKey } from '../../common/search-attributes';

/** Longest request text; longer is a 413 (the body limit applies on top). */
export const MAX_DESIGN_REQUEST_CHARS = 20_000;

export const DesignBodySchema = z
  .object({
    request: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(MAX_DESIGN_REQUEST_CHARS)
      .describe('The infrastructure, in plain language'),
    modelId: z.string().trim().min(1).max(200).optional().describe('A model from GET /models (default: DEFAULT_MODEL)'),
    graph: z
      .enum(['v2', 'v1'])
      .default('v2')
      .describe('v2: route→gather→plan→generate→combine→fix; v1: consultant→engineer⇄lead'),
    maxFixIterations: z.number().int().min(0).max(5).optional(),
    maxQuestionRounds: z.number().int().min(0).max(10).optional(),
    options: z
      .object({
        num_predict: z.number().int().min(16).max(8192).optional(),
        temperature: z.number().min(0).max(2).optional(),
        seed: z.number().int().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const IdParamsSchema = z.object({ id: z.string().regex(/^design-[\w-]{1,100}$/, 'not a design id') });
const FileParamsSchema = IdParamsSchema.extend({
  name: z.string().regex(/^[\w-]{1,100}\.tf$/, 'not a Terraform file name'),
});
const AnswersSchema = z
  .object({
    answers: z
      .record(z.string().regex(/^[\w-]{1,40}$/, 'not a question id'), z.string().trim().min(1).max(5000))
      .refine((a) => Object.keys(a).length > 0, 'give at least one answer'),
  })
  .strict();
const AnswersQuerySchema = z
  .object({
    wait: z
      .enum(['true', 'false'])
      .optional()
      .transform((w) => w === 'true'),
  })
  .strict();
const MessageSchema = z.object({ message: z.string().trim().min(1).max(MAX_DESIGN_REQUEST_CHARS) }).strict();

/** Phases of a design that has finished and only waits for follow-up messages: nothing to cancel. */
const FINISHED_PHASES = new Set(['completed', 'invalid', 'ended']);

registerRoute({
  method: 'post',
  path: '/designs',
  summary: 'Start an infrastructure design from a plain-language request',
  body: DesignBodySchema,
  responses: {
    202: { description: 'Started; poll statusUrl', body: AcceptedSchema },
    400: 'Invalid body (e.g. an empty request), or no node serves the model',
    413: 'The request text or body is too large',
  },
});
registerRoute({
  method: 'get',
  path: '/designs/:id',
  summary: 'Phase, current node, pending questions, plan, files, validation and usage of a design',
  params: IdParamsSchema,
  responses: { 200: 'The design', 404: 'No such design for this tenant' },
});
registerRoute({
  method: 'post',
  path: '/designs/:id/answers',
  summary:
    'Answer the pending questions: recorded at once (202, applied when a worker runs the design, once per ' +
    'Idempotency-Key); `?wait=true` validates and applies them synchronously (200)',
  params: IdParamsSchema,
  query: AnswersQuerySchema,
  body: AnswersSchema,
  headers: { 'Idempotency-Key': 'The same key (per tenant) is applied once, however often the answers are sent' },
  responses: {
    200: '`?wait=true`: applied (`{id, accepted, round, answerId}`)',
    202: 'Recorded: `{id, answerId, status: "accepted", statusUrl}`; GET /designs/:id lists it in answersApplied',
    400: 'An empty answers object, a malformed question id or answer; with `?wait=true` an unknown question id',
    404: 'No such design',
    409: 'The design is not waiting for answers',
  },
});
registerRoute({
  method: 'post',
  path: '/designs/:id/messages',
  summary: 'A follow-up change: the design is revised from gathering requirements',
  params: IdParamsSchema,
  body: MessageSchema,
  responses: {
    202: 'Queued: `{id, accepted: true}`; GET /designs/:id then shows the next revision',
    400: 'An empty, too long or unknown field in the body, or a malformed id',
    404: 'No such design for this tenant',
    409: 'The design has closed (its follow-up window ended, or it failed or was cancelled)',
  },
});
registerRoute({
  method: 'post',
  path: '/designs/:id/cancel',
  summary: 'Cancel a design that is running or waiting for answers; GET /designs/:id then reports cancelled',
  params: IdParamsSchema,
  responses: {
    202: { description: 'Cancelling', body: CancellingSchema },
    404: 'No such design for this tenant',
    409: 'The design has already closed or finished',
  },
});
registerRoute({
  method: 'get',
  path: '/designs/:id/files/:name',
  summary: 'One generated Terraform file (streamed from S3)',
  params: FileParamsSchema,
  responses: { 200: { description: 'The file', contentType: 'text/plain' }, 404: 'No such design or file' },
});

export function designsRouter(deps: ApiDeps): Router {
  const { config, temporal, catalog, storage } = deps;
  const router = Router();
  const owned = (req: Request, id: string) => ownedWorkflow(temporal, req, id, 'Design');
  const ask = <R>(id: string, fn: () => Promise<R>) => askWorkflow(temporal, config, `Design ${id}`, fn);

  router.post('/designs', async (req, res) => {
    const tenant = tenantOf(req);
    const raw = (req.body ?? {}) as { request?: unknown };
    if (typeof raw.request === 'string' && raw.request.length > MAX_DESIGN_REQUEST_CHARS) {
      throw new HttpError(413, 'payload_too_large', `request exceeds ${MAX_DESIGN_REQUEST_CHARS} characters`);
    }
    const body = parse(DesignBodySchema, req.body, 'body');
    const model = normalizeModel(body.modelId ?? config.DEFAULT_MODEL);
    await requireModel(catalog, model);
    const id = `design-${randomUUID()}`;
    const input: InfraDesignInput = {
      designId: id,
      request: body.request,
      model,
      tenant,
      maxFixIterations: body.maxFixIterations,
      maxQuestionRounds: body.maxQuestionRounds,
      llmOptions: body.options,
    };
    await temporal.workflow.start(body.graph === 'v1' ? 'infraDesignV1Workflow' : 'infraDesignWorkflow', {
      taskQueue: ORCHESTRATOR_QUEUE,
      workflowId: id,
      args: [input],
      typedSearchAttributes: [
        { key: SearchAttributeKey.Kind, value: 'design' },
        { key: SearchAttributeKey.ModelId, value: model },
        { key: SearchAttributeKey.TenantId, value: tenant },
        { key: SearchAttributeKey.WaitingForInput, value: false },
      ],
      memo: { tenant, graph: body.graph },
      staticSummary: `design (${body.graph}) on ${model}: ${body.request.slice(0, 80)}`,
    });
    res
      .status(202)
      .location(`/designs/${id}`)
      .json(acceptedBody(config, 'designs', id, req));
  });

  router.get('/designs/:id', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { handle, desc } = await owned(req, id);
    const base = { id, ...webUiLink(config, req, id), startedAt: desc.startTime.toISOString() };
    if (desc.status.name === 'RUNNING') {
      const status = await ask(id, () => handle.query(designStatusQuery));
      res.json({ ...base, status: 'running', ...status });
      return;
    }
    if (desc.status.name === 'COMPLETED') {
      const result = (await handle.result()) as DesignResult;
      res.json({ ...base, status: 'completed', ...result, questions: [] });
      return;
    }
    let error: { code: string; message: string; type?: string } = {
      code: desc.status.name.toLowerCase(),
      message: 'The design did not finish',
    };
    if (desc.status.name === 'CANCELLED') {
      res.json({
        ...base,
        status: 'cancelled',
        phase: 'cancelled',
        error: { code: 'cancelled', message: 'The design was cancelled' },
      });
      return;
    }
    try {
      await handle.result();
    } catch (err) {
      // The failure type (e.g. DesignPlanInvalid, GraphStepLimitExceeded) is the documented reason.
      const type = failureType(err);
      error = { ...describeFailure(err), ...(type ? { type } : {}) };
    }
    res.json({ ...base, status: desc.status.name.toLowerCase(), phase: 'failed', error });
  });

  router.post('/designs/:id/cancel', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { handle, desc } = await owned(req, id);
    assertRunning(desc, (closed) => `design ${id} has already closed (${closed})`);
    // A finished design only waits for follow-up messages; its result stands.
    // Unanswered (no worker): cancel anyway; the workflow runs its cancellation when a worker returns.
    const phase = await ask(id, () => handle.query(designStatusQuery))
      .then((s) => s.phase)
      .catch(() => undefined);
    if (phase && FINISHED_PHASES.has(phase)) {
      throw new HttpError(409, 'conflict', `design ${id} has already finished (${phase})`);
    }
    await handle.cancel();
    res.status(202).json({ id, status: 'cancelling' });
  });

  router.post('/designs/:id/answers', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { wait } = parse(AnswersQuerySchema, req.query, 'query');
    const body = parse(AnswersSchema, req.body, 'body');
    const answerId = idempotentId('answer', tenantOf(req), idempotencyKeyOf(req));
    const { handle, desc } = await owned(req, id);
    assertRunning(desc, (closed) => `design ${id} is not waiting for answers (it has ${closed})`);
    if (wait) {
      // The update's validator rejects (409/400 via the error middleware) before anything enters the history;
      // the answerId as the update id makes a retried request the same update. Needs a running worker.
      const ack = await ask(id, () =>
        handle.executeUpdate(submitDesignAnswersUpdate, { args: [{ ...body, answerId }], updateId: answerId }),
      );
      res.json({ id, ...ack });
      return;
    }
    // Durable without a worker: the search attribute the workflow set when it began waiting, then a signal
    // (recorded by the server at once; the workflow applies it when a worker runs it, once per answerId).
    if (desc.typedSearchAttributes.get(SearchAttributeKey.WaitingForInput) === false) {
      throw new HttpError(409, 'conflict', `design ${id} is not waiting for answers`);
    }
    await handle.signal(designAnswersSignal, { ...body, answerId });
    res.status(202).json({ id, answerId, status: 'accepted', statusUrl: `${config.API_PUBLIC_URL}/designs/${id}` });
  });

  router.post('/designs/:id/messages', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const body = parse(MessageSchema, req.body, 'body');
    const { handle, desc } = await owned(req, id);
    assertRunning(desc, (closed) => `design ${id} has closed (${closed}); start a new one`);
    await handle.signal(designMessageSignal, body);
    res.status(202).json({ id, accepted: true });
  });

  router.get('/designs/:id/files/:name', async (req, res) => {
    const { id, name } = parse(FileParamsSchema, req.params, 'params');
    await owned(req, id);
    const obj = await storage.getObjectStream(designFileKey(id, name));
    if (!obj) throw new HttpError(404, 'not_found', `design ${id} has no file ${name}`);
    res.status(200).type('text/plain; charset=utf-8');
    if (obj.length !== undefined) res.setHeader('content-length', String(obj.length));
    obj.body.on('error', (err) => res.destroy(err));
    obj.body.pipe(res);
  });

  // Live events, the diagram and the revisions (design-views.ts).
  router.use(designViewsRouter(deps));
  return router;
}

/** 409 once the design's workflow has closed; `message` gets its closed status (`completed`, `failed`, ...). */
function assertRunning(desc: WorkflowExecutionDescription, message: (closed: string) => string): void {
  if (desc.status.name !== 'RUNNING') throw new HttpError(409, 'conflict', message(desc.status.name.toLowerCase()));
}

/** The ApplicationFailure type in a failure's cause chain. */
function failureType(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 10; depth++) {
    if (cur instanceof ApplicationFailure && cur.type) return cur.type;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}
