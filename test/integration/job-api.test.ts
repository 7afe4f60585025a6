/**
 * The jobs API against real components: a Temporal dev server, the moto emulator, real Docker, and
 * in-process orchestrator, executor and llm workers (a scripted fake Ollama, so replies are exact).
 * POST /functions → POST /run → GET /jobs/:id → outputs → GET /usage, and every rejection.
 */
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import pino from 'pino';
import Docker from 'dockerode';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Express } from 'express';
import { createApp } from '../../api/app';
import { createCatalog } from '../../lib/llm/catalog';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createJobsActivities } from '../../activities/jobs';
import { removeOrphans } from '../../lib/executor/container';
import { createExecutorWorker } from '../../workers/executor';
import { createLlmWorkers } from '../../workers/llm';
import { ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { buildZip, scriptZip } from '../fixtures/jobs/zips';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(180_000);

const KEY_A = 'key-tenant-a';
const KEY_B = 'key-tenant-b';
const A = { Authorization: `Bearer ${KEY_A}` };
const B = { Authorization: `Bearer ${KEY_B}` };
const MODEL = 'fake:1b';
const UPLOAD_LIMIT = 400_000;

const SCRIPT = `import json, ai_client
data = json.load(open("input.json"))
text = ai_client.generate("say " + data["word"])
open("/out/hello.txt", "w").write(text)
print(text)
`;

let env: TestWorkflowEnvironment;
let storage: Storage;
let fake: FakeOllama;
let app: Express;
let workers: RunningWorkers | undefined;
const docker = new Docker();
const executorId = uid('exec');

beforeAll(async () => {
  env = await createTemporalEnv();
  fake = await startFakeOllama({ models: [MODEL], script: (r) => `${r.messages.at(-1)!.content} back` });
  const config = testConfig({
    API_KEYS: `${KEY_A}:tenant-a,${KEY_B}:tenant-b`,
    S3_BUCKET: uid('jobapi').toLowerCase(),
    DYNAMO_TABLE_PREFIX: `${uid('p')}-`,
    OLLAMA_NODES: `fake=${fake.url}`,
    OLLAMA_URL: fake.url,
    NODE_ID: 'fake',
    API_UPLOAD_LIMIT_BYTES: String(UPLOAD_LIMIT),
    GATEWAY_SOCKET_DIR: path.join(os.tmpdir(), uid('gw')),
    PRICE_TABLE: `${MODEL}=1/1`,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  const orchestrator = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: ORCHESTRATOR_QUEUE,
    workflowsPath: require.resolve('../../workflows/job-workflow'),
    activities: createJobsActivities({ storage, config }),
  });
  const { worker: executor } = await createExecutorWorker({
    connection: env.nativeConnection,
    client: env.client,
    config,
    storage,
    docker,
    executorId,
    workRoot: path.join(os.tmpdir(), uid('jobs')),
  });
  const llm = await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 10_000 });
  workers = runWorkers([orchestrator, executor, ...llm]);
  const catalog = createCatalog({ nodes: config.OLLAMA_NODES, nodeTimeoutMs: 2000, temporal: env.client });
  app = createApp({ config, temporal: env.client, storage, catalog, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await workers?.stop();
  await removeOrphans(docker, executorId);
  await fake?.close();
  storage?.close();
  await env?.teardown();
});

const upload = (zip: Buffer, query = '') =>
  request(app).post(`/functions${query}`).set(A).set('content-type', 'application/zip').send(zip);

async function waitForJob(jobId: string) {
  for (let i = 0; i < 600; i++) {
    const res = await request(app).get(`/jobs/${jobId}`).set(A);
    if (['succeeded', 'failed', 'cancelled'].includes(res.body.status) && res.body.result) return res;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`job ${jobId} did not finish`);
}

describe('POST /functions rejects unsafe archives with a 400 naming the problem', () => {
  it.each([
    [
      '../evil',
      async () =>
        buildZip(
          [
            { name: 'main.py', data: 'x' },
            { name: 'xx/evil', data: 'x' },
          ],
          { 'xx/evil': '../evil' },
        ),
      /"\.\.\/evil" escapes/,
    ],
    [
      '/abs',
      async () =>
        buildZip(
          [
            { name: 'main.py', data: 'x' },
            { name: 'xabs', data: 'x' },
          ],
          { xabs: '/abs' },
        ),
      /"\/abs" has an absolute path/,
    ],
    [
      'a symlink',
      async () =>
        buildZip([
          { name: 'main.py', data: 'x' },
          { name: 'link', data: '/etc', mode: 0o120777 },
        ]),
      /"link" is a symbolic link/,
    ],
    [
      'a zip bomb',
      async () =>
        buildZip([
          { name: 'main.py', data: 'x' },
          { name: 'bomb', data: Buffer.alloc(110 * 1_048_576) },
        ]),
      /"bomb" exceeds the archive size limit/,
    ],
    ['not a zip', async () => Buffer.from('just text, not a zip'), /not a zip archive/],
    ['no entry file', async () => buildZip([{ name: 'other.py', data: 'x' }]), /no entry file "main\.py"/],
  ])('%s', async (_name, make, message) => {
    const res = await upload(await make());
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_archive');
    expect(res.body.error.message).toMatch(message);
  });

  it('413 past the upload limit', async () => {
    const res = await upload(Buffer.alloc(UPLOAD_LIMIT + 1, 7));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });
});

describe('jobs through the API', () => {
  let functionId: string;

  beforeAll(async () => {
    const res = await upload(await buildZip([{ name: 'main.py', data: SCRIPT }]), '?name=hello');
    expect(res.status).toBe(201);
    functionId = res.body.functionId as string;
  });

  it('GET /functions/:id is tenant-scoped', async () => {
    expect((await request(app).get(`/functions/${functionId}`).set(A)).body).toMatchObject({
      functionId,
      entry: 'main.py',
      name: 'hello',
    });
    expect((await request(app).get(`/functions/${functionId}`).set(B)).status).toBe(404);
  });

  it('runs a job: 202, the same job for the same Idempotency-Key, result, outputs, listing and usage', async () => {
    const t0 = new Date(Date.now() - 1000).toISOString();
    const body = { functionId, modelId: MODEL, inputData: { word: 'hello' } };
    const first = await request(app).post('/run').set(A).set('Idempotency-Key', 'k1').send(body);
    expect(first.status).toBe(202);
    expect(first.body.jobId).toMatch(/^job-/);
    // The Web UI shows every tenant's runs: its link is for operators (X-Operator-Key) only.
    expect(first.body.webUiUrl).toBeUndefined();
    const again = await request(app).post('/run').set(A).set('Idempotency-Key', 'k1').send(body);
    expect(again.body.jobId).toBe(first.body.jobId);
    const jobId = first.body.jobId as string;

    // A long poll returns once the job has ended: one request suffices (the job takes seconds, the wait 60 s).
    const held = await request(app).get(`/jobs/${jobId}?waitMs=60000`).set(A);
    expect(held.body).toMatchObject({ status: 'succeeded', result: { exitCode: 0 } });
    const bad = await request(app).get(`/jobs/${jobId}?waitMs=-1`).set(A);
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^query\.waitMs: /);

    const done = await waitForJob(jobId);
    expect(done.body.status).toBe('succeeded');
    expect(done.body.result.stdout).toBe('say hello back\n');
    // "say hello" = 2 prompt tokens, "say hello back" = 3 completion tokens (the fake counts words).
    expect(done.body.result.llm_token_count).toEqual({ prompt: 2, completion: 3, total: 5 });
    expect(done.body.result.costUsd).toBeCloseTo(0.005, 9);

    const out = await request(app)
      .get(`/jobs/${jobId}/outputs/hello.txt`)
      .set(A)
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      });
    expect(out.status).toBe(200);
    expect((out.body as Buffer).toString()).toBe('say hello back');
    expect((await request(app).get(`/jobs/${jobId}/outputs/nope.txt`).set(A)).status).toBe(404);

    const list = await request(app).get('/jobs?limit=10').set(A);
    expect(list.body.jobs.map((j: { jobId: string }) => j.jobId)).toContain(jobId);
    expect((await request(app).get('/jobs').set(B)).body.jobs).toEqual([]);

    const usage = await request(app).get(`/usage?functionId=${functionId}&from=${t0}`).set(A);
    expect(usage.status).toBe(200);
    expect(usage.body.rows).toEqual([
      { functionId, model: MODEL, jobs: 1, calls: 1, prompt: 2, completion: 3, total: 5, costUsd: 0.005 },
    ]);
    expect((await request(app).get(`/usage?functionId=${functionId}`).set(B)).body.rows).toEqual([]);

    // Another tenant cannot see, cancel or download it; a finished job cannot be cancelled.
    expect((await request(app).get(`/jobs/${jobId}`).set(B)).status).toBe(404);
    expect((await request(app).post(`/jobs/${jobId}/cancel`).set(B)).status).toBe(404);
    expect((await request(app).get(`/jobs/${jobId}/outputs/hello.txt`).set(B)).status).toBe(404);
    expect((await request(app).post(`/jobs/${jobId}/cancel`).set(A)).status).toBe(409);
  });

  it('cancels a running job', async () => {
    const up = await upload(await buildZip([{ name: 'main.py', data: 'import time\ntime.sleep(600)\n' }]));
    const res = await request(app).post('/run').set(A).send({ functionId: up.body.functionId, modelId: MODEL });
    const jobId = res.body.jobId as string;
    for (let i = 0; i < 100; i++) {
      const s = await request(app).get(`/jobs/${jobId}`).set(A);
      if (s.body.usage) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await request(app).post(`/jobs/${jobId}/cancel`).set(A)).status).toBe(202);
    const done = await waitForJob(jobId);
    expect(done.body.status).toBe('cancelled');
  });

  it('404 for an unknown function, 400 for an unknown model or a bad body', async () => {
    const unknownFn = await request(app).post('/run').set(A).send({ functionId: 'fn-nope', modelId: MODEL });
    expect(unknownFn.status).toBe(404);
    const otherTenant = await request(app).post('/run').set(B).send({ functionId, modelId: MODEL });
    expect(otherTenant.status).toBe(404);
    const unknownModel = await request(app).post('/run').set(A).send({ functionId, modelId: 'nope:1b' });
    expect(unknownModel.status).toBe(400);
    expect(unknownModel.body.error.code).toBe('model_not_found');
    const bad = await request(app).post('/run').set(A).send({ functionId, modelId: MODEL, memoryMb: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^body\.memoryMb/);
    expect((await request(app).get('/jobs/job-unknown').set(A)).status).toBe(404);
  });
});

