/**
 * Per-user, durable recommendations end to end: `POST /users/:userId/browsing-events` (signalWithStart of the
 * user's userRecommendationWorkflow) and `GET /users/:userId/recommendations`, against a Temporal dev server,
 * the moto emulator and a scripted streaming Ollama node whose requests we count: a burst of events gives one
 * refresh (debounced, 300 ms quiet window), the same interests again give none, a shift gives a new one whose
 * reason names it, and another tenant gets 404.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../common/config';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { startStreamingOllama, type StreamingOllama } from '../helpers/streaming-ollama';
import { listenApp, testApp, type ListeningApp } from '../helpers/api';
import { recordHistory } from '../helpers/histories';
import type { RunningWorkers } from '../../scripts/lib/workers';
import { userRecommendationWorkflowId } from '../../api/routes/users';
import { startTestWorkers } from '../helpers/workers';

jest.setTimeout(240_000);

const KEY_A = 'urec-key-a';
const KEY_B = 'urec-key-b';
/** Tenant `tenant` and user `a-u1` name the same workflow id as tenant `tenant-a` and user `u1`. */
const KEY_C = 'urec-key-c';
const FAKE = 'urec-fake:1b';
const TEXTS = [
  '1. Temporal in practice: durable workflows. 2. gRPC streaming in Node: server streams explained.',
  '1. Async Rust with Tokio: a runtime tour. 2. Temporal and Rust: workers in another language.',
];
const words = (text: string) => text.split(/(?<= )/);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const E1 = {
  visited_sites: [{ url: 'https://github.com/temporalio/sdk-typescript', title: 'Temporal TypeScript SDK' }],
  search_queries: ['temporal workflow typescript'],
};
const E2 = {
  visited_sites: [
    { url: 'https://stackoverflow.com/questions/1/grpc-streaming-node', title: 'gRPC streaming in Node' },
  ],
  search_queries: ['grpc node streaming'],
};
const E3 = { time_spent: { 'github.com': 1200, 'stackoverflow.com': 300 } };
/** The burst's content once more: every keyword count doubles, the top topics stay the same. */
const SAME = {
  visited_sites: [...E1.visited_sites, ...E2.visited_sites],
  search_queries: [...E1.search_queries, ...E2.search_queries],
};
const RUST = {
  visited_sites: [1, 2, 3, 4, 5].map((i) => ({
    url: `https://tokio.rs/tokio/tutorial/async-${i}`,
    title: 'Rust async runtime: tokio tutorial',
  })),
  search_queries: ['rust tokio async runtime', 'rust async tokio tutorial', 'tokio rust runtime'],
};

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;
let streaming: StreamingOllama;
let config: Config;
let api: ListeningApp;
let replies = 0;

const chats = () => streaming.requests.filter((r) => r.path === '/api/chat').length;

