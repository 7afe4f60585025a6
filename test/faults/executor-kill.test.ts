/**
 * `kill -9` the executor in the middle of a job, end to end. Its own stack: a Temporal dev server for this file, the
 * executor worker a child process (its own EXECUTOR_ID and GATEWAY_SOCKET_DIR), the orchestrator and a scripted
 * node's llm worker in this process, the production API app, real Docker and the shared moto emulator.
 * The job's script calls the LLM through the AI gateway (the container's Unix socket), writes an output, then
 * sleeps; the executor is killed while the container sleeps, so both the container and the gateway's socket dir
 * outlive it. Asserted: the new executor removes the orphaned container and the dead gateway's socket dir at start;
 * Temporal retries the job's container run there (attempt 2, after the heartbeat timeout); the job succeeds with
 * the second run's output; every LLM call that reached the node is metered once (the job record and its usage row
 * say 2 calls, the node saw 2); afterwards no container of the job, no gateway socket dir and no work dir is left.
 */
import path from 'node:path';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import Docker from 'dockerode';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { containersOfJob, removeOrphans } from '../../lib/executor/container';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp, uploadFunction } from '../helpers/api';
import { startChildWorker, type ChildWorker } from './helpers/child-worker';

jest.setTimeout(300_000);

const MODEL = 'fake-exec:1b';
const KEY = 'key-faults-exec';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EventType = temporal.api.enums.v1.EventType;

/** One LLM call through the gateway, an output, then a pause long enough to kill the executor in. */
const SCRIPT = `import time, ai_client
text = ai_client.generate("say hello")
open("/out/reply.txt", "w").write(text)
print(text, flush=True)
time.sleep(8)
print("done", flush=True)
`;

let env: TestWorkflowEnvironment;
let fake: FakeOllama;
let storage: Storage;
let workers: RunningWorkers | undefined;
let app: Express;
let logDir: string;
let overrides: Record<string, string>;
const docker = new Docker();
const executorId = uid('exec-kill');
const socketDir = path.join(tmpdir(), uid('ainode-gw-kill'));
/** The executor's default work root (workers/executor.ts). */
const workRoot = path.join(tmpdir(), 'ainode-jobs', executorId);
const executors: ChildWorker[] = [];
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  logDir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-exec-'));
  env = await createTemporalEnv();
  fake = await startFakeOllama({ models: [MODEL], script: (r) => `${r.messages.at(-1)!.content} back` });
  overrides = {
    API_KEYS: `${KEY}:tenant-exec`,
    S3_BUCKET: uid('faults-exec').toLowerCase(),
    DYNAMO_TABLE_PREFIX: `${uid('fx')}-`,
    DEFAULT_MODEL: MODEL,
    OLLAMA_NODES: `fake=${fake.url}`,
    OLLAMA_URL: fake.url,
    NODE_ID: 'fake',
    GATEWAY_SOCKET_DIR: socketDir,
    EXECUTOR_ID: executorId,
    PRICE_TABLE: `${MODEL}=1/1`,
  };
  const config = testConfig(overrides);
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = runWorkers([
    await createOrchestratorWorker({
      connection: env.nativeConnection,
      config,
      storage,
      overrides: { workflowsPath: require.resolve('../../workflows/job-workflow') },
    }),
    ...(await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 10_000 })),
  ]);
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  for (const e of executors) await e.kill9();
  await workers?.stop();
  await removeOrphans(docker, executorId).catch(() => undefined);
  await env?.teardown();
  await fake?.close();
  storage?.close();
  rmSync(socketDir, { recursive: true, force: true });
  rmSync(workRoot, { recursive: true, force: true });
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  console.log(`executor kill: ${JSON.stringify(figures)}`);
});

/** Starts an executor process; resolves with the containers it removed at start. */
async function startExecutor(n: number): Promise<{ child: ChildWorker; removed: string[] }> {
  const logFile = path.join(logDir, `executor-${n}.log`);
  const child = await startChildWorker({
    entry: 'test/faults/helpers/executor-child.ts',
    env: {
      ...overrides,
      TEMPORAL_ADDRESS: env.address,
      AWS_ENDPOINT_URL: services.awsEndpoint,
      JOB_RUNTIME_IMAGE: services.runtimeImage,
      LOG_LEVEL: 'warn',
    },
    logFile,
  });
  executors.push(child);
  // The ready line is the last one written so far: the log file has it by now.
  let removed: string[] | undefined;
  for (let i = 0; i < 50 && removed === undefined; i++) {
    const m = /worker-ready removed=(\[.*\])/.exec(readFileSync(logFile, 'utf8'));
    if (m) removed = JSON.parse(m[1]!) as string[];
    else await sleep(100);
  }
  return { child, removed: removed ?? [] };
}

