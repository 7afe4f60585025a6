/**
 * The S3/DynamoDB emulator down for 10 s while chats and a design run. Its own stack: a Temporal dev server and its
 * OWN moto emulator for this file behind a TCP proxy (taken down: connections refused, open ones cut; the data kept,
 * see storage-outage.test.ts); the production orchestrator (every workflow) and an llm worker in this process on a
 * scripted fake Ollama; the production API app (messages arrive through the signed channel webhook) and a local
 * channel callback server that records every reply posted.
 * Four chats wait at their general agent's call and the design at its lead's review, held at the node; storage goes
 * down, then the held calls are answered, so each turn's steps after its LLM call (compose, deliver: the outbox row,
 * save: the chat state) and the design's store step (files to S3, the git bundle) meet the outage. A new message
 * to a fifth chat arrives during the outage: the webhook only signals Temporal, so it is accepted (202), and that
 * chat's first step (loading its stored state) meets the outage too.
 * Asserted while down: a route that reads storage answers 503 storage_unavailable (never 500), /readyz names storage.
 * Asserted once it is back: every message gets exactly one reply (callback posts, outbox rows and the stored chat
 * state agree; no reply posted twice), the design completes with its files in S3, no LLM call reached the node twice
 * (the histories' LLM activities against the fake node's log), and no workflow failed.
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
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { freePort, startMoto, type Service } from '../../scripts/lib/services';
import { uploadDir } from '../../scripts/lib/stack';
import { readToolchain } from '../../scripts/lib/toolchain';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';

jest.setTimeout(300_000);

const MODEL = 'fake-storage-chats:1b';
const KEY = 'key-faults-storage-chats';
const SECRET = 'faults-storage-chats-webhook';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EventType = temporal.api.enums.v1.EventType;
/** Chats mid-turn at the outage; one more gets its first message during it. */
const CHATS = 4;
const OUTAGE_MS = 10_000;

/** v1 graph replies by node: the consultant has what it needs at once, the lead approves the first draft. */
const DESIGN: Record<string, () => unknown> = {
  consultant: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
  promptGenerator: () => 'Create one private S3 bucket named logs in eu-west-1.',
  engineer: () => ({
    resources: [{ type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'acme-logs', force_destroy: false } }],
  }),
  lead: () => ({ approved: true, notes: '' }),
};
const designNode = (r: FakeRequest) => /ainode design: (\w+)/.exec(r.messages[0]?.content ?? '')?.[1];
const isRouter = (r: FakeRequest) => Boolean(r.format) && !designNode(r);
const isAgent = (r: FakeRequest) => !r.format && !designNode(r);

/** The chats' agent calls and the design's lead wait here until storage is down. */
let openGate: () => void = () => {};
const gate = new Promise<void>((r) => (openGate = r));
let answeredHeld = 0;

let env: TestWorkflowEnvironment;
let moto: Service;
let proxy: TcpProxy;
let fake: FakeOllama;
let storage: Storage;
let workers: RunningWorkers | undefined;
let app: Express;
let logDir: string;
let callback: { url: string; close(): Promise<void> };
const figures: Record<string, unknown> = {};

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

