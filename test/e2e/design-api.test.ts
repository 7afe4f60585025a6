/**
 * Designs through the HTTP API with the whole stack in process: a Temporal dev server, the moto emulator, the
 * orchestrator worker (design activities, terraform validation when the binary is installed) and an llm
 * worker on the real Ollama node with the real small model. Questions are answered with defaults.
 */
import request from 'supertest';
import pino from 'pino';
import type { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Express } from 'express';
import { parse } from '@cdktf/hcl2json';
import { createApp } from '../../api/app';
import { createCatalog } from '../../activities/llm/catalog';
import { createStorage, ensureStorage, type Storage } from '../../activities/storage/clients';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { MAX_DESIGN_REQUEST_CHARS } from '../../api/routes/designs';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';

jest.setTimeout(1_500_000);

const KEY = 'key-design-tenant';
const OTHER = 'key-other-tenant';
const auth = (key = KEY) => ({ Authorization: `Bearer ${key}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: Worker[] = [];
let running: Promise<unknown>;
let app: Express;
let finishedId: string | undefined;

beforeAll(async () => {
  env = await createTemporalEnv();
  const config = testConfig({
    API_KEYS: `${KEY}:tenant-d,${OTHER}:tenant-o`,
    S3_BUCKET: uid('e2e-designs'),
    // A shared CPU may need minutes for one call; a timeout here would test the machine, not the design.
    LLM_CALL_TIMEOUT_MS: '600000',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  const orchestrator = await createOrchestratorWorker({
    connection: env.nativeConnection,
    config,
    storage,
    overrides: { workflowsPath: require.resolve('../integration/design-workflows') },
  });
  const llm = await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 60_000 });
  workers = [orchestrator, ...llm];
  running = Promise.all(workers.map((w) => w.run()));
  const catalog = createCatalog({
    nodes: config.OLLAMA_NODES,
    nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
    temporal: env.client,
    namespace: 'default',
    cacheMs: 0,
  });
  app = createApp({ config, temporal: env.client, storage, catalog, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  await running?.catch(() => undefined);
  await env?.teardown();
  storage?.close();
});

describe('designs with the real model', () => {
  it('"one S3 bucket with versioning in ap-northeast-2" → files the HCL parser accepts', async () => {
    const accepted = await request(app)
      .post('/designs')
      .set(auth())
      .send({
        request: 'one S3 bucket with versioning in ap-northeast-2',
        modelId: services.model,
        // The fix loop is covered with exact replies in test/integration; here each call is minutes of CPU.
        maxFixIterations: 0,
        maxQuestionRounds: 1,
        options: { num_predict: 200, temperature: 0, seed: 7 },
      });
    expect(accepted.status).toBe(202);
    const id: string = accepted.body.id;
    expect(id).toMatch(/^design-/);

    let body: Record<string, any> = {};
    for (;;) {
      const res = await request(app).get(`/designs/${id}`).set(auth());
      expect(res.status).toBe(200);
      body = res.body;
      if (body.status !== 'running') break;
      if (body.phase === 'waiting_for_answers') {
        const answers = Object.fromEntries(
          (body.questions as { id: string }[]).map((q) => [q.id, 'use a sensible default']),
        );
        const ack = await request(app).post(`/designs/${id}/answers`).set(auth()).send({ answers });
        expect(ack.status).toBe(200);
        expect(ack.body.accepted.sort()).toEqual(Object.keys(answers).sort());
      }
      if (body.phase === 'completed' || body.phase === 'invalid' || body.phase === 'ended') break;
      await sleep(500);
    }
    expect(body.error).toBeUndefined();
    expect(body.phase).toBe('completed');
    expect(body.usage.totalTokens).toBeGreaterThan(0);
    expect(body.plan.resources.length).toBeGreaterThan(0);
    const names = (body.files as { name: string }[]).map((f) => f.name).sort();
    expect(names).toEqual(['main.tf', 'outputs.tf', 'providers.tf', 'variables.tf']);
    expect(body.validation.output).toMatch(/terraform validate (not run|\()/);
    for (const name of names) {
      const file = await request(app).get(`/designs/${id}/files/${name}`).set(auth());
      expect(file.status).toBe(200);
      expect(file.headers['content-type']).toMatch(/^text\/plain/);
      // A real HCL2 parser accepts every file (resources are rendered from structured output).
      await expect(parse(name, file.text)).resolves.toBeDefined();
    }
    const main = await request(app).get(`/designs/${id}/files/main.tf`).set(auth());
    expect(main.text).toMatch(/resource "aws_[a-z0-9_]+" "/);
    finishedId = id;
  });

  it('answers to a design that is not waiting → 409; another tenant sees 404', async () => {
    expect(finishedId).toBeDefined();
    const res = await request(app)
      .post(`/designs/${finishedId}/answers`)
      .set(auth())
      .send({ answers: { q1: 'x' } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    const other = await request(app).get(`/designs/${finishedId}`).set(auth(OTHER));
    expect(other.status).toBe(404);
  });
});

describe('bad input', () => {
  it('empty request → 400 naming the field', async () => {
    const res = await request(app).post('/designs').set(auth()).send({ request: '   ' });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('body.request');
  });

  it('answers to an unknown design → 404; malformed answers → 400', async () => {
    const res = await request(app)
      .post('/designs/design-does-not-exist/answers')
      .set(auth())
      .send({ answers: { q1: 'x' } });
    expect(res.status).toBe(404);
    const bad = await request(app).post('/designs/design-does-not-exist/answers').set(auth()).send({ answers: {} });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('body.answers');
  });

  it('oversized request → 413', async () => {
    const res = await request(app)
      .post('/designs')
      .set(auth())
      .send({ request: 'x'.repeat(MAX_DESIGN_REQUEST_CHARS + 1) });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('unknown model → 400 and a bad file name → 400', async () => {
    const res = await request(app).post('/designs').set(auth()).send({ request: 'a bucket', modelId: 'nope:1b' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('model_not_found');
    const file = await request(app).get('/designs/design-x/files/..%2Fetc').set(auth());
    expect(file.status).toBe(400);
  });
});
