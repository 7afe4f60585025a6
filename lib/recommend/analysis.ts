/**
 * Analysis of a browsing context for recommendations: topics, interests, behaviour pattern and content
 * preferences. Deterministic (same context → same analysis, ties broken alphabetically), so a memo keyed by the
 * context's hash is exact. No model is involved: this is what the prompt is built from.
 */
import { createHash } from 'node:crypto';
import type { BehaviourPattern, BrowserContext, BrowsingAnalysis, Interest } from '../../contracts/recommendation';

const MAX_TOPICS = 10;
const MAX_INTERESTS = 5;
/** Seconds per site at which engagement counts as deep reading rather than skimming. */
const DEEP_SECONDS_PER_SITE = 300;

const STOPWORDS = new Set(
  (
    'the and for with from that this what when where which who why how are was were been being have has had ' +
    'you your our their its not but can will just into onto over under about than then them they there these ' +
    'those also more most some any all new use using used via vs www com org net io dev html htm php aspx index ' +
    'http https home page pages search results query watch article articles post posts blog wiki en us uk ' +
    'best top get make does did one two three free online guide in on of to is it at by an as or be do my me we ' +
    // URL structure, not subject matter.
    'questions question issues issue pull tree blob main master tag tags category categories amp utm ref'
  ).split(' '),
);

/** Interest areas and the keywords (site names or words) that signal them. */
const INTERESTS: Record<string, string[]> = {
  programming: [
    'github',
    'gitlab',
    'stackoverflow',
    'code',
    'programming',
    'typescript',
    'javascript',
    'python',
    'rust',
    'golang',
    'java',
    'node',
    'nodejs',
    'react',
    'api',
    'npm',
    'developer',
    'debugging',
    'grpc',
    'temporal',
    'tutorial',
  ],
  'ai & machine learning': [
    'llm',
    'llms',
    'ai',
    'machine',
    'learning',
    'neural',
    'model',
    'models',
    'ollama',
    'pytorch',
    'tensorflow',
    'huggingface',
    'transformer',
    'transformers',
    'gpt',
    'openai',
    'embeddings',
  ],
  'cloud & devops': ['docker', 'kubernetes', 'aws', 'terraform', 'cloud', 'devops', 'linux', 'deploy', 'ci'],
  science: ['arxiv', 'research', 'paper', 'papers', 'science', 'physics', 'biology', 'nature', 'study'],
  news: ['news', 'bbc', 'cnn', 'nytimes', 'reuters', 'guardian', 'headlines', 'politics'],
  shopping: ['amazon', 'ebay', 'shop', 'buy', 'price', 'deal', 'deals', 'review', 'reviews', 'cart'],
  entertainment: ['youtube', 'netflix', 'music', 'movie', 'movies', 'game', 'games', 'spotify', 'twitch', 'series'],
  finance: ['stock', 'stocks', 'crypto', 'bitcoin', 'bank', 'finance', 'invest', 'investing', 'market'],
  travel: ['travel', 'flight', 'flights', 'hotel', 'hotels', 'booking', 'trip', 'airbnb'],
  health: ['health', 'fitness', 'diet', 'workout', 'nutrition', 'medical', 'sleep'],
  sports: ['sports', 'football', 'soccer', 'nba', 'tennis', 'espn', 'cricket'],
};

/** Formats and the sites or words that suggest them. */
const FORMATS: Record<string, string[]> = {
  code: ['github', 'gitlab', 'stackoverflow', 'codepen', 'npm', 'pypi'],
  documentation: ['docs', 'documentation', 'reference', 'developer', 'mdn', 'readthedocs'],
  video: ['youtube', 'vimeo', 'twitch', 'netflix'],
  articles: ['medium', 'blog', 'substack', 'dev', 'news', 'hashnode'],
  papers: ['arxiv', 'paper', 'papers', 'scholar', 'research'],
  discussion: ['reddit', 'hackernews', 'ycombinator', 'forum', 'discourse', 'stackexchange'],
};

/** Lowercase words of a text: letters and digits, 2+ characters, no stopwords, no bare numbers. */
export function wordsOf(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}+#]+/gu) ?? [])
    .map((w) => w.replace(/^[+#]+|[+#]+$/g, ''))
    .filter((w) => w.length >= 2 && !STOPWORDS.has(w) && !/^\d+$/.test(w));
}

/** The host of a URL without `www.`; the text itself when it is not a URL. */
export function siteOf(url: string): string {
  try {
    return new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `https://${url}`).hostname.replace(/^www\./, '');
  } catch {
    return url.toLowerCase();
  }
}

/** Keywords of a URL: its host's name parts (not the TLD) and its path's words. */
export function urlWords(url: string): string[] {
  let host = '';
  let path = '';
  try {
    const u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `https://${url}`);
    host = u.hostname.replace(/^www\./, '');
    path = decodeURIComponent(u.pathname);
  } catch {
    path = url;
  }
  const hostParts = host.split('.').slice(0, -1);
  return [...wordsOf(hostParts.join(' ')), ...wordsOf(path)];
}

