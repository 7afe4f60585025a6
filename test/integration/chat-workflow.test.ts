/**
 * chatWorkflow end to end through the HTTP API: signed webhook → signalWithStart → debounce → router → agent
 * (ontology/policy from the moto S3) → channel adapter (outbox in moto DynamoDB) → GET /chats. Real Temporal
 * dev server, real emulator, the real orchestrator worker and llm activities; the LLM is a scripted fake
 * Ollama so replies are exact (it answers like a model that reads its prompt: it quotes the facts it was given).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import pino from 'pino';
import { Ollama } from 'ollama';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import { createCatalog } from '../../activities/llm/catalog';
import { createLlmActivities } from '../../activities/llm';
import { createStorage, ensureStorage, type Storage } from '../../activities/storage/clients';
import { listOutboxMessages } from '../../activities/chat/state';
import type { OutboxMessage } from '../../activities/channel/types';
import { signBody, SIGNATURE_HEADER } from '../../activities/channel/signature';
import { CHANNEL, chatWorkflowId, chatWorkflowInput } from '../../api/routes/webhooks';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { llmQueue, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { Config } from '../../common/config';
import { chatMessageSignal, chatStatusQuery, type ChatInboundMessage } from '../../workflows/definitions';
import type { chatWorkflow } from '../../workflows/chat-workflow';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';

jest.setTimeout(120_000);

const MODEL = 'shopfake:1b';
const SECRET = 'test-webhook-secret';
const KEY = 'chat-test-key';
/** A key of another tenant: the channel's chats belong to `shop`. */
const OTHER_KEY = 'other-tenant-key';
const QUIET_MS = 1500;
const FIXTURES = path.join(__dirname, '..', 'fixtures', 'shop');

/** Router: keywords on the new messages. Agents: quote what the prompt gave them, like a faithful model. */
function shopBrain(req: FakeRequest): string {
  const system = req.messages[0]?.content ?? '';
  const last = req.messages[req.messages.length - 1]?.content ?? '';
  if (req.format) {
    const fresh = (last.split('New messages:\n')[1] ?? last).toLowerCase();
    const agent = /deliver|shipping|return/.test(fresh)
      ? 'delivery'
      : /price|how much|stock|have the|discount|pre-order|size|tote|shirt|belt|beanie/.test(fresh)
        ? 'product'
        : 'general';
    return JSON.stringify({ agent, reason: 'scripted router' });
  }
  if (system.includes('Product facts:')) {
    // A model that makes up a discount: the workflow's grounding must not let this price through.
    if (last.includes('discount')) return 'Good news: the Linen Shirt is only 19.99 EUR today!';
    const facts = (system.split('Product facts:\n')[1] ?? '').split('\n').filter((l) => l.startsWith('- '));
    return facts.length ? facts.map((l) => l.slice(2)).join(' ') : 'Which product do you mean?';
  }
  if (system.includes('Delivery policy:')) {
    const policy = system.split('Delivery policy:\n')[1] ?? '';
    const word = /express/i.test(last) ? 'Express' : /return/i.test(last) ? 'Returns are' : 'Standard delivery';
    return (policy.split('\n').find((l) => l.includes(word)) ?? 'I will ask a colleague.').replace(/^- /, '');
  }
  return `You wrote: ${last.split('\n').join(' / ')}`;
}

let env: TestWorkflowEnvironment;
let fake: FakeOllama;
let storage: Storage;
let config: Config;
let bundle: WorkflowBundleWithSourceMap;
let workers: Worker[];
let running: Promise<unknown>;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  env = await createTemporalEnv();
  fake = await startFakeOllama({ models: [MODEL], script: shopBrain });
  config = testConfig({
    S3_BUCKET: uid('chat').toLowerCase(),
    DYNAMO_TABLE_PREFIX: `${uid('chat')}-`,
    DEFAULT_MODEL: MODEL,
    CHANNEL_WEBHOOK_SECRET: SECRET,
    API_KEYS: `${KEY}:shop,${OTHER_KEY}:other`,
    CHANNEL_TENANT: 'shop',
    API_BODY_LIMIT_BYTES: '16384',
    CHAT_QUIET_MS: String(QUIET_MS),
    CHAT_MAX_WAIT_MS: '6000',
    OLLAMA_NODES: `fake=${fake.url}`,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  // What the dev stack does at start: every file in test/fixtures/shop goes to shop/<filename>.
  for (const f of ['ontology.ttl', 'delivery-policy.md']) {
    await storage.putObject(`shop/${f}`, readFileSync(path.join(FIXTURES, f)), 'text/plain');
  }
  bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows/chat-workflow'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
  });
  const orchestrator = await createOrchestratorWorker({
    connection: env.nativeConnection,
    config,
    storage,
    overrides: { workflowBundle: bundle },
  });
  const llm = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: llmQueue(MODEL),
    activities: createLlmActivities({
      ollama: new Ollama({ host: fake.url }),
      nodeId: 'fake',
      numCtx: 2048,
      callTimeoutMs: 30_000,
    }),
  });
  workers = [orchestrator, llm];
  running = Promise.all(workers.map((w) => w.run()));
  const deps: ApiDeps = {
    config,
    temporal: env.client,
    storage,
    catalog: createCatalog({ nodes: config.OLLAMA_NODES, nodeTimeoutMs: 2000 }),
    logger: pino({ level: 'silent' }),
  };
  app = createApp(deps);
});

