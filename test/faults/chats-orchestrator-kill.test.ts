/**
 * `kill -9` the orchestrator while 20 chats are mid-turn. Its own stack: a Temporal dev server for this file,
 * the orchestrator as a child process (the chat workflow prebundled, killed with SIGKILL, then started again),
 * an llm worker in this process over a scripted fake Ollama, the production API app (messages arrive through
 * the signed channel webhook), and a local channel callback server that records every reply posted.
 * Every chat is sent to the general agent, whose LLM calls are held at the fake node until the orchestrator is
 * killed, so at the kill ten chats have an LLM call in flight and ten are in their debounce window (or, on a slow
 * machine, already at their held call). The held calls complete while no orchestrator runs, and more messages
 * arrive meanwhile (and two redeliveries of messages already seen).
 * Asserted after the restart: every message gets exactly one reply (callback posts, the outbox rows and the
 * stored chat state all agree), no reply is posted twice, a redelivery gets none of its own, and no LLM call
 * ran twice (each LLM activity in every chat's history was scheduled and completed once, and the fake node
 * saw exactly those calls).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { listOutboxMessages, readChatState } from '../../lib/chat/state';
import { signBody, SIGNATURE_HEADER } from '../../lib/channel/signature';
import { CHANNEL, chatWorkflowId } from '../../api/routes/webhooks';
import { chatStatusQuery } from '../../contracts/definitions';
import type { ChatStatus } from '../../contracts/chat';
import { createLlmWorkers } from '../../workers/llm';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { uploadDir } from '../../scripts/lib/stack';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { startChildWorker, type ChildWorker } from './helpers/child-worker';
import { bundleWorkflowsTo } from './helpers/bundle';

jest.setTimeout(300_000);

const MODEL = 'fake-chat:1b';
const SECRET = 'faults-webhook-secret';
const KEY = 'key-faults-chats';
const CHATS = 20;
/** Chats 0..9 are answering at the kill (agent call held); 10..19 are debouncing. */
const ANSWERING = 10;
const QUIET_MS = 3000;
const EventType = temporal.api.enums.v1.EventType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: TestWorkflowEnvironment;
let fake: FakeOllama;
let storage: Storage;
let llm: RunningWorkers | undefined;
let orchestrator: ChildWorker | undefined;
let app: Express;
let dir: string;
let childEnv: NodeJS.ProcessEnv;
let callback: { url: string; close(): Promise<void> };

/**
 * The general agent's calls wait here until the test opens the gate (a chat's agent call may take 45 s, its router
 * call only 20 s); `answered` counts those that got their reply.
 */
let openGate: () => void = () => {};
const gate = new Promise<void>((r) => (openGate = r));
let answered = 0;

interface Post {
  replyId: string;
  chatId: string;
  inReplyTo: string[];
}
const posts: Post[] = [];

