/**
 * chatWorkflow end to end through the HTTP API: signed webhook → signalWithStart → debounce → router → agent
 * (ontology/policy from the moto S3) → channel adapter (outbox in moto DynamoDB) → GET /chats. Real Temporal
 * dev server, real emulator, the real orchestrator worker and llm activities; the LLM is a scripted fake
 * Ollama so replies are exact (it answers like a model that reads its prompt: it quotes the facts it was given).
 * Replies also go to the channel's callback URL: a local server that records each signed post.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import request from 'supertest';
import pino from 'pino';
import { Ollama } from 'ollama';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import { createCatalog } from '../../lib/llm/catalog';
import { createLlmActivities } from '../../activities/llm';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { listOutboxMessages } from '../../lib/chat/state';
import type { OutboxMessage } from '../../contracts/channel';
import { signBody, SIGNATURE_HEADER, verifySignature } from '../../lib/channel/signature';
import { IDEMPOTENCY_HEADER } from '../../activities/channel';
import { CHANNEL, chatWorkflowId, chatWorkflowInput } from '../../api/routes/webhooks';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { llmQueue, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { Config } from '../../common/config';
import { chatMessageSignal, chatStatusQuery } from '../../contracts/definitions';
import type { ChatInboundMessage } from '../../contracts/chat';
import type { chatWorkflow } from '../../workflows/chat/chat-workflow';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(120_000);

const MODEL = 'shopfake:1b';
const SECRET = 'test-webhook-secret';
const KEY = 'chat-test-key';
/** A key of another tenant: the channel's chats belong to `shop`. */
const OTHER_KEY = 'other-tenant-key';
const QUIET_MS = 1500;
/** The quiet window of the burst test's chat: a busy machine may take seconds between two local HTTP posts. */
const BURST_QUIET_MS = 5000;
const FIXTURES = path.join(__dirname, '..', 'fixtures', 'shop');

/**
 * Replies queued for the router, by a text its new messages contain: a test scripts a misbehaving model.
 * Unscripted, the router answers like a model that reads its prompt: keywords, a product from the enum.
 */
const routerScript = new Map<string, string[]>();
/** The general agent's reply, by a text in the customer's message; SYSTEM_PROMPT echoes the system prompt. */
const agentScript = new Map<string, string>();
/** Messages containing one of these make the fake node answer HTTP 500 (a node that fails every call). */
const failing = new Set<string>();
const SYSTEM_PROMPT = '<system prompt>';

function fakeRoute(fresh: string, format: unknown): { agent: string; product: string; intent: string } {
  const schema = format as { properties: { product: { enum: string[] } } };
  const products = schema.properties.product.enum.filter((p) => p !== 'none');
  const agent = /deliver|shipping|return|refund|track/.test(fresh)
    ? 'delivery'
    : /price|how much|stock|have the|discount|pre-order|size|tote|shirt|belt|beanie|cuánto|cuesta/.test(fresh)
      ? 'product'
      : 'general';
  const product =
    agent !== 'product'
      ? 'none'
      : (products.find((p) => fresh.includes(p.toLowerCase())) ??
        products.find((p) => fresh.includes(p.toLowerCase().split(' ').pop()!)) ??
        (products.length === 1 ? products[0]! : 'none'));
  const intent =
    agent === 'product'
      ? /how much|price|discount|cuesta/.test(fresh)
        ? 'price'
        : /stock|have the|pre-order/.test(fresh)
          ? 'stock'
          : /size|colou?r/.test(fresh)
            ? 'options'
            : 'other'
      : agent === 'delivery'
        ? /express/.test(fresh)
          ? 'express'
          : /return/.test(fresh)
            ? 'returns'
            : /how long/.test(fresh)
              ? 'delivery_time'
              : 'delivery_cost'
        : 'other';
  return { agent, product, intent };
}

