/** The browsing-context analysis and request validation on fixed contexts: exact, deterministic results. */
import { createRecommendActivities } from '../../activities/recommend';
import {
  analyzeContext,
  behaviourOf,
  canonicalJson,
  contextHash,
  interestsOf,
  preferencesOf,
  topicsOf,
} from '../../lib/recommend/analysis';
import { parseRecommendRequest, type BrowserContext, type RecommendRequest } from '../../contracts/recommendation';
import { recommendationMessages } from '../../workflows/recommendation-workflow';

const DEV: BrowserContext = {
  visited_sites: [
    { url: 'https://github.com/temporalio/sdk-typescript', title: 'Temporal TypeScript SDK' },
    { url: 'https://stackoverflow.com/questions/1/grpc-streaming-node', title: 'gRPC streaming in Node' },
    { url: 'https://docs.temporal.io/workflows', title: 'Temporal workflows' },
    { url: 'https://www.youtube.com/watch?v=abc', title: 'Rust async explained' },
  ],
  search_queries: ['temporal workflow typescript', 'grpc node streaming', 'rust async'],
  time_spent: { 'github.com': 1200, 'stackoverflow.com': 300, 'youtube.com': 100 },
};

describe('topics', () => {
  it('counts keywords from URLs, titles and queries, deduplicated, most frequent first, ties alphabetical', () => {
    // temporal ×4; grpc, node, streaming, typescript, workflow(s) ×3; async, rust, sdk ×2; then one mention each.
    expect(topicsOf(DEV)).toEqual([
      'temporal',
      'grpc',
      'node',
      'streaming',
      'typescript',
      'workflow',
      'async',
      'rust',
      'sdk',
      'docs',
    ]);
  });

  it('keeps at most 10, merges plurals into their singular and drops stopwords and numbers', () => {
    const ctx: BrowserContext = {
      visited_sites: [{ url: 'https://example.com/models/2024', title: 'The best models for the job' }],
      search_queries: [
        'model',
        'a b c d e f g h i j k l m n',
        'alpha beta gamma delta epsilon zeta eta theta iota kappa',
      ],
    };
    const topics = topicsOf(ctx);
    expect(topics).toHaveLength(10);
    expect(topics[0]).toBe('model');
    expect(topics).not.toContain('models');
    expect(topics).not.toContain('the');
    expect(topics).not.toContain('2024');
  });

  it('is empty for an empty context', () => {
    expect(topicsOf({ visited_sites: [], search_queries: [] })).toEqual([]);
  });
});

describe('interests, behaviour and preferences', () => {
  it('ranks interest areas by mentions and minutes on matching sites', () => {
    const interests = interestsOf(DEV);
    expect(interests[0]).toEqual({ name: 'programming', score: expect.any(Number) });
    expect(interests.map((i) => i.name)).toEqual(['programming', 'entertainment']);
    expect(interests.reduce((n, i) => n + i.score, 0)).toBeCloseTo(1, 1);
  });

  it('calls one dominant site focused, many even sites exploratory, no time unknown', () => {
    expect(behaviourOf(DEV)).toEqual({
      pattern: 'focused',
      totalSeconds: 1600,
      topSites: [
        { site: 'github.com', seconds: 1200, share: 0.75 },
        { site: 'stackoverflow.com', seconds: 300, share: 0.19 },
        { site: 'youtube.com', seconds: 100, share: 0.06 },
      ],
      engagement: 'deep',
    });
    const even = Object.fromEntries(['a.com', 'b.com', 'c.com', 'd.com', 'e.com'].map((s) => [s, 60]));
    expect(behaviourOf({ visited_sites: [], search_queries: [], time_spent: even })).toMatchObject({
      pattern: 'exploratory',
      engagement: 'skimming',
    });
    expect(
      behaviourOf({ visited_sites: [], search_queries: [], time_spent: { 'a.com': 100, 'b.com': 100 } }).pattern,
    ).toBe('balanced');
    expect(behaviourOf({ visited_sites: [], search_queries: [] }).pattern).toBe('unknown');
  });

  it('reads formats from the sites and depth from the behaviour', () => {
    expect(preferencesOf(DEV, behaviourOf(DEV))).toEqual({
      formats: ['code', 'documentation', 'video'],
      depth: 'in-depth',
    });
  });
});

describe('the analysis as a whole', () => {
  it('is deterministic and hashes a context the same whatever its key order', () => {
    const reordered = JSON.parse(
      canonicalJson({
        time_spent: DEV.time_spent,
        search_queries: DEV.search_queries,
        visited_sites: DEV.visited_sites,
      }),
    ) as BrowserContext;
    expect(contextHash(reordered)).toBe(contextHash(DEV));
    expect(analyzeContext(DEV)).toEqual(analyzeContext(structuredClone(DEV)));
    expect(analyzeContext(DEV).hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is memoised by the context hash in the activity', async () => {
    const acts = createRecommendActivities({ memoSize: 1 });
    const a = await acts.analyzeBrowsingContext(DEV);
    expect(await acts.analyzeBrowsingContext(structuredClone(DEV))).toBe(a);
    await acts.analyzeBrowsingContext({ visited_sites: [], search_queries: ['x'] });
    expect(await acts.analyzeBrowsingContext(DEV)).not.toBe(a);
  });

  it('builds the prompt from the analysis, not from raw URLs', () => {
    const [system, user] = recommendationMessages(analyzeContext(DEV), {
      contentType: 'technical',
      contentPeriod: 'recent',
    });
    expect(system!.role).toBe('system');
    expect(user!.content).toContain('Topics: temporal, grpc');
    expect(user!.content).toContain('Wanted: technical content, recent');
    expect(user!.content).not.toContain('https://');
  });
});

describe('request validation', () => {
  const ok = JSON.stringify(DEV);
  it('accepts a good request, content type defaulting to general', () => {
    const r = parseRecommendRequest({ user_id: 'u1', browser_context: ok });
    expect(r).toEqual({ ok: { userId: 'u1', context: DEV, contentType: 'general', contentPeriod: 'recent' } });
  });

  it.each<[string, RecommendRequest, RegExp]>([
    ['not JSON', { browser_context: '{nope' }, /^browser_context: not JSON/],
    ['no visited_sites', { browser_context: '{"search_queries": []}' }, /^browser_context: visited_sites missing$/],
    ['no search_queries', { browser_context: '{"visited_sites": []}' }, /^browser_context: search_queries missing$/],
    ['neither', { browser_context: '{}' }, /^browser_context: visited_sites and search_queries missing$/],
    [
      'too long',
      { browser_context: 'x'.repeat(10_001) },
      /^browser_context: 10001 characters, more than the 10000 allowed$/,
    ],
    ['an unknown content type', { browser_context: ok, content_type: 'poetry' }, /^content_type: unknown "poetry"/],
    [
      'a bad site',
      { browser_context: '{"visited_sites": [{"title": 1}], "search_queries": []}' },
      /^browser_context\.visited_sites\.0\./,
    ],
  ])('rejects %s precisely', (_label, req, message) => {
    const r = parseRecommendRequest(req);
    expect('error' in r && r.error).toMatch(message);
  });
});
