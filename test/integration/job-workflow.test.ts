/**
 * jobWorkflow end to end on a real Temporal dev server: orchestrator (workflow + jobs activities), the
 * executor (real Docker, AI gateway) and llm workers — the real Ollama with the real small model for the
 * issue's example, a scripted fake Ollama where exact counts matter.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';

import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createJobsActivities } from '../../activities/jobs';
import { getJobRecord, createJobRecord, getJobResult } from '../../lib/jobs/store';
import { containersOfJob, removeOrphans } from '../../lib/executor/container';
import type { JobInput, JobLimits } from '../../contracts/jobs';

import type { Config } from '../../common/config';
import { createExecutorWorker } from '../../workers/executor';
import { createLlmWorkers } from '../../workers/llm';
import { jobStatusQuery } from '../../contracts/definitions';
import { jobWorkflow } from '../../workflows/job-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { buildZip } from '../fixtures/jobs/zips';
import { DEFAULT_NUM_PREDICT } from '../../common/llm-bounds';
import { SearchAttribute, SearchAttributeKey } from '../../common/search-attributes';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(300_000);

const FIXTURES = path.join(__dirname, '../fixtures/jobs');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
const FAKE_MODEL = 'fake:1b';

const LIMITS: JobLimits = {
  timeoutMs: 240_000,
  memoryMb: 256,
  cpus: 1,
  pidsLimit: 64,
  outputLimitBytes: 256 * 1024,
  maxLlmCalls: 100,
  maxTokens: 1_000_000,
};

/** Sum of Ollama's own counts as the llm activities returned them, read back from the workflow history. */
async function historyLlmUsage(env: TestWorkflowEnvironment, workflowId: string) {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  let prompt = 0;
  let completion = 0;
  let completed = 0;
  for (const e of history.events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
    const c = e.activityTaskCompletedEventAttributes;
    if (c && /^llm(Chat|Generate)$/.test(scheduled.get(String(c.scheduledEventId)) ?? '')) {
      const data = c.result?.payloads?.[0]?.data;
      const res = JSON.parse(Buffer.from(data!).toString()) as {
        usage: { promptTokens: number; completionTokens: number };
      };
      prompt += res.usage.promptTokens;
      completion += res.usage.completionTokens;
      completed++;
    }
  }
  const llmScheduled = [...scheduled.values()].filter((n) => /^llm(Chat|Generate)$/.test(n)).length;
  return { prompt, completion, total: prompt + completion, completed, scheduled: llmScheduled };
}

/** `llmCall` updates the workflow accepted (refused ones are rejected by its validator, before history). */
async function acceptedUpdates(env: TestWorkflowEnvironment, workflowId: string): Promise<number> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length;
}