/** Counts of keywords; a plural merges into its singular when both occur ("models" → "model"). */
function countKeywords(ctx: BrowserContext): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (w: string) => counts.set(w, (counts.get(w) ?? 0) + 1);
  for (const s of ctx.visited_sites) {
    urlWords(s.url).forEach(add);
    if (s.title) wordsOf(s.title).forEach(add);
  }
  for (const q of ctx.search_queries) wordsOf(q).forEach(add);
  for (const w of [...counts.keys()].sort()) {
    const singular = w.endsWith('s') ? w.slice(0, -1) : undefined;
    if (singular && singular.length >= 2 && counts.has(singular)) {
      counts.set(singular, counts.get(singular)! + counts.get(w)!);
      counts.delete(w);
    }
  }
  return counts;
}

const byCountThenName = (a: [string, number], b: [string, number]) => b[1] - a[1] || a[0].localeCompare(b[0]);
const round2 = (n: number) => Math.round(n * 100) / 100;

/** The top keywords by frequency, deduplicated, ties alphabetical. */
export function topicsOf(ctx: BrowserContext): string[] {
  return [...countKeywords(ctx)]
    .sort(byCountThenName)
    .slice(0, MAX_TOPICS)
    .map(([w]) => w);
}

/** Seconds per site (hosts merged: `github.com` and `https://github.com/x` are one site). */
function secondsPerSite(ctx: BrowserContext): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(ctx.time_spent ?? {})) {
    const site = siteOf(k);
    out.set(site, (out.get(site) ?? 0) + v);
  }
  return out;
}

/** Matches an area's keywords against the words and site names; a minute on a site counts like one mention. */
export function interestsOf(ctx: BrowserContext): Interest[] {
  const counts = countKeywords(ctx);
  const time = secondsPerSite(ctx);
  const scores = new Map<string, number>();
  for (const [area, keywords] of Object.entries(INTERESTS)) {
    const kw = new Set(keywords);
    let score = 0;
    for (const [w, n] of counts) if (kw.has(w)) score += n;
    for (const [site, seconds] of time)
      if (wordsOf(site.split('.').slice(0, -1).join(' ')).some((w) => kw.has(w))) {
        score += seconds / 60;
      }
    if (score > 0) scores.set(area, score);
  }
  const total = [...scores.values()].reduce((a, b) => a + b, 0);
  return [...scores]
    .sort(byCountThenName)
    .slice(0, MAX_INTERESTS)
    .map(([name, s]) => ({ name, score: round2(s / total) }));
}

/** From `time_spent`: focused (one site ≥ 60% of the time), exploratory (5+ sites, none over 30%), else balanced. */
export function behaviourOf(ctx: BrowserContext): BrowsingAnalysis['behaviour'] {
  const time = [...secondsPerSite(ctx)].filter(([, s]) => s > 0).sort(byCountThenName);
  const totalSeconds = time.reduce((n, [, s]) => n + s, 0);
  if (!totalSeconds) return { pattern: 'unknown', totalSeconds: 0, topSites: [], engagement: 'unknown' };
  const topShare = time[0]![1] / totalSeconds;
  let pattern: BehaviourPattern = 'balanced';
  if (topShare >= 0.6) pattern = 'focused';
  else if (time.length >= 5 && topShare < 0.3) pattern = 'exploratory';
  return {
    pattern,
    totalSeconds,
    topSites: time.slice(0, 3).map(([site, seconds]) => ({ site, seconds, share: round2(seconds / totalSeconds) })),
    engagement: totalSeconds / time.length >= DEEP_SECONDS_PER_SITE ? 'deep' : 'skimming',
  };
}

/** Formats the sites and words suggest, in FORMATS order; depth from the behaviour. */
export function preferencesOf(
  ctx: BrowserContext,
  behaviour: BrowsingAnalysis['behaviour'],
): BrowsingAnalysis['preferences'] {
  const words = new Set<string>();
  for (const s of ctx.visited_sites) urlWords(s.url).forEach((w) => words.add(w));
  for (const site of secondsPerSite(ctx).keys()) wordsOf(site).forEach((w) => words.add(w));
  const formats = Object.entries(FORMATS)
    .filter(([, kws]) => kws.some((k) => words.has(k)))
    .map(([f]) => f);
  const depth = behaviour.pattern === 'focused' || behaviour.engagement === 'deep' ? 'in-depth' : 'overview';
  return { formats, depth };
}

/** Canonical JSON (keys sorted at every level): equal contexts hash equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function contextHash(ctx: BrowserContext): string {
  return createHash('sha256').update(canonicalJson(ctx)).digest('hex');
}

export function analyzeContext(ctx: BrowserContext): BrowsingAnalysis {
  const behaviour = behaviourOf(ctx);
  return {
    hash: contextHash(ctx),
    topics: topicsOf(ctx),
    interests: interestsOf(ctx),
    behaviour,
    preferences: preferencesOf(ctx, behaviour),
  };
}
