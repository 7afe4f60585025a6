/**
 * The S3/DynamoDB emulator down for 10 s while jobs run. Its own stack: a Temporal dev server and its OWN moto
 * emulator for this file (the shared one of scripts/test.ts is never touched), behind a TCP proxy; the orchestrator,
 * the executor and a scripted node's llm worker in this process; the production API app; real Docker.
 * Why a proxy rather than a restart of moto: moto keeps its data in memory, so a restarted emulator has lost every
 * bucket and table, which real S3/DynamoDB never do after an outage. Taking the proxy down is what an outage looks
 * like from the platform (connections refused, open ones cut) with the data kept.
 * Two jobs call the LLM through the AI gateway, sleep, then write an output: storage goes down while they sleep, so
 * collecting their outputs hits the outage. A third ends during the outage with nothing to store, so recording its
 * result (the orchestrator's `finishJob`) hits it.
 * Asserted: while storage is down the API answers 503 storage_unavailable (never 500) and /readyz names storage;
 * once it is back every job succeeds, with its output in S3; `finishJob` of the third was retried by Temporal until
 * storage was back; nothing is lost or duplicated: each container ran once (the executor waits for S3 instead of
 * failing the run, which would run the script again), each LLM call reached the node once and is metered once, one
 * job record per job and one usage row holding them all.
 * Then the emulator process itself is frozen (SIGSTOP) for 10 s while two more jobs sleep: connections are accepted
 * and nothing answers. /readyz names storage (its check times out) and /healthz answers; once it continues, both jobs
 * succeed with each container run once.
 */
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import Docker from 'dockerode';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { removeOrphans } from '../../lib/executor/container';
import { createExecutorWorker } from '../../workers/executor';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { freePort, startMoto, type Service } from '../../scripts/lib/services';
import { readToolchain } from '../../scripts/lib/toolchain';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp, uploadFunction } from '../helpers/api';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';

jest.setTimeout(300_000);

const MODEL = 'fake-storage:1b';
const KEY = 'key-faults-storage';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EventType = temporal.api.enums.v1.EventType;
const JOBS = 3;
const OUTAGE_MS = 10_000;

/**
 * A writer job calls the LLM, sleeps, then writes an output (collected while storage is down). The quiet job's second
 * call is answered only once storage is down; it then ends with nothing to store, so its result is recorded
 * (`finishJob`) during the outage.
 */
const SCRIPT = `import json, time, ai_client
data = json.load(open("input.json"))
text = ai_client.generate("say hi")
if data["quiet"]:
    text = ai_client.generate("say ok")
else:
    time.sleep(3)
    open("/out/reply.txt", "w").write(text)
print(text, flush=True)
`;
let releaseQuiet!: () => void;
const quietReleased = new Promise<void>((r) => (releaseQuiet = r));

let env: TestWorkflowEnvironment;
let moto: Service;
let proxy: TcpProxy;
let fake: FakeOllama;
let storage: Storage;
let workers: RunningWorkers | undefined;
let app: Express;
let logDir: string;
const docker = new Docker();
const executorId = uid('exec-storage');
const socketDir = path.join(tmpdir(), uid('ainode-gw-storage'));
const workRoot = path.join(tmpdir(), uid('ainode-jobs-storage'));
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  logDir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-storage-'));
  [env, moto] = await Promise.all([
    createTemporalEnv(),
    (async () => startMoto(readToolchain(), { port: await freePort(), logFile: path.join(logDir, 'moto.log') }))(),
  ]);
  proxy = await startTcpProxy({ host: '127.0.0.1', port: moto.port });
  fake = await startFakeOllama({
    models: [MODEL],
    script: (r) => {
      const prompt = r.messages.at(-1)!.content;
      return prompt === 'say ok' ? quietReleased.then(() => 'say ok back') : `${prompt} back`;
    },
  });
  const config = testConfig({
    API_KEYS: `${KEY}:tenant-storage`,
    S3_BUCKET: uid('faults-storage').toLowerCase(),
    AWS_ENDPOINT_URL: proxy.url,
    DEFAULT_MODEL: MODEL,
    OLLAMA_NODES: `fake=${fake.url}`,
    OLLAMA_URL: fake.url,
    NODE_ID: 'fake',
    GATEWAY_SOCKET_DIR: socketDir,
    PRICE_TABLE: `${MODEL}=1/1`,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  const { worker: executor } = await createExecutorWorker({
    connection: env.nativeConnection,
    client: env.client,
    config: { ...config, JOB_RUNTIME_IMAGE: services.runtimeImage },
    storage,
    docker,
    executorId,
    workRoot,
  });
  workers = runWorkers([
    await createOrchestratorWorker({
      connection: env.nativeConnection,
      config,
      storage,
      overrides: { workflowsPath: require.resolve('../../workflows/job-workflow') },
    }),
    executor,
    ...(await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 10_000 })),
  ]);
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  releaseQuiet?.();
  moto?.proc.kill('SIGCONT');
  await proxy?.up();
  await workers?.stop();
  await removeOrphans(docker, executorId).catch(() => undefined);
  await env?.teardown();
  await fake?.close();
  storage?.close();
  await proxy?.close();
  await moto?.stop();
  rmSync(socketDir, { recursive: true, force: true });
  rmSync(workRoot, { recursive: true, force: true });
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  console.log(`storage outage: ${JSON.stringify(figures)}`);
});

