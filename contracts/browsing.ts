/**
 * A user's browsing events as workflows handle them, and the pure functions over them. Zod-free on purpose: the
 * API validates events with the schema in contracts/user-recommendation.ts (which checks it parses exactly this
 * shape), while workflows import this module, and every module a workflow imports is evaluated again for each new
 * workflow run (test/unit/workflow-bundle.test.ts keeps zod out of the bundle).
 */
import type { BrowserContext } from './recommendation';

/** One browsing event, or a small batch of them (see BrowsingEventSchema for the limits). */
export interface BrowsingEvent {
  visited_sites?: { url: string; title?: string }[];
  search_queries?: string[];
  /** Seconds per site (host or URL). */
  time_spent?: Record<string, number>;
}

/** The events of a history merged into one browsing context (time per site summed). */
export function mergeEvents(events: BrowsingEvent[]): BrowserContext {
  const ctx: BrowserContext = { visited_sites: [], search_queries: [], time_spent: {} };
  for (const e of events) {
    ctx.visited_sites.push(...(e.visited_sites ?? []));
    ctx.search_queries.push(...(e.search_queries ?? []));
    for (const [site, s] of Object.entries(e.time_spent ?? {}))
      ctx.time_spent![site] = (ctx.time_spent![site] ?? 0) + s;
  }
  return ctx;
}

/** 1 − |A ∩ B| / |A ∪ B|; 0 for two empty sets. */
export function jaccardDistance(a: readonly string[], b: readonly string[]): number {
  const A = new Set(a);
  const B = new Set(b);
  const union = new Set([...A, ...B]).size;
  if (!union) return 0;
  let inter = 0;
  for (const x of A) if (B.has(x)) inter++;
  return 1 - inter / union;
}