beforeAll(async () => {
  logDir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-storage-chats-'));
  [env, moto] = await Promise.all([
    createTemporalEnv(),
    (async () => startMoto(readToolchain(), { port: await freePort(), logFile: path.join(logDir, 'moto.log') }))(),
  ]);
  proxy = await startTcpProxy({ host: '127.0.0.1', port: moto.port });
  fake = await startFakeOllama({
    models: [MODEL],
    script: async (req) => {
      const node = designNode(req);
      if (node) {
        if (node === 'lead') {
          await gate;
          answeredHeld++;
        }
        const out = DESIGN[node]?.();
        if (out === undefined) throw new Error(`no scripted reply for design node ${node}`);
        return typeof out === 'string' ? out : JSON.stringify(out);
      }
      // The router sends every chat to the general agent, whose call is held until storage is down.
      if (req.format) return JSON.stringify({ agent: 'general', product: 'none', intent: 'other' });
      await gate;
      answeredHeld++;
      return 'Thanks for writing to us! A colleague will look into it and reply shortly.';
    },
  });
  callback = await startCallbackServer();
  const config = testConfig({
    API_KEYS: `${KEY}:shop`,
    CHANNEL_TENANT: 'shop',
    CHANNEL_WEBHOOK_SECRET: SECRET,
    CHANNEL_CALLBACK_URL: callback.url,
    CHAT_QUIET_MS: '500',
    S3_BUCKET: uid('faults-storage-chats').toLowerCase(),
    DYNAMO_TABLE_PREFIX: `${uid('fsc')}-`,
    AWS_ENDPOINT_URL: proxy.url,
    OLLAMA_URL: fake.url,
    OLLAMA_NODES: `node-1=${fake.url}`,
    OLLAMA_NUM_PARALLEL: '16',
    NODE_ID: 'node-1',
    DEFAULT_MODEL: MODEL,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  await uploadDir(storage, path.join(__dirname, '..', 'fixtures', 'shop'), config.CHAT_SHOP_PREFIX);
  workers = runWorkers([
    await createOrchestratorWorker({
      connection: env.nativeConnection,
      config,
      storage,
      overrides: { workflowsPath: require.resolve('../../workflows') },
    }),
    ...(await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 10_000 })),
  ]);
  app = testApp(env, { config, storage });
  // POST /designs answers 503 until an llm worker polls the model's queue.
  await waitFor('the llm worker to poll the model', async () => {
    const res = await request(app).get('/models').set(auth());
    return (
      res.status === 200 &&
      (res.body.models as { name: string; available: boolean }[]).some((m) => m.name === MODEL && m.available)
    );
  });
});

afterAll(async () => {
  openGate();
  await proxy?.up();
  await workers?.stop();
  await env?.teardown();
  await fake?.close();
  await callback?.close();
  storage?.close();
  await proxy?.close();
  await moto?.stop();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  console.log(`storage outage (chats, design): ${JSON.stringify(figures)}`);
});

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const chatId = (i: number) => `storage-chat-${i}`;
const handleOf = (i: number) => env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId(i)));
const status = (i: number) => handleOf(i).query(chatStatusQuery) as Promise<ChatStatus>;

/** Posts a customer message through the signed webhook, as the channel does; returns the response. */
function send(i: number, id: string, text: string) {
  const raw = JSON.stringify({
    type: 'message',
    entity: { id, chatId: chatId(i), plainText: text, personType: 'user', createdAt: Date.now() },
  });
  return request(app)
    .post('/webhooks/channel')
    .set('content-type', 'application/json')
    .set(SIGNATURE_HEADER, signBody(SECRET, raw))
    .send(raw);
}

/** A history's activity attempts by type: regular activities (started events) and local ones (their markers). */
function attemptsOf(events: temporal.api.history.v1.IHistoryEvent[]): Record<string, number[]> {
  const names = new Map<string, string>();
  const of: Record<string, number[]> = {};
  for (const e of events) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
      names.set(String(e.eventId), e.activityTaskScheduledEventAttributes?.activityType?.name ?? '?');
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
      const a = e.activityTaskStartedEventAttributes!;
      (of[names.get(String(a.scheduledEventId)) ?? '?'] ??= []).push(a.attempt ?? 0);
    }
    const m = e.markerRecordedEventAttributes;
    const data = m?.markerName === 'core_local_activity' ? m.details?.data?.payloads?.[0]?.data : undefined;
    if (data) {
      const d = JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string; attempt?: number };
      (of[`local:${d.activity_type ?? '?'}`] ??= []).push(d.attempt ?? 0);
    }
  }
  return of;
}

