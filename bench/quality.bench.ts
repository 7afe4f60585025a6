/**
 * Answer quality with the real models (docs/decisions.md on small models): a fixed eval of ~30
 * cases run through the production paths, per model installed by setup.
 * - Chat: customer questions on the sample shop (product / delivery / general, English and others) through the
 *   real chatWorkflow (router → data or agent reply → checks). Scored: right agent, router JSON valid on the
 *   first try, product answers carrying the ontology price, replies that leak instructions (system prompt,
 *   facts block), reply latency after the debounce window, tokens per turn.
 * - Designs: the route and plan calls of the agent graph with their production prompts and JSON schemas.
 *   Scored: JSON valid under the schema on the first try, right route decision.
 * Nothing is asserted: the rows are the measurement, with the targets of docs/operations.md (Benchmarks) as goals.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { createLlmActivities, createOllamaClient } from '../activities/llm';
import type { LlmActivities } from '../contracts/llm';
import type { Storage } from '../lib/storage/clients';
import { listOutboxMessages } from '../lib/chat/state';
import { parseOntology } from '../lib/chat/ontology';
import { generalSystemPrompt, PROMPT_MARKERS } from '../lib/chat/agents';
import { findEcho } from '../lib/chat/reply-check';
import { routerSystemPrompt } from '../lib/chat/router';
import type { OutboxMessage } from '../contracts/channel';
import { CHANNEL, chatWorkflowId, chatWorkflowInput } from '../api/routes/webhooks';
import { llmQueue, normalizeModel, ORCHESTRATOR_QUEUE } from '../common/task-queues';
import type { LlmResult } from '../contracts/llm';
import { chatMessageSignal } from '../contracts/definitions';
import type { ChatInboundMessage } from '../contracts/chat';
import type { chatWorkflow } from '../workflows/chat/chat-workflow';
import { designEvalCases, runDesignCase, type DesignCaseResult } from './quality-design';
import { ollamaModels } from '../scripts/lib/stack';
import { round, sleep, startStack, summarize, type Bench, type Row } from './lib';

const SHOP = path.join(__dirname, '..', 'test', 'fixtures', 'shop');
const QUIET_MS = 200;
/** BENCH_QUICK: the default model and every sixth chat case, two design cases — a smoke run, not a score. */
const QUICK = Boolean(process.env.BENCH_QUICK);

interface ChatCase {
  text: string;
  agent: 'product' | 'delivery' | 'general';
  /** A product case: the ontology price its answer must carry. */
  price?: string;
}

/** The fixed chat eval: every product and delivery fact of the sample shop, and small talk in five languages. */
export const CHAT_CASES: ChatCase[] = [
  { text: 'How much is the Linen Shirt?', agent: 'product', price: '39.90' },
  { text: 'What does the Wool Beanie cost?', agent: 'product', price: '24.50' },
  { text: 'Price of the Canvas Tote Bag please', agent: 'product', price: '18.00' },
  { text: 'How much is the leather belt?', agent: 'product', price: '49.00' },
  { text: 'Is the Wool Beanie in stock?', agent: 'product', price: '24.50' },
  { text: 'Do you have the Linen Shirt in stock?', agent: 'product', price: '39.90' },
  { text: 'Which sizes does the Linen Shirt come in?', agent: 'product' },
  { text: 'What colours is the Wool Beanie available in?', agent: 'product' },
  { text: 'Can I buy the Leather Belt now?', agent: 'product' },
  { text: 'What is the Canvas Tote Bag made of?', agent: 'product' },
  { text: 'How long does delivery take?', agent: 'delivery' },
  { text: 'How much is shipping?', agent: 'delivery' },
  { text: 'Do you offer express delivery?', agent: 'delivery' },
  { text: 'Do you ship to France?', agent: 'delivery' },
  { text: 'How can I track my order?', agent: 'delivery' },
  { text: 'How do I return an item?', agent: 'delivery' },
  { text: 'When will I get my refund?', agent: 'delivery' },
  { text: 'Is delivery free over 60 EUR?', agent: 'delivery' },
  { text: 'Hello!', agent: 'general' },
  { text: 'Thanks a lot, have a nice day', agent: 'general' },
  { text: 'Who are you?', agent: 'general' },
  { text: 'I am not happy with your service', agent: 'general' },
  { text: '안녕하세요', agent: 'general' },
  { text: '¿Cuánto cuesta la Linen Shirt?', agent: 'product', price: '39.90' },
];