function shopBrain(req: FakeRequest): string {
  const system = req.messages[0]?.content ?? '';
  const last = req.messages[req.messages.length - 1]?.content ?? '';
  const asked = req.messages.map((m) => m.content).join('\n');
  for (const trigger of failing) if (asked.includes(trigger)) throw new Error(`scripted failure: ${trigger}`);
  if (req.format) {
    // The router's own message (a repair attempt appends the model's answer and the error after it).
    const routed = req.messages[1]?.content ?? '';
    const fresh = (routed.split('New messages:\n')[1] ?? routed).toLowerCase();
    for (const [trigger, queue] of routerScript) {
      if (fresh.includes(trigger.toLowerCase()) && queue.length) return queue.shift()!;
    }
    return JSON.stringify(fakeRoute(fresh, req.format));
  }
  for (const [trigger, reply] of agentScript)
    if (last.includes(trigger)) return reply === SYSTEM_PROMPT ? system : reply;
  // Like a small model that writes only English.
  if (/[^\p{Script=Latin}\p{P}\p{N}\s]/u.test(last)) return 'Hello! How can I help you today?';
  return `You wrote: ${last.split('\n').join(' / ')}`;
}

/** What the channel's callback URL received: headers, the raw body (what the signature covers), parsed. */
interface CallbackPost {
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
  body: { type: string; entity: { id: string; chatId: string; plainText: string; createdAt: number } };
}
const callbackPosts: CallbackPost[] = [];
/** Chats whose next callback posts are answered 503 (a channel briefly down): how many more. */
const callbackFailures = new Map<string, number>();