describe('the S3/DynamoDB emulator down for 10 s while chats and a design run', () => {
  it('the API answers 503 meanwhile; afterwards every message has one reply and the design its files', async () => {
    // The design first: it reaches its lead after three calls, while the chats get to their agents.
    const design = await request(app)
      .post('/designs')
      .set(auth())
      .send({ modelId: MODEL, graph: 'v1', maxFixIterations: 0, request: 'a logs bucket' });
    expect(design.status).toBe(202);
    const designId = design.body.id as string;

    const sent = new Map<number, string[]>();
    for (let i = 0; i < CHATS; i++) {
      const id = `s${i}-m1`;
      const res = await send(i, id, `Hello, this is chat ${i}. Can you help me?`);
      expect(res.status).toBe(202);
      sent.set(i, [id]);
    }
    await waitFor("the chats' agent calls and the design's lead at the node", () => {
      return fake.requests.filter(isAgent).length === CHATS && fake.requests.some((r) => designNode(r) === 'lead');
    });
    const phases = await Promise.all([...Array(CHATS).keys()].map(async (i) => (await status(i)).phase));
    expect(phases).toEqual(Array(CHATS).fill('answering'));
    expect(posts).toEqual([]);
    const held = CHATS + 1;

    await proxy.down();
    const downAt = Date.now();
    const statuses: number[] = [];
    let webhookDuringOutage: { status: number; body: unknown };
    try {
      // The held calls are answered now: every step after them meets the outage.
      openGate();
      const messages = await request(app)
        .get(`/chats/${chatId(0)}/messages`)
        .set(auth());
      statuses.push(messages.status);
      expect(messages.status).toBe(503);
      expect(messages.body.error.code).toBe('storage_unavailable');
      const ready = await request(app).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.storage.ok).toBe(false);
      // A new chat's first message: the webhook only signals Temporal, so it is accepted while storage is down.
      const id = `s${CHATS}-m1`;
      const res = await send(CHATS, id, `Hello, this is chat ${CHATS}. Can you help me?`);
      webhookDuringOutage = { status: res.status, body: res.body };
      statuses.push(res.status);
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ status: 'accepted', messageId: id, dedup: true });
      sent.set(CHATS, [id]);
      await waitFor('the held calls to be answered', () => answeredHeld >= held, 30_000);
      // Up no sooner than every step after the held calls has met the outage: each chat's delivery (its outbox row)
      // and the design's store step failed once and wait for their retry; the new chat's first workflow task (which
      // loads its stored state first) has started.
      await waitFor(
        'the storage steps to meet the outage',
        async () => {
          const retrying = async (workflowId: string, type: string) =>
            ((await env.client.workflow.getHandle(workflowId).describe()).raw.pendingActivities ?? []).some(
              (a) => a.activityType?.name === type && (a.attempt ?? 0) >= 2,
            );
          for (let i = 0; i < CHATS; i++)
            if (!(await retrying(chatWorkflowId(CHANNEL, chatId(i)), 'deliverChatReply'))) return false;
          if (!(await retrying(designId, 'designStoreFiles'))) return false;
          const events = (await handleOf(CHATS).fetchHistory()).events ?? [];
          return events.some((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
        },
        25_000,
      );
      figures.stepsFailedAfterMs = Date.now() - downAt;
      // 10 s in all, and at least 2 s more: the new chat's load, called as its first task starts, fails first.
      await sleep(Math.max(2_000, OUTAGE_MS - (Date.now() - downAt)));
    } finally {
      await proxy.up();
    }
    figures.outageMs = Date.now() - downAt;
    figures.webhookDuringOutage = webhookDuringOutage!.status;

    const all = [...Array(CHATS + 1).keys()];
    const allIds = [...sent.values()].flat();
    const covered = () => new Set(posts.flatMap((p) => p.inReplyTo));
    await waitFor(
      'a reply to every message',
      async () => {
        if (allIds.every((id) => covered().has(id))) return true;
        // A chat whose storage step gave up has failed: say so rather than wait out the deadline.
        for (const i of all) {
          const { status: s } = await handleOf(i).describe();
          if (s.name !== 'RUNNING') throw new Error(`chat ${i} is ${s.name}, not running`);
        }
        return false;
      },
      180_000,
    );
    await waitFor('every chat to settle', async () => {
      for (const i of all) {
        const s = await status(i);
        if (s.pending > 0 || s.phase !== 'idle') return false;
        if (((await handleOf(i).describe()).raw.pendingActivities ?? []).length > 0) return false;
      }
      return true;
    });
    let done: Record<string, any> = {};
    await waitFor(
      'the design to complete',
      async () => {
        const res = await request(app).get(`/designs/${designId}`).set(auth());
        statuses.push(res.status);
        done = res.body;
        return res.status === 200 && (done.phase === 'completed' || done.status !== 'running');
      },
      180_000,
    );

    // The design completed (it stays open for changes) with its files in S3.
    expect(done).toMatchObject({ status: 'running', phase: 'completed', questions: [] });
    expect(done.plan.resources.map((r: { type: string }) => r.type)).toEqual(['aws_s3_bucket']);
    const files = done.files as { name: string; key: string; size: number }[];
    expect(files.length).toBeGreaterThan(0);
    expect(files.map((f) => f.name)).toContain('main.tf');
    for (const f of files) {
      const bytes = await storage.getObjectBytes(f.key);
      expect(bytes?.byteLength).toBe(f.size);
    }
    expect(
      new TextDecoder().decode(await storage.getObjectBytes(files.find((f) => f.name === 'main.tf')!.key)),
    ).toMatch(/aws_s3_bucket/);

    // Exactly one reply per message in the callback posts, no reply posted twice.
    const perMessage = new Map<string, number>();
    for (const p of posts) for (const id of p.inReplyTo) perMessage.set(id, (perMessage.get(id) ?? 0) + 1);
    expect([...perMessage.keys()].sort()).toEqual([...allIds].sort());
    expect(Object.fromEntries([...perMessage].filter(([, n]) => n !== 1))).toEqual({}); // message id → replies
    expect(posts.map((p) => p.replyId).sort()).toEqual([...new Set(posts.map((p) => p.replyId))].sort());
    expect(posts).toHaveLength(CHATS + 1);

    const attempts: Record<string, Record<string, number[]>> = {};
    let llmActivities = 0;
    for (const i of all) {
      const chatPosts = posts.filter((p) => p.chatId === chatId(i));
      // Once: a delivery retried because its outbox row could not be written does not post the reply again.
      expect(chatPosts).toHaveLength(1);
      // The outbox rows and the stored state say the same.
      const outbox = await listOutboxMessages(storage, CHANNEL, chatId(i), { limit: 100 });
      expect(outbox.map((m) => m.id)).toEqual(chatPosts.map((p) => p.replyId));
      expect(outbox.flatMap((m) => m.inReplyTo)).toEqual(sent.get(i));
      const state = await readChatState(storage, CHANNEL, chatId(i));
      expect(state?.turns).toBe(1);
      expect(state?.messages.filter((l) => l.role === 'customer').map((l) => l.id)).toEqual(sent.get(i));
      expect(state?.messages.filter((l) => l.role === 'bot').map((l) => l.id)).toEqual(outbox.map((m) => m.id));

      const events = (await handleOf(i).fetchHistory()).events ?? [];
      attempts[chatId(i)] = attemptsOf(events);
      // Each LLM call was scheduled once and completed once: none was retried.
      const llm = events.filter((e) =>
        /^llm/.test(e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''),
      ).length;
      expect(Object.entries(attemptsOf(events)).filter(([n]) => /^llm/.test(n))).toEqual([
        ['llmChat', Array(llm).fill(1)],
      ]);
      llmActivities += llm;
      // The outage met these steps, and they were retried until storage was back: the mid-turn chats' delivery
      // (a regular activity), the new chat's first load of its state (a local activity).
      const of = attemptsOf(events);
      if (i < CHATS) expect(of.deliverChatReply).toEqual([expect.any(Number)]);
      if (i < CHATS) expect(of.deliverChatReply![0]).toBeGreaterThan(1);
      else expect(of['local:loadChatState']![0]).toBeGreaterThan(1);
      // No workflow failed: the chat runs on, idle, and none of its workflow tasks failed.
      expect((await handleOf(i).describe()).status.name).toBe('RUNNING');
      expect(events.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)).toEqual([]);
    }
    // The node saw exactly the chats' calls the histories completed: a router and an agent call per chat.
    expect(llmActivities).toBe(fake.requests.filter((r) => !designNode(r)).length);
    expect(fake.requests.filter(isRouter)).toHaveLength(CHATS + 1);
    expect(fake.requests.filter(isAgent)).toHaveLength(CHATS + 1);

    const designEvents = (await env.client.workflow.getHandle(designId).fetchHistory()).events ?? [];
    const designAttempts = attemptsOf(designEvents);
    attempts.design = designAttempts;
    figures.attempts = attempts;
    expect(designAttempts.llmChat).toEqual(Array(4).fill(1));
    expect(designAttempts.designStoreFiles).toEqual([expect.any(Number)]);
    expect(designAttempts.designStoreFiles![0]).toBeGreaterThan(1);
    expect(fake.requests.filter((r) => designNode(r))).toHaveLength(4);
    expect((await env.client.workflow.getHandle(designId).describe()).status.name).toBe('RUNNING');
    expect(designEvents.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)).toEqual([]);
    expect(statuses).not.toContain(500);
    figures.posts = posts.length;
    figures.nodeCalls = fake.requests.length;
  });
});
