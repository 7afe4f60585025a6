/**
 * Per-user, durable recommendations. `POST /users/:userId/browsing-events` hands one browsing event (or a small
 * batch) to the user's userRecommendationWorkflow (`user-rec-<tenant>/<pseudonym>`, started on the first event by
 * signalWithStart); the workflow refreshes the user's recommendation when the interests shift (debounced).
 * `GET /users/:userId/recommendations` answers the latest with when and why (its query), `pending` before the
 * first refresh, 404 for an unknown user or another tenant's (the memo's tenant).
 */
import { Router } from 'express';
import { z } from 'zod';
import { HttpError } from '../../common/errors';
import { boundNumPredict } from '../../common/llm-bounds';
import { SearchAttributeKey } from '../../common/search-attributes';
import { normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import { browsingEventsSignal, userRecommendationsQuery } from '../../contracts/definitions';
import {
  BrowsingEventSchema,
  parseBrowsingEvent,
  type BrowsingEventsSignal,
  type UserRecommendationWorkflowInput,
} from '../../contracts/user-recommendation';
import type { userRecommendationWorkflow } from '../../workflows/user-recommendation-workflow';
import type { ApiDeps } from '../deps';
import { tenantOf } from '../middleware/auth';
import { askWorkflow } from '../workflow-routes';
import { registerRoute } from '../openapi';
import { callerOf } from '../v1/completions';
import { RECOMMEND_SOURCE } from './recommendations';
import { pseudonymizeUserId } from '../../lib/privacy/pseudonym';

const USER_ID = /^[A-Za-z0-9._@:-]{1,128}$/;

/**
 * `user-rec-<tenant>/<pseudonym>`: the tenant is URI-encoded and pseudonyms have no `/`, so no two pairs share an id;
 * the user id itself never reaches Temporal's visibility, the Web UI or the server's logs (lib/privacy/pseudonym.ts).
 */
export const userRecommendationWorkflowId = (secret: string, tenant: string, userId: string) =>
  `user-rec-${encodeURIComponent(tenant)}/${pseudonymizeUserId(secret, userId)}`;

function validUserId(raw: string): string {
  if (!USER_ID.test(raw)) {
    throw new HttpError(400, 'invalid_request', 'userId: 1 to 128 characters of letters, digits and . _ @ : -');
  }
  return raw;
}

const UserParams = z.object({ userId: z.string().regex(USER_ID) });

registerRoute({
  method: 'post',
  path: '/users/:userId/browsing-events',
  summary:
    'One browsing event (or a small batch) for the user: kept in a bounded recent history; the user’s ' +
    'recommendations refresh when the interests shift (after a quiet window), not on every event',
  tag: 'recommendations',
  params: UserParams,
  body: BrowsingEventSchema,
  responses: {
    202: 'Accepted',
    400: 'Bad input (the message names the field: too many sites or queries, a missing url, an empty event)',
  },
});

registerRoute({
  method: 'get',
  path: '/users/:userId/recommendations',
  summary:
    'The user’s latest recommendation with when (`createdAt`) and why (`reason`); `status: "pending"` before ' +
    'the first refresh',
  tag: 'recommendations',
  params: UserParams,
  responses: { 200: 'The latest recommendation, or pending', 404: 'No such user (or another tenant’s)' },
});

export function usersRouter(deps: ApiDeps): Router {
  const router = Router();

  router.post('/users/:userId/browsing-events', async (req, res) => {
    const userId = validUserId(String(req.params.userId));
    const parsed = parseBrowsingEvent(req.body);
    if ('error' in parsed) throw new HttpError(400, 'invalid_request', parsed.error);
    const caller = callerOf(req);
    const { config, temporal } = deps;
    const model = normalizeModel(config.RECOMMEND_MODEL ?? config.DEFAULT_MODEL);
    const input: UserRecommendationWorkflowInput = {
      tenantId: caller.tenantId,
      userId,
      model,
      numPredict: boundNumPredict('prompt', config.RECOMMEND_NUM_PREDICT, config.LLM_NUM_PREDICT),
      contentType: 'general',
      contentPeriod: 'recent',
      source: RECOMMEND_SOURCE,
      quietMs: config.USER_REC_QUIET_MS,
    };
    const workflowId = userRecommendationWorkflowId(config.USER_PSEUDONYM_SECRET, caller.tenantId, userId);
    await temporal.workflow.signalWithStart<typeof userRecommendationWorkflow, [BrowsingEventsSignal]>(
      'userRecommendationWorkflow',
      {
        workflowId,
        taskQueue: ORCHESTRATOR_QUEUE,
        args: [input],
        signal: browsingEventsSignal,
        signalArgs: [{ caller, event: parsed.ok }],
        typedSearchAttributes: [
          { key: SearchAttributeKey.Kind, value: 'user-recommendation' },
          { key: SearchAttributeKey.ModelId, value: model },
          { key: SearchAttributeKey.TenantId, value: caller.tenantId },
        ],
        memo: { tenant: caller.tenantId },
        staticSummary: `per-user recommendations on ${model} for ${caller.tenantId}`,
      },
    );
    res.status(202).json({ status: 'accepted', userId });
  });

  router.get('/users/:userId/recommendations', async (req, res) => {
    const userId = validUserId(String(req.params.userId));
    const tenant = tenantOf(req);
    const handle = deps.temporal.workflow.getHandle<typeof userRecommendationWorkflow>(
      userRecommendationWorkflowId(deps.config.USER_PSEUDONYM_SECRET, tenant, userId),
    );
    const desc = await handle.describe().catch(() => undefined);
    if (!desc || desc.memo?.tenant !== tenant) throw new HttpError(404, 'not_found', `No user ${userId}`);
    const s = await askWorkflow(deps.temporal, deps.config, `User ${userId}'s recommendations`, () =>
      handle.query(userRecommendationsQuery),
    );
    if (!s.latest) {
      return void res.json({ userId, status: 'pending', events: s.events, lastError: s.lastError });
    }
    res.json({
      userId,
      status: 'ready',
      events: s.events,
      refreshes: s.refreshes,
      content: s.latest.content,
      createdAt: s.latest.createdAt,
      reason: s.latest.reason,
      topics: s.latest.topics,
      model: s.latest.model,
      lastError: s.lastError,
    });
  });

  return router;
}