async function startCallbackServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { entity } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        entity: { id: string; chatId: string; inReplyTo: string[] };
      };
      posts.push({ replyId: entity.id, chatId: entity.chatId, inReplyTo: entity.inReplyTo });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/channel/replies`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

const startOrchestrator = (n: number) =>
  startChildWorker({
    entry: 'test/faults/helpers/orchestrator-child.ts',
    env: childEnv,
    logFile: path.join(dir, `orchestrator-${n}.log`),
  });

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-chats-'));
  const bundling = bundleWorkflowsTo(
    require.resolve('../../workflows/chat/chat-workflow'),
    path.join(dir, 'workflow-bundle.js'),
  );
  env = await createTemporalEnv();
  fake = await startFakeOllama({
    models: [MODEL],
    script: async (req) => {
      // The router sends every chat to the general agent, whose call is held until the orchestrator is killed.
      if (req.format) return JSON.stringify({ agent: 'general', product: 'none', intent: 'other' });
      await gate;
      answered++;
      return 'Thanks for writing to us! A colleague will look into it and reply shortly.';
    },
  });
  callback = await startCallbackServer();
  const overrides = {
    API_KEYS: `${KEY}:shop`,
    CHANNEL_TENANT: 'shop',
    CHANNEL_WEBHOOK_SECRET: SECRET,
    CHANNEL_CALLBACK_URL: callback.url,
    CHAT_QUIET_MS: String(QUIET_MS),
    CHAT_MAX_WAIT_MS: '10000',
    S3_BUCKET: uid('faults-chats').toLowerCase(),
    DYNAMO_TABLE_PREFIX: `${uid('fc')}-`,
    OLLAMA_URL: fake.url,
    OLLAMA_NODES: `node-1=${fake.url}`,
    // Every chat's LLM call in flight at the node at once.
    OLLAMA_NUM_PARALLEL: '32',
    DEFAULT_MODEL: MODEL,
  };
  const config = testConfig(overrides);
  storage = createStorage(config);
  await ensureStorage(storage);
  await uploadDir(storage, path.join(__dirname, '..', 'fixtures', 'shop'), config.CHAT_SHOP_PREFIX);
  llm = runWorkers(
    await createLlmWorkers({
      connection: env.nativeConnection,
      config: { ...config, NODE_ID: 'node-1' },
      waitForNodeMs: 10_000,
    }),
  );
  childEnv = {
    ...overrides,
    TEMPORAL_ADDRESS: env.address,
    AWS_ENDPOINT_URL: services.awsEndpoint,
    LOG_LEVEL: 'warn',
    WORKFLOW_BUNDLE_PATH: await bundling,
  };
  orchestrator = await startOrchestrator(1);
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  openGate();
  await orchestrator?.stop();
  await llm?.stop();
  await env?.teardown();
  await fake?.close();
  await callback?.close();
  storage?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const chatId = (i: number) => `fault-chat-${i}`;

/** Posts a customer message through the signed webhook, as the channel does. */
async function send(i: number, id: string, text: string): Promise<void> {
  const raw = JSON.stringify({
    type: 'message',
    entity: { id, chatId: chatId(i), plainText: text, personType: 'user', createdAt: Date.now() },
  });
  const res = await request(app)
    .post('/webhooks/channel')
    .set('content-type', 'application/json')
    .set(SIGNATURE_HEADER, signBody(SECRET, raw))
    .send(raw);
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ status: 'accepted', messageId: id, dedup: true });
}

const status = (i: number) =>
  env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId(i))).query(chatStatusQuery) as Promise<ChatStatus>;

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const agentCalls = () => fake.requests.filter((r) => !r.format).length;

describe('kill -9 the orchestrator while 20 chats are mid-turn', () => {
  it('every message gets exactly one reply after the restart; nothing is posted twice; no LLM call runs twice', async () => {
    /** The message ids each chat was sent (distinct ids; redeliveries are not added). */
    const sent = new Map<number, string[]>();
    const deliver = async (i: number, n: number) => {
      const id = `c${i}-m${n}`;
      await send(i, id, `Hello, this is message ${n} in chat ${i}. Can you help me?`);
      sent.set(i, [...(sent.get(i) ?? []), id]);
    };

    // Ten chats get to their agent's call, which the node holds: an LLM call in flight.
    for (let i = 0; i < ANSWERING; i++) await deliver(i, 1);
    await waitFor('the first ten agent calls', () => agentCalls() >= ANSWERING);
    // Ten more chats start debouncing (a 3 s quiet window).
    for (let i = ANSWERING; i < CHATS; i++) await deliver(i, 1);
    const phases: string[] = [];
    for (let i = 0; i < CHATS; i++) {
      let phase = '';
      await waitFor(`chat ${i} to take its message`, async () => {
        phase = (await status(i)).phase;
        return phase === 'debouncing' || phase === 'answering';
      });
      phases.push(phase);
    }
    // Every chat is mid-turn: answering (its agent call held) or debouncing; no reply has gone out yet.
    expect(phases.slice(0, ANSWERING)).toEqual(Array(ANSWERING).fill('answering'));
    for (const p of phases.slice(ANSWERING)) expect(['debouncing', 'answering']).toContain(p);
    expect(posts).toEqual([]);

    await orchestrator!.kill9();
    // The held LLM calls complete while no orchestrator runs: their results wait in the histories.
    const held = agentCalls();
    openGate();

    // No orchestrator: messages are still accepted (signals recorded by Temporal), and redeliveries too.
    for (let i = 0; i < 5; i++) await deliver(i, 2);
    for (let i = ANSWERING; i < ANSWERING + 5; i++) await deliver(i, 2);
    await send(0, 'c0-m1', 'Hello, this is message 1 in chat 0. Can you help me?');
    await send(ANSWERING, `c${ANSWERING}-m1`, `Hello, this is message 1 in chat ${ANSWERING}. Can you help me?`);
    await waitFor('the held agent calls to be answered', () => answered >= held);

    orchestrator = await startOrchestrator(2);

    const allIds = [...sent.values()].flat();
    const covered = () => new Set(posts.flatMap((p) => p.inReplyTo));
    await waitFor('a reply to every message', () => allIds.every((id) => covered().has(id)), 180_000);
    // Settled: no message waiting, no turn running, no activity pending in any chat.
    await waitFor('every chat to settle', async () => {
      for (let i = 0; i < CHATS; i++) {
        const s = await status(i);
        if (s.pending > 0 || s.phase !== 'idle') return false;
        const d = await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId(i))).describe();
        if ((d.raw.pendingActivities ?? []).length > 0) return false;
      }
      return true;
    });

    // Exactly one reply per message in the callback posts, no reply posted twice.
    const perMessage = new Map<string, number>();
    for (const p of posts) for (const id of p.inReplyTo) perMessage.set(id, (perMessage.get(id) ?? 0) + 1);
    expect([...perMessage.keys()].sort()).toEqual([...allIds].sort());
    expect(Object.fromEntries([...perMessage].filter(([, n]) => n !== 1))).toEqual({}); // message id → replies
    expect(new Set(posts.map((p) => p.replyId)).size).toBe(posts.length);

    let llmActivities = 0;
    for (let i = 0; i < CHATS; i++) {
      const ids = sent.get(i)!;
      const chatPosts = posts.filter((p) => p.chatId === chatId(i));
      // The chats answering at the kill answer their second message in a turn of its own.
      if (i < 5) expect(chatPosts).toHaveLength(2);

      // The outbox rows and the stored state say the same.
      const outbox = await listOutboxMessages(storage, CHANNEL, chatId(i), { limit: 100 });
      expect(outbox.map((m) => m.id).sort()).toEqual(chatPosts.map((p) => p.replyId).sort());
      expect(outbox.flatMap((m) => m.inReplyTo).sort()).toEqual([...ids].sort());
      const state = await readChatState(storage, CHANNEL, chatId(i));
      expect(state?.turns).toBe(outbox.length);
      expect(state?.messages.filter((l) => l.role === 'customer').map((l) => l.id)).toEqual(ids);
      expect(state?.messages.filter((l) => l.role === 'bot')).toHaveLength(outbox.length);

      // Each activity ran once: every LLM call and every delivery scheduled once, completed once, none retried.
      const events = (await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId(i))).fetchHistory()).events!;
      const scheduled = events.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
      const count = (t: number) => events.filter((e) => e.eventType === t).length;
      expect(count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)).toBe(scheduled.length);
      expect(
        count(EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) + count(EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT),
      ).toBe(0);
      const started = events.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED);
      expect(started.every((e) => e.activityTaskStartedEventAttributes?.attempt === 1)).toBe(true);
      const names = scheduled.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? '');
      expect(names.filter((n) => n === 'deliverChatReply')).toHaveLength(outbox.length);
      llmActivities += names.filter((n) => /^llm/.test(n)).length;
    }
    // The node saw exactly the calls the histories completed: none was sent twice.
    expect(llmActivities).toBe(fake.requests.length);
  });
});