describe('the S3/DynamoDB emulator down for 10 s while jobs run', () => {
  it('the API answers 503 meanwhile; afterwards every job succeeds, nothing lost or duplicated', async () => {
    const functionId = await uploadFunction(app, KEY, 'outage', SCRIPT);
    const jobIds: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const run = await request(app)
        .post('/run')
        .set(auth())
        .send({ functionId, modelId: MODEL, inputData: { quiet: i === JOBS - 1 } });
      expect(run.status).toBe(202);
      jobIds.push(run.body.jobId as string);
    }
    const writers = jobIds.slice(0, -1);
    // Down once every writer has made its LLM call and sleeps (its output is not collected yet) and the quiet job
    // waits for its second call.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const calls = await Promise.all(
        writers.map(async (id) => (await request(app).get(`/jobs/${id}`).set(auth())).body.usage?.calls ?? 0),
      );
      const quietWaits = fake.requests.some((r) => r.messages.at(-1)?.content === 'say ok');
      if (quietWaits && calls.every((c: number) => c >= 1)) break;
      if (Date.now() > deadline) throw new Error(`not every job made its LLM call: ${JSON.stringify(calls)}`);
      await sleep(100);
    }
    await proxy.down();
    const downAt = Date.now();
    releaseQuiet();
    const statuses: number[] = [];
    try {
      const jobs = await request(app).get('/jobs').set(auth());
      statuses.push(jobs.status);
      expect(jobs.status).toBe(503);
      expect(jobs.body.error.code).toBe('storage_unavailable');
      const ready = await request(app).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.storage.ok).toBe(false);
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
    } finally {
      await proxy.up();
    }
    figures.outageMs = Date.now() - downAt;

    const results = [];
    for (const id of jobIds) {
      let res = await request(app).get(`/jobs/${id}?waitMs=60000`).set(auth());
      for (let i = 0; i < 3 && !res.body.result; i++)
        res = await request(app).get(`/jobs/${id}?waitMs=60000`).set(auth());
      statuses.push(res.status);
      results.push(res.body);
    }
    figures.jobs = results.map((r) => ({ status: r.status, calls: r.result?.calls, error: r.result?.error }));
    for (const r of results) expect(r.status).toBe('succeeded');
    for (const r of results.slice(0, -1)) {
      expect(r.result.stdout).toBe('say hi back\n');
      expect(r.result.outputs).toEqual([expect.objectContaining({ name: 'reply.txt' })]);
      expect(r.result.calls).toBe(1);
    }
    expect(results.at(-1).result).toMatchObject({ stdout: 'say ok back\n', outputs: [], calls: 2 });
    for (const id of writers) {
      expect(new TextDecoder().decode(await storage.getObjectBytes(`jobs/${id}/out/reply.txt`))).toBe('say hi back');
    }
    // Each script ran once (the executor waited for S3 instead of running the job again): each LLM call reached the
    // node once and is metered once.
    const calls = results.reduce((n, r) => n + (r.result.calls as number), 0);
    expect(calls).toBe(JOBS + 1);
    expect(fake.requests).toHaveLength(calls);
    // One record per job, one usage row for the function holding every job and call.
    const list = await request(app).get('/jobs?limit=50').set(auth());
    statuses.push(list.status);
    expect(list.body.jobs.map((j: { jobId: string }) => j.jobId).sort()).toEqual([...jobIds].sort());
    const usage = await request(app).get(`/usage?functionId=${functionId}`).set(auth());
    expect(usage.body.rows).toEqual([
      expect.objectContaining({ functionId, model: MODEL, jobs: JOBS, calls, total: calls * 5 }),
    ]);
    expect(statuses).not.toContain(500);

    // How the outage was ridden out: the attempts of each job's activities. Every container ran once; the quiet
    // job's result was recorded during the outage, so Temporal retried `finishJob` until storage was back.
    const attempts: Record<string, number[]>[] = [];
    for (const id of jobIds) {
      const events = (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
      const names = new Map<string, string>();
      const of: Record<string, number[]> = {};
      for (const e of events) {
        if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
          names.set(String(e.eventId), e.activityTaskScheduledEventAttributes?.activityType?.name ?? '?');
        if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
          const a = e.activityTaskStartedEventAttributes!;
          (of[names.get(String(a.scheduledEventId)) ?? '?'] ??= []).push(a.attempt ?? 0);
        }
      }
      attempts.push(of);
    }
    figures.attempts = attempts;
    figures.nodeCalls = fake.requests.length;
    for (const of of attempts) expect(of.runJobContainer).toEqual([1]);
    expect(attempts.at(-1)!.finishJob).toHaveLength(1);
    expect(attempts.at(-1)!.finishJob![0]).toBeGreaterThan(1);
  });
});

