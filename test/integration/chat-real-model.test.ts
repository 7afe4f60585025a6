/**
 * chatWorkflow with the real small model (gemma3:270m on a real Ollama node): whatever the model writes,
 * the router's structured output picks a valid agent and a product reply states only ontology prices.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createLlmActivities, createOllamaClient } from '../../activities/llm';
import { createStorage, ensureStorage, type Storage } from '../../activities/storage/clients';
import { listOutboxMessages, readChatState } from '../../activities/chat/state';
import { parseOntology } from '../../activities/chat/ontology';
import { CHANNEL, chatWorkflowId, chatWorkflowInput } from '../../api/routes/webhooks';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { llmQueue, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { Config } from '../../common/config';
import { chatMessageSignal, type ChatInboundMessage } from '../../workflows/definitions';
import { extractPrices, type chatWorkflow } from '../../workflows/chat-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';

// The CPU model shares the machine with the rest of the suite: generous, and never asserted on speed.
jest.setTimeout(480_000);

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'shop');
const ontology = readFileSync(path.join(FIXTURES, 'ontology.ttl'), 'utf8');

let env: TestWorkflowEnvironment;
let storage: Storage;
let config: Config;
let workers: Worker[];
let running: Promise<unknown>;

beforeAll(async () => {
  env = await createTemporalEnv();
  config = testConfig({ S3_BUCKET: uid('chatreal').toLowerCase(), DYNAMO_TABLE_PREFIX: `${uid('chatreal')}-` });
  storage = createStorage(config);
  await ensureStorage(storage);
  await storage.putObject('shop/ontology.ttl', ontology, 'text/turtle');
  await storage.putObject('shop/delivery-policy.md', readFileSync(path.join(FIXTURES, 'delivery-policy.md')));
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows/chat-workflow'),
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
      callTimeoutMs: 400_000,
    }),
  });
  workers = [orchestrator, llm];
  running = Promise.all(workers.map((w) => w.run()));
});

afterAll(async () => {
  for (const w of workers ?? []) if (w.getState() === 'RUNNING') w.shutdown();
  await running?.catch(() => undefined);
  storage?.close();
  await env?.teardown();
});

it('answers a price question with the real model and states no price the ontology lacks', async () => {
  const chatId = uid('real');
  const msg: ChatInboundMessage = {
    id: 'r1',
    text: 'How much is the Linen Shirt?',
    personType: 'user',
    createdAt: Date.now(),
  };
  await env.client.workflow.signalWithStart<typeof chatWorkflow, [ChatInboundMessage]>('chatWorkflow', {
    workflowId: chatWorkflowId(CHANNEL, chatId),
    taskQueue: ORCHESTRATOR_QUEUE,
    args: [chatWorkflowInput(config, chatId, { quietMs: 200, maxWaitMs: 1000 })],
    signal: chatMessageSignal,
    signalArgs: [msg],
  });
  let replies = await listOutboxMessages(storage, CHANNEL, chatId, { limit: 5 });
  for (const deadline = Date.now() + 420_000; replies.length === 0 && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 250));
    replies = await listOutboxMessages(storage, CHANNEL, chatId, { limit: 5 });
  }
  if (replies.length === 0) {
    // Say why: a failed workflow, or where the turn is stuck (pending activities and their last failure).
    const desc = await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).describe();
    const pending = desc.raw.pendingActivities?.map((a) => ({
      type: a.activityType?.name,
      attempt: a.attempt,
      state: a.state,
      lastFailure: a.lastFailure?.message,
    }));
    throw new Error(`no reply: workflow ${desc.status.name}, pending ${JSON.stringify(pending)}`);
  }
  expect(replies).toHaveLength(1);
  const reply = replies[0]!;
  expect(reply.text.trim().length).toBeGreaterThan(0);
  expect(['product', 'delivery', 'general']).toContain(reply.agent);
  const allowed = new Set(parseOntology(ontology).map((p) => Number(p.price)));
  if (reply.agent === 'product') {
    for (const price of extractPrices(reply.text)) expect(allowed).toContain(price);
  }
  // The state row is written right after the reply.
  let state = await readChatState(storage, CHANNEL, chatId);
  for (const deadline = Date.now() + 10_000; !state?.turns && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 100));
    state = await readChatState(storage, CHANNEL, chatId);
  }
  expect(state).toMatchObject({ turns: 1, lastAgent: reply.agent });
});
