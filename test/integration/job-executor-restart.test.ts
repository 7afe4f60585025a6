/**
 * The executor process is SIGKILLed mid-job (its container keeps running, nobody collects it). A new
 * executor with the same id removes the orphan at start, Temporal retries the job's activity after the
 * heartbeat timeout, and the job completes with no container left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createJobsActivities } from '../../activities/jobs';
import { containersOfJob, removeOrphans } from '../../lib/executor/container';
import type { JobInput } from '../../contracts/jobs';
import { jobWorkflow } from '../../workflows/job-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { buildZip } from '../fixtures/jobs/zips';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(180_000);

describe('executor killed mid-job', () => {
  let env: TestWorkflowEnvironment;
  let storage: Storage;
  let orchestrator: RunningWorkers | undefined;
  const children: ChildProcess[] = [];
  const docker = new Docker();
  const executorId = uid('exec');
  const workRoot = path.join(os.tmpdir(), uid('jobs'));
  const taskQueue = uid('orchestrator');
  const overrides = {
    S3_BUCKET: uid('bkt').toLowerCase(),
    DYNAMO_TABLE_PREFIX: `${uid('p')}-`,
    GATEWAY_SOCKET_DIR: path.join(os.tmpdir(), uid('gw')),
  };

  function startExecutor(): Promise<{ child: ChildProcess; removed: string[] }> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '../fixtures/jobs/executor-child.ts')],
      {
        env: {
          ...process.env,
          ...overrides,
          TEMPORAL_ADDRESS: env.address,
          AINODE_TEST_EXECUTOR_ID: executorId,
          AINODE_TEST_WORK_ROOT: workRoot,
          JOB_RUNTIME_IMAGE: services.runtimeImage,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(child);
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    return new Promise((resolve, reject) => {
      child.stdout!.on('data', (c: Buffer) => {
        const m = /ready removed=(\[.*\])/.exec(c.toString());
        if (m) resolve({ child, removed: JSON.parse(m[1]!) as string[] });
      });
      child.once('exit', (code) => reject(new Error(`executor exited with ${code}: ${err}`)));
    });
  }

  beforeAll(async () => {
    env = await createTemporalEnv();
    const config = testConfig(overrides);
    storage = createStorage(config);
    await ensureStorage(storage);
    orchestrator = runWorkers([
      await Worker.create({
        connection: env.nativeConnection,
        taskQueue,
        workflowsPath: require.resolve('../../workflows/job-workflow'),
        activities: createJobsActivities({ storage, config }),
      }),
    ]);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await orchestrator?.stop();
    await removeOrphans(docker, executorId);
    storage?.close();
    await env?.teardown();
  });

  it('completes after a restart and leaves no orphan container', async () => {
    const jobId = `job-${uid('r')}`;
    const packageKey = `functions/t/${jobId}.zip`;
    await storage.putObject(
      packageKey,
      await buildZip([
        { name: 'main.py', data: 'import time\nprint("started", flush=True)\ntime.sleep(4)\nprint("done")\n' },
      ]),
    );
    const input: JobInput = {
      jobId,
      tenantId: 't',
      functionId: 'fn-r',
      packageKey,
      entry: 'main.py',
      modelId: 'gemma3:270m',
      allowedModels: [],
      inputKey: `jobs/${jobId}/input.json`,
      createdAt: new Date().toISOString(),
      limits: {
        timeoutMs: 60_000,
        memoryMb: 128,
        cpus: 1,
        pidsLimit: 32,
        outputLimitBytes: 65_536,
        maxLlmCalls: 1,
        maxTokens: 1,
      },
    };
    const first = await startExecutor();
    const handle = await env.client.workflow.start(jobWorkflow, { taskQueue, workflowId: jobId, args: [input] });
    let orphan: string[] = [];
    for (let i = 0; i < 300 && orphan.length === 0; i++) {
      orphan = await containersOfJob(docker, jobId);
      if (!orphan.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(orphan).toHaveLength(1);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    // The container outlives its executor: exactly the orphan the restart must clean up.
    expect(await containersOfJob(docker, jobId)).toEqual(orphan);

    const second = await startExecutor();
    expect(second.removed).toEqual(orphan);
    const result = await handle.result();
    expect(result.status).toBe('succeeded');
    expect(result.stdout).toBe('started\ndone\n');
    expect(await containersOfJob(docker, jobId)).toEqual([]);
    const history = await handle.fetchHistory();
    const started = history.events?.find(
      (e) => e.activityTaskStartedEventAttributes,
    )?.activityTaskStartedEventAttributes;
    expect(started?.attempt).toBe(2);
  });
});
