/**
 * chatWorkflow with the real small model (the default model on a real Ollama node). Nothing here depends on
 * what the model writes or which agent it picks: only what the workflow guarantees by construction, whatever
 * the model does. The model only picks {agent, product, intent}; product and delivery replies are written by
 * code from the data, so each reply must be exactly the data reply for the choice recorded with it, or a
 * general-agent draft that passed the checks (no numbers), or the polite fixed line. A choice without support
 * in the customer's words falls back (a greeting always goes to the general agent, a delivery question never
 * to the product agent), and a product reply names the product the customer named, with its price.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createLlmActivities, createOllamaClient } from '../../activities/llm';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { listOutboxMessages, readChatState } from '../../lib/chat/state';
import { parseOntology } from '../../lib/chat/ontology';
import { generalSystemPrompt, PROMPT_MARKERS } from '../../lib/chat/agents';
import { policyLines } from '../../lib/chat/policy';
import { findEcho, findPrices } from '../../lib/chat/reply-check';
import { routerSystemPrompt } from '../../lib/chat/router';
import { dataReply } from '../../lib/chat/replies';
import { language } from '../../lib/chat/language';
import type { OutboxMessage } from '../../contracts/channel';
import { CHANNEL, chatWorkflowId, chatWorkflowInput } from '../../api/routes/webhooks';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { llmQueue, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { Config } from '../../common/config';
import { chatMessageSignal } from '../../contracts/definitions';
import { CHAT_AGENTS, type ChatAgent, type ChatInboundMessage } from '../../contracts/chat';
import type { chatWorkflow } from '../../workflows/chat/chat-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

// The CPU model shares the machine with the rest of the suite: generous, and never asserted on speed.
jest.setTimeout(480_000);

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'shop');
const ontology = readFileSync(path.join(FIXTURES, 'ontology.ttl'), 'utf8');
const policy = readFileSync(path.join(FIXTURES, 'delivery-policy.md'), 'utf8');

let env: TestWorkflowEnvironment;
let storage: Storage;
let config: Config;
let workers: RunningWorkers | undefined;

beforeAll(async () => {
  env = await createTemporalEnv();
  config = testConfig({ S3_BUCKET: uid('chatreal').toLowerCase(), DYNAMO_TABLE_PREFIX: `${uid('chatreal')}-` });
  storage = createStorage(config);
  await ensureStorage(storage);
  await storage.putObject('shop/ontology.ttl', ontology, 'text/turtle');
  await storage.putObject('shop/delivery-policy.md', policy, 'text/markdown');
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows/chat/chat-workflow'),
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
  workers = runWorkers([orchestrator, llm]);
});

afterAll(async () => {
  await workers?.stop();
  storage?.close();
  await env?.teardown();
});

/**
 * Each question and what the workflow guarantees for it whatever the model picks: the agents it can end up
 * with (a product or delivery pick without support in the words falls back), and for a product reply the
 * product the customer named and text its facts must put in the reply.
 */
const QUESTIONS: { text: string; agents: ChatAgent[]; product?: { name: string; says: string[] } }[] = [
  {
    text: 'How much is the Linen Shirt?',
    agents: [...CHAT_AGENTS],
    product: { name: 'Linen Shirt', says: ['39.90 EUR'] },
  },
  {
    text: 'Is the Wool Beanie in stock?',
    agents: [...CHAT_AGENTS],
    product: { name: 'Wool Beanie', says: ['24.50 EUR', 'out of stock'] },
  },
  { text: 'How long does delivery take?', agents: ['delivery', 'general'] },
  { text: 'Hello! Who are you?', agents: ['general'] },
  { text: '안녕하세요', agents: ['general'] },
  {
    text: '¿Cuánto cuesta la Linen Shirt?',
    agents: [...CHAT_AGENTS],
    product: { name: 'Linen Shirt', says: ['39.90 EUR'] },
  },
];
/** Long enough for the longest data reply (all facts of a product, with a language note); far below a loop. */
const MAX_REPLY = 700;

