/**
 * Per-user, durable recommendations (`POST /users/:userId/browsing-events`, `GET /users/:userId/recommendations`):
 * a browsing event as the API validates it, the signal the API sends, the workflow's input (also what it carries
 * across continue-as-new) and what its query answers. Workflow-safe: no Node built-ins, no I/O.
 */
import { z } from 'zod';
import type { Caller } from './completion';
import type { BrowsingEvent } from './browsing';
import type { ContentType } from './recommendation';
import type { LlmUsage } from './llm';

/** Limits on one event (or small batch) so that a user's history stays bounded. */
export const MAX_EVENT_SITES = 20;
export const MAX_EVENT_QUERIES = 20;
export const MAX_EVENT_TIME_SPENT = 20;

/** One browsing event, or a small batch of them: every field optional, at least one non-empty. */
export const BrowsingEventSchema = z
  .object({
    visited_sites: z
      .array(z.object({ url: z.string().min(1).max(2_000), title: z.string().max(1_000).optional() }).strict())
      .max(MAX_EVENT_SITES)
      .optional(),
    search_queries: z.array(z.string().max(1_000)).max(MAX_EVENT_QUERIES).optional(),
    /** Seconds per site (host or URL). */
    time_spent: z
      .record(z.string().max(2_000), z.number().nonnegative().max(86_400))
      .refine((r) => Object.keys(r).length <= MAX_EVENT_TIME_SPENT, {
        message: `more than ${MAX_EVENT_TIME_SPENT} sites`,
      })
      .optional(),
  })
  .strict();
export type { BrowsingEvent } from './browsing';
export { jaccardDistance, mergeEvents } from './browsing';
// The schema parses exactly the BrowsingEvent shape that workflows use (contracts/browsing.ts, zod-free).
type SchemaEvent = z.infer<typeof BrowsingEventSchema>;
const sameShape: [SchemaEvent, BrowsingEvent] extends [BrowsingEvent, SchemaEvent] ? true : never = true;
void sameShape;

/** Validates a request body; `{ error }` names the field (`visited_sites.0.url: ...`). */
export function parseBrowsingEvent(body: unknown): { ok: BrowsingEvent } | { error: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { error: 'body: not a JSON object' };
  }
  const parsed = BrowsingEventSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || 'body';
    return { error: `${field}: ${issue.message}` };
  }
  const e = parsed.data;
  if (!e.visited_sites?.length && !e.search_queries?.length && !Object.keys(e.time_spent ?? {}).length) {
    return { error: 'body: empty; send visited_sites, search_queries or time_spent' };
  }
  return { ok: e };
}

/** What the API signals: the event and who sent it (the caller is charged for the next refresh). */
export interface BrowsingEventsSignal {
  caller: Caller;
  event: BrowsingEvent;
}

/** A refreshed recommendation, with when and why it was made. */
export interface UserRecommendation {
  content: string;
  /** ISO time (workflow time) of the refresh. */
  createdAt: string;
  /** `first recommendation`, or `interests shifted: +topicA, -topicB`. */
  reason: string;
  /** The analysis's top topics it was built from. */
  topics: string[];
  model: string;
  usage: LlmUsage;
}

export interface UserRecommendationStatus {
  userId: string;
  /** `pending` until the first refresh. */
  status: 'pending' | 'ready';
  /** Events in the bounded recent history. */
  events: number;
  /** Refreshes so far (across continue-as-new). */
  refreshes: number;
  latest?: UserRecommendation;
  /** The last refresh's failure, if it failed (the previous recommendation stays). */
  lastError?: string;
}

export interface UserRecommendationWorkflowInput {
  tenantId: string;
  userId: string;
  model: string;
  numPredict: number;
  contentType: ContentType;
  contentPeriod: string;
  /** `recommendations` (usage rows). */
  source: string;
  /** Refresh once events have been quiet this long (default 5 s). */
  quietMs?: number;
  /** Events kept (default 50). */
  maxEvents?: number;
  /** Refresh when the top-10 topics' Jaccard distance to the latest recommendation's is at least this (0.3). */
  minShift?: number;
  /** Continue as new after this many events in one run (default 200). */
  continueAfterEvents?: number;
  // Carried across continue-as-new:
  history?: BrowsingEvent[];
  latest?: UserRecommendation;
  refreshes?: number;
  caller?: Caller;
  /** Events arrived that no refresh check has looked at yet. */
  pending?: boolean;
}
