/**
 * An llm worker follows its node: a model created on the node after the worker started (here `/api/copy`, as
 * instant as `ollama create` from existing blobs) is listed by GET /models but unavailable (no poller) and
 * rejected with 503 + Retry-After, by the API and by the workflow's own check, until the worker's refresh
 * polls its queue; then a prompt on it completes. A node that does not answer changes nothing; a model deleted
 * from the node has its Worker stopped and is then unknown (400).
 *
 * Real Ollama, real Temporal dev server. The node is a private `ollama serve` whose models dir serves the suite's
 * model from the shared cache (scripts/lib/services.ts prepareNodeModelsDir), so the copy made here is visible to
 * this node only, never to the `npm test` node that other test files use at the same time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import type { Config } from '../../common/config';
import { llmQueue, normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import { freePort, prepareNodeModelsDir, startOllama, type Service } from '../../scripts/lib/services';
import type { Toolchain } from '../../scripts/lib/toolchain';
import { createLlmNode, type LlmNode } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { promptWorkflow } from '../../workflows/prompt-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { testApp } from '../helpers/api';

jest.setTimeout(600_000);

const KEY = 'key-refresh';
const auth = { Authorization: `Bearer ${KEY}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BASE = normalizeModel(services.model);
const COPY = `refresh-test-${uid('m').toLowerCase()}:latest`;
const NODE_ID = 'refresh-node';

let dir: string;
let node: Service;
let nodePort: number;
let env: TestWorkflowEnvironment;
let storage: Storage;
let config: Config;
let llm: LlmNode;
let llmRunning: Promise<void>;
let orchestrator: RunningWorkers | undefined;
let app: Express;

function startNode(port: number): Promise<Service> {
  return startOllama({ ollama: services.ollamaBin } as Toolchain, {
    port,
    modelsDir: path.join(dir, 'models'),
    numParallel: 2,
    logFile: path.join(dir, 'ollama.log'),
    name: 'ollama-refresh',
  });
}

async function ollamaPost(route: string, body: unknown, method = 'POST'): Promise<number> {
  const res = await fetch(`${node.url}${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.body?.cancel();
  return res.status;
}

/** Pollers Temporal lists on a model's queue. */
async function pollersOf(model: string): Promise<number> {
  const res = await env.client.workflowService.describeTaskQueue({
    namespace: 'default',
    taskQueue: { name: llmQueue(model), kind: 1 },
    taskQueueType: 2, // activity
  });
  return res.pollers?.length ?? 0;
}

