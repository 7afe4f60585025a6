/**
 * `kill -9` an llm worker in the middle of a long generation. Its own stack: a Temporal dev server for this file,
 * two "nodes" serving the same model (node-a: a scripted Ollama that streams slowly, its llm worker a child
 * process; node-b: a scripted Ollama with a short reply, its llm worker in this process, started once node-a is
 * generating), the orchestrator in process and the production API app.
 * Asserted: the prompt completes on node-b after the heartbeat timeout (attempt 2 in the history, one activity
 * scheduled and completed); its usage is node-b's counts only (the killed attempt is not metered); node-a's
 * stream was cut when its worker died.
 */
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { startStreamingOllama, type StreamingOllama } from '../helpers/streaming-ollama';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { startChildWorker, type ChildWorker } from './helpers/child-worker';

jest.setTimeout(300_000);

const MODEL = 'fake-long:1b';
const KEY = 'key-faults-llm';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EventType = temporal.api.enums.v1.EventType;
const REPLY_B = 'Hello from node b.';

/** Distinct words (no repetition for the loop cutter to stop), one every 200 ms: a long generation. */
function* story(): Generator<string> {
  for (let i = 0; ; i++) yield `word${i} `;
}

let env: TestWorkflowEnvironment;
let nodeA: StreamingOllama;
let nodeB: FakeOllama;
let storage: Storage;
let workers: RunningWorkers | undefined;
let llmA: ChildWorker | undefined;
let app: Express;
let logDir: string;
let overrides: Record<string, string>;

beforeAll(async () => {
  logDir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-llm-'));
  env = await createTemporalEnv();
  nodeA = await startStreamingOllama({ models: [MODEL], reply: () => ({ pieces: story(), delayMs: 200 }) });
  nodeB = await startFakeOllama({ models: [MODEL], script: () => REPLY_B });
  overrides = {
    API_KEYS: `${KEY}:tenant-faults`,
    S3_BUCKET: uid('faults-llm'),
    OLLAMA_NODES: `node-a=${nodeA.url},node-b=${nodeB.url}`,
    DEFAULT_MODEL: MODEL,
  };
  const config = testConfig(overrides);
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
  llmA = await startChildWorker({
    entry: 'test/faults/helpers/llm-child.ts',
    env: {
      ...overrides,
      TEMPORAL_ADDRESS: env.address,
      AWS_ENDPOINT_URL: services.awsEndpoint,
      OLLAMA_URL: nodeA.url,
      NODE_ID: 'node-a',
      LOG_LEVEL: 'warn',
    },
    logFile: path.join(logDir, 'llm-node-a.log'),
  });
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  await llmA?.stop();
  await workers?.stop();
  await env?.teardown();
  await nodeA?.close();
  await nodeB?.close();
  storage?.close();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
});

describe('kill -9 an llm worker in the middle of a long generation', () => {
  it('the call completes on the other node, metered once (the attempt that completed)', async () => {
    const started = await request(app)
      .post('/prompts')
      .set(auth())
      .send({ modelId: MODEL, prompt: 'Tell me a long story.', options: { num_predict: 1000 } });
    expect(started.status).toBe(202);
    const id = started.body.id as string;

    // node-a is generating (a few words streamed); only now does node-b's worker poll the model's queue.
    const deadline = Date.now() + 120_000;
    while (!(nodeA.requests[0] && nodeA.requests[0].sent >= 3)) {
      if (Date.now() > deadline) throw new Error('node-a never started generating');
      await sleep(100);
    }
    workers!.add(
      ...(await createLlmWorkers({
        connection: env.nativeConnection,
        config: testConfig({ ...overrides, OLLAMA_URL: nodeB.url, NODE_ID: 'node-b' }),
        waitForNodeMs: 10_000,
      })),
    );
    await llmA!.kill9();
    await nodeA.requests[0]!.ended;
    expect(nodeA.requests[0]!.aborted).toBe(true);
    expect(nodeA.requests[0]!.finished).toBe(false);

    const res = await request(app).get(`/prompts/${id}?waitMs=60000`).set(auth());
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('completed');
    expect(res.body.result).toMatchObject({ content: REPLY_B, nodeId: 'node-b' });
    // Metered from node-b's own counts only: its prompt tokens and the reply's 4 words; node-a's words are not billed.
    const promptTokens = 'Tell me a long story.'.split(/\s+/).length;
    expect(res.body.result.usage).toMatchObject({ promptTokens, completionTokens: 4, totalTokens: promptTokens + 4 });
    expect(nodeB.requests).toHaveLength(1);

    const events = (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
    const of = (t: number) => events.filter((e) => e.eventType === t);
    expect(of(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)).toHaveLength(1);
    expect(of(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)).toHaveLength(1);
    const startedEvents = of(EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED);
    expect(startedEvents.map((e) => e.activityTaskStartedEventAttributes?.attempt)).toEqual([2]);
  });
});