const gatewayDirsOf = (jobId: string) =>
  existsSync(socketDir) ? readdirSync(socketDir).filter((d) => d.startsWith(`${jobId}.`)) : [];

describe('kill -9 the executor in the middle of a job (its container running, its gateway serving)', () => {
  it('the job completes on retry; no container, gateway socket dir or work dir of the job is left', async () => {
    const functionId = await uploadFunction(app, KEY, 'sleepy', SCRIPT);
    const first = await startExecutor(1);

    const run = await request(app).post('/run').set(auth()).send({ functionId, modelId: MODEL });
    expect(run.status).toBe(202);
    const jobId = run.body.jobId as string;

    // Killed once the script's LLM call has been answered (and metered) and the container sleeps.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const s = await request(app).get(`/jobs/${jobId}`).set(auth());
      if ((s.body.usage?.calls ?? 0) >= 1) break;
      if (Date.now() > deadline) throw new Error(`the job's first LLM call never completed: ${JSON.stringify(s.body)}`);
      await sleep(100);
    }
    const orphan = await containersOfJob(docker, jobId);
    expect(orphan).toHaveLength(1);
    expect(gatewayDirsOf(jobId)).toEqual([`${jobId}.1`]);
    await first.child.kill9();
    // What the killed executor leaves behind: its container keeps running, its gateway dir stays.
    expect(await containersOfJob(docker, jobId)).toEqual(orphan);
    expect(gatewayDirsOf(jobId)).toEqual([`${jobId}.1`]);

    const second = await startExecutor(2);
    expect(second.removed).toEqual(orphan);
    // Cleaned at start: the orphan and the dead gateway's dir are gone (attempt 2, if it started already, is new).
    expect((await containersOfJob(docker, jobId)).filter((id) => orphan.includes(id))).toEqual([]);
    expect(gatewayDirsOf(jobId)).not.toContain(`${jobId}.1`);

    let done = await request(app).get(`/jobs/${jobId}?waitMs=60000`).set(auth());
    for (let i = 0; i < 3 && !done.body.result; i++)
      done = await request(app).get(`/jobs/${jobId}?waitMs=60000`).set(auth());
    expect(done.status).toBe(200);
    expect(done.body.status).toBe('succeeded');
    expect(done.body.result.stdout).toBe('say hello back\ndone\n');
    // Each run's call reached the node once and is metered once: 2 calls, 2 × (2 prompt + 3 completion) tokens.
    expect(fake.requests).toHaveLength(2);
    expect(done.body.result.calls).toBe(2);
    expect(done.body.result.llm_token_count).toEqual({ prompt: 4, completion: 6, total: 10 });

    const out = await request(app)
      .get(`/jobs/${jobId}/outputs/reply.txt`)
      .set(auth())
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      });
    expect(out.status).toBe(200);
    expect((out.body as Buffer).toString()).toBe('say hello back');
    // One job record, one usage row for it.
    const list = await request(app).get('/jobs?limit=50').set(auth());
    expect(list.body.jobs.filter((j: { jobId: string }) => j.jobId === jobId)).toHaveLength(1);
    const usage = await request(app).get(`/usage?functionId=${functionId}`).set(auth());
    expect(usage.body.rows).toEqual([
      expect.objectContaining({ functionId, model: MODEL, jobs: 1, calls: 2, total: 10 }),
    ]);

    // The container run was retried once, on the new executor.
    const events = (await env.client.workflow.getHandle(jobId).fetchHistory()).events ?? [];
    const runs = events.filter(
      (e) =>
        e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
        e.activityTaskScheduledEventAttributes?.activityType?.name === 'runJobContainer',
    );
    expect(runs).toHaveLength(1);
    const scheduledId = runs[0]!.eventId;
    const started = events.find(
      (e) =>
        e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
        String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(scheduledId),
    );
    expect(started?.activityTaskStartedEventAttributes?.attempt).toBe(2);

    // Nothing of the job is left on the host.
    expect(await containersOfJob(docker, jobId)).toEqual([]);
    expect(gatewayDirsOf(jobId)).toEqual([]);
    expect(existsSync(workRoot) ? readdirSync(workRoot).filter((d) => d.startsWith(`${jobId}.`)) : []).toEqual([]);
    figures.job = {
      status: done.body.status,
      attempts: started?.activityTaskStartedEventAttributes?.attempt,
      calls: done.body.result.calls,
      nodeRequests: fake.requests.length,
      orphansRemoved: second.removed.length,
    };
  });
});
