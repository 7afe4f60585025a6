/**
 * Jobs: `POST /run` starts a `jobWorkflow` for an uploaded function (202 at once; an Idempotency-Key maps to
 * a deterministic job id per tenant). `GET /jobs/:id` shows the phase and live usage (workflow query) while
 * it runs and the `ExecutionResult` when done; `GET /jobs` lists the tenant's jobs from DynamoDB;
 * `POST /jobs/:id/cancel` kills it; `GET /jobs/:id/outputs/:name` streams a file the script wrote to /out;
 * `GET /usage` aggregates metered tokens and cost per function and model.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { HttpError } from '../../common/errors';
import { requireModel } from '../model-check';
import { priceOf } from '../../common/config';

import { normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import { idempotencyKeyOf, idempotentId } from '../idempotency';
import { askWorkflow, webUiLink } from '../workflow-routes';
import { WaitQuerySchema, waitForClose } from '../long-poll';
import { tenantOf } from '../middleware/auth';
import { registerRoute } from '../openapi';
import { checkEntryName } from '../../lib/zip/extract';
import {
  aggregateUsage,
  createJobRecord,
  decodeJobCursor,
  getFunction,
  getJobRecord,
  getJobResult,
  listJobRecords,
} from '../../lib/jobs/store';
import { FUNCTION_ID_PATTERN, type JobInput, type JobLiveStatus, type JobRecord } from '../../contracts/jobs';
import { jobStatusQuery } from '../../contracts/definitions';
import type { jobWorkflow } from '../../workflows/job-workflow';
import { SearchAttributeKey } from '../../common/search-attributes';

const MAX_MEMORY_MB = 8192;

export const RunBodySchema = z
  .object({
    functionId: z
      .string()
      .regex(FUNCTION_ID_PATTERN, 'a function id (fn-… from POST /functions, or the id given to PUT /functions/:id)'),
    functionVersion: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('A stored version of the function (default: the latest)'),
    modelId: z.string().trim().min(1).max(200).describe('The job’s default model, from GET /models'),
    inputData: z.unknown().optional().describe('Any JSON; the script reads it from input.json'),
    timeoutSec: z.number().int().min(1).optional().describe('Wall-clock limit (default and maximum JOB_TIMEOUT_MS)'),
    memoryMb: z.number().int().min(32).max(MAX_MEMORY_MB).optional().describe('Memory (= swap) limit'),
    maxLlmCalls: z.number().int().min(0).optional(),
    maxTokens: z.number().int().min(0).optional(),
    maxTokensPerCall: z
      .number()
      .int()
      .min(1)
      .max(32_768)
      .optional()
      .describe('num_predict for SDK calls that set none (default and maximum: LLM_NUM_PREDICT, kind job)'),
  })
  .strict();

const IdParamsSchema = z.object({ id: z.string().regex(/^job-[\w-]{1,100}$/, 'not a job id') });
const OutputParamsSchema = z.object({ id: IdParamsSchema.shape.id, name: z.array(z.string().min(1)).min(1) });
const ListQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(2000).optional(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
    functionId: z.string().max(200).optional(),
  })
  .strict();
const UsageQuerySchema = z
  .object({
    functionId: z.string().max(200).optional(),
    from: z.iso.datetime().optional().describe('ISO instant (default: 30 days ago)'),
    to: z.iso.datetime().optional().describe('ISO instant (default: now)'),
  })
  .strict();

const AcceptedSchema = z.object({
  jobId: z.string(),
  status: z.string(),
  statusUrl: z.string(),
  webUiUrl: z.string().optional().describe('The run in the Temporal Web UI: only for operators (X-Operator-Key)'),
});

registerRoute({
  method: 'post',
  path: '/run',
  summary: 'Run a function as a job in a locked-down container',
  body: RunBodySchema,
  headers: { 'Idempotency-Key': 'The same key (per tenant) returns the same job instead of starting another' },
  responses: {
    202: { description: 'Started; poll statusUrl', body: AcceptedSchema },
    400: 'Invalid body, or no node serves the model (model_not_found)',
    404: 'No such function for this tenant',
  },
});
registerRoute({
  method: 'get',
  path: '/jobs',
  summary: 'The caller’s jobs, newest first',
  query: ListQuerySchema,
  responses: { 200: 'A page of jobs and nextCursor' },
});
registerRoute({
  method: 'get',
  path: '/jobs/:id',
  summary: 'Phase and live usage of a job; its ExecutionResult when done',
  params: IdParamsSchema,
  query: WaitQuerySchema,
  responses: { 200: 'The job', 404: 'No such job for this tenant' },
});
registerRoute({
  method: 'post',
  path: '/jobs/:id/cancel',
  summary: 'Cancel a running job (its container is killed)',
  params: IdParamsSchema,
  responses: { 202: 'Cancelling', 404: 'No such job for this tenant', 409: 'The job already finished' },
});
registerRoute({
  method: 'get',
  path: '/jobs/:id/outputs/*name',
  summary: 'A file the job wrote to /out (streamed)',
  responses: { 200: { description: 'The file', contentType: 'application/octet-stream' }, 404: 'No such job or file' },
});
registerRoute({
  method: 'get',
  path: '/usage',
  summary: 'Metered tokens and cost per function and model',
  query: UsageQuerySchema,
  responses: { 200: 'Rows per function and model, and totals' },
});

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

export function jobsRouter(deps: ApiDeps): Router {
  const { config, temporal, storage, catalog } = deps;
  const router = Router();
  const accepted = (req: Request, job: Pick<JobRecord, 'jobId' | 'status'>) => ({
    jobId: job.jobId,
    status: job.status,
    statusUrl: `${config.API_PUBLIC_URL}/jobs/${job.jobId}`,
    ...webUiLink(config, req, job.jobId),
  });
  const ownJob = async (tenantId: string, jobId: string) => {
    // The key is scoped by tenant: another tenant's job is not found (404, no existence leak).
    const job = await getJobRecord(storage, tenantId, jobId);
    if (!job) throw new HttpError(404, 'not_found', `Job ${jobId} not found`);
    return job;
  };

  router.post('/run', async (req, res) => {
    const tenantId = tenantOf(req);
    const body = parse(RunBodySchema, req.body, 'body');
    const idemKey = idempotencyKeyOf(req);
    const jobId = idempotentId('job', tenantId, idemKey);
    if (idemKey) {
      const existing = await getJobRecord(storage, tenantId, jobId);
      if (existing) return void res.status(202).location(`/jobs/${jobId}`).json(accepted(req, existing));
    }
    const fn = await getFunction(storage, tenantId, body.functionId, body.functionVersion);
    if (!fn) {
      const which = body.functionVersion ? ` version ${body.functionVersion}` : '';
      throw new HttpError(
        404,
        'not_found',
        `Function ${body.functionId}${which} not found (upload it with PUT /functions/${body.functionId})`,
      );
    }
    const modelId = normalizeModel(body.modelId);
    await requireModel(catalog, modelId);
    // The catalog now: the models an SDK call inside this job may name.
    const allowedModels = (await catalog.get()).models.filter((m) => m.available).map((m) => m.name);
    const maxTimeoutSec = Math.floor(config.JOB_TIMEOUT_MS / 1000);
    if (body.timeoutSec !== undefined && body.timeoutSec > maxTimeoutSec) {
      throw new HttpError(400, 'invalid_request', `body.timeoutSec: at most ${maxTimeoutSec}`);
    }
    const maxNumPredict = config.LLM_NUM_PREDICT.job.max;
    if (body.maxTokensPerCall !== undefined && body.maxTokensPerCall > maxNumPredict) {
      throw new HttpError(400, 'invalid_request', `body.maxTokensPerCall: at most ${maxNumPredict} (LLM_NUM_PREDICT)`);
    }
    const createdAt = new Date().toISOString();
    const inputKey = `jobs/${jobId}/input.json`;
    await storage.putObject(inputKey, JSON.stringify(body.inputData ?? null), 'application/json');
    const input: JobInput = {
      jobId,
      tenantId,
      functionId: fn.functionId,
      packageKey: fn.packageKey,
      entry: checkEntryName(fn.entry),
      modelId,
      allowedModels,
      inputKey,
      createdAt,
      limits: {
        timeoutMs: body.timeoutSec !== undefined ? body.timeoutSec * 1000 : config.JOB_TIMEOUT_MS,
        memoryMb: body.memoryMb ?? config.JOB_MEMORY_MB,
        cpus: config.JOB_CPUS,
        pidsLimit: config.JOB_PIDS_LIMIT,
        outputLimitBytes: config.JOB_OUTPUT_LIMIT_BYTES,
        maxLlmCalls: Math.min(body.maxLlmCalls ?? config.JOB_MAX_LLM_CALLS, config.JOB_MAX_LLM_CALLS),
        maxTokens: Math.min(body.maxTokens ?? config.JOB_MAX_TOKENS, config.JOB_MAX_TOKENS),
        // Sent on every call that names no num_predict (the workflow reserves it against maxTokens).
        defaultNumPredict: body.maxTokensPerCall ?? config.LLM_NUM_PREDICT.job.default,
        // SDK calls asking for more (or for an unbounded -1) are refused by the workflow with this max.
        maxNumPredict,
      },
    };
    const record: JobRecord = {
      jobId,
      tenantId,
      functionId: fn.functionId,
      modelId,
      workflowId: jobId,
      status: 'running',
      createdAt,
      idempotencyKey: idemKey,
    };
    await createJobRecord(storage, record);
    try {
      await temporal.workflow.start<typeof jobWorkflow>('jobWorkflow', {
        taskQueue: ORCHESTRATOR_QUEUE,
        workflowId: jobId,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: SearchAttributeKey.Kind, value: 'job' },
          { key: SearchAttributeKey.ModelId, value: modelId },
          { key: SearchAttributeKey.FunctionId, value: fn.functionId },
          { key: SearchAttributeKey.TenantId, value: tenantId },
        ],
        staticSummary: `job: ${fn.name ?? fn.functionId} (${fn.entry}) on ${modelId}`,
        staticDetails: `function ${fn.functionId} v${fn.version ?? 1} · tenant ${tenantId} · timeout ${input.limits.timeoutMs} ms · memory ${input.limits.memoryMb} MB`,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    res.status(202).location(`/jobs/${jobId}`).json(accepted(req, record));
  });

  router.get('/jobs', async (req, res) => {
    const q = parse(ListQuerySchema, req.query, 'query');
    if (q.cursor !== undefined && !decodeJobCursor(tenantOf(req), q.cursor)) {
      throw new HttpError(400, 'invalid_request', 'query.cursor: not a nextCursor of this list');
    }
    const page = await listJobRecords(storage, tenantOf(req), q);
    res.json({ jobs: page.jobs, nextCursor: page.nextCursor ?? null });
  });

  router.get('/jobs/:id', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { waitMs } = parse(WaitQuerySchema, req.query, 'query');
    let job = await ownJob(tenantOf(req), id);
    if (waitMs > 0 && !FINAL.has(job.status)) {
      // The record is final once the workflow has closed (it writes it before returning).
      await waitForClose(temporal.workflow.getHandle(job.workflowId), waitMs);
      job = await ownJob(tenantOf(req), id);
    }
    const out: Record<string, unknown> = { ...job, ...webUiLink(config, req, id) };
    delete out.tenantId;
    if (FINAL.has(job.status)) {
      out.result = await getJobResult(storage, job);
    } else {
      try {
        // The record's status stands when no worker answers in time (WORKFLOW_QUERY_TIMEOUT_MS).
        const handle = temporal.workflow.getHandle(job.workflowId);
        const live: JobLiveStatus = await askWorkflow(temporal, config, `Job ${id}`, () =>
          handle.query(jobStatusQuery),
        );
        const cost = Object.entries(live.usage.byModel).reduce(
          (sum, [model, u]) => sum + priceOf(config, model, u.prompt, u.completion),
          0,
        );
        out.status = live.phase;
        out.usage = { ...live.usage, costUsd: cost };
        if (live.result) out.result = live.result;
      } catch (err) {
        req.log?.debug({ err }, 'job status query failed');
      }
    }
    res.json(out);
  });

  router.post('/jobs/:id/cancel', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const job = await ownJob(tenantOf(req), id);
    if (FINAL.has(job.status)) throw new HttpError(409, 'conflict', `Job ${id} already ${job.status}`);
    await temporal.workflow.getHandle(job.workflowId).cancel();
    res.status(202).json({ jobId: id, status: 'cancelling', statusUrl: `${config.API_PUBLIC_URL}/jobs/${id}` });
  });

  router.get('/jobs/:id/outputs/*name', async (req, res) => {
    const { id, name } = parse(OutputParamsSchema, req.params, 'params');
    const job = await ownJob(tenantOf(req), id);
    let rel: string;
    try {
      rel = checkEntryName(name.join('/'));
    } catch {
      throw new HttpError(400, 'invalid_request', 'params.name: not a relative file name');
    }
    const result = FINAL.has(job.status) ? await getJobResult(storage, job) : undefined;
    const file = result?.outputs.find((o) => o.name === rel);
    if (!file) throw new HttpError(404, 'not_found', `Job ${id} has no output "${rel}"`);
    const obj = await storage.getObjectStream(file.key);
    if (!obj) throw new HttpError(404, 'not_found', `Output "${rel}" is gone`);
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-disposition', `attachment; filename="${rel.split('/').pop()!.replace(/"/g, '')}"`);
    if (obj.length !== undefined) res.setHeader('content-length', String(obj.length));
    obj.body.on('error', (err) => res.destroy(err));
    obj.body.pipe(res);
  });

  router.get('/usage', async (req, res) => {
    const q = parse(UsageQuerySchema, req.query, 'query');
    const to = q.to ?? new Date().toISOString();
    const from = q.from ?? new Date(Date.parse(to) - 30 * 86_400_000).toISOString();
    if (from > to) throw new HttpError(400, 'invalid_request', 'query.from: must not be after query.to');
    const rows = await aggregateUsage(storage, tenantOf(req), { functionId: q.functionId, from, to });
    const totals = rows.reduce(
      (t, r) => ({
        calls: t.calls + r.calls,
        prompt: t.prompt + r.prompt,
        completion: t.completion + r.completion,
        total: t.total + r.total,
        costUsd: t.costUsd + r.costUsd,
      }),
      { calls: 0, prompt: 0, completion: 0, total: 0, costUsd: 0 },
    );
    res.json({ from, to, functionId: q.functionId ?? null, rows, totals });
  });

  return router;
}
