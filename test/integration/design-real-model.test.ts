/**
 * Both design graphs with the real small model (the default model on a real Ollama node) on the production
 * orchestrator worker. Nothing here depends on what the model writes: only what the graphs guarantee by
 * construction, whatever it writes. Each request names resources the keyword plan knows, so a design completes
 * even when every model answer is unusable; every resource the generator (v2) or the engineer (v1) describes
 * is repaired against the design's references and the AWS provider schema, the fix pass can never replace a
 * schema-valid version with one that is not, nor drop a resource. So every completed design's stored files
 * parse and pass the schema check (checked again here from S3, not taken from the result), every planned
 * resource is in them, and the result calls the design validated only when terraform validate ran and passed.
 */
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createLlmActivities, createOllamaClient } from '../../activities/llm';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { validateTerraform } from '../../lib/terraform/validate';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { llmQueue, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { DesignResult } from '../../contracts/design';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

// The CPU model shares the machine with the rest of the suite: generous, and never asserted on speed.
jest.setTimeout(900_000);

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;

beforeAll(async () => {
  env = await createTemporalEnv();
  const config = testConfig({ S3_BUCKET: uid('designreal').toLowerCase() });
  storage = createStorage(config);
  await ensureStorage(storage);
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('./design-workflows'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
  });
  const orchestrator = await createOrchestratorWorker({
    connection: env.nativeConnection,
    config,
    storage,
    overrides: { workflowBundle },
  });
  const llm = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: llmQueue(services.model),
    maxConcurrentActivityTaskExecutions: 2,
    activities: createLlmActivities({
      ollama: createOllamaClient(services.ollamaUrl),
      nodeId: 'test-node',
      numCtx: 2048,
      // The production default: a call the loaded machine cannot finish falls back, as in production.
      callTimeoutMs: 60_000,
    }),
  });
  workers = runWorkers([orchestrator, llm]);
});

afterAll(async () => {
  await workers?.stop();
  storage?.close();
  await env?.teardown();
});

/** Runs one design to its end: no questions, one fix pass and one review at most, no follow-up window. */
async function design(workflow: 'infraDesignWorkflow' | 'infraDesignV1Workflow', request: string) {
  const designId = uid('design-real');
  const handle = await env.client.workflow.start(workflow, {
    taskQueue: ORCHESTRATOR_QUEUE,
    workflowId: designId,
    args: [
      {
        designId,
        request,
        model: services.model,
        maxQuestionRounds: 0,
        maxFixIterations: 1,
        maxReviewRounds: 1,
        followUpWindow: '1 second',
      },
    ],
  });
  return (await handle.result()) as DesignResult;
}

/** What every completed design guarantees, whatever the model wrote. */
async function expectTrustworthy(result: DesignResult): Promise<void> {
  expect(result.phase).toBe('completed');
  expect(result.plan?.resources.length).toBeGreaterThan(0);
  expect(result.schemaCheck).toBe('passed');
  expect(result.validation?.schemaCheck).toMatchObject({ status: 'passed', errors: 0 });
  // The stored files themselves, checked again: they parse and every resource passes the provider schema.
  const files: Record<string, string> = {};
  for (const f of result.files) files[f.name] = Buffer.from((await storage.getObjectBytes(f.key))!).toString();
  const again = await validateTerraform(files, { terraformBin: undefined });
  expect(again.diagnostics.filter((d) => d.check === 'hcl-parse' || d.check === 'schema')).toEqual([]);
  expect(again.schemaCheck).toMatchObject({ status: 'passed', errors: 0 });
  expect(again.schemaCheck!.checked).toBeGreaterThanOrEqual(result.plan!.resources.length);
  for (const r of result.plan!.resources) expect(files['main.tf']).toContain(`resource "${r.type}" "${r.name}" {`);
  // Validated means terraform validate ran and passed; a check that did not run is reported as not_run.
  const tf = result.validation!.terraform;
  expect(result.terraformValidate).toBe(!tf.ran ? 'not_run' : tf.ok ? 'passed' : 'failed');
  expect(result.terraformValidated).toBe(tf.ran && tf.ok === true);
  expect(result.revisions.map((r) => r.revision)).toEqual([1]);
}

it('v2: a completed design has files that pass the AWS provider schema check', async () => {
  const result = await design('infraDesignWorkflow', 'An S3 bucket for log archives with versioning');
  expect(result.graph).toBe('v2');
  await expectTrustworthy(result);
});

it('v1: a completed design has files that pass the AWS provider schema check', async () => {
  const result = await design('infraDesignV1Workflow', 'An SQS queue for jobs with a dead-letter queue');
  expect(result.graph).toBe('v1');
  await expectTrustworthy(result);
});