export const bench: Bench = {
  name: 'quality',
  async run(ctx) {
    const served = await ollamaModels(ctx.ollamaUrl);
    const wanted = (ctx.tc.models?.length && !QUICK ? ctx.tc.models : [ctx.model]).map(normalizeModel);
    const chatCases = QUICK ? CHAT_CASES.filter((_, i) => i % 6 === 0) : CHAT_CASES;
    const designCases = QUICK ? designEvalCases.slice(0, 2) : designEvalCases;
    const models = wanted.filter((m) => served.includes(m));
    const rows: Row[] = [];
    for (const m of wanted.filter((w) => !served.includes(w))) {
      rows.push({ bench: 'quality', metric: `${m}: skipped`, value: NaN, unit: '', note: 'not served by the node' });
    }

    const ontology = readFileSync(path.join(SHOP, 'ontology.ttl'), 'utf8');
    const policy = readFileSync(path.join(SHOP, 'delivery-policy.md'), 'utf8');
    const suffix = Date.now().toString(36);
    // Every LLM result by the workflow that asked (its `purpose` names the chat), for tokens per turn.
    const usageByChat = new Map<string, number>();
    const base = createLlmActivities({
      ollama: createOllamaClient(ctx.ollamaUrl),
      nodeId: 'node-1',
      numCtx: ctx.config.LLM_NUM_CTX,
      callTimeoutMs: ctx.config.LLM_CALL_TIMEOUT_MS,
      keepAlive: '24h',
      numPredict: ctx.config.LLM_NUM_PREDICT,
    });
    const metered: LlmActivities = {
      ...base,
      async llmChat(input) {
        const res: LlmResult = await base.llmChat(input);
        const chatId = /chat (\S+?):/.exec(input.purpose ?? '')?.[1];
        if (chatId) usageByChat.set(chatId, (usageByChat.get(chatId) ?? 0) + res.usage.totalTokens);
        return res;
      },
    };
    // The production orchestrator, with llm Workers of our own on the model queues: the metered activities.
    const stack = await startStack(ctx, {
      workflows: 'orchestrator',
      config: { S3_BUCKET: `quality-${suffix}`, DYNAMO_TABLE_PREFIX: `quality-${suffix}-` },
      workers: ({ connection }) =>
        Promise.all(
          models.map((m) =>
            Worker.create({
              connection,
              taskQueue: llmQueue(m),
              activities: metered,
              maxConcurrentActivityTaskExecutions: 4,
            }),
          ),
        ),
    });
    const { client, config, storage } = stack;
    try {
      await storage.putObject(`${config.CHAT_SHOP_PREFIX}ontology.ttl`, ontology, 'text/turtle');
      await storage.putObject(`${config.CHAT_SHOP_PREFIX}delivery-policy.md`, policy, 'text/markdown');
      const products = parseOntology(ontology);
      const prompts = [
        generalSystemPrompt(),
        routerSystemPrompt(
          products.map((p) => p.name),
          ['price', 'other'],
        ),
      ];
      for (const model of models) {
        if (ctx.signal.aborted) break;
        ctx.log(`quality: ${model}: ${chatCases.length} chat cases`);
        const results: { c: ChatCase; reply: OutboxMessage; latencyMs: number; tokens: number }[] = [];
        for (const c of chatCases) {
          if (ctx.signal.aborted) break;
          const chatId = `q-${suffix}-${results.length}-${model.replace(/\W/g, '')}`;
          const sent = Date.now();
          const msg: ChatInboundMessage = { id: `m-${chatId}`, text: c.text, personType: 'user', createdAt: sent };
          await client.workflow.signalWithStart<typeof chatWorkflow, [ChatInboundMessage]>('chatWorkflow', {
            workflowId: chatWorkflowId(CHANNEL, chatId),
            taskQueue: ORCHESTRATOR_QUEUE,
            args: [
              chatWorkflowInput({ ...config, DEFAULT_MODEL: model }, chatId, { quietMs: QUIET_MS, maxWaitMs: 1000 }),
            ],
            signal: chatMessageSignal,
            signalArgs: [msg],
          });
          const reply = await waitForReply(storage, chatId, 300_000);
          results.push({ c, reply, latencyMs: Date.now() - sent - QUIET_MS, tokens: usageByChat.get(chatId) ?? 0 });
        }
        const policyPrices = [...policy.matchAll(/(\d+[.,]\d{2})\s?EUR/g)].map((m) => m[1]!.replace(',', '.'));
        rows.push(...scoreChat(policyPrices, model, results, products, prompts));

        ctx.log(`quality: ${model}: ${designCases.length} design route/plan cases`);
        const design: DesignCaseResult[] = [];
        for (const dc of designCases) {
          if (ctx.signal.aborted) break;
          design.push(await runDesignCase(base, model, dc));
        }
        const n = design.length;
        const pct = (k: number) => (n ? round((100 * k) / n, 1) : NaN);
        const routeCases = design.filter((d) => d.routeValid !== undefined);
        const planCases = design.filter((d) => d.planValid !== undefined);
        const validRow = (
          what: string,
          cases: DesignCaseResult[],
          valid: (d: DesignCaseResult) => boolean,
          note = '',
        ): Row => {
          const k = cases.filter(valid).length;
          return {
            bench: 'quality',
            metric: `${model}: design ${what} JSON valid (first try)`,
            value: cases.length ? round((100 * k) / cases.length, 1) : NaN,
            unit: '%',
            goal: '≥ 95%',
            pass: cases.length > 0 && k / cases.length >= 0.95,
            note: `n=${cases.length}${note}`,
          };
        };
        rows.push(
          validRow('route', routeCases, (d) => d.routeValid === true),
          {
            bench: 'quality',
            metric: `${model}: design route decision right (model alone)`,
            value: pct(design.filter((d) => d.routeRight).length),
            unit: '%',
            goal: '≥ 90%',
            pass: design.filter((d) => d.routeRight).length / Math.max(1, n) >= 0.9,
            note: `n=${n}; as the graph decides (infrastructure words over the model, keywords when invalid): ${pct(design.filter((d) => d.routeRightAfterFallback).length)}%`,
          },
          validRow(
            'plan',
            planCases,
            (d) => d.planValid === true,
            `; p50 ${round(summarize(design.map((d) => d.ms)).p50, 0)} ms per case`,
          ),
        );
      }
    } finally {
      await stack.stop();
    }
    return rows;
  },
};

