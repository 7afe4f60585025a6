/**
 * infraDesignWorkflow on a real Temporal dev server and the real S3 emulator, with the real llm activities
 * talking to a scripted fake Ollama (exact replies per graph node): invalid request, two rounds of
 * questions answered by signal, a plan with a cycle, an HCL error fixed on the second pass, an exhausted fix
 * budget, and a follow-up message that revises the design.
 */
import { Ollama } from 'ollama';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defineSearchAttributeKey } from '@temporalio/common';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createLlmActivities } from '../../activities/llm';
import { createStorage, ensureStorage, type Storage } from '../../activities/storage/clients';
import { createTerraformActivities } from '../../activities/terraform';
import { createDesignActivities } from '../../activities/design';
import { llmQueue } from '../../common/task-queues';
import { SearchAttribute } from '../../common/types';
import {
  designAnswersSignal,
  designMessageSignal,
  designStatusQuery,
  submitDesignAnswersUpdate,
} from '../../workflows/definitions';
import { infraDesignWorkflow } from '../../workflows/infra-design-workflow';
import { infraDesignV1Workflow } from '../../workflows/infra-design-v1-workflow';
import type { DesignStatus, InfraDesignInput } from '../../workflows/infra-design-types';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { parse } from '@cdktf/hcl2json';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';

const HISTORY = path.join(__dirname, '../fixtures/histories/design-v2-two-rounds.json');

jest.setTimeout(180_000);

const MODEL = 'fake-design:1b';
const nodeOf = (r: FakeRequest) => /ainode design: (\w+)/.exec(r.messages[0]?.content ?? '')?.[1] ?? 'unknown';
const userText = (r: FakeRequest) =>
  r.messages
    .filter((m) => m.role === 'user')
    .map((m) => m.content)
    .join('\n');

type Replies = Partial<Record<string, (req: FakeRequest, call: number) => unknown>>;

/** Replies per node; each node's handler gets its own 0-based call count. */
function script(fake: FakeOllama, replies: Replies): void {
  const calls: Record<string, number> = {};
  fake.setScript((req) => {
    const node = nodeOf(req);
    const call = (calls[node] = (calls[node] ?? -1) + 1);
    const handler = replies[node] ?? DEFAULTS[node];
    if (!handler) throw new Error(`no scripted reply for node ${node}`);
    const out = handler(req, call);
    return typeof out === 'string' ? out : JSON.stringify(out);
  });
}

const bucketPlan = {
  resources: [
    { id: 'data', type: 'aws_s3_bucket', name: 'data', dependsOn: [], requirements: 'the data bucket' },
    { id: 'ver', type: 'aws_s3_bucket_versioning', name: 'data', dependsOn: ['data'], requirements: 'versioning' },
  ],
};

/** A resource description by type, as the generator returns it. */
function generated(req: FakeRequest): unknown {
  const type = /Resource: (\w+)\./.exec(userText(req))?.[1];
  if (type === 'aws_s3_bucket_versioning') {
    return {
      attributes: { bucket: 'aws_s3_bucket.data.id' },
      blocks: [{ type: 'versioning_configuration', attributes: { status: 'Enabled' } }],
    };
  }
  return { attributes: { bucket: 'acme-data' }, outputs: [{ name: 'arn', value: `${type}.data.arn` }] };
}

const DEFAULTS: Replies = {
  route: () => ({ category: 'infrastructure', reply: '' }),
  gather: () => ({ requirements: { region: 'ap-northeast-2', environment: 'prod' }, questions: [] }),
  plan: () => bucketPlan,
  generate: generated,
  fix: () => ({ files: [] }),
};

