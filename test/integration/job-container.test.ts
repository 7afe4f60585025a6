/**
 * runJobContainer against the real Docker engine and the real S3/DynamoDB emulator, with hostile scripts.
 * No LLM calls here, so the gateway's Temporal client is never used.
 */
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { cleanupExecutor, createExecutorActivities } from '../../activities/executor';
import { containersOfJob, removeOrphans } from '../../lib/executor/container';
import type { ContainerResult, JobLimits, RunContainerInput } from '../../contracts/jobs';
import { services, testConfig, uid } from '../helpers/env';
import { buildZip } from '../fixtures/jobs/zips';

jest.setTimeout(120_000);

const SCRIPTS = path.join(__dirname, '../fixtures/jobs/scripts');
const script = (name: string) => readFileSync(path.join(SCRIPTS, name), 'utf8');

const LIMITS: JobLimits = {
  timeoutMs: 20_000,
  memoryMb: 128,
  cpus: 1,
  pidsLimit: 32,
  outputLimitBytes: 64 * 1024,
  maxLlmCalls: 10,
  maxTokens: 10_000,
};

describe('runJobContainer (real Docker)', () => {
  const docker = new Docker();
  const executorId = uid('exec');
  const base = path.join(os.tmpdir(), uid('ainode-exec'));
  let storage: Storage;
  let activities: ReturnType<typeof createExecutorActivities>;

  beforeAll(async () => {
    const config = testConfig({ S3_BUCKET: uid('bkt').toLowerCase(), DYNAMO_TABLE_PREFIX: `${uid('p')}-` });
    storage = createStorage(config);
    await ensureStorage(storage);
    const deps = {
      docker,
      storage,
      client: { workflow: { getHandle: () => ({}) } } as unknown as Client,
      executorId,
      image: services.runtimeImage,
      workRoot: path.join(base, 'work'),
      socketDir: path.join(base, 'sock'),
    };
    await cleanupExecutor(deps);
    activities = createExecutorActivities(deps);
  });
  afterAll(async () => {
    await removeOrphans(docker, executorId);
    storage.close();
  });

  async function run(source: string, limits: Partial<JobLimits> = {}, inputData: unknown = null) {
    const jobId = uid('job');
    const packageKey = `functions/test/${jobId}.zip`;
    await storage.putObject(packageKey, await buildZip([{ name: 'main.py', data: source }]));
    await storage.putObject(`jobs/${jobId}/input.json`, JSON.stringify(inputData));
    const input: RunContainerInput = {
      jobId,
      workflowId: jobId,
      packageKey,
      entry: 'main.py',
      modelId: 'gemma3:270m',
      inputKey: `jobs/${jobId}/input.json`,
      outputPrefix: `jobs/${jobId}/out/`,
      limits: { ...LIMITS, ...limits },
    };
    const env = new MockActivityEnvironment();
    const result = (await env.run(activities.runJobContainer, input)) as ContainerResult;
    // Whatever happened inside, the container is gone and so are the host work dirs.
    expect(await containersOfJob(docker, jobId)).toEqual([]);
    expect(readdirSync(path.join(base, 'work'))).toEqual([]);
    return { jobId, result };
  }

  it('runs inside the sandbox: non-root, read-only root, no capabilities, input in, /out collected', async () => {
    const { jobId, result } = await run(script('sandbox.py'), {}, { n: 21 });
    expect(result.exitCode).toBe(3);
    expect(result.stdout).toContain('uid 10001 cwd /work');
    expect(result.stdout).not.toContain('WROTE');
    expect(result.stdout).toMatch(/readonly \/etc\/pwned 30/); // EROFS
    expect(result.stdout).toContain('capeff 0000000000000000');
    expect(result.stdout).toContain('nonewprivs 1');
    expect(result.stdout).toContain('scratch tmpfs ok');
    expect(result.stderr).toBe('to stderr\n');
    // The planted symlink is not followed: only the regular file is uploaded.
    expect(result.outputs.map((o) => o.name)).toEqual(['sub/result.json']);
    const body = await storage.getObjectBytes(`jobs/${jobId}/out/sub/result.json`);
    expect(JSON.parse(Buffer.from(body!).toString())).toEqual({ doubled: 42 });
  });

  it('has no network', async () => {
    const { result } = await run(script('network.py'));
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/network blocked: \w+/);
    expect(result.stdout).toMatch(/dns blocked: \w+/);
  });

  it('limits the number of processes', async () => {
    const { result } = await run(script('fork_count.py'), { pidsLimit: 32 });
    const m = /fork limited after (\d+)/.exec(result.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(32);
  });

  it('contains a fork bomb until the timeout', async () => {
    const { result } = await run(script('fork_bomb.py'), { pidsLimit: 32, timeoutMs: 4000 });
    expect(result.timedOut).toBe(true);
    expect(result.killedBy).toBe('timeout');
  });

  it('reports a memory hog as OOMKilled', async () => {
    const { result } = await run(script('memory_hog.py'), { memoryMb: 64 });
    expect(result.oomKilled).toBe(true);
    expect(result.exitCode).toBe(137);
  });

  it('kills an endless loop at the wall-clock timeout', async () => {
    const { result } = await run(script('endless.py'), { timeoutMs: 3000 });
    expect(result.timedOut).toBe(true);
    expect(result.stdout).toBe('looping\n');
    expect(result.durationMs).toBeGreaterThanOrEqual(3000);
  });

  it('caps a flood of output and kills the container', async () => {
    const { result } = await run(script('flood.py'), { outputLimitBytes: 100_000 });
    expect(result.stdoutTruncated).toBe(true);
    expect(result.killedBy).toBe('output_limit');
    expect(Buffer.byteLength(result.stdout)).toBe(100_000);
  });

  it('rejects an unsafe package at extraction, writing nothing outside the work dir', async () => {
    const jobId = uid('job');
    const packageKey = `functions/test/${jobId}.zip`;
    await storage.putObject(
      packageKey,
      await buildZip(
        [
          { name: 'main.py', data: 'print(1)' },
          { name: 'xx/evil.py', data: 'x' },
        ],
        { 'xx/evil.py': '../evil.py' },
      ),
    );
    const env = new MockActivityEnvironment();
    const input: RunContainerInput = {
      jobId,
      workflowId: jobId,
      packageKey,
      entry: 'main.py',
      modelId: 'gemma3:270m',
      inputKey: `jobs/${jobId}/input.json`,
      outputPrefix: `jobs/${jobId}/out/`,
      limits: LIMITS,
    };
    await expect(env.run(activities.runJobContainer, input)).rejects.toMatchObject({
      type: 'InvalidRequest',
      nonRetryable: true,
      message: expect.stringContaining('"../evil.py"'),
    });
    expect(readdirSync(path.join(base, 'work'))).toEqual([]);
    expect(await containersOfJob(docker, jobId)).toEqual([]);
  });

  it('kills the container when the activity is cancelled', async () => {
    const jobId = uid('job');
    const packageKey = `functions/test/${jobId}.zip`;
    await storage.putObject(packageKey, await buildZip([{ name: 'main.py', data: script('endless.py') }]));
    const env = new MockActivityEnvironment();
    const input: RunContainerInput = {
      jobId,
      workflowId: jobId,
      packageKey,
      entry: 'main.py',
      modelId: 'gemma3:270m',
      inputKey: `jobs/${jobId}/input.json`,
      outputPrefix: `jobs/${jobId}/out/`,
      limits: { ...LIMITS, timeoutMs: 60_000 },
    };
    const running = env.run(activities.runJobContainer, input);
    const outcome = running.then(
      () => 'completed',
      (err: Error) => err.name,
    );
    // Wait until the container exists, then cancel.
    for (let i = 0; i < 100 && (await containersOfJob(docker, jobId)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await containersOfJob(docker, jobId)).length).toBe(1);
    env.cancel();
    expect(await outcome).toBe('CancelledFailure');
    expect(await containersOfJob(docker, jobId)).toEqual([]);
  });
});
