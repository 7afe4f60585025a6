/**
 * `kill -9` the orchestrator while a design waits for answers. Its own stack: a Temporal dev server for this
 * file, the orchestrator as a child process (killed with SIGKILL, then started again), an llm worker in this
 * process over a scripted fake Ollama (exact replies per graph node), the production API app in process.
 * Asserted: while no orchestrator runs, `POST /designs/:id/answers` is recorded at once (202; the same
 * Idempotency-Key twice gives the same answerId); after the restart the design applies the answer exactly once
 * and completes; no LLM call ran twice (the fake node saw exactly the calls the history completed, and every
 * scheduled activity completed once).
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
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { startChildWorker, type ChildWorker } from './helpers/child-worker';

jest.setTimeout(300_000);

const MODEL = 'fake-design:1b';
const KEY = 'key-faults-orch';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EventType = temporal.api.enums.v1.EventType;

/** The graph node a request is for: every design prompt starts with `ainode design: <node>`. */
const nodeOf = (r: FakeRequest) => /ainode design: (\w+)/.exec(r.messages[0]?.content ?? '')?.[1] ?? 'unknown';

/** v1 graph replies: the consultant asks one question first, then has what it needs. */
const REPLIES: Record<string, (call: number) => unknown> = {
  consultant: (call) =>
    call === 0
      ? { requirements: {}, questions: ['Which region?'] }
      : { requirements: { region: 'eu-west-1' }, questions: [] },
  promptGenerator: () => 'Create one private S3 bucket named logs in eu-west-1.',
  engineer: () => ({
    resources: [{ type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'acme-logs', force_destroy: false } }],
  }),
  lead: () => ({ approved: true, notes: '' }),
};

let env: TestWorkflowEnvironment;
let fake: FakeOllama;
let storage: Storage;
let llm: RunningWorkers | undefined;
let orchestrator: ChildWorker | undefined;
let app: Express;
let logDir: string;
let childEnv: NodeJS.ProcessEnv;
const calls: Record<string, number> = {};

const startOrchestrator = (n: number) =>
  startChildWorker({
    entry: 'test/faults/helpers/orchestrator-child.ts',
    env: childEnv,
    logFile: path.join(logDir, `orchestrator-${n}.log`),
  });

beforeAll(async () => {
  logDir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-orch-'));
  env = await createTemporalEnv();
  fake = await startFakeOllama({
    models: [MODEL],
    script: (req) => {
      const node = nodeOf(req);
      const reply = REPLIES[node];
      if (!reply) throw new Error(`no scripted reply for node ${node}`);
      const out = reply((calls[node] = (calls[node] ?? -1) + 1));
      return typeof out === 'string' ? out : JSON.stringify(out);
    },
  });
  const overrides = {
    API_KEYS: `${KEY}:tenant-faults`,
    S3_BUCKET: uid('faults-orch'),
    OLLAMA_URL: fake.url,
    OLLAMA_NODES: `node-1=${fake.url}`,
    DEFAULT_MODEL: MODEL,
    WORKFLOW_QUERY_TIMEOUT_MS: '2000',
  };
  const config = testConfig(overrides);
  storage = createStorage(config);
  await ensureStorage(storage);
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
    FAULT_WORKFLOWS_PATH: require.resolve('../integration/design-workflows'),
  };
  orchestrator = await startOrchestrator(1);
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  await orchestrator?.stop();
  await llm?.stop();
  await env?.teardown();
  await fake?.close();
  storage?.close();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
});

async function pollUntil(id: string, done: (b: Record<string, any>) => boolean): Promise<Record<string, any>> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const res = await request(app).get(`/designs/${id}`).set(auth());
    // Right after a restart the query can still be routed to the dead worker's sticky queue: a client retries.
    if (res.status === 503 && res.body.error?.code === 'workers_unavailable' && Date.now() < deadline) continue;
    expect(res.status).toBe(200);
    if (done(res.body)) return res.body as Record<string, any>;
    if (res.body.status !== 'running' || Date.now() > deadline) {
      throw new Error(`design ${id} did not get there: ${JSON.stringify(res.body).slice(0, 2000)}`);
    }
    await sleep(300);
  }
}

describe('kill -9 the orchestrator while a design waits for answers', () => {
  it('answers posted meanwhile are recorded at once and applied exactly once after the restart; no call runs twice', async () => {
    const started = await request(app)
      .post('/designs')
      .set(auth())
      .send({ modelId: MODEL, graph: 'v1', maxFixIterations: 0, request: 'a logs bucket' });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    const waiting = await pollUntil(id, (b) => b.phase === 'waiting_for_answers' && b.questions.length > 0);
    const questionId = waiting.questions[0].id as string;

    await orchestrator!.kill9();

    // A status read needs a worker to answer its query: with none, a prompt 503 naming the cause, not a hang.
    const status = await request(app).get(`/designs/${id}`).set(auth());
    expect([status.status, status.body.error?.code, status.headers['retry-after']]).toEqual([
      503,
      'workers_unavailable',
      '5',
    ]);
    const stream = await request(app).get(`/designs/${id}/events`).set(auth()).set('Last-Event-ID', '1');
    expect(stream.status).toBe(200);
    expect(stream.text).toMatch(/event: error\ndata: \{"error":\{"code":"workers_unavailable"/);

    // No orchestrator: the answer is recorded by Temporal (a signal), and a retry with the same key is the same.
    const answer = () =>
      request(app)
        .post(`/designs/${id}/answers`)
        .set(auth())
        .set('Idempotency-Key', 'region-answer')
        .send({ answers: { [questionId]: 'eu-west-1' } });
    const first = await answer();
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ id, status: 'accepted', answerId: expect.stringMatching(/^answer-/) });
    const retry = await answer();
    expect(retry.status).toBe(202);
    expect(retry.body.answerId).toBe(first.body.answerId);
    const callsWhileDown = fake.requests.length;

    orchestrator = await startOrchestrator(2);
    const done = await pollUntil(id, (b) => b.phase === 'completed');
    expect(done.answersApplied).toEqual([first.body.answerId]);
    expect(done.questions).toEqual([]);
    expect(done.plan.resources.map((r: { type: string }) => r.type)).toEqual(['aws_s3_bucket']);
    expect(done.files.length).toBeGreaterThan(0);

    // Nothing ran twice: the consultant was asked twice (before and after the answer), never a third time; the
    // restart re-ran no call that had completed before the kill.
    expect(calls.consultant).toBe(1); // 0-based: two calls
    expect(callsWhileDown).toBe(1);
    const history = await env.client.workflow.getHandle(id).fetchHistory();
    const events = history.events ?? [];
    const count = (t: number) => events.filter((e) => e.eventType === t).length;
    expect(count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)).toBe(2); // both deliveries recorded…
    const scheduled = events.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
    expect(count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)).toBe(scheduled.length); // …each activity once
    expect(count(EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) + count(EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)).toBe(
      0,
    );
    const llmActivities = scheduled.filter((e) =>
      /^llm/.test(e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''),
    );
    expect(llmActivities.length).toBe(fake.requests.length);
  });
});