describe('the emulator process frozen (SIGSTOP) for 10 s while jobs run: it accepts connections and answers nothing', () => {
  it('/readyz names storage meanwhile; once it continues every job succeeds, each container run once', async () => {
    const functionId = await uploadFunction(app, KEY, 'frozen', SCRIPT);
    const before = fake.requests.length;
    const jobIds: string[] = [];
    for (let i = 0; i < 2; i++) {
      const run = await request(app)
        .post('/run')
        .set(auth())
        .send({ functionId, modelId: MODEL, inputData: { quiet: false } });
      expect(run.status).toBe(202);
      jobIds.push(run.body.jobId as string);
    }
    const deadline = Date.now() + 120_000;
    for (;;) {
      const calls = await Promise.all(
        jobIds.map(async (id) => (await request(app).get(`/jobs/${id}`).set(auth())).body.usage?.calls ?? 0),
      );
      if (calls.every((c: number) => c >= 1)) break;
      if (Date.now() > deadline) throw new Error(`not every job made its LLM call: ${JSON.stringify(calls)}`);
      await sleep(100);
    }
    moto.proc.kill('SIGSTOP');
    const frozenAt = Date.now();
    try {
      const ready = await request(app).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.storage.ok).toBe(false);
      expect((await request(app).get('/healthz')).status).toBe(200);
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - frozenAt)));
    } finally {
      moto.proc.kill('SIGCONT');
    }
    figures.frozenMs = Date.now() - frozenAt;

    const results = [];
    for (const id of jobIds) {
      let res = await request(app).get(`/jobs/${id}?waitMs=60000`).set(auth());
      for (let i = 0; i < 3 && !res.body.result; i++)
        res = await request(app).get(`/jobs/${id}?waitMs=60000`).set(auth());
      expect(res.status).toBe(200);
      results.push(res.body);
    }
    figures.frozenJobs = results.map((r) => ({ status: r.status, calls: r.result?.calls, error: r.result?.error }));
    for (const r of results) {
      expect(r.status).toBe('succeeded');
      expect(r.result).toMatchObject({ stdout: 'say hi back\n', calls: 1 });
      expect(r.result.outputs).toEqual([expect.objectContaining({ name: 'reply.txt' })]);
    }
    expect(fake.requests.length - before).toBe(2);
    const usage = await request(app).get(`/usage?functionId=${functionId}`).set(auth());
    expect(usage.body.rows).toEqual([expect.objectContaining({ functionId, jobs: 2, calls: 2, total: 10 })]);
    const runs: number[] = [];
    for (const id of jobIds) {
      const events = (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
      const scheduled = events.find(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
          e.activityTaskScheduledEventAttributes?.activityType?.name === 'runJobContainer',
      );
      const started = events.find(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
          String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(scheduled?.eventId),
      );
      runs.push(started?.activityTaskStartedEventAttributes?.attempt ?? 0);
    }
    expect(runs).toEqual([1, 1]);
  });
});