describe('jobWorkflow (real Temporal, Docker, emulator, Ollama)', () => {
  let env: TestWorkflowEnvironment;
  let storage: Storage;
  let config: Config;
  let fake: FakeOllama;
  let workers: RunningWorkers | undefined;
  const taskQueue = uid('orchestrator');
  const executorId = uid('exec');
  const docker = new Docker();
  const tenantId = 'tenant-a';

  beforeAll(async () => {
    env = await createTemporalEnv();
    config = testConfig({
      S3_BUCKET: uid('bkt').toLowerCase(),
      DYNAMO_TABLE_PREFIX: `${uid('p')}-`,
      GATEWAY_SOCKET_DIR: path.join(os.tmpdir(), uid('gw')),
      PRICE_TABLE: `${FAKE_MODEL}=1/2,*=0.5/0.5`,
      // The real CPU model shares a small machine with other suites: give each call room, never a race.
      LLM_CALL_TIMEOUT_MS: '290000',
    });
    storage = createStorage(config);
    await ensureStorage(storage);
    fake = await startFakeOllama({ models: [FAKE_MODEL], script: (r) => `reply to ${r.messages.at(-1)!.content}` });
    const realLlm = await createLlmWorkers({
      connection: env.nativeConnection,
      config: { ...config, NODE_ID: 'node-1' },
      waitForNodeMs: 30_000,
    });
    const fakeLlm = await createLlmWorkers({
      connection: env.nativeConnection,
      config: { ...config, OLLAMA_URL: fake.url, NODE_ID: 'fake-node', OLLAMA_NUM_PARALLEL: 16 },
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
    workers = runWorkers([...realLlm, ...fakeLlm, orchestrator, executor]);
  });

  afterAll(async () => {
    await workers?.stop();
    await removeOrphans(docker, executorId);
    await fake?.close();
    storage?.close();
    await env?.teardown();
  });

  async function startJob(
    source: string,
    opts: { model: string; limits?: Partial<JobLimits>; inputData?: unknown; allowed?: string[] },
  ) {
    const jobId = `job-${uid('t')}`;
    const packageKey = `functions/${tenantId}/${jobId}.zip`;
    await storage.putObject(packageKey, await buildZip([{ name: 'main.py', data: source }]));
    const inputKey = `jobs/${jobId}/input.json`;
    await storage.putObject(inputKey, JSON.stringify(opts.inputData ?? null));
    const input: JobInput = {
      jobId,
      tenantId,
      functionId: 'fn-test',
      packageKey,
      entry: 'main.py',
      modelId: opts.model,
      allowedModels: opts.allowed ?? [opts.model],
      inputKey,
      limits: { ...LIMITS, ...opts.limits },
      createdAt: new Date().toISOString(),
    };
    await createJobRecord(storage, {
      jobId,
      tenantId,
      functionId: 'fn-test',
      modelId: opts.model,
      workflowId: jobId,
      status: 'running',
      createdAt: input.createdAt,
    });
    const handle = await env.client.workflow.start(jobWorkflow, {
      taskQueue,
      workflowId: jobId,
      args: [input],
      typedSearchAttributes: [
        { key: SearchAttributeKey.Kind, value: 'job' },
        { key: SearchAttributeKey.ModelId, value: opts.model },
        { key: SearchAttributeKey.FunctionId, value: 'fn-test' },
      ],
      staticSummary: `job: fn-test on ${opts.model}`,
    });
    return { jobId, handle };
  }

  it('runs the issue’s example unchanged; tokens equal the sum of Ollama’s per-call counts', async () => {
    // The script is unchanged; the job's per-call default keeps the CPU model's answers short.
    const { jobId, handle } = await startJob(fixture('example.py'), {
      model: services.model,
      limits: { defaultNumPredict: 32 },
      // The script's second call names gemma3:270m, the stack's second model.
      allowed: [...new Set([services.model, 'gemma3:270m'])],
    });
    const result = await handle.result();
    expect({ status: result.status, error: result.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/^summary: .+/m);
    expect(result.stdout).toMatch(/^tutor: .+/m);
    expect(result.calls).toBe(2);
    expect(result.llm_token_count.completion).toBeLessThanOrEqual(64);
    const fromHistory = await historyLlmUsage(env, jobId);
    expect(fromHistory.completed).toBe(2);
    expect(fromHistory.total).toBeGreaterThan(0);
    expect(result.llm_token_count).toEqual({
      prompt: fromHistory.prompt,
      completion: fromHistory.completion,
      total: fromHistory.total,
    });
    const byModel = Object.values(result.byModel);
    expect(byModel.reduce((n, m) => n + m.calls, 0)).toBe(2);
    expect(byModel.reduce((n, m) => n + m.total, 0)).toBe(fromHistory.total);
    expect(result.byModel['gemma3:270m']?.calls).toBeGreaterThanOrEqual(1);
    // `*=0.5/0.5` per 1k tokens.
    expect(result.costUsd).toBeCloseTo((fromHistory.total / 1000) * 0.5, 9);
    // Persisted: record status and the full result.
    const record = await getJobRecord(storage, tenantId, jobId);
    expect(record?.status).toBe('succeeded');
    expect((await getJobResult(storage, record!))?.llm_token_count.total).toBe(fromHistory.total);
    const { searchAttributes } = await handle.describe();
    expect(searchAttributes[SearchAttribute.Kind]).toEqual(['job']);
    expect(searchAttributes[SearchAttribute.FunctionId]).toEqual(['fn-test']);
    expect(await containersOfJob(docker, jobId)).toEqual([]);
    await recordHistory('job-example', handle);
  }, 900_000);

  it('meters 32 calls from 16 threads exactly once each', async () => {
    const before = fake.requests.length;
    const { jobId, handle } = await startJob(fixture('threads32.py'), { model: FAKE_MODEL });
    const result = await handle.result();
    expect(result.status).toBe('succeeded');
    const inside = JSON.parse(result.stdout.trim()) as { replies: number; usage_lines: number; sdk_total: number };
    expect(inside.replies).toBe(32);
    expect(inside.usage_lines).toBe(32);
    expect(result.calls).toBe(32);
    expect(fake.requests.length - before).toBe(32);
    const fromHistory = await historyLlmUsage(env, jobId);
    expect(fromHistory.scheduled).toBe(32);
    expect(fromHistory.completed).toBe(32);
    expect(result.llm_token_count.total).toBe(fromHistory.total);
    expect(inside.sdk_total).toBe(fromHistory.total);
    // The fake counts words: "thread i call j" = 4 prompt tokens, "reply to thread i call j" = 6.
    expect(result.llm_token_count).toEqual({ prompt: 32 * 4, completion: 32 * 6, total: 32 * 10 });
    // fake:1b costs 1 / 2 USD per 1k prompt / completion tokens.
    expect(result.costUsd).toBeCloseTo((128 * 1 + 192 * 2) / 1000, 9);
  });

  it('refuses calls past the limit and unknown models with clear errors; the job keeps running', async () => {
    const { jobId, handle } = await startJob(fixture('limits.py'), {
      model: FAKE_MODEL,
      limits: { maxLlmCalls: 3 },
      inputData: { hello: 'world' },
    });
    const result = await handle.result();
    expect(result.status).toBe('succeeded');
    expect(JSON.parse(result.stdout.trim())).toEqual({ ok: 3, errors: 3 });
    expect(result.calls).toBe(3);
    expect(result.outputs.map((o) => o.name)).toEqual(['report.json']);
    const report = JSON.parse(Buffer.from((await storage.getObjectBytes(result.outputs[0]!.key))!).toString()) as {
      errors: [string, string][];
      input: unknown;
    };
    expect(report.input).toEqual({ hello: 'world' });
    expect(report.errors[0]).toEqual(['limit', 'LLM call limit reached: 3 calls per job']);
    expect(report.errors[2]![0]).toBe('model');
    expect(report.errors[2]![1]).toContain('model "no-such-model:9b" is not in the catalog');
    // Refused in the Update validator: the refused calls never entered the history.
    expect(await acceptedUpdates(env, jobId)).toBe(3);
    expect((await historyLlmUsage(env, jobId)).scheduled).toBe(3);
  });

  it('refuses num_predict above the job maximum or unbounded, naming the max; other calls run bounded', async () => {
    const script = [
      'import json, ai_client',
      'errors = []',
      'for n in (-1, 0, 301, 99999):',
      '    try:',
      '        ai_client.generate("too long", num_predict=n)',
      '    except ai_client.AiClientError as e:',
      '        errors.append([e.code, str(e)])',
      'reply = ai_client.generate("no bound given")',
      'print(json.dumps({"errors": errors, "reply": reply}))',
      '',
    ].join('\n');
    const before = fake.requests.length;
    // The API puts config LLM_NUM_PREDICT's job max here.
    const { jobId, handle } = await startJob(script, { model: FAKE_MODEL, limits: { maxNumPredict: 300 } });
    const result = await handle.result();
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 'succeeded', stderr: '' });
    const out = JSON.parse(result.stdout.trim()) as { errors: [string, string][]; reply: string };
    const unbounded = 'num_predict must be an integer from 1 to 300 (unbounded generation is not allowed)';
    const tooMany = 'num_predict must be at most 300 for job calls (LLM_NUM_PREDICT)';
    expect(out.errors).toEqual([
      ['invalid_request', unbounded],
      ['invalid_request', unbounded],
      ['invalid_request', tooMany],
      ['invalid_request', tooMany],
    ]);
    expect(out.reply).toBe('reply to no bound given');
    expect(result.calls).toBe(1);
    expect(await acceptedUpdates(env, jobId)).toBe(1);
    // Refused calls never reach a node; the call without a bound ran with the job kind's default.
    const reached = fake.requests.slice(before);
    expect(reached.map((r) => r.messages.at(-1)!.content)).toEqual(['no bound given']);
    expect(reached[0]!.options?.num_predict).toBe(DEFAULT_NUM_PREDICT.job.default);
  });

  it('counts a running call in the live status (callsInFlight) until it finishes', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    fake.setScript(async (r) => {
      const content = r.messages.at(-1)!.content;
      if (content === 'hold me') await held;
      return `reply to ${content}`;
    });
    try {
      const { handle } = await startJob('import ai_client\nprint(ai_client.generate("hold me"))\n', {
        model: FAKE_MODEL,
      });
      let live = await handle.query(jobStatusQuery);
      while (live.usage.callsInFlight !== 1) {
        expect(live.phase).toBe('running');
        await new Promise((r) => setTimeout(r, 100));
        live = await handle.query(jobStatusQuery);
      }
      expect(live.usage.calls).toBe(0);
      release();
      const result = await handle.result();
      expect(result.status).toBe('succeeded');
      expect(result.calls).toBe(1);
      expect((await handle.query(jobStatusQuery)).usage).toMatchObject({ calls: 1, callsInFlight: 0 });
    } finally {
      release();
      fake.setScript((r) => `reply to ${r.messages.at(-1)!.content}`);
    }
  });

  it('fails the job with the stderr tail on a non-zero exit', async () => {
    const { handle } = await startJob('import sys\nprint("bye", file=sys.stderr)\nsys.exit(4)\n', {
      model: FAKE_MODEL,
    });
    const result = await handle.result();
    expect(result.status).toBe('failed');
    expect(result.exitCode).toBe(4);
    expect(result.error).toBe('exit code 4: bye');
  });

  it('cancels mid-run: the container is killed and removed, the job is cancelled', async () => {
    const { jobId, handle } = await startJob('import time\nprint("start", flush=True)\ntime.sleep(600)\n', {
      model: FAKE_MODEL,
    });
    for (let i = 0; i < 300 && (await containersOfJob(docker, jobId)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await containersOfJob(docker, jobId)).length).toBe(1);
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    expect(await containersOfJob(docker, jobId)).toEqual([]);
    const record = await getJobRecord(storage, tenantId, jobId);
    expect(record?.status).toBe('cancelled');
  });
});