async function waitForReply(storage: Storage, chatId: string, timeoutMs: number): Promise<OutboxMessage> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const replies = await listOutboxMessages(storage, CHANNEL, chatId, { limit: 1 });
    if (replies[0]) return replies[0];
    await sleep(50);
  }
  throw new Error(`no reply in chat ${chatId} within ${timeoutMs} ms`);
}

function scoreChat(
  policyPrices: string[],
  model: string,
  results: { c: ChatCase; reply: OutboxMessage; latencyMs: number; tokens: number }[],
  products: ReturnType<typeof parseOntology>,
  prompts: string[],
): Row[] {
  const n = results.length;
  const pct = (k: number) => (n ? round((100 * k) / n, 1) : NaN);
  const routed = results.filter((r) => r.reply.agent === r.c.agent).length;
  const validFirst = results.filter((r) => r.reply.meta?.path === 'model').length;
  const validAfterRepair = results.filter((r) => r.reply.meta?.path !== 'fallback').length;
  const priced = results.filter((r) => r.c.price);
  const withPrice = priced.filter((r) => r.reply.text.includes(r.c.price!)).length;
  const allowed = new Set([...products.map((p) => p.price), ...policyPrices]);
  const leaks = results.filter(
    (r) => PROMPT_MARKERS.some((m) => r.reply.text.includes(m)) || findEcho(r.reply.text, prompts, []) !== undefined,
  ).length;
  const wrongPrice = results.filter((r) =>
    [...r.reply.text.matchAll(/(\d+[.,]\d{2})\s?(?:EUR|€)/g)].some((m) => !allowed.has(m[1]!.replace(',', '.'))),
  ).length;
  const lat = summarize(results.map((r) => r.latencyMs));
  const tokens = summarize(results.map((r) => r.tokens));
  const replaced = results.filter((r) => r.reply.meta?.replaced).length;
  const byWriter = (w: string) => results.filter((r) => r.reply.meta?.writer === w).length;
  return [
    {
      bench: 'quality',
      metric: `${model}: chat right agent`,
      value: pct(routed),
      unit: '%',
      goal: '≥ 90%',
      pass: routed / Math.max(1, n) >= 0.9,
      note: `n=${n}; misrouted: ${results
        .filter((r) => r.reply.agent !== r.c.agent)
        .map((r) => `"${r.c.text}"→${r.reply.agent}`)
        .join(', ')}`,
    },
    {
      bench: 'quality',
      metric: `${model}: chat router JSON valid (first try)`,
      value: pct(validFirst),
      unit: '%',
      goal: '≥ 95%',
      pass: validFirst / Math.max(1, n) >= 0.95,
      note: `after one repair: ${pct(validAfterRepair)}%; keyword fallback used ${n - validAfterRepair}×`,
    },
    {
      bench: 'quality',
      metric: `${model}: product answers carrying the ontology price`,
      value: priced.length ? round((100 * withPrice) / priced.length, 1) : NaN,
      unit: '%',
      goal: '100%',
      pass: withPrice === priced.length,
      note: `n=${priced.length}; replies stating a price not in the data: ${wrongPrice}`,
    },
    {
      bench: 'quality',
      metric: `${model}: replies leaking instructions`,
      value: pct(leaks),
      unit: '%',
      goal: '0%',
      pass: leaks === 0,
      note: `writers: data ${byWriter('data')}, model ${byWriter('model')}, fallback ${byWriter('fallback')}; model drafts replaced by the checks: ${replaced}`,
    },
    {
      bench: 'quality',
      metric: `${model}: chat reply after the quiet window p50 / p95`,
      value: round(lat.p50, 0),
      unit: 'ms',
      note: `p95 ${round(lat.p95, 0)} ms (n=${lat.n}; includes the LLM calls on CPU)`,
    },
    {
      bench: 'quality',
      metric: `${model}: tokens per chat turn p50 / p95`,
      value: tokens.p50,
      unit: 'tokens',
      note: `p95 ${tokens.p95}`,
    },
  ];
}
