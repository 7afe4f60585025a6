/**
 * The analysis step of a recommendation (orchestrator queue): deterministic code over the browsing context,
 * memoised by the context's hash, so a user who asks again with the same context (or a retried workflow) gets
 * the stored analysis without recomputing it. The memo is this worker's, bounded, least recently used first out.
 */
import type { BrowserContext, BrowsingAnalysis } from '../../contracts/recommendation';
import { analyzeContext, contextHash } from '../../lib/recommend/analysis';

export interface RecommendDeps {
  /** Analyses kept (default 1000). */
  memoSize?: number;
}

export function createRecommendActivities(deps: RecommendDeps = {}) {
  const size = deps.memoSize ?? 1000;
  const memo = new Map<string, BrowsingAnalysis>();
  return {
    async analyzeBrowsingContext(ctx: BrowserContext): Promise<BrowsingAnalysis> {
      const hash = contextHash(ctx);
      const hit = memo.get(hash);
      if (hit) {
        memo.delete(hash);
        memo.set(hash, hit);
        return hit;
      }
      const analysis = analyzeContext(ctx);
      memo.set(hash, analysis);
      if (memo.size > size) memo.delete(memo.keys().next().value!);
      return analysis;
    },
  };
}

export type RecommendActivities = ReturnType<typeof createRecommendActivities>;
