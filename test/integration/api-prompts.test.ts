/**
 * The API against real components: a Temporal dev server, the moto emulator, the real Ollama node with the
 * real small model, and in-process orchestrator + llm workers. POST /prompts → 202 → GET /prompts/:id.
 * A second, scripted node (streaming fake Ollama) serves FAKE_MODEL where a test must see the stream itself:
 * cancel aborts it, a cut-off answer reports its doneReason.
 */
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import pino from 'pino';
import type { TestWorkflowEnvironment } from '@temporalio/testing';

import type { Express } from 'express';
import { createApp } from '../../api/app';
import { createCatalog } from '../../lib/llm/catalog';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';

import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { startFakeOllama } from '../helpers/fake-ollama';
import { startStreamingOllama, type StreamingOllama } from '../helpers/streaming-ollama';
import { DEFAULT_NUM_PREDICT } from '../../common/llm-bounds';
import { SearchAttributeKey } from '../../common/search-attributes';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(180_000);

const KEY_A = 'key-tenant-a';
const KEY_B = 'key-tenant-b';
const auth = (key: string) => ({ Authorization: `Bearer ${key}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;
let app: Express;
let stoppedNodeUrl: string;
let startCalls = 0;
let streaming: StreamingOllama;
const FAKE_MODEL = 'stream-fake:1b';
/** Distinct words, one every 20 ms, never ending and never a loop: only a cancel stops it. */
function* endless(): Generator<string> {
  for (let i = 0; ; i++) yield ` word${i}`;
}

beforeAll(async () => {
  env = await createTemporalEnv();
  streaming = await startStreamingOllama({ models: [FAKE_MODEL], reply: () => ({ pieces: endless(), delayMs: 20 }) });
  const config = testConfig({
    API_KEYS: `${KEY_A}:tenant-a,${KEY_B}:tenant-b`,
    S3_BUCKET: uid('api'),
    // The orchestrator's model check and the API's catalog both see the scripted node.
    OLLAMA_NODES: `node-1=${process.env.AINODE_TEST_OLLAMA_URL},stream-node=${streaming.url}`,
  });
  storage = createStorage(config);
  await ensureStorage(storage);

  // A node that was up once and is gone now: the catalog must report it, not hang on it.
  const stopped = await startFakeOllama({ models: ['ghost:1b'], script: () => 'never' });
  stoppedNodeUrl = stopped.url;
  await stopped.close();

  const orchestrator = await createOrchestratorWorker({
    connection: env.nativeConnection,
    config,
    storage,
    // Only the workflow under test is bundled: faster, and independent of the other workflows' files.
    overrides: { workflowsPath: require.resolve('../../workflows/prompt-workflow') },
  });
  const llm = await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 60_000 });
  const fakeLlm = await createLlmWorkers({
    connection: env.nativeConnection,
    config: { ...config, OLLAMA_URL: streaming.url, NODE_ID: 'stream-node' },
    waitForNodeMs: 10_000,
  });
  workers = runWorkers([orchestrator, ...llm, ...fakeLlm]);

  // Count every workflow start the API makes, to prove rejected requests start nothing.
  const start = env.client.workflow.start.bind(env.client.workflow);
  env.client.workflow.start = ((...args: Parameters<typeof start>) => {
    startCalls++;
    return start(...args);
  }) as typeof start;

  const catalog = createCatalog({
    nodes: [...config.OLLAMA_NODES, { id: 'stopped', url: stoppedNodeUrl }],
    nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
    temporal: env.client,
    namespace: 'default',
    cacheMs: 0,
  });
  app = createApp({ config, temporal: env.client, storage, catalog, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await workers?.stop();
  await env?.teardown();
  await streaming?.close();
  storage?.close();
});

/** Polls GET /prompts/:id until the prompt leaves `running` (bounded by the jest timeout, not by speed). */
async function waitForPrompt(id: string, key = KEY_A): Promise<request.Response> {
  for (;;) {
    const res = await request(app).get(`/prompts/${id}`).set(auth(key));
    if (res.status !== 200 || res.body.status !== 'running') return res;
    await sleep(250);
  }
}

describe('POST /prompts → GET /prompts/:id', () => {
  it('holds GET /prompts/:id?waitMs= until the prompt completes (a long poll)', async () => {
    const accepted = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .send({ modelId: services.model, prompt: 'Say yes.', options: { num_predict: 4, temperature: 0 } });
    expect(accepted.status).toBe(202);
    // One request, no polling: it returns once the workflow has closed (or after 60 s, then still running).
    let res = await request(app).get(`/prompts/${accepted.body.id}?waitMs=60000`).set(auth(KEY_A));
    while (res.body.status === 'running') {
      res = await request(app).get(`/prompts/${accepted.body.id}?waitMs=60000`).set(auth(KEY_A));
    }
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('completed');
    expect(res.body.result.usage.completionTokens).toBeGreaterThan(0);
  });

  it('runs a prompt on the real model and reports the result with Ollama’s token counts', async () => {
    const accepted = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .send({ modelId: services.model, prompt: 'Say hello in one word.', options: { num_predict: 8, temperature: 0 } });
    expect(accepted.status).toBe(202);
    const { id } = accepted.body;
    expect(id).toMatch(/^prompt-[0-9a-f-]{36}$/);
    expect(accepted.body).toMatchObject({
      status: 'running',
      statusUrl: expect.stringMatching(new RegExp(`/prompts/${id}$`)),
    });
    // The Web UI shows every tenant's runs: its link is for operators (X-Operator-Key) only.
    expect(accepted.body.webUiUrl).toBeUndefined();
    expect(accepted.headers.location).toBe(`/prompts/${id}`);

    const done = await waitForPrompt(id);
    expect(done.status).toBe(200);
    expect(done.body.status).toBe('completed');
    expect(done.body.modelId).toBe(services.model);
    expect(done.body.result.model).toBe(services.model);
    expect(done.body.result.nodeId).toBe('node-1');
    expect(typeof done.body.result.content).toBe('string');
    expect(done.body.result.content.trim().length).toBeGreaterThan(0);
    expect(done.body.result.usage.promptTokens).toBeGreaterThan(0);
    expect(done.body.result.usage.completionTokens).toBeGreaterThan(0);
    expect(done.body.closedAt).toBeDefined();
    // The API checked the model just before starting the run, so the run makes no check of its own: no local
    // activity marker in its history (a run started by another client keeps the check, prompt-workflow.test.ts).
    const handle = env.client.workflow.getHandle(id);
    const events = (await handle.fetchHistory()).events ?? [];
    expect(events.filter((e) => e.activityTaskScheduledEventAttributes).length).toBe(1);
    expect(events.filter((e) => e.markerRecordedEventAttributes).length).toBe(0);
    await recordHistory('prompt-api-checked', handle);

    // A long poll on a finished prompt answers at once with the same result; a bad waitMs is a 400.
    const again = await request(app).get(`/prompts/${id}?waitMs=60000`).set(auth(KEY_A));
    expect(again.body).toEqual(done.body);
    const bad = await request(app).get(`/prompts/${id}?waitMs=999999`).set(auth(KEY_A));
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^query\.waitMs: /);

    // Visible in the Web UI / visibility queries under the tenant's name.
    const desc = await env.client.workflow.getHandle(id).describe();
    expect(desc.typedSearchAttributes.get(SearchAttributeKey.Kind)).toBe('prompt');
    expect(desc.typedSearchAttributes.get(SearchAttributeKey.TenantId)).toBe('tenant-a');

    // Another tenant cannot see it: the same 404 as for an id that does not exist.
    const foreign = await request(app).get(`/prompts/${id}`).set(auth(KEY_B));
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('not_found');
    const missing = await request(app)
      .get(`/prompts/prompt-${'0'.repeat(8)}-missing`)
      .set(auth(KEY_A));
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
  });

  it('answers a chat (messages) as well', async () => {
    const accepted = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .send({
        modelId: services.model,
        messages: [{ role: 'user', content: 'Name one colour.' }],
        options: { num_predict: 8, temperature: 0 },
      });
    expect(accepted.status).toBe(202);
    const done = await waitForPrompt(accepted.body.id);
    expect(done.body.status).toBe('completed');
    expect(done.body.result.usage.completionTokens).toBeGreaterThan(0);
  });

  it('the same Idempotency-Key returns the same prompt; reused with another body it is a 409', async () => {
    const body = { modelId: services.model, prompt: 'Count to three.', options: { num_predict: 4 } };
    const key = uid('idem');
    const first = await request(app).post('/prompts').set(auth(KEY_A)).set('Idempotency-Key', key).send(body);
    const again = await request(app).post('/prompts').set(auth(KEY_A)).set('Idempotency-Key', key).send(body);
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);

    // After it completed, the key still names the same prompt (no second run).
    expect((await waitForPrompt(first.body.id)).body.status).toBe('completed');
    const later = await request(app).post('/prompts').set(auth(KEY_A)).set('Idempotency-Key', key).send(body);
    expect(later.status).toBe(202);
    expect(later.body.id).toBe(first.body.id);

    const changed = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .set('Idempotency-Key', key)
      .send({ ...body, prompt: 'Something else.' });
    expect(changed.status).toBe(409);
    expect(changed.body.error.code).toBe('idempotency_conflict');

    // Keys are per tenant: tenant B's identical key is a different prompt.
    const otherTenant = await request(app).post('/prompts').set(auth(KEY_B)).set('Idempotency-Key', key).send(body);
    expect(otherTenant.status).toBe(202);
    expect(otherTenant.body.id).not.toBe(first.body.id);
    expect((await waitForPrompt(otherTenant.body.id, KEY_B)).body.status).toBe('completed');
  });

  it('rejects a model no node serves with 400, before any workflow starts', async () => {
    const before = startCalls;
    const res = await request(app).post('/prompts').set(auth(KEY_A)).send({ modelId: 'ghost:1b', prompt: 'hi' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('model_not_found');
    expect(startCalls).toBe(before);
  });
});

describe('bounded prompts', () => {
  it('refuses num_predict above the prompt maximum, or unbounded, with a 400 naming the field', async () => {
    const before = startCalls;
    const { max } = DEFAULT_NUM_PREDICT.prompt;
    for (const [numPredict, why] of [
      [max + 1, `at most ${max}`],
      [32_768, `at most ${max}`],
      [-1, 'unbounded generation is not allowed'],
      [-2, 'unbounded generation is not allowed'],
      [0, 'unbounded generation is not allowed'],
    ] as const) {
      const res = await request(app)
        .post('/prompts')
        .set(auth(KEY_A))
        .send({ modelId: services.model, prompt: 'Tell me everything.', options: { num_predict: numPredict } });
      expect({ numPredict, status: res.status, code: res.body.error?.code }).toEqual({
        numPredict,
        status: 400,
        code: 'invalid_request',
      });
      expect(res.body.error.message).toMatch(/^body\.options\.num_predict: /);
      expect(res.body.error.message).toContain(why);
      expect(res.body.error.details.issues[0].field).toBe('body.options.num_predict');
    }
    expect(startCalls).toBe(before);
  });

  it('reports an answer cut at num_predict as completed, with doneReason length', async () => {
    streaming.setReply(() => ({ pieces: ['One', ' two', ' three'], doneReason: 'length' }));
    try {
      const accepted = await request(app)
        .post('/prompts')
        .set(auth(KEY_A))
        .send({ modelId: FAKE_MODEL, prompt: 'Count.', options: { num_predict: 3 } });
      expect(accepted.status).toBe(202);
      const done = await waitForPrompt(accepted.body.id);
      expect(done.body.status).toBe('completed');
      expect(done.body.result).toMatchObject({ content: 'One two three', doneReason: 'length' });
      // The activity ran with the caller's bound.
      expect(streaming.requests.at(-1)!.options?.num_predict).toBe(3);
    } finally {
      streaming.setReply(() => ({ pieces: endless(), delayMs: 20 }));
    }
  });
});

describe('POST /prompts?waitMs= (the answer in one request)', () => {
  it('answers 200 with the result when the prompt finishes within waitMs, as GET reports it', async () => {
    streaming.setReply(() => ({ pieces: ['Sync', ' answer.'] }));
    try {
      const res = await request(app)
        .post('/prompts?waitMs=30000')
        .set(auth(KEY_A))
        .send({ modelId: FAKE_MODEL, prompt: 'Answer now.', options: { num_predict: 8 } });
      expect(res.status).toBe(200);
      expect(res.headers.location).toBe(`/prompts/${res.body.id}`);
      expect(res.body).toMatchObject({
        status: 'completed',
        modelId: FAKE_MODEL,
        result: { content: 'Sync answer.', model: FAKE_MODEL, nodeId: 'stream-node' },
      });
      // The same prompt, read back: GET has the same result (and the times).
      const got = await request(app).get(`/prompts/${res.body.id}`).set(auth(KEY_A));
      expect(got.body.status).toBe('completed');
      expect(got.body.result).toEqual(res.body.result);
      expect(got.body.closedAt).toBeDefined();
    } finally {
      streaming.setReply(() => ({ pieces: endless(), delayMs: 20 }));
    }
  });

  it('answers 202 when the prompt is still running after waitMs; the prompt goes on', async () => {
    const res = await request(app)
      .post('/prompts?waitMs=300')
      .set(auth(KEY_A))
      .send({ modelId: FAKE_MODEL, prompt: 'Take your time.' });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('running');
    const got = await request(app).get(`/prompts/${res.body.id}`).set(auth(KEY_A));
    expect(got.body.status).toBe('running');
    expect((await request(app).post(`/prompts/${res.body.id}/cancel`).set(auth(KEY_A))).status).toBe(202);
  });

  it('reports a prompt that ended otherwise (cancelled) with GET’s status, not as completed', async () => {
    const key = `sync-cancel-${Date.now()}`;
    const accepted = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .set('Idempotency-Key', key)
      .send({ modelId: FAKE_MODEL, prompt: 'Cancel me, then ask again.' });
    expect(accepted.status).toBe(202);
    expect((await request(app).post(`/prompts/${accepted.body.id}/cancel`).set(auth(KEY_A))).status).toBe(202);
    while ((await request(app).get(`/prompts/${accepted.body.id}`).set(auth(KEY_A))).body.status === 'running') {
      await sleep(100);
    }
    // The same key again, now waiting: the closed prompt is the answer.
    const res = await request(app)
      .post('/prompts?waitMs=5000')
      .set(auth(KEY_A))
      .set('Idempotency-Key', key)
      .send({ modelId: FAKE_MODEL, prompt: 'Cancel me, then ask again.' });
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(accepted.body.id);
    expect(res.body.status).toBe('cancelled');
    expect(res.body.result).toBeUndefined();
    expect(res.body.error).toBeDefined();
  });

  it('refuses a bad waitMs with a 400 naming query.waitMs, before any workflow starts', async () => {
    const before = startCalls;
    for (const q of ['waitMs=soon', 'waitMs=-1', 'waitMs=600000', 'wait=1']) {
      const res = await request(app)
        .post(`/prompts?${q}`)
        .set(auth(KEY_A))
        .send({ modelId: FAKE_MODEL, prompt: 'Never started.' });
      expect(res.status).toBe(400);
      expect(res.body.error.details.issues[0].field).toMatch(/^query\.wait/);
    }
    expect(startCalls).toBe(before);
  });
});

describe('POST /prompts/:id/cancel', () => {
  it('cancels a running prompt: the Ollama stream is aborted and GET reports cancelled', async () => {
    const accepted = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .send({ modelId: FAKE_MODEL, prompt: 'Go on forever.' });
    expect(accepted.status).toBe(202);
    const { id } = accepted.body;
    // The activity is streaming: the node is generating.
    const generationOf = () => streaming.requests.find((r) => r.body.prompt === 'Go on forever.');
    while ((generationOf()?.sent ?? 0) < 3) {
      const res = await request(app).get(`/prompts/${id}`).set(auth(KEY_A));
      expect(res.body.status).toBe('running');
      await sleep(50);
    }
    const generation = generationOf()!;
    // No num_predict given: the prompt kind's default.
    expect(generation.options?.num_predict).toBe(DEFAULT_NUM_PREDICT.prompt.default);

    // Another tenant's key cannot cancel it (nor learn that it exists).
    const foreign = await request(app).post(`/prompts/${id}/cancel`).set(auth(KEY_B));
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('not_found');

    const cancel = await request(app).post(`/prompts/${id}/cancel`).set(auth(KEY_A));
    expect(cancel.status).toBe(202);
    expect(cancel.body).toEqual({ id, status: 'cancelling' });

    const done = await waitForPrompt(id);
    expect(done.body.status).toBe('cancelled');
    expect(done.body.result).toBeUndefined();
    // The cancel reached the activity (with its next heartbeat), which closed the stream: Ollama stops.
    await generation.ended;
    expect(generation.aborted).toBe(true);
    expect(generation.finished).toBe(false);
    const sentAtEnd = generation.sent;
    await sleep(200);
    expect(generation.sent).toBe(sentAtEnd);

    // Closed: a second cancel is a conflict; an unknown id is a 404.
    const again = await request(app).post(`/prompts/${id}/cancel`).set(auth(KEY_A));
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('conflict');
    const missing = await request(app)
      .post(`/prompts/prompt-${'0'.repeat(8)}-missing/cancel`)
      .set(auth(KEY_A));
    expect(missing.status).toBe(404);
  });

  it('is in the OpenAPI document', async () => {
    const res = await request(app).get('/openapi.json');
    expect(Object.keys(res.body.paths['/prompts/{id}/cancel'] ?? {})).toEqual(['post']);
  });
});

describe('GET /models and /readyz', () => {
  it('lists the real model as available with live pollers, and the stopped node as unavailable', async () => {
    let res: request.Response;
    // The llm worker's first poll may land just after it starts; pollers appear once it has polled.
    for (;;) {
      res = await request(app).get('/models').set(auth(KEY_A));
      const model = res.body.models?.find((m: { name: string }) => m.name === services.model);
      if (model?.pollers > 0) break;
      await sleep(250);
    }
    expect(res.status).toBe(200);
    const model = res.body.models.find((m: { name: string }) => m.name === services.model);
    expect(model).toMatchObject({ available: true, queue: `ainode-llm.${services.model}` });
    expect(model.nodes).toEqual([expect.objectContaining({ id: 'node-1', available: true })]);

    const stopped = res.body.nodes.find((n: { id: string }) => n.id === 'stopped');
    expect(stopped).toMatchObject({ available: false, models: [] });
    expect(stopped.error).toMatch(/ECONNREFUSED/);
    expect(res.body.models.some((m: { name: string }) => m.name === 'ghost:1b')).toBe(false);
  });

  it('/readyz with one node down: 503 not_ready, that node failing with ECONNREFUSED and every other check ok', async () => {
    const res = await request(app).get('/readyz');
    expect(res.body.checks.temporal).toMatchObject({ ok: true });
    expect(res.body.checks.storage).toMatchObject({ ok: true });
    expect(res.body.checks['ollama:node-1']).toMatchObject({ ok: true });
    expect(res.body.checks['ollama:stopped']).toMatchObject({
      ok: false,
      error: expect.stringMatching(/ECONNREFUSED/),
    });
    // Setup provides the Docker engine: the stopped node is the only reason for the 503.
    expect(res.body.checks.docker).toMatchObject({ ok: true });
    expect(Object.entries(res.body.checks as Record<string, { ok: boolean }>).filter(([, c]) => !c.ok)).toEqual([
      ['ollama:stopped', expect.objectContaining({ ok: false })],
    ]);
    expect(res.status).toBe(503);
    expect(res.body.status).toBe('not_ready');
  });

  /** An app on the real services whose only Ollama node is the suite's, with config overrides. */
  function appWith(overrides: Record<string, string> = {}) {
    const config = testConfig({ API_KEYS: `${KEY_A}:tenant-a`, ...overrides });
    return createApp({
      config,
      temporal: env.client,
      storage,
      catalog: createCatalog({ nodes: config.OLLAMA_NODES, nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS }),
      logger: pino({ level: 'silent' }),
    });
  }

  it('/readyz with everything up: 200 ready, every check ok', async () => {
    const res = await request(appWith()).get('/readyz');
    expect(Object.keys(res.body.checks).sort()).toEqual(['docker', 'ollama:node-1', 'storage', 'temporal']);
    for (const [name, check] of Object.entries(res.body.checks))
      expect([name, check]).toEqual([name, expect.objectContaining({ ok: true })]);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ready');
  });

  it('/readyz with the Docker engine unreachable: 503 not_ready, docker failing and the rest ok', async () => {
    const res = await request(appWith({ DOCKER_SOCKET: path.join(os.tmpdir(), `${uid('no-docker')}.sock`) })).get(
      '/readyz',
    );
    expect(res.body.checks.docker).toMatchObject({ ok: false, error: expect.stringMatching(/ENOENT/) });
    for (const name of ['temporal', 'storage', 'ollama:node-1'])
      expect(res.body.checks[name]).toMatchObject({ ok: true });
    expect(res.status).toBe(503);
    expect(res.body.status).toBe('not_ready');
  });
});