async function catalogEntry(model: string) {
  const res = await request(app).get('/models').set(auth);
  expect(res.status).toBe(200);
  return (res.body.models as { name: string }[]).find((m) => m.name === model) as Record<string, unknown> | undefined;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ainode-refresh-'));
  const { missing } = prepareNodeModelsDir(services.ollamaModels, path.join(dir, 'models'), [BASE]);
  expect(missing).toEqual([]);
  nodePort = await freePort();
  [node, env] = await Promise.all([startNode(nodePort), createTemporalEnv()]);
  config = testConfig({
    NODE_ID,
    OLLAMA_URL: node.url,
    OLLAMA_NODES: `${NODE_ID}=${node.url}`,
    API_KEYS: `${KEY}:tenant-r`,
    S3_BUCKET: uid('refresh'),
  });
  storage = createStorage(config);
  await ensureStorage(storage);

  // refreshMs 0: the test calls refresh() itself, so each step sees exactly one refresh.
  llm = await createLlmNode({ connection: env.nativeConnection, config, waitForNodeMs: 30_000, refreshMs: 0 });
  expect(llm.models).toEqual([BASE]);
  llmRunning = llm.run();
  orchestrator = runWorkers([
    await createOrchestratorWorker({
      connection: env.nativeConnection,
      config,
      storage,
      overrides: { workflowsPath: require.resolve('../../workflows/prompt-workflow') },
    }),
  ]);
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  if (node) await ollamaPost('/api/delete', { model: COPY }, 'DELETE').catch(() => undefined);
  await llm?.shutdown();
  await llmRunning?.catch(() => undefined);
  await orchestrator?.stop();
  await env?.teardown();
  storage?.close();
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('an llm worker follows the models of its node', () => {
  it('a model created after the worker started is listed unavailable and rejected with 503 + Retry-After', async () => {
    expect(await ollamaPost('/api/copy', { source: BASE, destination: COPY })).toBe(200);

    const entry = await catalogEntry(COPY);
    expect(entry).toMatchObject({
      id: COPY,
      name: COPY,
      status: 'unavailable',
      available: false,
      pollers: 0,
      unavailableReason: `no llm worker polls ${llmQueue(COPY)}`,
    });
    expect(entry?.size).toBeGreaterThan(1_000_000); // the GGUF's bytes, from /api/tags

    const res = await request(app)
      .post('/prompts')
      .set(auth)
      .send({ modelId: COPY, prompt: 'Say yes.', options: { num_predict: 4 } });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('15');
    expect(res.body.error.code).toBe('model_unavailable');

    // A workflow started without the API fails fast too, instead of waiting on a queue nobody polls.
    const err = await env.client.workflow
      .execute(promptWorkflow, {
        taskQueue: ORCHESTRATOR_QUEUE,
        workflowId: uid('refresh'),
        args: [{ modelId: COPY, prompt: 'Say yes.', options: { num_predict: 4 } }],
        workflowExecutionTimeout: '2 minutes',
      })
      .then(
        () => undefined,
        (e: unknown) => e as { cause?: { type?: string; nonRetryable?: boolean } },
      );
    expect(err?.cause).toMatchObject({ type: 'ModelUnavailable', nonRetryable: true });
  });

  it('after a refresh its queue has a poller and a prompt on it completes', async () => {
    const result = await llm.refresh();
    expect(result).toMatchObject({ nodeId: NODE_ID, started: [COPY], stopped: [] });
    expect(result.error).toBeUndefined();
    expect(llm.models).toEqual([BASE, COPY].sort());

    let pollers = 0;
    for (let i = 0; i < 100 && pollers === 0; i++) {
      pollers = await pollersOf(COPY);
      if (pollers === 0) await sleep(200);
    }
    expect(pollers).toBeGreaterThan(0);
    expect(await catalogEntry(COPY)).toMatchObject({ status: 'available', available: true });

    const accepted = await request(app)
      .post('/prompts')
      .set(auth)
      .send({ modelId: COPY, prompt: 'Say yes.', options: { num_predict: 4, temperature: 0 } });
    expect(accepted.status).toBe(202);
    let res = await request(app).get(`/prompts/${accepted.body.id}?waitMs=60000`).set(auth);
    while (res.body.status === 'running')
      res = await request(app).get(`/prompts/${accepted.body.id}?waitMs=60000`).set(auth);
    expect(res.body.status).toBe('completed');
    expect(res.body.result).toMatchObject({ nodeId: NODE_ID });
    expect(res.body.result.usage.completionTokens).toBeGreaterThan(0);
  });

  it('a node that does not answer changes nothing: every Worker keeps polling', async () => {
    const before = llm.workers;
    await node.stop();
    const result = await llm.refresh();
    expect(result.error).toMatch(/ECONNREFUSED|fetch failed/);
    expect(result).toMatchObject({ started: [], stopped: [] });
    expect(llm.models).toEqual([BASE, COPY].sort());
    expect(llm.workers).toEqual(before);
    for (const w of llm.workers) expect(w.getState()).toBe('RUNNING');

    node = await startNode(nodePort);
    const back = await llm.refresh();
    expect(back).toMatchObject({ started: [], stopped: [] });
    expect(back.error).toBeUndefined();
  });

  it('a model deleted from the node: a refresh stops its Worker, and the model is then unknown (400)', async () => {
    const copyWorker = llm.workers.find((w) => w.options.taskQueue === llmQueue(COPY));
    expect(copyWorker?.getState()).toBe('RUNNING');
    expect(await ollamaPost('/api/delete', { model: COPY }, 'DELETE')).toBe(200);

    const result = await llm.refresh();
    expect(result).toMatchObject({ started: [], stopped: [COPY] });
    expect(llm.models).toEqual([BASE]);
    // The Worker drained and stopped: nothing polls the queue any more (Temporal itself lists a poller for a few
    // minutes after it was last seen, so the Worker's state is the prompt signal here).
    expect(copyWorker?.getState()).toBe('STOPPED');
    expect(llm.workers.map((w) => w.options.taskQueue)).not.toContain(llmQueue(COPY));

    expect(await catalogEntry(COPY)).toBeUndefined();
    const res = await request(app)
      .post('/prompts')
      .set(auth)
      .send({ modelId: COPY, prompt: 'Say yes.', options: { num_predict: 4 } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('model_not_found');
    expect(res.body.error.message).toContain(BASE); // names what is served
    // The base model's Worker was left alone.
    expect(llm.workers.find((w) => w.options.taskQueue === llmQueue(BASE))?.getState()).toBe('RUNNING');
  });
});