describe('infraDesignWorkflow with a scripted fake Ollama', () => {
  let env: TestWorkflowEnvironment;
  let fake: FakeOllama;
  let storage: Storage;
  let workers: Worker[] = [];
  let running: Promise<void>[] = [];
  let bundle: WorkflowBundleWithSourceMap;
  const taskQueue = uid('design');

  beforeAll(async () => {
    env = await createTemporalEnv();
    fake = await startFakeOllama({ models: [MODEL], script: () => '{}' });
    storage = createStorage(testConfig({ S3_BUCKET: uid('designs') }));
    await ensureStorage(storage);
    const llm = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: llmQueue(MODEL),
      activities: createLlmActivities({
        ollama: new Ollama({ host: fake.url }),
        nodeId: 'fake',
        numCtx: 2048,
        callTimeoutMs: 30_000,
      }),
    });
    const orchestrator = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: (bundle = await bundleWorkflowCode({
        workflowsPath: require.resolve('./design-workflows'),
        logger: quiet,
      })),
      // terraform is not run here (null): these paths are about the graph; validation is the parser + static checks.
      activities: { ...createTerraformActivities({ terraformBin: null }), ...createDesignActivities({ storage }) },
    });
    workers = [llm, orchestrator];
    running = workers.map((w) => w.run());
  });

  afterAll(async () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.all(running);
    await fake?.close();
    storage?.close();
    await env?.teardown();
  });

  const noop = () => undefined;
  const quiet = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

  function start(request: string, extra: Partial<InfraDesignInput> = {}) {
    const designId = uid('design');
    return env.client.workflow.start(infraDesignWorkflow, {
      taskQueue,
      workflowId: designId,
      args: [{ designId, request, model: MODEL, followUpWindow: '1 second', ...extra }],
    });
  }

  async function waitFor(handle: WorkflowHandle, ok: (s: DesignStatus) => boolean): Promise<DesignStatus> {
    let last: DesignStatus | undefined;
    for (let i = 0; i < 600; i++) {
      last = await handle.query(designStatusQuery);
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`condition never held; last status ${JSON.stringify(last)}`);
  }

  const requestsOf = (node: string) => fake.requests.filter((r) => nodeOf(r) === node);

  it('answers a non-infrastructure request politely and ends without gathering', async () => {
    script(fake, { route: () => ({ category: 'invalid', reply: 'I can only help design cloud infrastructure.' }) });
    const before = requestsOf('gather').length;
    const result = await (await start('What is the capital of France?')).result();
    expect(result.phase).toBe('invalid');
    expect(result.reply).toBe('I can only help design cloud infrastructure.');
    expect(result.files).toEqual([]);
    expect(result.llmCalls).toBe(1);
    expect(requestsOf('gather').length).toBe(before);
  });

  it('ends an empty request without calling the model', async () => {
    const before = fake.requests.length;
    const result = await (await start('   ')).result();
    expect(result.phase).toBe('ended');
    expect(fake.requests.length).toBe(before);
  });

  it('asks two rounds of questions, answered by signal, then plans, generates in parallel and stores files', async () => {
    script(fake, {
      gather: (_req, call) =>
        [
          { requirements: {}, questions: ['Which region?', 'Which environment?'] },
          { requirements: { region: 'ap-northeast-2', environment: 'prod' }, questions: ['Monthly budget?'] },
          { requirements: { region: 'ap-northeast-2', environment: 'prod', budget: '100 USD' }, questions: [] },
        ][call],
    });
    const handle = await start('An S3 bucket with versioning for our data', { followUpWindow: '1 second' });
    const round1 = await waitFor(handle, (s) => s.phase === 'waiting_for_answers');
    expect(round1.questions).toEqual([
      { id: 'q1', text: 'Which region?' },
      { id: 'q2', text: 'Which environment?' },
    ]);
    expect(round1.node).toBe('ask');
    const waitingKey = defineSearchAttributeKey(SearchAttribute.WaitingForInput, 'BOOL');
    expect((await handle.describe()).typedSearchAttributes.get(waitingKey)).toBe(true);
    // The validated update rejects an unknown question id without touching the design.
    const rejected = await handle
      .executeUpdate(submitDesignAnswersUpdate, { args: [{ answers: { q9: 'x' } }] })
      .catch((e: unknown) => e);
    expect((rejected as { cause?: unknown }).cause).toBeInstanceOf(ApplicationFailure);
    expect((rejected as { cause: ApplicationFailure }).cause).toMatchObject({ type: 'InvalidRequest' });
    expect((rejected as { cause: ApplicationFailure }).cause.message).toContain('unknown question id(s): q9');
    await handle.signal(designAnswersSignal, { answers: { q1: 'ap-northeast-2', q2: 'prod' } });

    const round2 = await waitFor(
      handle,
      (s) => s.phase === 'waiting_for_answers' && s.questions[0]?.text === 'Monthly budget?',
    );
    expect(round2.requirements).toMatchObject({ region: 'ap-northeast-2', environment: 'prod' });
    await handle.signal(designAnswersSignal, { answers: { q1: '100 USD' } });

    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.terraformValidated).toBe(true);
    expect(result.requirements).toMatchObject({ region: 'ap-northeast-2', budget: '100 USD' });
    expect(result.plan?.levels).toEqual([['data'], ['ver']]);
    expect(result.files.map((f) => f.name).sort()).toEqual(['main.tf', 'outputs.tf', 'providers.tf', 'variables.tf']);
    expect(result.llmCalls).toBe(1 + 3 + 1 + 2);
    expect(result.usage.totalTokens).toBeGreaterThan(0);
    // The second gather call saw the first round's answers.
    const gathers = requestsOf('gather');
    expect(userText(gathers[gathers.length - 2]!)).toContain('q1: ap-northeast-2');
    expect((await handle.describe()).typedSearchAttributes.get(waitingKey)).toBe(false);

    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).toContain('resource "aws_s3_bucket_versioning" "data"');
    expect(main).toContain('bucket = aws_s3_bucket.data.id');
    const parsed = await parse('main.tf', main);
    expect(Object.keys(parsed.resource).sort()).toEqual(['aws_s3_bucket', 'aws_s3_bucket_versioning']);
    const providers = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'variables.tf')!.key))!,
    ).toString();
    expect(providers).toContain('"ap-northeast-2"');

    // Activity summaries name the node and the resource (what the Web UI shows).
    const history = await handle.fetchHistory();
    const summaries = (history.events ?? [])
      .map((e) => e.userMetadata?.summary?.data)
      .filter((d): d is Uint8Array => Boolean(d))
      .map((d) => JSON.parse(Buffer.from(d).toString()) as string);
    expect(summaries).toEqual(
      expect.arrayContaining(['generate: data (aws_s3_bucket.data)', 'generate: ver (aws_s3_bucket_versioning.data)']),
    );
    if (process.env.AINODE_RECORD_HISTORIES === '1') {
      const obj = temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(history), {
        longs: String,
        enums: String,
        bytes: String,
      });
      writeFileSync(HISTORY, JSON.stringify(obj, null, 1) + '\n');
    }
  });

  it('replays the recorded history of a two-round design (signals, interrupts, fan-out) deterministically', async () => {
    const history = temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(HISTORY, 'utf8')));
    expect(history.events?.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(true);
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, 'recorded-design');
  });

  it('sends a plan with a cycle back to the model once with the error, then uses the corrected plan', async () => {
    const cycle = {
      resources: [
        { id: 'a', type: 'aws_s3_bucket', name: 'a', dependsOn: ['b'], requirements: '' },
        { id: 'b', type: 'aws_s3_bucket', name: 'b', dependsOn: ['a'], requirements: '' },
      ],
    };
    script(fake, { plan: (_r, call) => (call === 0 ? cycle : bucketPlan) });
    const result = await (await start('two buckets')).result();
    expect(result.phase).toBe('completed');
    expect(result.plan?.levels).toEqual([['data'], ['ver']]);
    const plans = requestsOf('plan');
    expect(userText(plans[plans.length - 1]!)).toContain('dependency cycle among: a, b');
  });

  it('fails clearly when the plan is still invalid after the retry', async () => {
    script(fake, {
      plan: () => ({
        resources: [{ id: 'a', type: 'aws_s3_bucket', name: 'a', dependsOn: ['ghost'], requirements: '' }],
      }),
    });
    const err = await (await start('a bucket')).result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause.type).toBe('DesignPlanInvalid');
    expect(cause.message).toContain('depends on unknown resource "ghost"');
  });

  it('a model that keeps failing on one node degrades that node: varied retry, then the design goes on', async () => {
    script(fake, {
      gather: () => {
        throw new Error('stream dropped');
      },
    });
    const before = requestsOf('gather').length;
    const result = await (await start('a bucket with versioning')).result();
    expect(result.phase).toBe('completed');
    expect(result.terraformValidated).toBe(true);
    const gathers = requestsOf('gather').slice(before);
    // Two attempts as asked, then once more with another seed and some temperature.
    expect(gathers.map((r) => r.options?.temperature)).toEqual([0, 0, 0.7]);
    expect(gathers[2]!.options?.seed).not.toBe(gathers[0]!.options?.seed);
  });

  const brokenGenerate = (req: FakeRequest) => {
    const type = /Resource: (\w+)\./.exec(userText(req))?.[1];
    return type === 'aws_s3_bucket'
      ? { attributes: { bucket: 'acme-data', kms_key: 'aws_kms_key.missing.arn' } }
      : generated(req);
  };

  it('fixes a generated error on the second pass', async () => {
    script(fake, {
      generate: brokenGenerate,
      fix: (req) => {
        const main = /--- main\.tf\n([\s\S]*?)(?=\n--- |$)/.exec(userText(req))?.[1] ?? '';
        return { files: [{ name: 'main.tf', content: main.replace(/\n\s*kms_key = aws_kms_key\.missing\.arn/, '') }] };
      },
    });
    const handle = await start('a bucket with versioning');
    const result = await handle.result();
    expect(result.terraformValidated).toBe(true);
    expect(result.validation?.ok).toBe(true);
    const fixes = requestsOf('fix');
    expect(userText(fixes[fixes.length - 1]!)).toContain('reference to undeclared resource "aws_kms_key.missing"');
    const status = await handle.query(designStatusQuery);
    expect(status.steps.map((s) => s.node).filter((n) => n === 'validate' || n === 'fix')).toEqual([
      'validate',
      'fix',
      'validate',
    ]);
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).not.toContain('aws_kms_key');
  });

  it('finishes with terraformValidated false and the errors when the fix budget runs out', async () => {
    script(fake, {
      generate: brokenGenerate,
      fix: () => ({ files: [{ name: 'main.tf', content: 'resource "aws_s3_bucket" "data" {\n  bucket = \n}\n' }] }),
    });
    const handle = await start('a bucket', { maxFixIterations: 2 });
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.terraformValidated).toBe(false);
    expect(result.validation?.ok).toBe(false);
    // The stored version is the one with the fewest errors: the generated one, not the unparseable fix.
    expect(result.validation?.diagnostics.map((d) => d.check)).toEqual(['reference']);
    expect(result.validation?.output).toContain('aws_kms_key.missing');
    const status = await handle.query(designStatusQuery);
    expect(status.steps.filter((s) => s.node === 'fix')).toHaveLength(2);
    expect(status.steps.filter((s) => s.node === 'validate')).toHaveLength(3);
  });

  it('revises a finished design from gather when a follow-up message arrives', async () => {
    script(fake, {
      plan: (req) =>
        userText(req).includes('Change request: add a logs bucket')
          ? {
              resources: [
                ...bucketPlan.resources,
                { id: 'logs', type: 'aws_s3_bucket', name: 'logs', dependsOn: [], requirements: 'logs' },
              ],
            }
          : bucketPlan,
    });
    const handle = await start('a bucket with versioning', { followUpWindow: '10 minutes' });
    const first = await waitFor(handle, (s) => s.phase === 'completed');
    expect(first.revision).toBe(1);
    expect(first.plan?.resources).toHaveLength(2);
    await handle.signal(designMessageSignal, { message: 'add a logs bucket' });
    const second = await waitFor(handle, (s) => s.revision === 2 && s.phase === 'completed');
    expect(second.plan?.resources.map((r) => r.id).sort()).toEqual(['data', 'logs', 'ver']);
    expect(second.plan?.levels).toEqual([['data', 'logs'], ['ver']]);
    expect(second.terraformValidated).toBe(true);
    const lastGather = requestsOf('gather').pop()!;
    expect(userText(lastGather)).toContain('Change request: add a logs bucket');
    const main = Buffer.from(
      (await storage.getObjectBytes(second.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).toContain('resource "aws_s3_bucket" "logs"');
    await handle.terminate('test done');
  });

  it('v1 graph: consultant asks, engineer ⇄ lead until approval, then files', async () => {
    script(fake, {
      consultant: (_r, call) =>
        call === 0
          ? { requirements: {}, questions: ['Which region?'] }
          : { requirements: { region: 'eu-west-1' }, questions: [] },
      promptGenerator: () => 'Create one private S3 bucket named logs in eu-west-1.',
      engineer: (req) =>
        userText(req).includes('Review notes')
          ? {
              resources: [
                { type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'acme-logs', force_destroy: false } },
              ],
            }
          : {
              resources: [
                { type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'acme-logs', force_destroy: true } },
              ],
            },
      lead: (_r, call) =>
        call === 0 ? { approved: false, notes: 'Never force_destroy a logs bucket.' } : { approved: true, notes: '' },
    });
    const designId = uid('design');
    const handle = await env.client.workflow.start(infraDesignV1Workflow, {
      taskQueue,
      workflowId: designId,
      args: [{ designId, request: 'a logs bucket', model: MODEL, followUpWindow: '1 second' }],
    });
    const waiting = await waitFor(handle, (s) => s.phase === 'waiting_for_answers');
    expect(waiting).toMatchObject({ graph: 'v1', node: 'ask', questions: [{ id: 'q1', text: 'Which region?' }] });
    const ack = await handle.executeUpdate(submitDesignAnswersUpdate, { args: [{ answers: { q1: 'eu-west-1' } }] });
    expect(ack.accepted).toEqual(['q1']);
    const result = await handle.result();
    expect(result.graph).toBe('v1');
    expect(result.terraformValidated).toBe(true);
    await recordHistory('design-v1-lead-review', handle);
    const status = await handle.query(designStatusQuery);
    expect(status.steps.map((s) => s.node)).toEqual([
      'consultant',
      'ask',
      'consultant',
      'promptGenerator',
      'engineer',
      'lead',
      'engineer',
      'lead',
      'combine',
      'validate',
      'store',
    ]);
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).toContain('force_destroy = false');
    const variables = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'variables.tf')!.key))!,
    ).toString();
    expect(variables).toContain('"eu-west-1"');
  });
});