describe('functions under a chosen id, with versions (PUT /functions/:id)', () => {
  const put = (id: string, zip: Buffer, key = A) =>
    request(app).put(`/functions/${id}`).set(key).set('content-type', 'application/zip').send(zip);
  const printer = (text: string) => scriptZip(`print(${JSON.stringify(text)})\n`);

  it('keeps every upload as a version; POST /run uses the latest or the one named', async () => {
    const id = `func-${uid('v')}`;
    const v1 = await put(id, await printer('one'));
    expect(v1.status).toBe(201);
    expect(v1.body).toMatchObject({ functionId: id, version: 1, entry: 'main.py' });
    // The same package again is not a new version.
    const same = await put(id, await printer('one'));
    expect(same.status).toBe(200);
    expect(same.body.version).toBe(1);
    const v2 = await put(id, await printer('two'));
    expect(v2.status).toBe(201);
    expect(v2.body.version).toBe(2);

    expect((await request(app).get(`/functions/${id}`).set(A)).body.version).toBe(2);
    expect((await request(app).get(`/functions/${id}?version=1`).set(A)).body.sha256).toBe(v1.body.sha256);
    const versions = await request(app).get(`/functions/${id}/versions`).set(A);
    expect(versions.body.versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
    // Another tenant sees none of it, and its own PUT of the same id is its own function.
    expect((await request(app).get(`/functions/${id}`).set(B)).status).toBe(404);
    expect((await request(app).get(`/functions/${id}/versions`).set(B)).status).toBe(404);

    const latest = await request(app).post('/run').set(A).send({ functionId: id, modelId: MODEL });
    expect(latest.status).toBe(202);
    expect((await waitForJob(latest.body.jobId as string)).body.result.stdout).toBe('two\n');
    const pinned = await request(app).post('/run').set(A).send({ functionId: id, functionVersion: 1, modelId: MODEL });
    expect((await waitForJob(pinned.body.jobId as string)).body.result.stdout).toBe('one\n');
    const missing = await request(app).post('/run').set(A).send({ functionId: id, functionVersion: 9, modelId: MODEL });
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toMatch(/version 9 not found/);
  });

  it('400 naming the field for an id that is not one', async () => {
    const res = await put('bad%20id!', await printer('x'));
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/^params\.id: /);
    const run = await request(app).post('/run').set(A).send({ functionId: '../x', modelId: MODEL });
    expect(run.status).toBe(400);
    expect(run.body.error.message).toMatch(/^body\.functionId: /);
  });
});
