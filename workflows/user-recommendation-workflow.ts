/**
 * One per user (`user-rec-<tenant>/<userId>`), started or signalled by `POST /users/:userId/browsing-events`
 * (signalWithStart). Keeps a bounded recent history of browsing events and refreshes the user's recommendation
 * when the interests shift, debounced: after a quiet window with no new events, the merged history is analysed
 * (the same local activity as recommendationWorkflow) and the model is asked again only when there is no
 * recommendation yet or the top-10 topics moved far enough (Jaccard distance ≥ minShift). The refresh is the
 * shared metered chat call, not streamed. `userRecommendationsQuery` answers the latest with when and why.
 * Continues as new after `continueAfterEvents` events, carrying the history and the latest recommendation.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyLocalActivities,
  setHandler,
} from '@temporalio/workflow';
import { browsingEventsSignal, userRecommendationsQuery } from '../contracts/definitions';
import type { Caller } from '../contracts/completion';
import { jaccardDistance, mergeEvents, type BrowsingEvent } from '../contracts/browsing';
import type {
  UserRecommendation,
  UserRecommendationStatus,
  UserRecommendationWorkflowInput,
} from '../contracts/user-recommendation';
import type { RecommendActivities } from '../activities/recommend';
import { INTERACTIVE_WAIT, meteredChat } from './metered-chat';
import { recommendationMessages } from './recommendation-workflow';

const RECOMMEND_TEMPERATURE = 0.3;
const TOP_TOPICS = 10;

const recommend = proxyLocalActivities<RecommendActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

/** Why a refresh happened: `first recommendation`, or the topics that came and went. */
export function shiftReason(before: readonly string[] | undefined, after: readonly string[]): string {
  if (!before) return 'first recommendation';
  const added = after.filter((t) => !before.includes(t)).map((t) => `+${t}`);
  const removed = before.filter((t) => !after.includes(t)).map((t) => `-${t}`);
  return `interests shifted: ${[...added, ...removed].join(', ')}`;
}

export async function userRecommendationWorkflow(input: UserRecommendationWorkflowInput): Promise<void> {
  const quietMs = input.quietMs ?? 5_000;
  const maxEvents = input.maxEvents ?? 50;
  const minShift = input.minShift ?? 0.3;
  const continueAfter = input.continueAfterEvents ?? 200;
  const history: BrowsingEvent[] = [...(input.history ?? [])];
  let latest: UserRecommendation | undefined = input.latest;
  let refreshes = input.refreshes ?? 0;
  let caller: Caller | undefined = input.caller;
  let pending = input.pending ?? false;
  let eventsThisRun = 0;
  let lastError: string | undefined;

  setHandler(browsingEventsSignal, ({ caller: from, event }) => {
    // Workflow ids join tenant and user with '-': never take another tenant's events.
    if (from.tenantId !== input.tenantId) {
      log.warn('browsing event from another tenant dropped', { from: from.tenantId });
      return;
    }
    caller = from;
    history.push(event);
    if (history.length > maxEvents) history.splice(0, history.length - maxEvents);
    eventsThisRun++;
    pending = true;
  });
  setHandler(userRecommendationsQuery, (): UserRecommendationStatus => ({
    userId: input.userId,
    status: latest ? 'ready' : 'pending',
    events: history.length,
    refreshes,
    ...(latest ? { latest } : {}),
    ...(lastError ? { lastError } : {}),
  }));

  for (;;) {
    await condition(() => pending);
    // Debounce: wait until no event has arrived for quietMs.
    do pending = false;
    while (await condition(() => pending, quietMs));

    const analysis = await recommend.analyzeBrowsingContext(mergeEvents(history));
    const topics = analysis.topics.slice(0, TOP_TOPICS);
    const shift = latest ? jaccardDistance(latest.topics, topics) : 1;
    if (caller && (!latest || shift >= minShift)) {
      const reason = shiftReason(latest?.topics, topics);
      try {
        const res = await meteredChat({
          caller,
          source: input.source,
          summary: `${input.model} · ${input.source} (per user, ${input.contentType})`,
          scheduleToStartTimeout: INTERACTIVE_WAIT,
          input: {
            model: input.model,
            messages: recommendationMessages(analysis, input),
            options: { num_predict: input.numPredict, temperature: RECOMMEND_TEMPERATURE },
            purpose: input.source,
            kind: 'prompt',
          },
        });
        latest = {
          content: res.content,
          createdAt: new Date().toISOString(),
          reason,
          topics,
          model: res.model,
          usage: res.usage,
        };
        refreshes++;
        lastError = undefined;
      } catch (err) {
        // The previous recommendation stays; the next event tries again.
        lastError = err instanceof Error ? err.message : String(err);
        log.warn('recommendation refresh failed', { error: lastError });
      }
    }

    if (eventsThisRun >= continueAfter) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof userRecommendationWorkflow>({
        ...input,
        history,
        latest,
        refreshes,
        caller,
        pending,
      });
    }
  }
}