afterAll(async () => {
  for (const w of workers ?? []) if (w.getState() === 'RUNNING') w.shutdown();
  await running?.catch(() => undefined);
  await fake?.close();
  storage?.close();
  await env?.teardown();
});

let seq = 0;
function payload(chatId: string, text: string, personType: 'user' | 'manager' | 'bot' = 'user', id = `m${++seq}`) {
  return { type: 'message', entity: { id, chatId, plainText: text, personType, createdAt: Date.now() } };
}

/** Posts a body signed as the channel would sign it. */
function post(body: unknown, signature?: string) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  return request(app)
    .post('/webhooks/channel')
    .set('content-type', 'application/json')
    .set(SIGNATURE_HEADER, signature ?? signBody(SECRET, raw))
    .send(raw);
}

async function send(chatId: string, text: string, personType: 'user' | 'manager' = 'user', id?: string) {
  const body = payload(chatId, text, personType, id);
  const res = await post(body);
  expect(res.status).toBe(202);
  return body.entity.id;
}

const api = (method: 'get' | 'post', url: string) => request(app)[method](url).set('Authorization', `Bearer ${KEY}`);

async function waitForReplies(chatId: string, n: number, timeoutMs = 60_000): Promise<OutboxMessage[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msgs = await listOutboxMessages(storage, CHANNEL, chatId, { limit: 100 });
    if (msgs.length >= n) return msgs;
    if (Date.now() > deadline) throw new Error(`chat ${chatId}: ${msgs.length} of ${n} replies after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Retries `check` until it stops throwing (state written by activities lands asynchronously). */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const status = (chatId: string) =>
  env.client.workflow.getHandle<typeof chatWorkflow>(chatWorkflowId(CHANNEL, chatId)).query(chatStatusQuery);

/** The answer request (not the router's) whose last user message contains `text`. */
const answerRequestFor = (text: string) =>
  fake.requests.filter((r) => !r.format && r.messages[r.messages.length - 1]?.content.includes(text));

describe('chat webhook', () => {
  it('rejects a bad or missing signature with 401 and starts nothing', async () => {
    const chatId = uid('sig');
    const body = JSON.stringify(payload(chatId, 'hello'));
    const bad = await post(body, signBody('wrong-secret', body));
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toBe('bad_signature');
    const missing = await request(app).post('/webhooks/channel').set('content-type', 'application/json').send(body);
    expect(missing.status).toBe(401);
    await expect(env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
  });

  it('answers malformed payloads with 400 naming the field, and too large ones with 413', async () => {
    const noChat = await post({
      type: 'message',
      entity: { id: 'x', plainText: 'hi', personType: 'user', createdAt: 1 },
    });
    expect(noChat.status).toBe(400);
    expect(noChat.body.error.message).toMatch(/^body\.entity\.chatId/);
    const badPerson = await post(payload('c1', 'hi', 'robot' as never));
    expect(badPerson.status).toBe(400);
    expect(badPerson.body.error.details.issues[0].field).toBe('body.entity.personType');
    const notJson = await post('{not json');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('invalid_json');
    const big = await post(payload('c1', 'x'.repeat(20_000)));
    expect(big.status).toBe(413);
  });

  it('acknowledges and ignores other event types, bot echoes and empty texts', async () => {
    const chatId = uid('ign');
    expect((await post({ type: 'userChat.opened', entity: { chatId } })).body).toEqual({
      status: 'ignored',
      reason: 'type "userChat.opened" is not handled',
    });
    expect((await post(payload(chatId, 'our own reply', 'bot'))).body.reason).toBe('bot message');
    expect((await post(payload(chatId, '   '))).body.reason).toBe('no text');
    await expect(env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
  });

  it('answers 404 for an unknown chat', async () => {
    expect((await api('get', '/chats/no-such-chat')).status).toBe(404);
    expect((await api('get', '/chats/no-such-chat/messages')).status).toBe(404);
    expect((await api('post', '/chats/no-such-chat/resume')).status).toBe(404);
    expect((await api('get', '/chats/bad%20id')).status).toBe(400);
    expect((await request(app).get('/chats/no-such-chat')).status).toBe(401);
  });
});

describe('chatWorkflow', () => {
  it('answers a burst of 5 messages once, and a redelivered message is not answered twice', async () => {
    const chatId = uid('burst');
    const texts = ['hi', 'I have a few questions', 'about your shop', 'are you open today', 'thanks!'];
    const ids: string[] = [];
    for (const t of texts) ids.push(await send(chatId, t));
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.turn).toBe(1);
    expect(reply!.agent).toBe('general');
    expect(reply!.inReplyTo).toEqual(ids);
    expect(reply!.text).toBe(`You wrote: ${texts.join(' / ')}`);
    expect(fake.requests.filter((r) => r.format && r.messages[1]!.content.includes('are you open today'))).toHaveLength(
      1,
    );

    // The channel redelivers message 3 (same id): acknowledged, but the workflow drops it.
    const again = await post(payload(chatId, texts[2]!, 'user', ids[2]));
    expect(again.status).toBe(202);
    expect(await status(chatId)).toMatchObject({ turns: 1, pending: 0 });
    const chat = await eventually(async () => {
      const r = await api('get', `/chats/${chatId}`);
      expect(r.body.messages.at(-1)?.role).toBe('bot');
      return r;
    });
    expect(chat.status).toBe(200);
    expect(chat.body.turns).toBe(1);
    expect(chat.body.messages.map((m: { role: string }) => m.role)).toEqual([...texts.map(() => 'customer'), 'bot']);
    const listed = await api('get', `/chats/${chatId}/messages`);
    expect(listed.body.messages).toHaveLength(1);
    // Another tenant's key sees the chat as missing, the same 404 as an unknown chat.
    const other = (method: 'get' | 'post', url: string) =>
      request(app)[method](url).set('Authorization', `Bearer ${OTHER_KEY}`);
    for (const [method, url] of [
      ['get', `/chats/${chatId}`],
      ['get', `/chats/${chatId}/messages`],
      ['post', `/chats/${chatId}/resume`],
    ] as const) {
      const res = await other(method, url);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    await recordHistory('chat-burst', env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)));
  });

  it('answers a price question with the ontology price, from facts that were in the prompt', async () => {
    const chatId = uid('price');
    await send(chatId, 'How much is the Linen Shirt?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.agent).toBe('product');
    expect(reply!.text).toContain('39.90 EUR');
    const [req] = answerRequestFor('How much is the Linen Shirt?');
    expect(req!.messages[0]!.content).toContain('Linen Shirt (SKU LS-100): price 39.90 EUR; in stock (12 left)');
    expect(req!.messages[0]!.content).not.toContain('Wool Beanie');
  });

  it('never lets an invented price through', async () => {
    const chatId = uid('invent');
    await send(chatId, 'Is there a discount on the linen shirt?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.text).not.toContain('19.99');
    expect(reply!.text).toBe('Linen Shirt costs 39.90 EUR, and it is in stock.');
  });

  it('says an out-of-stock product is out of stock', async () => {
    const chatId = uid('oos');
    await send(chatId, 'Do you have the wool beanie?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.text).toMatch(/out of stock/i);
    expect(reply!.text).toContain('Wool Beanie');
  });

  it('answers a delivery question from the policy in S3', async () => {
    const chatId = uid('deliv');
    await send(chatId, 'How much is express delivery?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.agent).toBe('delivery');
    expect(reply!.text).toBe('**Express delivery** (next business day, order before 14:00) costs 9.90 EUR.');
    const [req] = answerRequestFor('How much is express delivery?');
    expect(req!.messages[0]!.content).toContain('We do not ship outside the EU.');
    await eventually(async () => expect((await api('get', `/chats/${chatId}`)).body.lastAgent).toBe('delivery'));
  });

  it('pauses when a manager speaks and answers again after resume', async () => {
    const chatId = uid('mgr');
    await send(chatId, 'hello');
    await waitForReplies(chatId, 1);
    await send(chatId, 'Hi, this is Anna from the shop, I will help you.', 'manager');
    expect(await status(chatId)).toMatchObject({ paused: true, phase: 'paused' });
    const heldId = await send(chatId, 'great, how much is the canvas tote bag?');
    expect(await status(chatId)).toMatchObject({ paused: true, pending: 0, turns: 1 });
    // The state row is written by an activity right after the signal: poll until it lands.
    const chat = await eventually(async () => {
      const r = await api('get', `/chats/${chatId}`);
      expect(r.body.messages.at(-1)).toMatchObject({ role: 'customer', id: heldId, held: true });
      return r;
    });
    expect(chat.body.paused).toBe(true);
    // Longer than the quiet window: a bot that was not paused would have answered by now.
    await new Promise((r) => setTimeout(r, QUIET_MS * 2));
    expect(await listOutboxMessages(storage, CHANNEL, chatId, { limit: 10 })).toHaveLength(1);

    expect((await api('post', `/chats/${chatId}/resume`)).status).toBe(202);
    expect(await status(chatId)).toMatchObject({ paused: false });
    const newId = await send(chatId, 'How much is the canvas tote bag?');
    const replies = await waitForReplies(chatId, 2);
    expect(replies[1]!.inReplyTo).toEqual([newId]);
    expect(replies[1]!.text).toContain('18.00 EUR');
    await eventually(async () =>
      expect((await api('get', `/chats/${chatId}`)).body).toMatchObject({ paused: false, turns: 2 }),
    );
  });

  it('keeps the conversation across continue-as-new', async () => {
    const chatId = uid('can');
    const first: ChatInboundMessage = {
      id: `m${++seq}`,
      text: 'How much is the leather belt?',
      personType: 'user',
      createdAt: Date.now(),
    };
    const handle = await env.client.workflow.signalWithStart<typeof chatWorkflow, [ChatInboundMessage]>(
      'chatWorkflow',
      {
        workflowId: chatWorkflowId(CHANNEL, chatId),
        taskQueue: ORCHESTRATOR_QUEUE,
        args: [chatWorkflowInput(config, chatId, { turnLimit: 1 })],
        signal: chatMessageSignal,
        signalArgs: [first],
      },
    );
    const [r1] = await waitForReplies(chatId, 1);
    expect(r1!.text).toContain('49.00 EUR');
    // The follow-up names no product: only the carried history can tell which one "it" is.
    await send(chatId, 'Can I pre-order it?');
    const replies = await waitForReplies(chatId, 2);
    expect(replies[1]!.text).toContain('Leather Belt');
    const [req] = answerRequestFor('Can I pre-order it?');
    expect(req!.messages.map((m) => m.content)).toEqual(expect.arrayContaining([first.text, r1!.text]));
    const current = await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).describe();
    expect(current.runId).not.toBe(handle.signaledRunId);
    expect(await status(chatId)).toMatchObject({ turns: 2 });
  });

  it('closes when idle and a later message continues from the stored state', async () => {
    const chatId = uid('idle');
    const m1: ChatInboundMessage = { id: `m${++seq}`, text: 'hello there', personType: 'user', createdAt: Date.now() };
    const handle = await env.client.workflow.signalWithStart<typeof chatWorkflow, [ChatInboundMessage]>(
      'chatWorkflow',
      {
        workflowId: chatWorkflowId(CHANNEL, chatId),
        taskQueue: ORCHESTRATOR_QUEUE,
        args: [chatWorkflowInput(config, chatId, { idleCloseMs: 2000 })],
        signal: chatMessageSignal,
        signalArgs: [m1],
      },
    );
    expect(await handle.result()).toEqual({ turns: 1, closedBy: 'idle' });
    // A redelivery of the old message after the close starts a new run, which knows the id from storage.
    await send(chatId, m1.text, 'user', m1.id);
    await send(chatId, 'are you still there?');
    const replies = await waitForReplies(chatId, 2);
    expect(replies[1]!.turn).toBe(2);
    expect(replies[1]!.text).toBe('You wrote: are you still there?');
    await eventually(async () =>
      expect((await api('get', `/chats/${chatId}`)).body.messages.map((m: { text: string }) => m.text)).toEqual([
        'hello there',
        'You wrote: hello there',
        'are you still there?',
        'You wrote: are you still there?',
      ]),
    );
  });

  it('answers 100 chats at once, each exactly once despite redeliveries', async () => {
    const chats = Array.from({ length: 100 }, (_, i) => ({ chatId: uid(`many${i}`), text: `question number ${i}` }));
    const bodies = chats.map((c) => payload(c.chatId, c.text));
    // Every message is delivered twice, concurrently, as a channel retrying a slow webhook would.
    const res = await Promise.all([...bodies, ...bodies].map((b) => post(b)));
    expect(res.every((r) => r.status === 202)).toBe(true);
    const replies = await Promise.all(chats.map((c) => waitForReplies(c.chatId, 1, 110_000)));
    // Wait out one more quiet window: a duplicate answer would have to show up by then.
    await new Promise((r) => setTimeout(r, QUIET_MS * 2));
    for (const [i, c] of chats.entries()) {
      const now = await listOutboxMessages(storage, CHANNEL, c.chatId, { limit: 10 });
      expect(now).toHaveLength(1);
      expect(replies[i]![0]!.text).toBe(`You wrote: ${c.text}`);
    }
    const answered = fake.requests.filter((r) => !r.format && /question number \d+$/.test(r.messages.at(-1)!.content));
    expect(answered).toHaveLength(100);
  }, 180_000);
});