async function waitForReply(chatId: string): Promise<OutboxMessage> {
  for (const deadline = Date.now() + 420_000; Date.now() < deadline;) {
    const replies = await listOutboxMessages(storage, CHANNEL, chatId, { limit: 5 });
    if (replies.length) return replies[0]!;
    await new Promise((r) => setTimeout(r, 250));
  }
  // Say why: a failed workflow, or where the turn is stuck (pending activities and their last failure).
  const desc = await env.client.workflow.getHandle(chatWorkflowId(CHANNEL, chatId)).describe();
  const pending = desc.raw.pendingActivities?.map((a) => ({
    type: a.activityType?.name,
    attempt: a.attempt,
    state: a.state,
    lastFailure: a.lastFailure?.message,
  }));
  throw new Error(`no reply in ${chatId}: workflow ${desc.status.name}, pending ${JSON.stringify(pending)}`);
}

it('each reply is the data reply for its recorded choice, a checked general draft or the polite line; agents and products stay within what the words support', async () => {
  const products = parseOntology(ontology);
  const ontologyPrices = new Set(products.map((p) => Number(p.price)));
  const dataPrices = new Set([...ontologyPrices, ...policyLines(policy).flatMap(findPrices)]);
  const prompts = [
    generalSystemPrompt(),
    routerSystemPrompt(
      products.map((p) => p.name),
      ['price', 'other'],
    ),
  ];
  const chats = QUESTIONS.map((q, i) => ({ chatId: uid(`real${i}`), ...q }));
  for (const { chatId, text } of chats) {
    const msg: ChatInboundMessage = { id: `r-${chatId}`, text, personType: 'user', createdAt: Date.now() };
    await env.client.workflow.signalWithStart<typeof chatWorkflow, [ChatInboundMessage]>('chatWorkflow', {
      workflowId: chatWorkflowId(CHANNEL, chatId),
      taskQueue: ORCHESTRATOR_QUEUE,
      args: [chatWorkflowInput(config, chatId, { quietMs: 200, maxWaitMs: 1000 })],
      signal: chatMessageSignal,
      signalArgs: [msg],
    });
  }
  const replies = await Promise.all(chats.map((c) => waitForReply(c.chatId)));
  for (const [i, reply] of replies.entries()) {
    const { text } = reply;
    const q = chats[i]!;
    // The reply and how it was made, in the test output: what a person checks when an invariant fails.
    console.log(`${q.text} → [${JSON.stringify(reply.meta)}] ${text}`);
    expect(text.trim().length).toBeGreaterThan(0);
    expect(text.length).toBeLessThanOrEqual(MAX_REPLY);
    expect(reply.meta).toMatchObject({
      path: expect.stringMatching(/^(model|repaired|fallback)$/),
      writer: expect.stringMatching(/^(data|model|fallback)$/),
    });
    const { agent, product, intent, writer, lang } = reply.meta!;
    expect(reply.agent).toBe(agent);
    expect(q.agents).toContain(agent);
    // Who wrote the text decides exactly what it can be.
    if (writer === 'data') {
      expect(agent).not.toBe('general');
      expect(text).toBe(dataReply({ agent, product, intent }, { products, policy }, lang).text);
    } else if (writer === 'fallback') {
      expect(agent).toBe('general');
      expect(text).toBe(language(lang).fallback);
    } else {
      // The general agent's draft went out only because it passed the checks: no number no data backs.
      expect(agent).toBe('general');
      expect(text).not.toMatch(/\p{N}/u);
    }
    if (agent === 'product' && q.product) {
      expect(product).toBe(q.product.name);
      for (const fact of q.product.says) expect(text).toContain(fact);
    }
    for (const marker of PROMPT_MARKERS) expect(text).not.toContain(marker);
    expect(text).not.toMatch(/\(SKU [A-Z]+-\d+\)/);
    expect(findEcho(text, prompts, [])).toBeUndefined();
    for (const price of findPrices(text)) {
      expect(agent === 'product' ? ontologyPrices : dataPrices).toContain(price);
    }
  }
  // Whatever the model can write, a Korean customer gets Korean.
  expect(replies[QUESTIONS.findIndex((q) => q.text === '안녕하세요')]!.text).toMatch(/\p{Script=Hangul}/u);
  // The state row is written right after the reply.
  const [first] = chats;
  let state = await readChatState(storage, CHANNEL, first!.chatId);
  for (const deadline = Date.now() + 10_000; !state?.turns && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 100));
    state = await readChatState(storage, CHANNEL, first!.chatId);
  }
  expect(state).toMatchObject({ turns: 1, lastAgent: replies[0]!.agent });
  expect(state!.messages.at(-1)).toMatchObject({ role: 'bot', meta: replies[0]!.meta });
});
