/**
 * Attacks on the model slots and the bill by a job's own script (issue 14, weaknesses 4 and 5): unbounded
 * generation (`num_predict: -1`), one job grabbing every slot, history flooding, and calls that fail or are
 * left running when the container exits to get tokens for free. Real Temporal, emulator, Docker executor and
 * AI gateway; scripted Ollama servers (exact token counts: one streamed chunk is one token).
 * Each test asserts the harm did not happen: Ollama never saw the call, the slots a job held stayed bounded,
 * the history stayed under its budget and the usage was written, the produced tokens were billed.
 */
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createJobsActivities } from '../../activities/jobs';
import { aggregateUsage, createJobRecord, getJobRecord, getJobResult } from '../../lib/jobs/store';
import { containersOfJob, removeOrphans } from '../../lib/executor/container';
import type { JobInput, JobLimits } from '../../contracts/jobs';
import type { Config } from '../../common/config';
import { createExecutorWorker } from '../../workers/executor';
import { createLlmWorkers } from '../../workers/llm';
import { jobWorkflow } from '../../workflows/job-workflow';
import { DEFAULT_JOB_CALLS_IN_FLIGHT, JOB_HISTORY_BUDGET_BYTES } from '../../workflows/job-call-bounds';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { startStreamingOllama, type StreamingOllama } from '../helpers/streaming-ollama';
import { buildZip } from '../fixtures/jobs/zips';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(180_000);

const FAST = 'fast:1b';
const SLOW = 'slow:1b';
/** The slow node's call timeout: a call still streaming then fails InferenceTimeout. */
// Long enough that a cancel (container exit + executor cleanup + one heartbeat round, ~12 s on a loaded machine)
// always reaches the activity before it.
const SLOW_CALL_TIMEOUT_MS = 30_000;

const LIMITS: JobLimits = {
  timeoutMs: 120_000,
  memoryMb: 256,
  cpus: 1,
  pidsLimit: 64,
  outputLimitBytes: 256 * 1024,
  maxLlmCalls: 1000,
  maxTokens: 10_000_000,
  maxNumPredict: 2048,
};

/** Distinct words forever (a repeated piece would be cut as a loop by the activity's repetition guard). */
function* words(prefix: string): Generator<string> {
  for (let i = 0; ; i++) yield `${prefix}${i} `;
}

