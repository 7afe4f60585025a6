/**
 * The llm worker's circuit breaker (lib/llm/breaker.ts) against a node that keeps failing. Its own stack: a Temporal
 * dev server for this file; a scripted node ("flaky") that answers 500 to every generation until the test heals it,
 * its llm worker a child process run the production way (`createLlmNode` + `run()`, breaker after 3 failures, probes
 * 1 s then 2 s apart); a healthy scripted node whose llm worker runs in this process; the orchestrator in process and
 * the production API app.
 * Asserted: once the flaky node has failed 3 calls in a row it stops taking calls (only probes reach it while it is
 * broken); prompts sent after that all complete on the healthy node at their first attempt (no retry spent on the
 * flaky node); once the node is healed, a probe succeeds before any call reaches it, and it takes calls again.
 */
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { PROBE_PROMPT } from '../../lib/llm/breaker';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { startChildWorker, type ChildWorker } from './helpers/child-worker';

jest.setTimeout(240_000);

const MODEL = 'fake-breaker:1b';
const KEY = 'key-faults-breaker';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EventType = temporal.api.enums.v1.EventType;
const FAILURES = 3;

let env: TestWorkflowEnvironment;
let flaky: FakeOllama;
let healthy: FakeOllama;
let storage: Storage;
let orchestrator: RunningWorkers | undefined;
let child: ChildWorker | undefined;
let app: Express;
let logDir: string;
let overrides: Record<string, string>;
let broken = true;
/** What reached the flaky node, in order: `call` / `probe`, and whether it was answered. */
const seen: { what: 'call' | 'probe'; ok: boolean }[] = [];
const figures: Record<string, unknown> = {};

const isProbe = (req: FakeRequest) =>
  req.messages.at(-1)?.content === PROBE_PROMPT && (req.options as { num_predict?: number })?.num_predict === 1;

beforeAll(async () => {
  logDir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-breaker-'));
  env = await createTemporalEnv();
  flaky = await startFakeOllama({
    models: [MODEL],
    script: (req) => {
      seen.push({ what: isProbe(req) ? 'probe' : 'call', ok: !broken });
      if (broken) throw new Error('llama runner process has terminated: exit status 2');
      return 'Fine from flaky.';
    },
  });
  healthy = await startFakeOllama({ models: [MODEL], script: () => 'Fine from healthy.' });
  overrides = {
    API_KEYS: `${KEY}:tenant-breaker`,
    S3_BUCKET: uid('faults-breaker'),
    DEFAULT_MODEL: MODEL,
    OLLAMA_NODES: `flaky=${flaky.url},healthy=${healthy.url}`,
  };
  const config = testConfig(overrides);
  storage = createStorage(config);
  await ensureStorage(storage);
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
  await child?.stop();
  await orchestrator?.stop();
  await env?.teardown();
  await flaky?.close();
  await healthy?.close();
  storage?.close();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  console.log(`ollama breaker: ${JSON.stringify(figures)}`);
});

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function post(prompt: string): Promise<string> {
  const res = await request(app).post('/prompts').set(auth()).send({ modelId: MODEL, prompt });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

/** The prompt's end (completed or failed), after long polls. */
async function outcome(id: string): Promise<{ status: string; nodeId?: string; attempts: number[] }> {
  let res = await request(app).get(`/prompts/${id}?waitMs=30000`).set(auth());
  for (let i = 0; i < 4 && res.body.status === 'running'; i++) {
    res = await request(app).get(`/prompts/${id}?waitMs=30000`).set(auth());
  }
  expect(res.status).toBe(200);
  const events = (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
  const attempts = events
    .filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    .map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 0);
  return { status: res.body.status as string, nodeId: res.body.result?.nodeId as string | undefined, attempts };
}

describe('a node whose generations keep failing, next to a healthy node', () => {
  it('stops taking calls after 3 failures in a row, so calls go to the healthy node at their first attempt; a probe brings it back', async () => {
    child = await startChildWorker({
      entry: 'test/faults/helpers/llm-node-child.ts',
      env: {
        ...overrides,
        TEMPORAL_ADDRESS: env.address,
        AWS_ENDPOINT_URL: services.awsEndpoint,
        OLLAMA_URL: flaky.url,
        NODE_ID: 'flaky',
        LLM_BREAKER_FAILURES: String(FAILURES),
        LLM_BREAKER_OPEN_MS: '1000',
        LLM_BREAKER_MAX_OPEN_MS: '2000',
        LLM_WORKER_REFRESH_MS: '0',
        LOG_LEVEL: 'info',
      },
      logFile: path.join(logDir, 'llm-flaky.log'),
    });

    // Only the flaky node polls: its calls fail until its circuit opens (the first probe shows it).
    const first = [];
    for (let i = 0; i < FAILURES; i++) first.push(await post(`Hello ${i}`));
    await until('the first probe of the flaky node', () => seen.some((s) => s.what === 'probe'));
    const callsAtTrip = seen.filter((s) => s.what === 'call').length;
    expect(callsAtTrip).toBeGreaterThanOrEqual(FAILURES);

    const healthyWorkers = runWorkers(
      await createLlmWorkers({
        connection: env.nativeConnection,
        config: testConfig({ ...overrides, OLLAMA_URL: healthy.url, NODE_ID: 'healthy' }),
        waitForNodeMs: 10_000,
      }),
    );
    try {
      // The calls that tripped it are retried on the healthy node.
      const tripped = await Promise.all(first.map(outcome));
      for (const o of tripped) expect(o).toMatchObject({ status: 'completed', nodeId: 'healthy' });

      // While the flaky node is broken, every new call goes to the healthy node at its first attempt.
      const later = [];
      for (let i = 0; i < 6; i++) later.push(await post(`Later ${i}`));
      const after = await Promise.all(later.map(outcome));
      for (const o of after) expect(o).toEqual({ status: 'completed', nodeId: 'healthy', attempts: [1] });
      expect(seen.filter((s) => s.what === 'call')).toHaveLength(callsAtTrip);
      const probesWhileBroken = seen.filter((s) => s.what === 'probe').length;
      expect(probesWhileBroken).toBeGreaterThanOrEqual(1);
      figures.tripped = { callsOnFlaky: callsAtTrip, attempts: tripped.map((o) => o.attempts) };
      figures.afterTrip = { prompts: after.length, onHealthy: after.length, attempts: after.map((o) => o.attempts) };
      figures.probesWhileBroken = probesWhileBroken;

      // Healed: a probe succeeds, then (and only then) the node takes calls again.
      broken = false;
      await until('a successful probe of the healed node', () => seen.some((s) => s.what === 'probe' && s.ok));
    } finally {
      await healthyWorkers.stop();
    }
    const back = await outcome(await post('Back again'));
    expect(back).toEqual({ status: 'completed', nodeId: 'flaky', attempts: [1] });
    // Between the first probe (the circuit opened) and the first good probe, no call reached the node.
    const firstProbe = seen.findIndex((s) => s.what === 'probe');
    const firstGoodProbe = seen.findIndex((s) => s.what === 'probe' && s.ok);
    expect(seen.slice(firstProbe, firstGoodProbe).filter((s) => s.what === 'call')).toEqual([]);
    expect(seen.filter((s) => s.what === 'call' && s.ok)).toHaveLength(1);
    figures.healed = { probes: seen.filter((s) => s.what === 'probe').length, nodeId: back.nodeId };
  });
});
