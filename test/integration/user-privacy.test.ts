/**
 * Privacy of browsing data (issue 12) against real parts: a Temporal dev server, the emulator and a scripted
 * streaming Ollama node, with PAYLOAD_KEYS set for every worker and the API's client. What Temporal stores (the raw
 * history, read without the codec) holds no browsing title and no user id; the same history decrypted with the key
 * does hold them (so the search could fail); request logs show the user's pseudonym; and a user's workflow that
 * continues as new keeps its events and its latest recommendation.
 */
import { Writable } from 'node:stream';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../common/config';
import { createLogger } from '../../common/logger';
import { ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import { browsingEventsSignal, userRecommendationsQuery } from '../../contracts/definitions';
import type { BrowsingEventsSignal, UserRecommendationWorkflowInput } from '../../contracts/user-recommendation';
import { userRecommendationWorkflowId } from '../../api/routes/users';
import { AesGcmPayloadCodec, dataConverterFor, newPayloadKeySpec } from '../../lib/codec/payload-codec';
import { pseudonymizeUserId } from '../../lib/privacy/pseudonym';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import type { userRecommendationWorkflow } from '../../workflows/user-recommendation-workflow';
import type { RunningWorkers } from '../../scripts/lib/workers';
import { listenApp, testApp, type ListeningApp } from '../helpers/api';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { startStreamingOllama, type StreamingOllama } from '../helpers/streaming-ollama';
import { startTestWorkers } from '../helpers/workers';

jest.setTimeout(240_000);

const KEY = 'privacy-key-a';
const FAKE = 'privacy-fake:1b';
const USER = 'alice.private@example.com';
const TITLE = 'Zebrafish oncology clinic appointment booking';
const REPLY = '1. Zebrafish research methods. 2. Oncology data pipelines.';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;
let streaming: StreamingOllama;
let config: Config;
let api: ListeningApp;
let client: Client;
const logLines: string[] = [];

/** Every byte Temporal stores for a run, as the server hands it out (no codec). */
async function rawHistory(workflowId: string, runId?: string): Promise<temporal.api.history.v1.IHistory> {
  const res = await env.client.workflowService.getWorkflowExecutionHistory({
    namespace: 'default',
    execution: { workflowId, runId },
  });
  return res.history ?? {};
}
const bytesOf = (h: temporal.api.history.v1.IHistory) =>
  Buffer.from(temporal.api.history.v1.History.encode(h).finish());

/**
 * Every payload in a history, wherever it sits (inputs, results, signals, markers, memos, headers), except search
 * attributes (the server must read them to index them: tenant, kind, model) and what the SDK's core writes into
 * markers itself (a `patched()` id; a local activity's seq, type and times, next to its encrypted result), which hold
 * no browsing data and stay plain; so does the OpenTelemetry interceptor's `_tracer-data` header (a traceparent).
 */
function payloadsIn(value: unknown, out: Payload[] = [], at = ''): Payload[] {
  if (!value || typeof value !== 'object' || at.endsWith('.searchAttributes')) return out;
  if (at.endsWith('.header.fields._tracer-data')) return out;
  const v = value as Record<string, unknown>;
  if (v.markerName === 'core_patch') return out;
  if (v.markerName === 'core_local_activity') {
    const details = v.details as { result?: unknown } | undefined;
    return payloadsIn(details?.result, out, `${at}.details.result`);
  }
  if (v.metadata && typeof v.metadata === 'object' && 'data' in v) out.push(Object.assign(v as Payload, { at }));
  for (const [k, child] of Object.entries(v))
    if (child && typeof child === 'object') payloadsIn(child, out, `${at}.${k}`);
  return out;
}

beforeAll(async () => {
  env = await createTemporalEnv();
  streaming = await startStreamingOllama({
    models: [FAKE],
    reply: () => ({ pieces: REPLY.split(/(?<= )/), delayMs: 5 }),
  });
  config = testConfig({
    API_KEYS: `${KEY}:tenant-a`,
    S3_BUCKET: uid('privacy'),
    OLLAMA_NODES: `stream-node=${streaming.url}`,
    RECOMMEND_MODEL: FAKE,
    USER_REC_QUIET_MS: '300',
    PAYLOAD_KEYS: `${newPayloadKeySpec('k2')},${newPayloadKeySpec('k1')}`,
    LOG_LEVEL: 'info',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = await startTestWorkers(env, {
    config,
    storage,
    workflowsPath: require.resolve('../../workflows/user-recommendation-workflow'),
    nodes: [{ id: 'stream-node', url: streaming.url }],
  });
  client = new Client({ connection: env.connection, namespace: 'default', dataConverter: dataConverterFor(config) });
  const logger = createLogger(
    'api',
    config,
    new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    }),
  );
  api = await listenApp(testApp(env, { config, storage, temporal: client, logger }));
});

afterAll(async () => {
  await api?.close();
  await workers?.stop();
  await env?.teardown();
  await streaming?.close();
  storage?.close();
});

async function latest(userId: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${api.url}/users/${encodeURIComponent(userId)}/recommendations`, {
    headers: { authorization: `Bearer ${KEY}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('browsing data at rest', () => {
  it('Temporal stores no browsing title and no user id; with the key both are there', async () => {
    const res = await fetch(`${api.url}/users/${encodeURIComponent(USER)}/browsing-events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        visited_sites: [{ url: 'https://zebrafish.example/oncology', title: TITLE }],
        search_queries: ['zebrafish oncology clinic'],
      }),
    });
    expect(res.status).toBe(202);
    let ready: Record<string, unknown> = {};
    for (let i = 0; i < 300 && ready.status !== 'ready'; i++) {
      ready = (await latest(USER)).body;
      if (ready.status !== 'ready') await sleep(100);
    }
    // Workers and the API agree on the key: the recommendation went through and reads back in plaintext.
    expect(ready).toMatchObject({ status: 'ready', content: REPLY, userId: USER });

    const workflowId = userRecommendationWorkflowId(config.USER_PSEUDONYM_SECRET, 'tenant-a', USER);
    expect(workflowId).toBe(`user-rec-tenant-a/${pseudonymizeUserId(config.USER_PSEUDONYM_SECRET, USER)}`);
    const history = await rawHistory(workflowId);
    const raw = bytesOf(history);
    expect(raw.length).toBeGreaterThan(1000);
    for (const secret of [TITLE, 'Zebrafish', 'zebrafish', 'oncology', USER, REPLY.slice(0, 20)]) {
      expect(raw.includes(Buffer.from(secret))).toBe(false);
    }
    // Every payload is ours: encrypted, with the current key's id.
    const payloads = payloadsIn(history);
    expect(payloads.length).toBeGreaterThan(3);
    for (const p of payloads) {
      expect(`${(p as { at?: string }).at}: ${Buffer.from(p.metadata!.encoding!).toString()}`).toMatch(
        /: binary\/encrypted$/,
      );
      expect(Buffer.from(p.metadata!['encryption-key-id']!).toString()).toBe('k2');
    }
    // The same bytes decrypted with the key hold the title and the user id: the search above could have failed.
    const codec = new AesGcmPayloadCodec(config.PAYLOAD_KEYS);
    const decrypted = JSON.stringify((await codec.decode(payloads)).map((p) => defaultPayloadConverter.fromPayload(p)));
    expect(decrypted).toContain(TITLE);
    expect(decrypted).toContain(USER);

    // Request logs carry the pseudonym, never the user id.
    const logs = logLines.join('');
    expect(logs).toContain(`/users/${pseudonymizeUserId(config.USER_PSEUDONYM_SECRET, USER)}/browsing-events`);
    expect(logs).not.toContain(USER);
    expect(logs).not.toContain(encodeURIComponent(USER));
  });

  it('a user’s workflow that continues as new keeps its events and latest recommendation, still encrypted', async () => {
    const userId = 'bob-can';
    const workflowId = userRecommendationWorkflowId(config.USER_PSEUDONYM_SECRET, 'tenant-a', userId);
    const input: UserRecommendationWorkflowInput = {
      tenantId: 'tenant-a',
      userId,
      model: FAKE,
      numPredict: 32,
      contentType: 'general',
      contentPeriod: 'recent',
      source: 'recommendations',
      quietMs: 200,
      continueAfterEvents: 2,
    };
    const caller = { tenantId: 'tenant-a', keyId: 'test' };
    const send = (title: string) =>
      client.workflow.signalWithStart<typeof userRecommendationWorkflow, [BrowsingEventsSignal]>(
        'userRecommendationWorkflow',
        {
          workflowId,
          taskQueue: ORCHESTRATOR_QUEUE,
          args: [input],
          signal: browsingEventsSignal,
          signalArgs: [{ caller, event: { visited_sites: [{ url: `https://x.example/${title}`, title }] } }],
          memo: { tenant: 'tenant-a' },
        },
      );
    const first = await send('zebrafish genetics primer');
    const firstRunId = first.signaledRunId;
    await send('zebrafish oncology models');
    // Two events in this run: after the refresh check, the run continues as new with its state.
    const end = Date.now() + 60_000;
    let described = await client.workflow.getHandle(workflowId, firstRunId).describe();
    while (described.status.name !== 'CONTINUED_AS_NEW' && Date.now() < end) {
      await sleep(100);
      described = await client.workflow.getHandle(workflowId, firstRunId).describe();
    }
    expect(described.status.name).toBe('CONTINUED_AS_NEW');

    await send('zebrafish imaging');
    const handle = client.workflow.getHandle(workflowId);
    let status = await handle.query(userRecommendationsQuery);
    while ((status.events < 3 || !status.latest) && Date.now() < end) {
      await sleep(100);
      status = await handle.query(userRecommendationsQuery);
    }
    expect((await handle.describe()).runId).not.toBe(firstRunId);
    expect(status.events).toBe(3);
    expect(status.latest?.content).toBe(REPLY);
    expect(status.refreshes).toBeGreaterThanOrEqual(1);
    // The carried state (history with titles) went into the new run's input encrypted too.
    const raw = bytesOf(await rawHistory(workflowId));
    expect(raw.includes(Buffer.from('zebrafish'))).toBe(false);
  });
});
