/**
 * Recommendations from a browsing context: the start of a run, shared by the gRPC service (api/grpc) and its SSE
 * twin `POST /recommendations`, plus `GET /recommendations/:id` (the full result, later). Each run is a
 * recommendationWorkflow on the orchestrator; its tokens come from the llm activity through this process's
 * StreamHub (lib/stream), like a streamed completion's, so they reach the client as Ollama produces them.
 */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { z } from 'zod';
import type { WorkflowHandle } from '@temporalio/client';
import { HttpError } from '../../common/errors';
import { boundNumPredict } from '../../common/llm-bounds';
import { SearchAttributeKey } from '../../common/search-attributes';
import { normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { Caller } from '../../contracts/completion';
import {
  CONTENT_TYPES,
  parseRecommendRequest,
  type RecommendationWorkflowResult,
  type RecommendRequest,
  type ValidRecommendRequest,
} from '../../contracts/recommendation';
import type { StreamEntry, StreamHub } from '../../lib/stream/hub';
import type { recommendationWorkflow } from '../../workflows/recommendation-workflow';
import type { ApiDeps } from '../deps';
import { tenantOf } from '../middleware/auth';
import { requireModel } from '../model-check';
import { registerRoute } from '../openapi';
import { callerOf, failureOf, internalUrl, sseHeaders } from '../v1/completions';
import type { KeyLimits } from '../v1/limits';

/** What a recommendation run needs from the process: the API's deps, its stream hub and the per-key limits. */
export interface RecommendServer {
  deps: ApiDeps;
  hub: StreamHub;
  limits: KeyLimits;
}

/** What the usage rows name as the source. */
export const RECOMMEND_SOURCE = 'recommendations';

export interface StartedRecommendation {
  id: string;
  handle: WorkflowHandle<typeof recommendationWorkflow>;
  entry: StreamEntry;
  /** Settles with the workflow: the result, or the failure as an HttpError (also written to the stream). */
  done: Promise<RecommendationWorkflowResult>;
}

/** Validates a request in the proto's field names; a 400 whose message says what is wrong. */
export function validRecommendRequest(body: RecommendRequest): ValidRecommendRequest {
  const parsed = parseRecommendRequest(body);
  if ('error' in parsed) throw new HttpError(400, 'invalid_request', parsed.error);
  return parsed.ok;
}

/**
 * Admits the call (limits, served model), opens the stream and starts the workflow that pushes into it.
 * `internalUrl` is this process's base URL as llm workers reach it (`/internal/streams/:id`).
 */
export async function startRecommendation(
  rs: RecommendServer,
  caller: Caller,
  req: ValidRecommendRequest,
  internalUrl: string,
): Promise<StartedRecommendation> {
  const { config, temporal, catalog } = rs.deps;
  await rs.limits.admit(caller.keyId);
  const model = normalizeModel(config.RECOMMEND_MODEL ?? config.DEFAULT_MODEL);
  await requireModel(catalog, model);
  const numPredict = boundNumPredict('prompt', config.RECOMMEND_NUM_PREDICT, config.LLM_NUM_PREDICT);
  const id = `rec-${randomUUID()}`;
  const entry = rs.hub.open(id);
  entry.tenant = caller.tenantId;
  const handle = await temporal.workflow
    .start<typeof recommendationWorkflow>('recommendationWorkflow', {
      taskQueue: ORCHESTRATOR_QUEUE,
      workflowId: id,
      args: [
        {
          caller,
          userId: req.userId,
          context: req.context,
          contentType: req.contentType,
          contentPeriod: req.contentPeriod,
          model,
          numPredict,
          stream: { url: `${internalUrl.replace(/\/$/, '')}/internal/streams/${id}`, token: entry.token },
          source: RECOMMEND_SOURCE,
        },
      ],
      typedSearchAttributes: [
        { key: SearchAttributeKey.Kind, value: 'recommendation' },
        { key: SearchAttributeKey.ModelId, value: model },
        { key: SearchAttributeKey.TenantId, value: caller.tenantId },
      ],
      memo: { tenant: caller.tenantId },
      staticSummary: `recommendations (${req.contentType}, ${req.contentPeriod}) on ${model} for ${caller.tenantId}`,
    })
    .catch((err: unknown) => {
      rs.hub.abandon(entry);
      throw err;
    });
  const timeoutMs = config.AI_REQUEST_TIMEOUT_MS;
  const timer = setTimeout(() => void handle.cancel().catch(() => undefined), timeoutMs);
  const done = handle.result().then(
    (r) => {
      clearTimeout(timer);
      rs.limits.charge(caller.keyId, r.usage.totalTokens);
      // The side channel may have missed the end (or everything): the result is the truth.
      rs.hub.append(entry, r.content.slice(entry.text.length));
      rs.hub.finish(entry, { model: r.model, nodeId: r.nodeId, usage: r.usage, doneReason: r.doneReason });
      return r;
    },
    (err: unknown) => {
      clearTimeout(timer);
      const httpErr = failureOf(err, timeoutMs);
      rs.hub.fail(entry, httpErr.code, httpErr.message);
      throw httpErr;
    },
  );
  done.catch(() => undefined);
  return { id, handle, entry, done };
}

/** Stops a run nobody reads any more: cancel first (recorded in history), then refuse the push. */
export function stopRecommendation(rs: RecommendServer, started: StartedRecommendation): void {
  if (started.entry.end || started.entry.error) return;
  void started.handle
    .cancel()
    .catch(() => undefined)
    .finally(() => rs.hub.abandon(started.entry));
}

/** The SSE twin's body, for the docs: the proto's fields; browser_context may also be the object itself. */
const RecommendBodySchema = z.object({
  user_id: z.string().optional(),
  browser_context: z.union([z.string(), z.record(z.string(), z.unknown())]),
  content_type: z.enum(CONTENT_TYPES).optional(),
  content_period: z.string().optional(),
});

registerRoute({
  method: 'post',
  path: '/recommendations',
  summary:
    'Recommendations from a browsing context, streamed (text/event-stream): `data: {"content","is_final":"false"}` ' +
    'per chunk, then `data: {"content":"","is_final":"true","id"}`; an `event: error` on failure',
  tag: 'recommendations',
  body: RecommendBodySchema,
  responses: {
    200: 'The stream',
    400: 'Bad input (not JSON, visited_sites or search_queries missing, too long, unknown content type)',
    503: 'No node serves the recommendation model now',
  },
});

registerRoute({
  method: 'get',
  path: '/recommendations/:id',
  summary: 'A recommendation run: running, or its full text and the analysis it was built from',
  tag: 'recommendations',
  responses: { 200: 'The run', 404: 'No such run (or another tenant’s)' },
});

const sse = (obj: unknown, event?: string) => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(obj)}\n\n`;

export function recommendationsRouter(rs: RecommendServer): Router {
  const router = Router();

  router.post('/recommendations', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const str = (k: string) => (typeof body[k] === 'string' ? (body[k] as string) : undefined);
    // The SSE body may carry browser_context as an object too; the gRPC contract has it as a JSON string.
    const context =
      typeof body.browser_context === 'object' ? JSON.stringify(body.browser_context) : str('browser_context');
    const valid = validRecommendRequest({
      user_id: str('user_id'),
      browser_context: context,
      content_type: str('content_type'),
      content_period: str('content_period'),
    });
    const started = await startRecommendation(rs, callerOf(req), valid, internalUrl(rs.deps.config, req));
    res.setHeader('x-recommendation-id', started.id);
    sseHeaders(res);
    let finished = false;
    const unsubscribe = rs.hub.read(started.entry, 0, (e) => {
      if (e.kind === 'text') res.write(sse({ content: e.text, is_final: 'false' }));
      else {
        finished = true;
        if (e.kind === 'end') res.write(sse({ content: '', is_final: 'true', id: started.id }));
        else res.write(sse({ error: { code: e.code, message: e.message } }, 'error'));
        res.end();
      }
    });
    res.on('close', () => {
      unsubscribe();
      if (!finished) {
        req.log?.info({ id: started.id }, 'recommendation client gone: cancelling the generation');
        stopRecommendation(rs, started);
      }
    });
  });

  router.get('/recommendations/:id', async (req, res) => {
    const id = String(req.params.id);
    const tenant = tenantOf(req);
    const handle = rs.deps.temporal.workflow.getHandle<typeof recommendationWorkflow>(id);
    const desc = /^rec-[0-9a-f-]{36}$/.test(id) ? await handle.describe().catch(() => undefined) : undefined;
    if (!desc || desc.memo?.tenant !== tenant) throw new HttpError(404, 'not_found', `No recommendation ${id}`);
    const status = desc.status.name;
    if (status === 'RUNNING') return void res.json({ id, status: 'running', startedAt: desc.startTime });
    if (status !== 'COMPLETED') {
      return void res.json({ id, status: status.toLowerCase(), startedAt: desc.startTime, closedAt: desc.closeTime });
    }
    const r = await handle.result();
    res.json({
      id,
      status: 'completed',
      startedAt: desc.startTime,
      closedAt: desc.closeTime,
      content: r.content,
      analysis: r.analysis,
      model: r.model,
      usage: r.usage,
      doneReason: r.doneReason,
    });
  });

  return router;
}
