/**
 * infraDesignWorkflow on a real Temporal dev server and the real S3 emulator, with the real llm activities
 * talking to a scripted fake Ollama (exact replies per graph node): invalid request, two rounds of
 * questions answered by signal, a repaired reply, deterministic fallbacks (keyword route, keyword plan,
 * default bodies), a plan with an unknown dependency and one with a cycle (both repaired without the model),
 * an HCL error fixed on the second pass, an exhausted fix budget, a follow-up message that revises the
 * design, and cancelling a design while it waits for answers and while it generates.
 */
import { REQUIREMENT_QUESTIONS } from '../../workflows/design/schemas';
import { Ollama } from 'ollama';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createLlmActivities } from '../../activities/llm';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createTerraformActivities } from '../../activities/terraform';
import { createDesignActivities } from '../../activities/design';
import { llmQueue } from '../../common/task-queues';
import { type LlmChatInput } from '../../contracts/llm';
import {
  designAnswersSignal,
  designEventsQuery,
  designMessageSignal,
  designStatusQuery,
  submitDesignAnswersUpdate,
} from '../../contracts/definitions';
import { infraDesignWorkflow } from '../../workflows/design/workflow';
import { infraDesignV1Workflow } from '../../workflows/design/v1-workflow';
import { designRepoKey, type DesignStatus, type InfraDesignInput } from '../../contracts/design';
import { KEYWORD_INVALID_REPLY } from '../../workflows/design/fallback';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { parse } from '@cdktf/hcl2json';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { SearchAttributeKey } from '../../common/search-attributes';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

/**
 * Recorded before DESIGN_STRUCTURED_PATCH: it replays the pre-patch node code, so it is never re-recorded
 * (with AINODE_RECORD_HISTORIES=1 the tests below write design-v2-generate-repair-*.json and
 * design-v1-schema-draft-*.json instead; the earlier design-*.json stay as they are, for replay).
 */
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

/** The request a design was started with: its first user message (every node's prompt carries it). */
const README_REQUEST = 'A static website on S3 behind CloudFront';