/** The run's history, fetched in small pages (a flooded history would exceed one gRPC message). */
async function historyOf(env: TestWorkflowEnvironment, workflowId: string) {
  const events: temporal.api.history.v1.IHistoryEvent[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await env.client.workflowService.getWorkflowExecutionHistory({
      namespace: env.client.options.namespace,
      execution: { workflowId },
      maximumPageSize: 50,
      nextPageToken,
    });
    events.push(...(page.history?.events ?? []));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  const history = { events };
  const bytes = temporal.api.history.v1.History.encode(temporal.api.history.v1.History.fromObject(history)).finish()
    .length;
  return {
    bytes,
    updatesAccepted: events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length,
    llmScheduled: events.filter((e) =>
      /^llm(Chat|Generate)$/.test(e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''),
    ).length,
    cancelRequested: events.filter((e) => e.activityTaskCancelRequestedEventAttributes).length,
    cancelled: events.filter((e) => e.activityTaskCanceledEventAttributes).length,
  };
}

describe('attacks on model slots and billing (jobWorkflow)', () => {
  let env: TestWorkflowEnvironment;
  let storage: Storage;
  let config: Config;
  let fast: FakeOllama;
  let slow: StreamingOllama;
  let workers: RunningWorkers | undefined;
  const taskQueue = uid('orchestrator');
  const executorId = uid('exec');
  const docker = new Docker();
  const tenantId = uid('tenant');
  /** Streams open at the slow node now, and the most ever open at once. */
  let open = 0;
  let maxOpen = 0;

  beforeAll(async () => {
    env = await createTemporalEnv();
    config = testConfig({
      S3_BUCKET: uid('bkt').toLowerCase(),
      DYNAMO_TABLE_PREFIX: `${uid('p')}-`,
      GATEWAY_SOCKET_DIR: path.join(os.tmpdir(), uid('gw')),
      PRICE_TABLE: '*=1/1',
    });
    storage = createStorage(config);
    await ensureStorage(storage);
    fast = await startFakeOllama({ models: [FAST], script: () => 'ok' });
    slow = await startStreamingOllama({ models: [SLOW], reply: () => ({ pieces: words('w'), delayMs: 50 }) });
    const fastLlm = await createLlmWorkers({
      connection: env.nativeConnection,
      config: { ...config, OLLAMA_URL: fast.url, NODE_ID: 'fast-node', OLLAMA_NUM_PARALLEL: 16 },
      waitForNodeMs: 10_000,
    });
    const slowLlm = await createLlmWorkers({
      connection: env.nativeConnection,
      config: {
        ...config,
        OLLAMA_URL: slow.url,
        NODE_ID: 'slow-node',
        // More slots than a job may use: what bounds a job's share must be the job's own cap.
        OLLAMA_NUM_PARALLEL: 16,
        LLM_CALL_TIMEOUT_MS: SLOW_CALL_TIMEOUT_MS,
      },
      waitForNodeMs: 10_000,
    });
    const orchestrator = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
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
    workers = runWorkers([...fastLlm, ...slowLlm, orchestrator, executor]);
  });

  afterAll(async () => {
    await workers?.stop();
    await removeOrphans(docker, executorId);
    await fast?.close();
    await slow?.close();
    storage?.close();
    await env?.teardown();
  });

  beforeEach(() => {
    slow.setReply((req) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      void req.ended.then(() => open--);
      return { pieces: words('w'), delayMs: 50 };
    });
  });

  async function runJob(source: string, model: string, limits: Partial<JobLimits> = {}) {
    const jobId = `job-${uid('atk')}`;
    const packageKey = `functions/${tenantId}/${jobId}.zip`;
    await storage.putObject(packageKey, await buildZip([{ name: 'main.py', data: source }]));
    const inputKey = `jobs/${jobId}/input.json`;
    await storage.putObject(inputKey, 'null');
    const input: JobInput = {
      jobId,
      tenantId,
      functionId: 'fn-attack',
      packageKey,
      entry: 'main.py',
      modelId: model,
      allowedModels: [model],
      inputKey,
      limits: { ...LIMITS, ...limits },
      createdAt: new Date().toISOString(),
    };
    await createJobRecord(storage, {
      jobId,
      tenantId,
      functionId: 'fn-attack',
      modelId: model,
      workflowId: jobId,
      status: 'running',
      createdAt: input.createdAt,
    });
    const handle = await env.client.workflow.start(jobWorkflow, { taskQueue, workflowId: jobId, args: [input] });
    const result = await handle.result();
    const record = await getJobRecord(storage, tenantId, jobId);
    const stored = record ? await getJobResult(storage, record) : undefined;
    expect(await containersOfJob(docker, jobId)).toEqual([]);
    return { jobId, handle, result, stored };
  }

  it('unbounded generation (num_predict -1, 0, above the max) is refused before any model or history sees it', async () => {
    const before = fast.requests.length;
    const { jobId, handle, result } = await runJob(
      `import ai_client
for n in (-1, -2, 0, 10**6):
    try:
        ai_client.generate("write forever", num_predict=n)
        print("accepted", n)
    except ai_client.AiClientError as e:
        print("refused", n, e.status)
print("bounded:", ai_client.generate("hello", num_predict=8))
`,
      FAST,
    );
    expect(result.status).toBe('succeeded');
    expect(result.stdout).not.toContain('accepted');
    expect(result.stdout.match(/^refused .* 400$/gm)).toHaveLength(4);
    // Only the bounded call reached Ollama, with its own bound.
    const seen = fast.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.options?.num_predict).toBe(8);
    // The refusals never entered the history (validator): one accepted update, one llm activity.
    const h = await historyOf(env, jobId);
    expect(h.updatesAccepted).toBe(1);
    expect(h.llmScheduled).toBe(1);
    expect(result.calls).toBe(1);
    await recordHistory('job-bounded-calls', handle);
  });

  it('one job firing 12 concurrent calls holds at most its cap of model slots; every call is answered and billed', async () => {
    maxOpen = 0;
    const before = slow.requests.length;
    slow.setReply((req) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      void req.ended.then(() => open--);
      return { pieces: ['a ', 'b ', 'c ', 'd ', 'e ', 'f ', 'g ', 'h '], delayMs: 100 };
    });
    const { result, stored } = await runJob(
      `import threading, ai_client
out = []
def call(i):
    out.append(ai_client.generate("call %d" % i))
ts = [threading.Thread(target=call, args=(i,)) for i in range(12)]
[t.start() for t in ts]
[t.join() for t in ts]
print("answered", len(out))
`,
      SLOW,
    );
    expect(result.status).toBe('succeeded');
    expect(result.stdout).toContain('answered 12');
    expect(slow.requests.length - before).toBe(12);
    expect(maxOpen).toBeGreaterThan(0);
    expect(maxOpen).toBeLessThanOrEqual(DEFAULT_JOB_CALLS_IN_FLIGHT);
    expect(result.calls).toBe(12);
    expect(result.llm_token_count.completion).toBe(12 * 8);
    expect(stored?.llm_token_count.completion).toBe(12 * 8);
  });

  it('concurrent calls cannot overrun the token cap together: in-flight calls hold reservations', async () => {
    const before = slow.requests.length;
    slow.setReply(() => ({ pieces: Array.from({ length: 60 }, (_, i) => `t${i} `), delayMs: 100 }));
    // Cap 500: two calls reserve 1 + 200 each, the third gets what is left (97), the fourth does not fit.
    const { result } = await runJob(
      `import threading, ai_client
out = []
def call(i):
    try:
        ai_client.generate("hi", num_predict=200)
        out.append("ok")
    except ai_client.LimitExceededError:
        out.append("refused")
ts = [threading.Thread(target=call, args=(i,)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(sorted(out))
`,
      SLOW,
      { maxTokens: 500 },
    );
    expect(result.stdout).toContain("['ok', 'ok', 'ok', 'refused']");
    const sent = slow.requests.slice(before);
    expect(sent.map((r) => Number(r.options?.num_predict)).sort((a, b) => a - b)).toEqual([97, 200, 200]);
    expect(result.llm_token_count.total).toBeLessThanOrEqual(500);
  });

  it('history flooding with large requests stops at the job’s budget; the job still ends and its usage is written', async () => {
    const before = fast.requests.length;
    const { jobId, result, stored } = await runJob(
      `import ai_client
big = "x " * 30000
ok = refused = 0
try:
    ai_client.generate("y" * 100000)
except ai_client.AiClientError as e:
    print("oversized", e.status)
for i in range(150):
    try:
        ai_client.generate(big + str(i), num_predict=4)
        ok += 1
    except ai_client.LimitExceededError:
        refused += 1
print("ok", ok, "refused", refused)
`,
      FAST,
    );
    expect(result.status).toBe('succeeded');
    expect(result.stdout).toContain('oversized 400');
    const m = /ok (\d+) refused (\d+)/.exec(result.stdout);
    const ok = Number(m?.[1]);
    const refused = Number(m?.[2]);
    expect(ok + refused).toBe(150);
    expect(refused).toBeGreaterThan(0);
    expect(fast.requests.length - before).toBe(ok);
    const h = await historyOf(env, jobId);
    // Every accepted call's request and reply are in history; refused ones are not, so it stays under budget.
    expect(h.updatesAccepted).toBe(ok);
    expect(h.bytes).toBeLessThan(JOB_HISTORY_BUDGET_BYTES + 1024 * 1024);
    // The run was not terminated: usage was written.
    expect(stored?.calls).toBe(ok);
    expect(stored?.llm_token_count.total).toBeGreaterThan(0);
  });

  it('a call that times out is not retried and is billed for the tokens Ollama produced', async () => {
    const before = slow.requests.length;
    const { jobId, result, stored } = await runJob(
      `import ai_client
try:
    ai_client.generate("never ends", num_predict=2000)
except ai_client.AiClientError as e:
    print("failed", e.status, e.code)
`,
      SLOW,
    );
    expect(result.stdout).toContain('failed 504 inference_timeout');
    const sent = slow.requests.slice(before);
    // One attempt only: a timeout is final for a job's call.
    expect(sent).toHaveLength(1);
    await sent[0]!.ended;
    expect(sent[0]!.aborted).toBe(true);
    expect(result.failedCalls).toBe(1);
    expect(result.calls).toBe(0);
    // Billed: the completion tokens received before the timeout (≤ what the node sent) and the prompt's estimate.
    const completion = result.llm_token_count.completion;
    expect(completion).toBeGreaterThan(0);
    expect(completion).toBeLessThanOrEqual(sent[0]!.sent);
    expect(result.llm_token_count.prompt).toBeGreaterThan(0);
    expect(result.costUsd).toBeGreaterThan(0);
    expect(stored?.llm_token_count.total).toBe(result.llm_token_count.total);
    const rows = await aggregateUsage(storage, tenantId, {
      functionId: 'fn-attack',
      from: new Date(Date.now() - 3_600_000).toISOString(),
      to: new Date().toISOString(),
    });
    expect(rows.reduce((n, r) => n + r.completion, 0)).toBeGreaterThanOrEqual(completion);
    expect((await historyOf(env, jobId)).llmScheduled).toBe(1);
  });

  it('a call left running when the container exits is cancelled (the model stops) and billed for what it produced', async () => {
    const before = slow.requests.length;
    const { jobId, handle, result, stored } = await runJob(
      `import os, threading, time, ai_client
threading.Thread(target=lambda: ai_client.generate("long answer", num_predict=2000), daemon=True).start()
time.sleep(2)
os._exit(0)
`,
      SLOW,
    );
    expect(result.status).toBe('succeeded');
    const sent = slow.requests.slice(before);
    expect(sent).toHaveLength(1);
    await sent[0]!.ended;
    // The stream was closed by the cancel, not run to the end of its 2000 tokens nor to the call timeout.
    expect(sent[0]!.aborted).toBe(true);
    const h = await historyOf(env, jobId);
    expect(h.cancelRequested).toBe(1);
    // Ended by the cancel (the activity reported it), not by the call's timeout.
    expect(h.cancelled).toBe(1);
    expect(result.failedCalls).toBe(1);
    const completion = result.llm_token_count.completion;
    expect(completion).toBeGreaterThan(0);
    expect(completion).toBeLessThanOrEqual(sent[0]!.sent);
    expect(stored?.llm_token_count.completion).toBe(completion);
    await recordHistory('job-call-cancelled', handle);
  });
});