async function post(userId: string, body: unknown, key = KEY_A) {
  return fetch(`${api.url}/users/${userId}/browsing-events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

interface Latest {
  status: string;
  content?: string;
  createdAt?: string;
  reason?: string;
  topics?: string[];
  refreshes?: number;
}

async function get(userId: string, key = KEY_A): Promise<{ status: number; body: Latest }> {
  const res = await fetch(`${api.url}/users/${userId}/recommendations`, {
    headers: { authorization: `Bearer ${key}` },
  });
  return { status: res.status, body: (await res.json()) as Latest };
}

/** Polls GET until `done` holds. */
async function until(userId: string, done: (b: Latest) => boolean, ms = 30_000): Promise<Latest> {
  const end = Date.now() + ms;
  for (;;) {
    const { body } = await get(userId);
    if (done(body)) return body;
    if (Date.now() > end) throw new Error(`timed out; last ${JSON.stringify(body)}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  env = await createTemporalEnv();
  streaming = await startStreamingOllama({
    models: [FAKE],
    reply: () => ({ pieces: words(TEXTS[Math.min(replies++, TEXTS.length - 1)]!), delayMs: 5 }),
  });
  config = testConfig({
    API_KEYS: `${KEY_A}:tenant-a,${KEY_B}:tenant-b,${KEY_C}:tenant`,
    S3_BUCKET: uid('urec'),
    OLLAMA_NODES: `stream-node=${streaming.url}`,
    RECOMMEND_MODEL: FAKE,
    USER_REC_QUIET_MS: '300',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = await startTestWorkers(env, {
    config,
    storage,
    workflowsPath: require.resolve('../../workflows/user-recommendation-workflow'),
    nodes: [{ id: 'stream-node', url: streaming.url }],
  });
  api = await listenApp(testApp(env, { config, storage }));
});

afterAll(async () => {
  await api?.close();
  await workers?.stop();
  await env?.teardown();
  await streaming?.close();
  storage?.close();
});

describe('per-user recommendations', () => {
  it('validates the event and names the field', async () => {
    const many = { visited_sites: Array.from({ length: 21 }, (_, i) => ({ url: `https://x.test/${i}` })) };
    let res = await post('u1', many);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/^visited_sites: /);
    res = await post('u1', { visited_sites: [{ title: 'no url' }] });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('visited_sites.0.url');
    res = await post('u1', {});
    expect(res.status).toBe(400);
    res = await post('bad%20user', E1);
    expect(res.status).toBe(400);
    expect((await get('nobody')).status).toBe(404);
  });

  it('refreshes once per burst, not for the same interests, again when they shift', async () => {
    const before = chats();
    expect((await post('u1', E1)).status).toBe(202);
    const pending = await get('u1');
    expect(pending.status).toBe(200);
    expect(pending.body.status).toBe('pending');
    expect((await post('u1', E2)).status).toBe(202);
    expect((await post('u1', E3)).status).toBe(202);

    const first = await until('u1', (b) => b.status === 'ready');
    expect(first.content).toBe(TEXTS[0]);
    expect(first.reason).toBe('first recommendation');
    expect(Date.parse(first.createdAt!)).toBeGreaterThan(Date.now() - 60_000);
    expect(first.topics).toEqual(expect.arrayContaining(['temporal', 'grpc', 'streaming']));
    await sleep(1_000);
    expect(chats() - before).toBe(1);
    const prompt = JSON.stringify(streaming.requests.at(-1)!.body.messages);
    expect(prompt).toContain('Topics: ');

    // The same interests again: analysed after the quiet window, but no new model call.
    expect((await post('u1', SAME)).status).toBe(202);
    await sleep(1_500);
    expect(chats() - before).toBe(1);
    expect((await get('u1')).body.createdAt).toBe(first.createdAt);

    // Rust and Tokio take over the top topics: a new refresh, and the reason names the shift.
    expect((await post('u1', RUST)).status).toBe(202);
    const second = await until('u1', (b) => b.refreshes === 2);
    expect(chats() - before).toBe(2);
    expect(second.content).toBe(TEXTS[1]);
    expect(second.reason).toMatch(/^interests shifted: /);
    expect(second.reason).toContain('+rust');
    expect(second.reason).toContain('+tokio');
    expect(second.topics).toEqual(expect.arrayContaining(['rust', 'tokio']));

    const handle = env.client.workflow.getHandle(
      userRecommendationWorkflowId(config.USER_PSEUDONYM_SECRET, 'tenant-a', 'u1'),
    );
    expect((await handle.describe()).memo?.tenant).toBe('tenant-a');
    await recordHistory('user-recommendation', handle);
  });

  it('another tenant gets 404, also for a user id that would read like another tenant’s', async () => {
    expect((await get('u1', KEY_B)).status).toBe(404);
    // Tenant `tenant` with user `a-u1` is not tenant `tenant-a` with user `u1`.
    expect((await get('a-u1', KEY_C)).status).toBe(404);
  });
});