async function startCallbackServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const post: CallbackPost = { headers: req.headers, raw, body: JSON.parse(raw.toString('utf8')) };
      callbackPosts.push(post);
      const failures = callbackFailures.get(post.body.entity.chatId) ?? 0;
      if (failures > 0) callbackFailures.set(post.body.entity.chatId, failures - 1);
      res.writeHead(failures > 0 ? 503 : 200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channel/replies`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

let env: TestWorkflowEnvironment;
let fake: FakeOllama;
let callback: { url: string; close: () => Promise<void> };
let storage: Storage;
let config: Config;
let bundle: WorkflowBundleWithSourceMap;
let workers: RunningWorkers | undefined;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  env = await createTemporalEnv();
  fake = await startFakeOllama({ models: [MODEL], script: shopBrain });
  callback = await startCallbackServer();
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
    CHANNEL_CALLBACK_URL: callback.url,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  // What the dev stack does at start: every file in test/fixtures/shop goes to shop/<filename>.
  for (const f of ['ontology.ttl', 'delivery-policy.md']) {
    await storage.putObject(`shop/${f}`, readFileSync(path.join(FIXTURES, f)), 'text/plain');
  }
  bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows/chat/chat-workflow'),
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
  workers = runWorkers([orchestrator, llm]);
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
  await workers?.stop();
  await fake?.close();
  await callback?.close();
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

/** The free-text (general agent) requests whose last user message contains `text`. */
const agentRequestsFor = (text: string) =>
  fake.requests.filter((r) => !r.format && r.messages[r.messages.length - 1]?.content.includes(text));
/** The router requests (structured output) for new messages containing `text`, in order. */
const routerRequestsFor = (text: string) =>
  fake.requests.filter((r) => r.format && r.messages[1]?.content.split('New messages:\n')[1]?.includes(text));
const enumOf = (req: FakeRequest, field: 'product' | 'intent') =>
  (req.format as { properties: Record<string, { enum: string[] }> }).properties[field]!.enum;

/** The Web UI's summaries of a chat's activities (what a user sees in the event history). */
async function activitySummaries(chatId: string, type: string): Promise<string[]> {
  const history = await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).fetchHistory();
  // A turn's steps run as local activities since the chat-local-steps patch: their summary is on the marker.
  const localType = (e: (typeof history.events & object)[number]) => {
    const m = e.markerRecordedEventAttributes;
    const data = m?.markerName === 'core_local_activity' ? m.details?.data?.payloads?.[0]?.data : undefined;
    return data
      ? (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type
      : undefined;
  };
  return (history.events ?? [])
    .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type || localType(e) === type)
    .map((e) => {
      const data = e.userMetadata?.summary?.data;
      return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as string) : '';
    });
}

const SHIRT_PRICE =
  'The Linen Shirt costs 39.90 EUR and is in stock (12 left). Colours: white, sand, navy; sizes: S, M, L, XL.';

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

  it('accepts the channel’s test event (no id, no createdAt) without dedup, and answers it', async () => {
    const chatId = uid('test');
    const body = { type: 'message', entity: { chatId, plainText: '안녕하세요', personType: 'user' } };
    const res = await post(body);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      status: 'accepted',
      workflowId: chatWorkflowId(CHANNEL, chatId),
      messageId: expect.stringMatching(/^noid-[0-9a-f-]{36}$/),
      dedup: false,
      note: 'no message id: redeliveries cannot be deduplicated',
    });
    // Sent again, it is a new message: without an id nothing tells it apart from a redelivery.
    const again = await post(body);
    expect(again.status).toBe(202);
    expect(again.body.messageId).not.toBe(res.body.messageId);
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.inReplyTo).toEqual([res.body.messageId, again.body.messageId]);
    expect(reply!.text).toBe('안녕하세요! 메시지 감사합니다. 곧 담당자가 답변드리겠습니다.');
    // What the workflow received: the generated ids, and createdAt defaulted to the time of receipt.
    const history = await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).fetchHistory();
    const signals = (history.events ?? [])
      .filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === chatMessageSignal.name)
      .map((e) => {
        const data = e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!.data!;
        return JSON.parse(Buffer.from(data).toString('utf8')) as ChatInboundMessage;
      });
    expect(signals.map((m) => m.id)).toEqual([res.body.messageId, again.body.messageId]);
    for (const m of signals) expect(Math.abs(m.createdAt - Date.now())).toBeLessThan(120_000);
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
    // Started with a generous quiet window (the webhook then only signals it): the five posts make one burst
    // however slowly a busy machine sends them.
    await env.client.workflow.start<typeof chatWorkflow>('chatWorkflow', {
      workflowId: chatWorkflowId(CHANNEL, chatId),
      taskQueue: ORCHESTRATOR_QUEUE,
      args: [chatWorkflowInput(config, chatId, { quietMs: BURST_QUIET_MS, maxWaitMs: 10 * BURST_QUIET_MS })],
    });
    const texts = ['hi', 'I have a few questions', 'about your shop', 'are you open today', 'thanks!'];
    const ids: string[] = [];
    for (const t of texts) ids.push(await send(chatId, t));
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.turn).toBe(1);
    expect(reply!.agent).toBe('general');
    expect(reply!.inReplyTo).toEqual(ids);
    expect(reply!.text).toBe(`You wrote: ${texts.join(' / ')}`);
    expect(reply!.meta).toEqual({
      agent: 'general',
      product: 'none',
      intent: 'other',
      path: 'model',
      writer: 'model',
      lang: 'en',
    });
    expect(fake.requests.filter((r) => r.format && r.messages[1]!.content.includes('are you open today'))).toHaveLength(
      1,
    );

    // The channel redelivers message 3 (same id): acknowledged, but the workflow drops it.
    const again = await post(payload(chatId, texts[2]!, 'user', ids[2]));
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ messageId: ids[2], dedup: true });
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
    await recordHistory('chat-local-steps', env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)));
  });

  it('answers a price question with a reply written from the ontology: the model only picked the product', async () => {
    const chatId = uid('price');
    await send(chatId, 'How much is the Linen Shirt?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.agent).toBe('product');
    expect(reply!.text).toBe(SHIRT_PRICE);
    expect(reply!.meta).toMatchObject({ product: 'Linen Shirt', intent: 'price', path: 'model', writer: 'data' });
    // One structured call, with the product enum narrowed to what the customer named; no free-text call.
    const [route] = routerRequestsFor('How much is the Linen Shirt?');
    expect(enumOf(route!, 'product')).toEqual(['Linen Shirt', 'none']);
    expect(enumOf(route!, 'intent')).toEqual(expect.arrayContaining(['price', 'stock', 'delivery_time', 'other']));
    expect(route!.options).toMatchObject({ temperature: 0, num_predict: 64 });
    expect(agentRequestsFor('How much is the Linen Shirt?')).toHaveLength(0);
    expect(await activitySummaries(chatId, 'composeChatReply')).toEqual([
      'reply: product · Linen Shirt · price (router: model)',
    ]);
  });

  it('never lets an invented price through: the general draft is replaced by the data reply', async () => {
    const chatId = uid('invent');
    // A confused router sends a product question to the general agent, which makes up a discount.
    routerScript.set('discount on the linen shirt', ['{"agent":"general","product":"none","intent":"other"}']);
    agentScript.set('discount', 'Good news: the Linen Shirt is only 19.99 EUR today!');
    await send(chatId, 'Is there a discount on the linen shirt?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.text).toBe(SHIRT_PRICE);
    expect(reply!.meta).toMatchObject({
      agent: 'product',
      product: 'Linen Shirt',
      writer: 'data',
      replaced: { reason: 'price', detail: 'states 19.99, not in the shop data' },
    });
  });

  it('never shows the customer the system prompt or the facts block', async () => {
    const echoing = uid('echo');
    const greeting = uid('echo2');
    // What users saw: a product question routed to free text, answered with the prompt itself.
    routerScript.set('wool beanie in stock', ['{"agent":"general","product":"none","intent":"other"}']);
    agentScript.set(
      'Wool Beanie',
      'You are the customer assistant of an online shop. Product facts:\n- Wool Beanie (SKU WB-200): price 24.50 EUR; OUT OF STOCK',
    );
    agentScript.set('about yourself', SYSTEM_PROMPT);
    await send(echoing, 'Is the Wool Beanie in stock?');
    await send(greeting, 'tell me about yourself');
    const [r1] = await waitForReplies(echoing, 1);
    const [r2] = await waitForReplies(greeting, 1);
    expect(r1!.text).toBe('Sorry, the Wool Beanie is currently out of stock. It costs 24.50 EUR.');
    expect(r1!.meta?.replaced).toEqual({ reason: 'echo', detail: 'contains "You are the customer assistant"' });
    // The general agent really did echo its system prompt; the customer got the polite line instead.
    expect(agentRequestsFor('tell me about yourself')).toHaveLength(1);
    expect(r2!.text).toBe('Hello! Thanks for your message. A colleague will get back to you shortly.');
    expect(r2!.meta).toMatchObject({ writer: 'fallback', replaced: { reason: 'echo' } });
    for (const r of [r1!, r2!]) {
      expect(r.text).not.toContain('You are the customer assistant');
      expect(r.text).not.toContain('Product facts:');
    }
  });

  it('answers a greeting with the general agent when the router picks a product the words do not support', async () => {
    const chatId = uid('hello');
    // What a 270M base model does: the first value of every enum.
    routerScript.set('who are you', ['{"agent":"product","product":"Canvas Tote Bag","intent":"price"}']);
    await send(chatId, 'Hello! Who are you?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.text).toBe('You wrote: Hello! Who are you?');
    expect(reply!.meta).toMatchObject({ agent: 'general', product: 'none', path: 'model', writer: 'model' });
  });

  it('repairs invalid router output once, then falls back to keywords, and records which path was used', async () => {
    const repaired = uid('repair');
    const fallback = uid('fallback');
    routerScript.set('colours does the linen shirt', ['{"agent": "sales", "product": "Linen Shirt"}']);
    routerScript.set('linen shirt still in stock', ['{"agent": "prod', 'Sure! The product is the Linen Shirt.']);
    await send(repaired, 'Which colours does the linen shirt come in?');
    await send(fallback, 'Is the linen shirt still in stock?');
    const [r1] = await waitForReplies(repaired, 1);
    const [r2] = await waitForReplies(fallback, 1);
    expect(r1!.meta).toMatchObject({ path: 'repaired', product: 'Linen Shirt', intent: 'options' });
    expect(r1!.text).toBe(
      'The Linen Shirt comes in these options. Colours: white, sand, navy; sizes: S, M, L, XL. It costs 39.90 EUR and is in stock (12 left).',
    );
    // The repair attempt shows the model its answer and says what was wrong.
    const [, repair] = routerRequestsFor('Which colours does the linen shirt come in?');
    expect(repair!.messages.at(-2)).toEqual({
      role: 'assistant',
      content: '{"agent": "sales", "product": "Linen Shirt"}',
    });
    expect(repair!.messages.at(-1)!.content).toContain(
      '"agent" must be one of product, delivery, general, not "sales"; "intent" is missing',
    );
    // Invalid twice: exactly two router calls, then keywords; the reply is still right.
    expect(routerRequestsFor('Is the linen shirt still in stock?')).toHaveLength(2);
    expect(r2!.text).toBe('Yes, the Linen Shirt is in stock (12 left). It costs 39.90 EUR.');
    expect(r2!.meta).toMatchObject({ path: 'fallback', agent: 'product', product: 'Linen Shirt', intent: 'stock' });
    // Recorded in the chat state and visible in the Web UI (the activity summary).
    await eventually(async () => {
      const chat = await api('get', `/chats/${fallback}`);
      expect(chat.body.messages.at(-1)).toMatchObject({ role: 'bot', meta: { path: 'fallback', writer: 'data' } });
    });
    expect(await activitySummaries(fallback, 'composeChatReply')).toEqual([
      'reply: product · Linen Shirt · stock (router: fallback)',
    ]);
    // Structured turns (repair, fallback) for the replay test, when recording (AINODE_RECORD_HISTORIES=1).
    await recordHistory('chat-structured', env.client.workflow.getHandle(chatWorkflowId(CHANNEL, fallback)));
  });

  it('answers even when every LLM call fails: keyword routing, data reply, polite fallback', async () => {
    failing.add('broken node');
    const price = uid('down');
    const hello = uid('down');
    await send(price, 'broken node: how much is the linen shirt?');
    await send(hello, 'broken node says hello');
    const [r1] = await waitForReplies(price, 1);
    const [r2] = await waitForReplies(hello, 1);
    expect(r1!.meta).toMatchObject({ path: 'fallback', agent: 'product', product: 'Linen Shirt', writer: 'data' });
    expect(r1!.text).toContain('39.90 EUR');
    expect(r2!.meta).toMatchObject({ path: 'fallback', agent: 'general' });
    expect(r2!.meta!.writer).not.toBe('model');
    expect(r2!.text.trim().length).toBeGreaterThan(0);
    // The router was tried twice (one retry), then the keywords answered: the chat never failed.
    expect(
      fake.requests.filter((r) => r.format && r.messages[1]?.content.includes('how much is the linen')),
    ).toHaveLength(2);
    const desc = await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, price)).describe();
    expect(desc.status.name).toBe('RUNNING');
  });

  it('says an out-of-stock product is out of stock', async () => {
    const chatId = uid('oos');
    await send(chatId, 'Do you have the wool beanie?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.text).toBe('Sorry, the Wool Beanie is currently out of stock. It costs 24.50 EUR.');
  });

  it('answers a delivery question with the policy line from S3', async () => {
    const chatId = uid('deliv');
    await send(chatId, 'How much is express delivery?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.agent).toBe('delivery');
    expect(reply!.text).toBe('Express delivery (next business day, order before 14:00) costs 9.90 EUR.');
    expect(reply!.meta).toMatchObject({ intent: 'express', writer: 'data' });
    const [route] = routerRequestsFor('How much is express delivery?');
    expect(enumOf(route!, 'intent')).toEqual(
      expect.arrayContaining(['express', 'eu_shipping', 'delivery_cost', 'returns', 'refund', 'tracking']),
    );
    await eventually(async () => expect((await api('get', `/chats/${chatId}`)).body.lastAgent).toBe('delivery'));
  });

  it('answers in the customer’s language where it can, and never in a script they do not read', async () => {
    const spanish = uid('es');
    const korean = uid('ko');
    await send(spanish, '¿Cuánto cuesta la Linen Shirt?');
    await send(korean, '안녕하세요');
    const [es] = await waitForReplies(spanish, 1);
    const [ko] = await waitForReplies(korean, 1);
    expect(es!.text).toBe(`Aquí tiene la información (en inglés): ${SHIRT_PRICE}`);
    expect(es!.meta).toMatchObject({ lang: 'es', writer: 'data' });
    // The general agent was told the language, answered in English anyway, and was replaced.
    const [req] = agentRequestsFor('안녕하세요');
    expect(req!.messages[0]!.content).toContain('The customer writes in Korean: answer in Korean.');
    expect(ko!.text).toBe('안녕하세요! 메시지 감사합니다. 곧 담당자가 답변드리겠습니다.');
    expect(ko!.meta).toMatchObject({ lang: 'ko', writer: 'fallback', replaced: { reason: 'language' } });
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

  it('a manager pause ends by itself after managerPauseMs: the held message stays the manager’s, then the bot answers again', async () => {
    const chatId = uid('mgrto');
    await env.client.workflow.start<typeof chatWorkflow>('chatWorkflow', {
      workflowId: chatWorkflowId(CHANNEL, chatId),
      taskQueue: ORCHESTRATOR_QUEUE,
      args: [chatWorkflowInput(config, chatId, { managerPauseMs: 3000 })],
    });
    await send(chatId, 'hello');
    await waitForReplies(chatId, 1);
    await send(chatId, 'Hi, this is Anna from the shop.', 'manager');
    const paused = await eventually(async () => {
      const s = await status(chatId);
      expect(s).toMatchObject({ paused: true, phase: 'paused', pausedUntil: expect.any(Number) });
      return s;
    });
    const heldId = await send(chatId, 'great, how much is the canvas tote bag?');
    // No resume call: only the workflow's own timer can end the pause.
    const resumed = await eventually(async () => {
      const s = await status(chatId);
      expect(s).toMatchObject({ paused: false, phase: 'idle' });
      return s;
    }, 60_000);
    expect(Date.now()).toBeGreaterThanOrEqual(paused.pausedUntil!);
    expect(resumed).toMatchObject({ pending: 0, turns: 1 });
    expect(resumed.pausedUntil).toBeUndefined();
    // The message held during the pause was the manager's to answer: the bot sent nothing for it.
    expect(await listOutboxMessages(storage, CHANNEL, chatId, { limit: 10 })).toHaveLength(1);
    const chat = await api('get', `/chats/${chatId}`);
    expect(chat.body.messages.find((m: { id: string }) => m.id === heldId)).toMatchObject({ held: true });
    const newId = await send(chatId, 'How much is the canvas tote bag?');
    const replies = await waitForReplies(chatId, 2);
    expect(replies[1]!.inReplyTo).toEqual([newId]);
    expect(replies[1]!.text).toContain('18.00 EUR');
  });

  it('posts each reply to the channel callback signed with the webhook secret, and retries a channel briefly down', async () => {
    const chatId = uid('cb');
    callbackFailures.set(chatId, 1);
    const msgId = await send(chatId, 'How much is the Linen Shirt?');
    const [reply] = await waitForReplies(chatId, 1);
    expect(reply!.via).toBe('callback');
    // The first post was answered 503; the retry carried the same reply (and idempotency key) and was accepted.
    const posts = callbackPosts.filter((p) => p.body.entity?.chatId === chatId);
    expect(posts).toHaveLength(2);
    for (const p of posts) {
      const signature = p.headers[SIGNATURE_HEADER] as string;
      expect(verifySignature(SECRET, p.raw, signature)).toBe(true);
      expect(verifySignature('another-secret', p.raw, signature)).toBe(false);
      expect(p.headers[IDEMPOTENCY_HEADER]).toBe(reply!.id);
      expect(p.headers['content-type']).toBe('application/json');
      expect(p.body).toEqual({
        type: 'message',
        entity: {
          id: reply!.id,
          chatId,
          plainText: SHIRT_PRICE,
          personType: 'bot',
          createdAt: expect.any(Number),
          inReplyTo: [msgId],
        },
      });
    }
    // What the outbox records is what the channel accepted.
    expect(posts[1]!.body.entity.createdAt).toBe(reply!.createdAt);
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
    expect(replies[1]!.text).toBe('The Leather Belt is available for pre-order. It costs 49.00 EUR.');
    const [req] = routerRequestsFor('Can I pre-order it?');
    expect(req!.messages[1]!.content).toContain(`customer: ${first.text}\nbot: ${r1!.text}`);
    expect(enumOf(req!, 'product')).toEqual(['Leather Belt', 'none']);
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
