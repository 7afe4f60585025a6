/**
 * Ollama nodes that fail the way real ones do, next to a healthy node serving the same model. Its own stack: a
 * Temporal dev server for this file, the orchestrator and every node's llm worker in this process, the production
 * API app. Nodes (test/faults/helpers/faulty-ollama.ts): one that accepts TCP and never answers anything, and
 * nodes whose generations hang, answer 500, or die mid-stream while their tags still answer (so their workers
 * keep polling and take calls).
 * Asserted: GET /models answers (200) with the silent node listed unavailable and the model still available;
 * for each generation fault, every prompt ends either completed by the healthy node or failed with a typed reason
 * (node_unavailable, inference_timeout, llm_failed), never completed by the faulty node and never a 500; and
 * the faulty node was really called.
 */
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../common/config';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { startFaultyOllama, type FaultMode, type FaultyOllama } from './helpers/faulty-ollama';
import { startChildWorker } from './helpers/child-worker';

jest.setTimeout(300_000);

const MODEL = 'fake-faults:1b';
const KEY = 'key-faults-ollama';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const PROMPTS_PER_FAULT = 3;
/** The typed failures a prompt may end with when its node failed (common/errors.ts codes). */
const TYPED = ['node_unavailable', 'inference_timeout', 'llm_failed'];

let env: TestWorkflowEnvironment;
let healthy: FakeOllama;
const faulty: Partial<Record<FaultMode, FaultyOllama>> = {};
let storage: Storage;
let workers: RunningWorkers | undefined;
let app: Express;
let config: Config;
let overrides: Record<string, string>;
let logDir: string;
/** What each fault did to its prompts, for docs/operations.md's table. */
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  logDir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-ollama-'));
  env = await createTemporalEnv();
  healthy = await startFakeOllama({ models: [MODEL], script: () => 'Fine, thanks.' });
  for (const mode of ['hang', 'error500', 'die', 'hang-all'] as const) {
    faulty[mode] = await startFaultyOllama({ models: [MODEL], mode });
  }
  overrides = {
    API_KEYS: `${KEY}:tenant-faults`,
    S3_BUCKET: uid('faults-ollama'),
    DEFAULT_MODEL: MODEL,
    OLLAMA_NODES: [
      `healthy=${healthy.url}`,
      ...Object.entries(faulty).map(([mode, node]) => `${mode}=${node!.url}`),
    ].join(','),
  };
  config = testConfig(overrides);
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = runWorkers([
    await createOrchestratorWorker({
      connection: env.nativeConnection,
      config,
      storage,
      overrides: { workflowsPath: require.resolve('../../workflows/prompt-workflow') },
    }),
  ]);
  app = testApp(env, { config, storage });
});

/** The healthy node's llm workers, not yet running (started per test, so a test decides when calls can reach it). */
function healthyWorkers() {
  return createLlmWorkers({
    connection: env.nativeConnection,
    config: { ...config, OLLAMA_URL: healthy.url, NODE_ID: 'healthy' },
    waitForNodeMs: 10_000,
  });
}

afterAll(async () => {
  await workers?.stop();
  await env?.teardown();
  await healthy?.close();
  for (const node of Object.values(faulty)) await node?.close();
  storage?.close();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  console.log(`ollama faults: ${JSON.stringify(figures)}`);
});

describe('GET /models with a node that accepts TCP and never answers', () => {
  it('answers 200: the silent node is unavailable, the model is still available on the others', async () => {
    const worker = runWorkers(await healthyWorkers());
    const t0 = performance.now();
    let res: request.Response;
    try {
      res = await request(app).get('/models').set(auth());
    } finally {
      await worker.stop();
    }
    figures.modelsMs = Math.round(performance.now() - t0);
    expect(res.status).toBe(200);
    const nodes = (res.body.nodes ?? []) as { id: string; available: boolean }[];
    expect(nodes.find((n) => n.id === 'hang-all')).toMatchObject({ available: false });
    expect(nodes.find((n) => n.id === 'healthy')).toMatchObject({ available: true });
    const model = (
      (res.body.models ?? res.body.data ?? []) as { id?: string; name?: string; available?: boolean }[]
    ).find((m) => (m.id ?? m.name) === MODEL);
    expect({ model: model?.id ?? model?.name, available: model?.available }).toEqual({ model: MODEL, available: true });
  });
});

describe.each(['hang', 'error500', 'die'] as const)('a node whose generations %s', (mode) => {
  it('every prompt completes on the healthy node or fails typed; none completes on the faulty node', async () => {
    const node = faulty[mode]!;
    // First only the faulty node's worker polls (a child process: one process polls a queue once; a hang is
    // cut after 3 s), so the fault is certain to be hit; once it has taken a call, the healthy node's worker
    // polls next to it.
    const child = await startChildWorker({
      entry: 'test/faults/helpers/llm-child.ts',
      env: {
        ...overrides,
        TEMPORAL_ADDRESS: env.address,
        AWS_ENDPOINT_URL: services.awsEndpoint,
        OLLAMA_URL: node.url,
        NODE_ID: mode,
        LLM_CALL_TIMEOUT_MS: '3000',
        LOG_LEVEL: 'warn',
      },
      logFile: path.join(logDir, `llm-${mode}.log`),
    });
    let running: RunningWorkers | undefined;
    try {
      const ids: string[] = [];
      for (let i = 0; i < PROMPTS_PER_FAULT; i++) {
        const res = await request(app)
          .post('/prompts')
          .set(auth())
          .send({ modelId: MODEL, prompt: `Hello ${mode} ${i}` });
        expect(res.status).toBe(202);
        ids.push(res.body.id as string);
      }
      const deadline = Date.now() + 60_000;
      while (node.generations === 0) {
        if (Date.now() > deadline) throw new Error(`the ${mode} node took no call`);
        await new Promise((r) => setTimeout(r, 50));
      }
      running = runWorkers(await healthyWorkers());
      const outcomes: string[] = [];
      for (const id of ids) {
        let res = await request(app).get(`/prompts/${id}?waitMs=30000`).set(auth());
        for (let i = 0; i < 4 && res.body.status === 'running'; i++) {
          res = await request(app).get(`/prompts/${id}?waitMs=30000`).set(auth());
        }
        expect(res.status).toBe(200);
        if (res.body.status === 'completed') {
          expect(res.body.result).toMatchObject({ nodeId: 'healthy', content: 'Fine, thanks.' });
          outcomes.push('completed on healthy');
        } else {
          expect(res.body.status).toBe('failed');
          expect(TYPED).toContain(res.body.error.code);
          outcomes.push(`failed ${res.body.error.code}`);
        }
      }
      figures[mode] = { generationsOnFaultyNode: node.generations, outcomes };
    } finally {
      await running?.stop();
      await child.stop();
    }
  });
});
