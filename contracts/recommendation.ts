/**
 * Recommendations from a browsing context (gRPC `recommendation.RecommendationService/Recommend` and its SSE
 * twin `POST /recommendations`): the request as both transports validate it, the analysis the activity
 * computes, and the workflow's input and result. Workflow-safe: no Node built-ins, no I/O.
 */
import { z } from 'zod';
import type { Caller } from './completion';
import type { LlmUsage, StreamTarget } from './llm';

/** The most characters `browser_context` may have. */
export const MAX_BROWSER_CONTEXT_CHARS = 10_000;
/** What `content_type` may be; empty means `general`. */
export const CONTENT_TYPES = ['general', 'technical', 'news', 'academic', 'entertainment', 'shopping'] as const;
export type ContentType = (typeof CONTENT_TYPES)[number];

export const BrowserContextSchema = z.object({
  visited_sites: z.array(z.object({ url: z.string().max(2_000), title: z.string().max(1_000).optional() })),
  search_queries: z.array(z.string().max(1_000)),
  /** Seconds per site (host or URL). */
  time_spent: z.record(z.string(), z.number().nonnegative()).optional(),
});
export type BrowserContext = z.infer<typeof BrowserContextSchema>;

/** A request as both transports receive it (the proto's field names). */
export interface RecommendRequest {
  user_id?: string;
  browser_context?: string;
  content_type?: string;
  content_period?: string;
}

/** A request that passed validation. */
export interface ValidRecommendRequest {
  userId: string;
  context: BrowserContext;
  contentType: ContentType;
  contentPeriod: string;
}

/**
 * Validates a request; `{ error }` says exactly what is wrong (the gRPC INVALID_ARGUMENT details, the SSE
 * route's 400 message).
 */
export function parseRecommendRequest(req: RecommendRequest): { ok: ValidRecommendRequest } | { error: string } {
  const userId = (req.user_id ?? '').trim();
  if (userId.length > 200) return { error: 'user_id: more than 200 characters' };
  const raw = req.browser_context ?? '';
  if (!raw.trim())
    return { error: 'browser_context: empty; send a JSON document with visited_sites and search_queries' };
  if (raw.length > MAX_BROWSER_CONTEXT_CHARS) {
    return {
      error: `browser_context: ${raw.length} characters, more than the ${MAX_BROWSER_CONTEXT_CHARS} allowed`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { error: `browser_context: not JSON (${(err as Error).message})` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { error: 'browser_context: not a JSON object' };
  }
  const missing = (['visited_sites', 'search_queries'] as const).filter((k) => !(k in json));
  if (missing.length) return { error: `browser_context: ${missing.join(' and ')} missing` };
  const parsed = BrowserContextSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { error: `browser_context.${issue.path.join('.')}: ${issue.message}` };
  }
  const type = (req.content_type ?? '').trim().toLowerCase() || 'general';
  if (!(CONTENT_TYPES as readonly string[]).includes(type)) {
    return { error: `content_type: unknown "${req.content_type}"; one of ${CONTENT_TYPES.join(', ')}` };
  }
  const period = (req.content_period ?? '').trim() || 'recent';
  if (period.length > 40) return { error: 'content_period: more than 40 characters' };
  return { ok: { userId, context: parsed.data, contentType: type as ContentType, contentPeriod: period } };
}

export interface Interest {
  name: string;
  /** Share of the context's signal, 0..1, rounded to 2 places. */
  score: number;
}

export type BehaviourPattern = 'focused' | 'exploratory' | 'balanced' | 'unknown';

export interface BrowsingAnalysis {
  /** sha256 of the context's canonical JSON: the memo key. */
  hash: string;
  /** Up to 10 keywords from URLs, titles and search queries, most frequent first. */
  topics: string[];
  /** Up to 5 interest areas, strongest first. */
  interests: Interest[];
  behaviour: {
    pattern: BehaviourPattern;
    totalSeconds: number;
    /** Up to 3 sites by time spent, with their share of it. */
    topSites: { site: string; seconds: number; share: number }[];
    /** `deep` when the average time per site is 5 minutes or more. */
    engagement: 'deep' | 'skimming' | 'unknown';
  };
  preferences: {
    /** Formats the browsing suggests (code, video, articles, papers, discussion, documentation). */
    formats: string[];
    depth: 'in-depth' | 'overview';
  };
}

export interface RecommendationWorkflowInput {
  caller: Caller;
  /** As the client sent it; only its pseudonymous form should reach logs. */
  userId: string;
  context: BrowserContext;
  contentType: ContentType;
  contentPeriod: string;
  model: string;
  numPredict: number;
  /** Where the llm activity pushes tokens (the API process holding the client's connection). */
  stream?: StreamTarget;
  /** `recommendations` (usage rows). */
  source: string;
}

export interface RecommendationWorkflowResult {
  content: string;
  analysis: BrowsingAnalysis;
  model: string;
  nodeId: string;
  usage: LlmUsage;
  doneReason?: string;
}