/** Replies per node; each node's handler gets its own 0-based call count. */
function script(fake: FakeOllama, replies: Replies): void {
  const calls: Record<string, number> = {};
  fake.setScript((req) => {
    const node = nodeOf(req);
    const call = (calls[node] = (calls[node] ?? -1) + 1);
    const handler = replies[node] ?? DEFAULTS[node];
    if (!handler) throw new Error(`no scripted reply for node ${node}`);
    const out = handler(req, call);
    if (out instanceof Promise) return out.then((o) => (typeof o === 'string' ? o : JSON.stringify(o)));
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

/**
 * A scripted `terraform` (like the fake Ollama, exact answers): `init` succeeds, as if the providers were
 * installed, and `validate -json` finds the one error the provider itself reports and the schema check cannot
 * see: an S3 bucket that sets both `bucket` (a literal name) and `bucket_prefix` (they conflict).
 */
const FAKE_TERRAFORM = `#!/bin/sh
case "$1" in
  init) echo "Terraform has been successfully initialized!"; exit 0 ;;
  validate)
    if grep -q '^  bucket_prefix = ' main.tf && grep -q '^  bucket = "' main.tf; then
      echo '{"valid":false,"error_count":1,"diagnostics":[{"severity":"error","summary":"Conflicting configuration arguments","detail":"\\"bucket\\": conflicts with bucket_prefix","range":{"filename":"main.tf"}}]}'
      exit 1
    fi
    echo '{"valid":true,"error_count":0,"diagnostics":[]}'; exit 0 ;;
esac
exit 1
`;

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
  let workers: RunningWorkers | undefined;
  let bundle: WorkflowBundleWithSourceMap;
  const taskQueue = uid('design');
  /** An orchestrator whose terraform activities run FAKE_TERRAFORM (the other one runs no terraform). */
  const tfQueue = uid('design-tf');
  const llmFailures: { purpose: string; err: unknown }[] = [];

  beforeAll(async () => {
    env = await createTemporalEnv();
    fake = await startFakeOllama({ models: [MODEL], script: () => '{}' });
    storage = createStorage(testConfig({ S3_BUCKET: uid('designs') }));
    await ensureStorage(storage);
    const activities = createLlmActivities({
      ollama: new Ollama({ host: fake.url }),
      nodeId: 'fake',
      numCtx: 2048,
      callTimeoutMs: 30_000,
    });
    const llm = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: llmQueue(MODEL),
      // Heartbeats reach the server every second (not every 24 s), so a cancel reaches the activity quickly.
      maxHeartbeatThrottleInterval: '1 second',
      activities: {
        ...activities,
        // The real activity, with how each call ended kept for the cancel test.
        llmChat: async (input: LlmChatInput) => {
          try {
            return await activities.llmChat(input);
          } catch (err) {
            llmFailures.push({ purpose: input.purpose ?? '', err });
            throw err;
          }
        },
      },
    });
    const orchestrator = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: (bundle = await bundleWorkflowCode({
        workflowsPath: require.resolve('./design-workflows'),
        logger: quiet,
      })),
      // terraform is not run here (null): these paths are about the graph; validation is the parser + static checks.
      activities: {
        ...createTerraformActivities({ terraformBin: null }),
        ...createDesignActivities({ storage, repoDir: mkdtempSync(path.join(os.tmpdir(), 'design-repos-')) }),
      },
    });
    const tfDir = mkdtempSync(path.join(os.tmpdir(), 'fake-terraform-'));
    writeFileSync(path.join(tfDir, 'terraform'), FAKE_TERRAFORM, { mode: 0o755 });
    const withTerraform = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: tfQueue,
      workflowBundle: bundle,
      activities: {
        ...createTerraformActivities({ terraformBin: path.join(tfDir, 'terraform') }),
        ...createDesignActivities({ storage, repoDir: mkdtempSync(path.join(os.tmpdir(), 'design-repos-')) }),
      },
    });
    workers = runWorkers([llm, orchestrator, withTerraform]);
  });

  afterAll(async () => {
    await workers?.stop();
    await fake?.close();
    storage?.close();
    await env?.teardown();
  });

  const noop = () => undefined;
  const quiet = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

  function start(request: string, extra: Partial<InfraDesignInput> = {}, queue = taskQueue) {
    const designId = uid('design');
    return env.client.workflow.start(infraDesignWorkflow, {
      taskQueue: queue,
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
    // The model decided to ask; the questions are the table's, for what is still unknown (the request named S3,
    // so no data-store question), at most three.
    expect(round1.questions).toEqual([
      { id: 'q1', text: REQUIREMENT_QUESTIONS.region },
      { id: 'q2', text: REQUIREMENT_QUESTIONS.environment },
      { id: 'q3', text: REQUIREMENT_QUESTIONS.scale },
    ]);
    expect(round1.requirements).toMatchObject({ dataStores: 'S3' });
    expect(round1.node).toBe('ask');
    const waitingKey = SearchAttributeKey.WaitingForInput;
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
      (s) => s.phase === 'waiting_for_answers' && s.questions[0]?.text === REQUIREMENT_QUESTIONS.scale,
    );
    expect(round2.requirements).toMatchObject({ region: 'ap-northeast-2', environment: 'prod' });
    expect(round2.questions.map((q) => q.text)).toEqual([REQUIREMENT_QUESTIONS.scale, REQUIREMENT_QUESTIONS.budget]);
    await handle.signal(designAnswersSignal, { answers: { q1: '10 requests per second', q2: '100 USD' } });

    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.schemaCheck).toBe('passed');
    // Answers to the table's questions are the requirements as the user wrote them.
    expect(result.requirements).toMatchObject({
      region: 'ap-northeast-2',
      environment: 'prod',
      scale: '10 requests per second',
      budget: '100 USD',
    });
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
    await recordHistory('design-v2-generate-repair-two-rounds', handle);
  });

  it('replays the recorded history of a two-round design (signals, interrupts, fan-out) deterministically', async () => {
    const history = temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(HISTORY, 'utf8')));
    expect(history.events?.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(true);
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, 'recorded-design');
  });

  /** Activity summaries of a run, as the Web UI shows them. */
  async function summariesOf(handle: WorkflowHandle): Promise<string[]> {
    const history = await handle.fetchHistory();
    return (history.events ?? [])
      .map((e) => e.userMetadata?.summary?.data)
      .filter((d): d is Uint8Array => Boolean(d))
      .map((d) => JSON.parse(Buffer.from(d).toString()) as string);
  }
  const lastUserText = (r: FakeRequest) => r.messages.filter((m) => m.role === 'user').pop()?.content ?? '';

  it('sends an invalid reply back once with the error, and uses the repaired answer (path "repaired")', async () => {
    script(fake, {
      route: (_r, call) =>
        call === 0 ? 'Sure! This is about infrastructure.' : { category: 'infrastructure', reply: '' },
    });
    const before = requestsOf('route').length;
    const handle = await start('a bucket with versioning');
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.llmPaths).toMatchObject({ route: 'repaired', gather: 'model', plan: 'model' });
    expect(result.notes).toEqual([expect.stringMatching(/^route: repaired \(first reply: not valid JSON/)]);
    const routes = requestsOf('route').slice(before);
    expect(routes).toHaveLength(2);
    // The repair request shows the model its reply and the error, under the same tight schema.
    expect(routes[1]!.messages.find((m) => m.role === 'assistant')?.content).toBe(
      'Sure! This is about infrastructure.',
    );
    expect(lastUserText(routes[1]!)).toMatch(/^Your answer was rejected: not valid JSON/);
    expect(routes[1]!.format).toMatchObject({ additionalProperties: false, required: ['category', 'reply'] });
    expect(await summariesOf(handle)).toEqual(
      expect.arrayContaining(['route: classify the request', 'route: classify the request (repair)']),
    );
    expect(result.llmCalls).toBe(2 + 1 + 1 + 2);
  });

  it('routes a request that names infrastructure to the graph even when the model calls it invalid', async () => {
    script(fake, {
      route: () => ({ category: 'invalid', reply: 'Sorry, I cannot help with that.' }),
      gather: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
    });
    const result = await (await start(README_REQUEST)).result();
    expect(result.phase).toBe('completed');
    expect(result.llmPaths.route).toBe('fallback');
    expect(result.notes[0]).toBe(
      'route: fallback, the request names infrastructure (first reply: the model said "invalid")',
    );
  });

  it('replaces a valid plan that leaves out a resource the request names with the keyword plan', async () => {
    script(fake, {
      plan: () => ({
        resources: [{ id: 'assets', type: 'aws_s3_bucket', name: 'assets', dependsOn: [], requirements: 'site' }],
      }),
      gather: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
    });
    const before = requestsOf('plan').length;
    const result = await (await start(README_REQUEST)).result();
    expect(result.phase).toBe('completed');
    // One plan call (valid JSON, no repair), then the keyword plan, because CloudFront was named but not planned.
    expect(requestsOf('plan').length - before).toBe(1);
    expect(result.plan?.resources.map((r) => r.type)).toContain('aws_cloudfront_distribution');
    expect(result.llmPaths.plan).toBe('fallback');
    expect(result.notes[0]).toBe(
      "plan: fallback, keyword plan from the request (first reply: the model's plan lacked aws_cloudfront_distribution)",
    );
  });

  it('replaces a plan thinner than the request (a server without the subnet and security group it names)', async () => {
    script(fake, {
      // The model's reply to a design request is noise: it is not handed back.
      route: () => ({ category: 'infrastructure', reply: 'Your request has been approved and will be delivered.' }),
      plan: () => ({
        resources: [{ id: 'web', type: 'aws_instance', name: 'web', dependsOn: [], requirements: 'web server' }],
      }),
      gather: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
    });
    const handle = await start('An EC2 web server in a public subnet with a security group allowing HTTPS');
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.reply).toBeUndefined();
    expect(result.llmPaths.plan).toBe('fallback');
    expect(result.notes[0]).toBe(
      "plan: fallback, keyword plan from the request (first reply: the model's plan lacked aws_security_group, aws_subnet)",
    );
    expect(result.plan?.resources.map((r) => r.type)).toEqual(
      expect.arrayContaining(['aws_vpc', 'aws_subnet', 'aws_security_group', 'aws_instance']),
    );
    await recordHistory('design-v2-plan-parts', handle);
  });

  it('plans the KMS key a request names, and the table it encrypts uses it', async () => {
    script(fake, {
      plan: () => ({
        resources: [{ id: 'sessions', type: 'aws_dynamodb_table', name: 'sessions', dependsOn: [], requirements: '' }],
      }),
      gather: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
    });
    const handle = await start('A DynamoDB table for sessions with a KMS key for encryption');
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.notes[0]).toBe(
      "plan: fallback, keyword plan from the request (first reply: the model's plan lacked aws_kms_key)",
    );
    expect(result.plan?.resources.map((r) => [r.type, r.dependsOn])).toEqual([
      ['aws_kms_key', []],
      ['aws_dynamodb_table', ['key']],
    ]);
    expect(result.schemaCheck).toBe('passed');
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString('utf8');
    expect(main).toMatch(/server_side_encryption \{\s+enabled = true\s+kms_key_arn = aws_kms_key\.key\.arn/);
  });

  it('falls back after the repair: the README request gets a keyword plan and default bodies that validate', async () => {
    script(fake, {
      plan: () => 'resources: bucket, cloudfront, bucket, cloudfront, bucket',
      // Valid JSON, but no `attributes` object: nothing to repair, so it is sent back once, then the default body.
      generate: () => ({ blocks: [{ type: 'settings', attributes: { deep: true } }] }),
      gather: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
    });
    const before = { plan: requestsOf('plan').length, generate: requestsOf('generate').length };
    const handle = await start(README_REQUEST);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.schemaCheck).toBe('passed');
    expect(result.validation?.diagnostics).toEqual([]);
    expect(requestsOf('plan').length - before.plan).toBe(2);
    expect(requestsOf('generate').length - before.generate).toBe(2 * 5);
    expect(result.plan?.resources.map((r) => [r.id, r.type, r.dependsOn])).toEqual([
      ['site', 'aws_s3_bucket', []],
      ['site_public_access', 'aws_s3_bucket_public_access_block', ['site']],
      ['site_oac', 'aws_cloudfront_origin_access_control', []],
      ['cdn', 'aws_cloudfront_distribution', ['site', 'site_oac']],
      ['site_policy', 'aws_s3_bucket_policy', ['site', 'cdn']],
    ]);
    expect(result.plan?.levels).toEqual([['site', 'site_oac'], ['site_public_access', 'cdn'], ['site_policy']]);
    expect(result.llmPaths).toEqual({
      route: 'model',
      gather: 'model',
      plan: 'fallback',
      'generate:site': 'fallback',
      'generate:site_public_access': 'fallback',
      'generate:site_oac': 'fallback',
      'generate:cdn': 'fallback',
      'generate:site_policy': 'fallback',
    });
    expect(result.notes[0]).toMatch(
      /^plan: fallback, keyword plan from the request \(first reply: not valid JSON .*; repair: not valid JSON/,
    );
    expect(result.notes.filter((n) => n.startsWith('generate:'))).toHaveLength(5);
    expect(result.notes.find((n) => n.startsWith('generate:cdn'))).toContain('missing "attributes"');
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    const parsed = await parse('main.tf', main);
    expect(Object.keys(parsed.resource).sort()).toEqual([
      'aws_cloudfront_distribution',
      'aws_cloudfront_origin_access_control',
      'aws_s3_bucket',
      'aws_s3_bucket_policy',
      'aws_s3_bucket_public_access_block',
    ]);
    expect(await summariesOf(handle)).toEqual(expect.arrayContaining(['plan: resource plan (repair)']));
    // The Web UI's current details name the nodes that did not use the model's answer.
    const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(meta.currentDetails).toMatch(/^Finished \(completed\), revision 1 \(fallback: plan, generate:site, /);
    await recordHistory('design-v2-generate-repair-fallback', handle);
  });

  it('routes by keywords when the route reply stays unreadable: a question that is not infrastructure ends invalid', async () => {
    script(fake, { route: () => '{"category": "infra' });
    const before = requestsOf('gather').length;
    const result = await (await start('What is the capital of France?')).result();
    expect(result.phase).toBe('invalid');
    expect(result.reply).toBe(KEYWORD_INVALID_REPLY);
    expect(result.llmPaths).toEqual({ route: 'fallback' });
    expect(result.notes).toEqual([
      expect.stringMatching(/^route: fallback, keyword route → invalid \(first reply: not valid JSON/),
    ]);
    expect(result.llmCalls).toBe(2);
    expect(requestsOf('gather').length).toBe(before);
  });

  it('drops a plan dependency on an unknown resource deterministically, without asking the model again', async () => {
    script(fake, {
      plan: () => ({
        resources: [
          { id: 'data', type: 'aws_s3_bucket', name: 'data', dependsOn: ['ghost'], requirements: '' },
          { id: 'ver', type: 'aws_s3_bucket_versioning', name: 'data', dependsOn: ['data'], requirements: '' },
        ],
      }),
    });
    const before = requestsOf('plan').length;
    const result = await (await start('a bucket with versioning')).result();
    expect(result.phase).toBe('completed');
    expect(result.schemaCheck).toBe('passed');
    expect(requestsOf('plan').length - before).toBe(1);
    expect(result.llmPaths.plan).toBe('model');
    expect(result.plan?.resources.map((r) => r.dependsOn)).toEqual([[], ['data']]);
    expect(result.plan?.levels).toEqual([['data'], ['ver']]);
    expect(result.notes).toEqual(['plan: dropped the dependency of "data" on unknown resource "ghost"']);
  });

  it('breaks a dependency cycle deterministically (the back-edge is dropped and recorded)', async () => {
    script(fake, {
      plan: () => ({
        resources: [
          { id: 'a', type: 'aws_s3_bucket', name: 'a', dependsOn: ['b'], requirements: '' },
          { id: 'b', type: 'aws_s3_bucket', name: 'b', dependsOn: ['a'], requirements: '' },
        ],
      }),
    });
    const before = requestsOf('plan').length;
    const result = await (await start('two buckets')).result();
    expect(result.phase).toBe('completed');
    expect(requestsOf('plan').length - before).toBe(1);
    expect(result.plan?.resources.map((r) => [r.id, r.dependsOn])).toEqual([
      ['a', ['b']],
      ['b', []],
    ]);
    expect(result.plan?.levels).toEqual([['b'], ['a']]);
    expect(result.notes.filter((n) => n.startsWith('plan:'))).toEqual([
      'plan: broke a dependency cycle by dropping "b" → "a"',
    ]);
  });

  it('fails with the typed reason DesignPlanInvalid when neither the model nor the keywords give a plan', async () => {
    script(fake, { plan: () => ({ resources: [] }) });
    const err = await (await start('please make the thing we talked about')).result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause.type).toBe('DesignPlanInvalid');
    expect(cause.message).toContain('$.resources: fewer than 1 items');
  });

  it('a node whose calls keep failing falls back at once (no repair of a reply that never came)', async () => {
    script(fake, {
      gather: () => {
        throw new Error('stream dropped');
      },
    });
    const before = requestsOf('gather').length;
    const result = await (await start('a bucket with versioning in eu-west-1 for production')).result();
    expect(result.phase).toBe('completed');
    expect(result.schemaCheck).toBe('passed');
    // One retry of the call itself, with the same options; then the keyword requirements.
    const gathers = requestsOf('gather').slice(before);
    expect(gathers.map((r) => r.options?.temperature)).toEqual([0, 0]);
    expect(result.llmPaths.gather).toBe('fallback');
    expect(result.requirements).toEqual({ region: 'eu-west-1', environment: 'prod', dataStores: 'S3' });
    expect(result.notes).toEqual([
      expect.stringMatching(/^gather: fallback, requirements from keywords, no questions \(first reply: no answer/),
    ]);
  });

  it('a design waiting for answers is cancelled and ends cancelled', async () => {
    script(fake, { gather: () => ({ requirements: {}, questions: ['Which region?'] }) });
    const handle = await start('a bucket');
    await waitFor(handle, (s) => s.phase === 'waiting_for_answers');
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
  });

  it('a generating design is cancelled: the running llm activity gets the cancel through its heartbeat', async () => {
    let release: () => void = () => undefined;
    const hang = new Promise<void>((r) => (release = r));
    script(fake, { generate: async () => (await hang, { attributes: {} }) });
    // Only this design's requests and failures count: earlier tests made the same generate calls.
    const seenRequests = fake.requests.length;
    const seenFailures = llmFailures.length;
    const handle = await start('a bucket with versioning');
    try {
      await waitFor(handle, (s) => s.node === 'generate');
      const before = Date.now();
      const ours = () => fake.requests.slice(seenRequests).filter((r) => nodeOf(r) === 'generate');
      while (!ours().some((r) => userText(r).includes('Resource: aws_s3_bucket.data'))) {
        if (Date.now() - before > 30_000) throw new Error('generate never reached the model');
        await new Promise((r) => setTimeout(r, 100));
      }
      await handle.cancel();
      const err = await handle.result().catch((e: unknown) => e);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect((await handle.describe()).status.name).toBe('CANCELLED');
      const events = (await handle.fetchHistory()).events ?? [];
      expect(events.some((e) => e.activityTaskCancelRequestedEventAttributes)).toBe(true);
      // The activity learns it from its next heartbeat and stops (its Ollama request is aborted), long
      // before the scripted reply would come.
      const since = Date.now();
      let stopped: { purpose: string; err: unknown } | undefined;
      while (!(stopped = llmFailures.slice(seenFailures).find((f) => f.purpose.startsWith('generate: data (')))) {
        if (Date.now() - since > 30_000) throw new Error('the running llm activity never saw the cancel');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(stopped.err).toBeInstanceOf(CancelledFailure);
    } finally {
      release();
    }
  });

  /**
   * Every argument is in the provider schema and every reference resolves, so only terraform (FAKE_TERRAFORM)
   * finds the error: `bucket` and `bucket_prefix` conflict.
   */
  const conflictingGenerate = (req: FakeRequest) => {
    const type = /Resource: (\w+)\./.exec(userText(req))?.[1];
    return type === 'aws_s3_bucket' ? { attributes: { bucket: 'acme-data', bucket_prefix: 'acme-' } } : generated(req);
  };
  const mainOf = (req: FakeRequest) => /--- main\.tf\n([\s\S]*?)(?=\n--- |$)/.exec(userText(req))?.[1] ?? '';

  it('fixes an error terraform validate found on the second pass; only then is the design validated', async () => {
    script(fake, {
      generate: conflictingGenerate,
      fix: (req) => ({
        files: [{ name: 'main.tf', content: mainOf(req).replace(/\n\s*bucket_prefix = "acme-"/, '') }],
      }),
    });
    const handle = await start('a bucket with versioning', {}, tfQueue);
    const result = await handle.result();
    expect(result.schemaCheck).toBe('passed');
    expect(result.validation?.ok).toBe(true);
    // terraform ran (the scripted binary) and passed: the one case a design is called validated.
    expect(result.terraformValidate).toBe('passed');
    expect(result.terraformValidated).toBe(true);
    const fixes = requestsOf('fix');
    expect(userText(fixes[fixes.length - 1]!)).toContain(
      'ERROR [terraform] main.tf: Conflicting configuration arguments: "bucket": conflicts with bucket_prefix',
    );
    const status = await handle.query(designStatusQuery);
    expect(status.steps.map((s) => s.node).filter((n) => n === 'validate' || n === 'fix')).toEqual([
      'validate',
      'fix',
      'validate',
    ]);
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).not.toContain('bucket_prefix');
    await recordHistory('design-v2-generate-repair-terraform-fix', handle);
  });

  it('finishes with terraformValidated false and the errors when the fix budget runs out', async () => {
    script(fake, {
      generate: conflictingGenerate,
      fix: () => ({ files: [{ name: 'main.tf', content: 'resource "aws_s3_bucket" "data" {\n  bucket = \n}\n' }] }),
    });
    const handle = await start('a bucket', { maxFixIterations: 2 }, tfQueue);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.terraformValidated).toBe(false);
    expect(result.terraformValidate).toBe('failed');
    expect(result.schemaCheck).toBe('passed');
    expect(result.validation?.ok).toBe(false);
    // The stored version is the one with the fewest errors: the generated one, not the unparseable fix.
    expect(result.validation?.diagnostics.map((d) => d.check)).toEqual(['terraform']);
    expect(result.validation?.output).toContain('conflicts with bucket_prefix');
    const status = await handle.query(designStatusQuery);
    expect(status.steps.filter((s) => s.node === 'fix')).toHaveLength(2);
    expect(status.steps.filter((s) => s.node === 'validate')).toHaveLength(3);
  });

  it('a fix pass that drops a resource is not used: the files stay as they were', async () => {
    script(fake, {
      generate: conflictingGenerate,
      // "Fixes" the conflict by deleting the bucket's whole resource block.
      fix: (req) => ({
        files: [{ name: 'main.tf', content: mainOf(req).replace(/resource "aws_s3_bucket" "data" \{[^}]*\}\n?/, '') }],
      }),
    });
    const handle = await start('a bucket with versioning', { maxFixIterations: 1 }, tfQueue);
    const result = await handle.result();
    expect(result.notes).toContain('fix: pass 1 dropped aws_s3_bucket.data; not used');
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).toContain('resource "aws_s3_bucket" "data"');
    expect(result.terraformValidate).toBe('failed');
    expect(result.schemaCheck).toBe('passed');
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
    const generateBefore = requestsOf('generate').length;
    await handle.signal(designMessageSignal, { message: 'add a logs bucket' });
    const second = await waitFor(handle, (s) => s.revision === 2 && s.phase === 'completed');
    expect(second.plan?.resources.map((r) => r.id).sort()).toEqual(['data', 'logs', 'ver']);
    expect(second.plan?.levels).toEqual([['data', 'logs'], ['ver']]);
    expect(second.schemaCheck).toBe('passed');
    const lastGather = requestsOf('gather').pop()!;
    expect(userText(lastGather)).toContain('Change request: add a logs bucket');
    const main = Buffer.from(
      (await storage.getObjectBytes(second.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).toContain('resource "aws_s3_bucket" "logs"');
    // The revision started from the previous files: only the new resource was generated.
    expect(requestsOf('generate').length - generateBefore).toBe(1);
    expect(userText(requestsOf('generate').pop()!)).toContain('Resource: aws_s3_bucket.logs');
    // Both revisions are commits of the design's git repository; the second one's diff adds the logs bucket.
    expect(second.revisions.map((r) => r.revision)).toEqual([1, 2]);
    expect(second.revisions[0]!.message).toBe('revision 1: a bucket with versioning');
    expect(second.revisions[1]!.message).toBe('revision 2: add a logs bucket');
    expect(second.revisions[1]!.diff).toContain('+resource "aws_s3_bucket" "logs" {');
    expect(second.revisions[1]!.diff).not.toMatch(/^-resource "aws_s3_bucket" "data"/m);
    expect(second.revisions[1]!.added).toBeGreaterThan(0);
    expect(second.revisions[1]!.commit).toMatch(/^[0-9a-f]{40}$/);
    // The repository is in S3 as a git bundle: a clone of it has both commits.
    const bundle = await storage.getObjectBytes(designRepoKey(handle.workflowId));
    expect(bundle).toBeDefined();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'design-bundle-'));
    try {
      writeFileSync(path.join(dir, 'repo.bundle'), bundle!);
      execFileSync('git', ['clone', '-q', path.join(dir, 'repo.bundle'), path.join(dir, 'clone')]);
      const log = execFileSync('git', ['log', '--format=%H %s'], { cwd: path.join(dir, 'clone') }).toString();
      expect(log.trim().split('\n')).toEqual([
        `${second.revisions[1]!.commit} revision 2: add a logs bucket`,
        `${second.revisions[0]!.commit} revision 1: a bucket with versioning`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await handle.terminate('test done');
  });

  it('drops arguments the provider schema does not know, and reports which checks ran', async () => {
    script(fake, {
      generate: (req) =>
        /Resource: aws_s3_bucket\./.exec(userText(req))
          ? { attributes: { bucket: 'acme-data', versioning_enabled: true, force_destroy: 'maybe' } }
          : generated(req),
    });
    const handle = await start('a bucket with versioning');
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.notes).toEqual([
      'generate:data: dropped versioning_enabled: unsupported argument; force_destroy: must be a bool ' +
        '(not in the provider schema)',
    ]);
    expect(result.llmPaths['generate:data']).toBe('model');
    // The generator's call was constrained by the resource's own schema (Ollama's format).
    const call = requestsOf('generate').find((r) => userText(r).includes('Resource: aws_s3_bucket.data'))!;
    const format = call.format as { properties: { attributes: { properties: Record<string, unknown> } } };
    expect(Object.keys(format.properties.attributes.properties)).toContain('force_destroy');
    expect(Object.keys(format.properties.attributes.properties)).not.toContain('versioning_enabled');
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).toContain('bucket = "acme-data"');
    expect(main).not.toContain('versioning_enabled');
    expect(main).not.toContain('force_destroy');
    // The schema check ran and passed; terraform validate did not run, so the design is not "validated".
    expect(result.schemaCheck).toBe('passed');
    expect(result.validation?.schemaCheck).toMatchObject({ status: 'passed', errors: 0, checked: 2 });
    expect(result.terraformValidate).toBe('not_run');
    expect(result.terraformValidated).toBe(false);
    expect(result.diagram).toContain('flowchart LR');
    expect(result.diagram).toContain('r_ver --> r_data');
    // The progress events, in order, resumable from any seq.
    const page = await handle.query(designEventsQuery, { after: 0 });
    const types = page.events.map((e) => e.type);
    expect(types[0]).toBe('node_start');
    expect(types).toEqual(expect.arrayContaining(['plan', 'resource', 'validation', 'files', 'revision']));
    expect(types[types.length - 1]).toBe('done');
    expect(page.events.map((e) => e.seq)).toEqual(page.events.map((_e, i) => i + 1));
    const resource = page.events.find((e) => e.type === 'resource' && e.resource === 'data');
    expect(resource).toMatchObject({ address: 'aws_s3_bucket.data', path: 'model' });
    expect((resource as { dropped: string[] }).dropped).toHaveLength(1);
    const later = await handle.query(designEventsQuery, { after: 5 });
    expect(later.events[0]!.seq).toBe(6);
    expect(later.idle).toBe(true);
    await recordHistory('design-v2-generate-repair', handle);
  });

  it('catches a schema violation the fix pass introduced and sends the schema’s error to the next pass', async () => {
    script(fake, {
      generate: conflictingGenerate,
      fix: (req, call) => {
        // The first pass fixes the conflict but invents an argument; the second removes it.
        const fixed = mainOf(req).replace(/\n\s*bucket_prefix = "acme-"/, '');
        return {
          files: [
            {
              name: 'main.tf',
              content:
                call === 0
                  ? fixed.replace('bucket = "acme-data"', 'bucket = "acme-data"\n  acceleration = "fast"')
                  : fixed.replace(/\n\s*acceleration = "fast"/, ''),
            },
          ],
        };
      },
    });
    const handle = await start('a bucket with versioning', { maxFixIterations: 3 }, tfQueue);
    const result = await handle.result();
    const fixes = requestsOf('fix').slice(-2);
    expect(userText(fixes[0]!)).toContain('conflicts with bucket_prefix');
    expect(userText(fixes[1]!)).toContain(
      'ERROR [schema] main.tf: aws_s3_bucket.data: unsupported argument or block "acceleration"',
    );
    expect(result.validation?.ok).toBe(true);
    expect(result.schemaCheck).toBe('passed');
    const status = await handle.query(designStatusQuery);
    expect(status.steps.map((s) => s.node).filter((n) => n === 'validate' || n === 'fix')).toEqual([
      'validate',
      'fix',
      'validate',
      'fix',
      'validate',
    ]);
    const main = Buffer.from(
      (await storage.getObjectBytes(result.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).not.toContain('acceleration');
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
    expect(result.schemaCheck).toBe('passed');
    expect(result.llmPaths).toEqual({
      consultant: 'model',
      promptGenerator: 'model',
      engineer: 'model',
      lead: 'model',
    });
    await recordHistory('design-v1-schema-draft-lead-review', handle);
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

  it('v1 graph: the draft is repaired against the schema, and a follow-up adds to the previous files', async () => {
    script(fake, {
      consultant: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
      promptGenerator: () => 'One private S3 bucket for logs.',
      engineer: (req) =>
        userText(req).includes('Change request: add a queue for jobs')
          ? {
              resources: [
                // Already in the design: not drafted again, its code stays.
                { type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'other-name' } },
                {
                  type: 'aws_sqs_queue',
                  name: 'jobs',
                  attributes: { name: 'jobs', kms_master_key_id: 'aws_kms_key.jobs.arn' },
                },
              ],
            }
          : {
              resources: [
                { type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'acme-logs', versioning: 'on' } },
              ],
            },
      lead: () => ({ approved: true, notes: '' }),
    });
    const designId = uid('design');
    const handle = await env.client.workflow.start(infraDesignV1Workflow, {
      taskQueue,
      workflowId: designId,
      args: [{ designId, request: 'a logs bucket', model: MODEL, followUpWindow: '10 minutes' }],
    });
    const first = await waitFor(handle, (s) => s.phase === 'completed');
    expect(first.schemaCheck).toBe('passed');
    expect(first.notes).toEqual(['engineer:r1: dropped versioning: unsupported argument (not in the provider schema)']);
    await handle.signal(designMessageSignal, { message: 'add a queue for jobs' });
    const second = await waitFor(handle, (s) => s.revision === 2 && s.phase === 'completed');
    expect(second.graph).toBe('v1');
    expect(second.plan?.resources.map((r) => [r.id, `${r.type}.${r.name}`])).toEqual([
      ['r1', 'aws_s3_bucket.logs'],
      ['r2', 'aws_sqs_queue.jobs'],
    ]);
    expect(second.schemaCheck).toBe('passed');
    expect(second.validation?.ok).toBe(true);
    // The engineer was told what the design has; its guessed KMS key is not in the design, so the argument went.
    const engineers = requestsOf('engineer');
    expect(userText(engineers[engineers.length - 1]!)).toContain('The design already has: aws_s3_bucket.logs.');
    expect(second.notes).toEqual([
      'engineer:r2: references kms_master_key_id: dropped, aws_kms_key.jobs is not in the design',
    ]);
    const main = Buffer.from(
      (await storage.getObjectBytes(second.files.find((f) => f.name === 'main.tf')!.key))!,
    ).toString();
    expect(main).toContain('bucket = "acme-logs"');
    expect(main).not.toContain('other-name');
    expect(main).toContain('resource "aws_sqs_queue" "jobs"');
    expect(second.revisions.map((r) => r.message)).toEqual([
      'revision 1: a logs bucket',
      'revision 2: add a queue for jobs',
    ]);
    expect(second.revisions[1]!.diff).toContain('+resource "aws_sqs_queue" "jobs" {');
    expect(second.revisions[1]!.diff).not.toMatch(/^-resource "aws_s3_bucket" "logs"/m);
    await handle.terminate('test done');
    await recordHistory('design-v1-schema-draft-revision', handle);
  });

  it('v1 graph: an engineer whose drafts stay invalid falls back to the keyword plan with default bodies', async () => {
    script(fake, {
      consultant: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
      promptGenerator: () => 'Build a static website on S3 behind CloudFront.',
      engineer: () => ({ resources: [{ type: 'aws_magic_box', name: 'x', attributes: {} }] }),
      lead: () => ({ approved: true, notes: '' }),
    });
    const designId = uid('design');
    const handle = await env.client.workflow.start(infraDesignV1Workflow, {
      taskQueue,
      workflowId: designId,
      args: [{ designId, request: README_REQUEST, model: MODEL, followUpWindow: '1 second' }],
    });
    const result = await handle.result();
    expect(result.schemaCheck).toBe('passed');
    expect(result.llmPaths.engineer).toBe('fallback');
    expect(result.notes[0]).toMatch(
      /^engineer: fallback, keyword plan with default bodies \(first reply: \$\.resources\[0\]\.type/,
    );
    expect(result.plan?.resources.map((r) => r.type)).toContain('aws_cloudfront_distribution');
    // v1 on the shared engine commits its revision and draws its diagram too.
    expect(result.revisions.map((r) => r.revision)).toEqual([1]);
    expect(result.diagram).toContain('aws_cloudfront_distribution.cdn');
    await recordHistory('design-v1-schema-draft-fallback', handle);
  });
});
