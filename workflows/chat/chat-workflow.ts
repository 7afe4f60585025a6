/**
 * chatWorkflow: one durable workflow per customer conversation (`chat-<channel>-<chatId>`), fed by the
 * webhook through signalWithStart. It deduplicates by message id, debounces a burst (quiet window, capped
 * by a maximum wait), and answers it: one structured-output LLM call picks {agent, product, intent} from
 * enums built from the shop data (one repair attempt, then keywords); product and delivery replies are
 * written from the data, only the general agent writes free text, and every reply is checked before the
 * channel adapter sends it. It stores the state each turn. A manager's message pauses the bot; the chat continues-as-new before its
 * history grows large and closes after inactivity.
 */
import {
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { ChannelActivities } from '../../contracts/channel';
import type {
  ChatActivities,
  ChatAgent,
  ChatChoice,
  ChatLine,
  ChatPath,
  ChatReplyMeta,
  ChatState,
  ChatTurnPlan,
  ProductFact,
} from '../../contracts/chat';
import type { ChatMessage } from '../../contracts/llm';
import { NON_RETRYABLE_ERROR_TYPES } from '../../common/errors';
import { chatMessageSignal, chatResumeSignal, chatStatusQuery } from '../../contracts/definitions';
import { LLM_CALL, STORAGE, llmActivities } from '../policies';
import type { ChatStatus, ChatWorkflowInput, ChatWorkflowResult, PendingChatMessage } from '../../contracts/chat';

/** Lines kept verbatim in state; older ones are folded into the running summary. */
export const HISTORY_KEEP = 30;
/** Message ids remembered for dedup: redeliveries come within minutes, not thousands of messages later. */
export const SEEN_KEEP = 500;
const SUMMARY_MAX_CHARS = 2000;

/** Sending a reply: the channel may be briefly down; after ~15 minutes of retries a reply is stale anyway. */
const CHANNEL_SEND: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 20,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};

/** The turn's storage steps as local activities: STORAGE's timeout and retries. */
const STORAGE_LOCAL: LocalActivityOptions = {
  startToCloseTimeout: STORAGE.startToCloseTimeout,
  scheduleToCloseTimeout: STORAGE.scheduleToCloseTimeout,
  retry: STORAGE.retry,
};

/** JSON schema for the router's structured output (Ollama `format`), so even a small model returns JSON. */
export const ROUTER_SCHEMA = {
  type: 'object',
  properties: {
    agent: { type: 'string', enum: ['product', 'delivery', 'general'] },
    reason: { type: 'string' },
  },
  required: ['agent', 'reason'],
} as const;

const ROUTER_SYSTEM =
  'You route messages from customers of an online shop to the right agent. Answer with JSON ' +
  '{"agent": ..., "reason": ...}. agent is "product" for questions about products, prices, stock, sizes or ' +
  'colours; "delivery" for shipping, delivery times or costs, tracking and returns; "general" for anything ' +
  'else (greetings, thanks, complaints). reason is one short sentence.';

export async function chatWorkflow(input: ChatWorkflowInput): Promise<ChatWorkflowResult> {
  const chat = proxyActivities<ChatActivities>(STORAGE);
  const chatLocal = proxyLocalActivities<ChatActivities>(STORAGE_LOCAL);
  /**
   * A turn's own steps (load state, prepare, compose, save: reads of cached shop data and one row each) run as local
   * activities inside the workflow task: each regular activity costs a task dispatch plus one more workflow task,
   * and at 200 concurrent chats those queued behind each other (docs/decisions.md, "Chats at load").
   * Runs recorded before this patch replay their regular activities.
   */
  const steps = () => (patched(CHAT_LOCAL_STEPS_PATCH) ? chatLocal : chat);
  const channel = proxyActivities<ChannelActivities>(CHANNEL_SEND);
  const llm = llmActivities(input.model);
  const { workflowId } = workflowInfo();

  let state: ChatState = input.carried?.state ?? {
    channel: input.channel,
    chatId: input.chatId,
    workflowId,
    turns: 0,
    messages: [],
    summary: '',
    paused: false,
    seenIds: [],
    updatedAt: Date.now(),
  };
  const pending: PendingChatMessage[] = [...(input.carried?.pending ?? [])];
  let firstPendingAt = input.carried?.firstPendingAt;
  let lastMessageAt = input.carried?.lastMessageAt;
  let lastActivityAt = input.carried?.lastActivityAt ?? Date.now();
  let phase: ChatStatus['phase'] = 'idle';
  /** Bumped by every accepted message or resume: what the waits below wake on. */
  let events = 0;
  let dirty = false;
  let turnsThisRun = 0;

  setHandler(chatStatusQuery, () => ({
    channel: input.channel,
    chatId: input.chatId,
    turns: state.turns,
    pending: pending.length,
    paused: state.paused,
    pausedUntil: state.pausedUntil,
    lastAgent: state.lastAgent,
    // A manager's message pauses at once, even before the main loop gets to run.
    phase: state.paused ? 'paused' : phase,
  }));

  // A fresh run (the previous one closed when idle) picks up the stored conversation and its seen ids.
  // Signals that arrive meanwhile are buffered until their handler is set below.
  if (!input.carried) {
    const stored = await steps().loadChatState({ channel: input.channel, chatId: input.chatId });
    if (stored) state = { ...stored, workflowId };
  }
  const seen = new Set(state.seenIds);

  const record = (line: ChatLine) => {
    state.messages.push(line);
    if (state.messages.length > HISTORY_KEEP) {
      const old = state.messages.splice(0, state.messages.length - HISTORY_KEEP);
      state.summary = foldSummary(state.summary, old);
    }
  };

  setHandler(chatMessageSignal, (msg) => {
    if (seen.has(msg.id)) return;
    seen.add(msg.id);
    state.seenIds.push(msg.id);
    if (state.seenIds.length > SEEN_KEEP) seen.delete(state.seenIds.shift()!);
    const now = Date.now();
    lastActivityAt = now;
    events++;
    if (msg.personType === 'manager') {
      // The human takes over: what the bot had not answered yet is now theirs.
      for (const p of pending.splice(0))
        record({ role: 'customer', text: p.text, at: p.receivedAt, id: p.id, held: true });
      firstPendingAt = lastMessageAt = undefined;
      record({ role: 'manager', text: msg.text, at: now, id: msg.id });
      state.paused = true;
      state.pausedUntil = now + input.managerPauseMs;
      dirty = true;
      return;
    }
    if (state.paused) {
      record({ role: 'customer', text: msg.text, at: now, id: msg.id, held: true });
      dirty = true;
      return;
    }
    pending.push({ ...msg, receivedAt: now });
    firstPendingAt ??= now;
    lastMessageAt = now;
  });

  setHandler(chatResumeSignal, () => {
    if (!state.paused) return;
    state.paused = false;
    state.pausedUntil = undefined;
    lastActivityAt = Date.now();
    dirty = true;
    events++;
  });

  const save = async () => {
    dirty = false;
    state.updatedAt = Date.now();
    await steps().saveChatState(state);
  };

  for (;;) {
    if (state.paused && state.pausedUntil !== undefined && Date.now() >= state.pausedUntil) {
      state.paused = false;
      state.pausedUntil = undefined;
      dirty = true;
    }
    if (dirty) await save();

    if (state.paused || pending.length === 0) {
      phase = state.paused ? 'paused' : 'idle';
      const now = Date.now();
      const idleAt = lastActivityAt + input.idleCloseMs;
      if (now >= idleAt) {
        phase = 'idle';
        await save();
        return { turns: state.turns, closedBy: 'idle' };
      }
      const wakeAt = state.paused && state.pausedUntil !== undefined ? Math.min(idleAt, state.pausedUntil) : idleAt;
      const seenEvents = events;
      // `dirty` too: a held message may have arrived while the previous save was in flight.
      await condition(() => events !== seenEvents || dirty, Math.max(1, wakeAt - now));
      continue;
    }

    // Debounce: wait until the chat is quiet, but never past the maximum wait since the first message.
    phase = 'debouncing';
    while (!state.paused && pending.length > 0) {
      const until = Math.min((lastMessageAt ?? 0) + input.quietMs, (firstPendingAt ?? 0) + input.maxWaitMs);
      const now = Date.now();
      if (until <= now) break;
      const seenEvents = events;
      await condition(() => events !== seenEvents, until - now);
    }
    if (state.paused || pending.length === 0) continue;

    // Everything that arrives from here on waits for the next batch.
    const batch = pending.splice(0);
    firstPendingAt = lastMessageAt = undefined;
    phase = 'answering';
    await answer(batch);
    phase = 'idle';
    turnsThisRun++;
    lastActivityAt = Date.now();

    if (turnsThisRun >= input.turnLimit || workflowInfo().continueAsNewSuggested) {
      log.info('chat continues as new', { turns: state.turns, turnsThisRun });
      await continueAsNew<typeof chatWorkflow>({
        ...input,
        carried: { state, pending, firstPendingAt, lastMessageAt, lastActivityAt },
      });
    }
  }

  async function answer(batch: PendingChatMessage[]): Promise<void> {
    // Runs recorded before structured replies replay through the free-text path they took.
    if (!patched(STRUCTURED_REPLIES_PATCH)) return answerFreeText(batch);
    const history = state.messages.slice();
    const texts = batch.map((m) => m.text);
    for (const m of batch) record({ role: 'customer', text: m.text, at: m.receivedAt, id: m.id });

    const plan = await steps().prepareChatTurn({
      shopPrefix: input.shopPrefix,
      summary: state.summary,
      history,
      batch: texts,
    });
    const routed = await choose(plan);
    const { path } = routed;
    const choice = supportedChoice(routed.choice, plan);
    if (choice !== routed.choice) {
      log.info('router choice has no support in the customer’s words: general agent', { routed: routed.choice });
    }
    let draft: { text: string; doneReason?: string } | undefined;
    if (choice.agent === 'general') {
      // Only the general agent writes free text; product and delivery facts are written from the data.
      try {
        const res = await llmActivities(input.model, {
          summary: `chat ${input.chatId}: general agent`,
          ...AGENT_CALL,
        }).llmChat({
          model: input.model,
          messages: plan.general,
          options: { temperature: 0.3, num_predict: GENERAL_NUM_PREDICT },
          kind: 'chat.agent',
          purpose: `chat ${input.chatId}: general agent`,
        });
        draft = { text: res.content, doneReason: res.doneReason };
      } catch (err) {
        // No draft: the reply check turns an empty draft into the polite fixed line in the customer's language.
        log.warn('general agent call failed: polite fallback', { error: failureMessage(err) });
        draft = { text: '', doneReason: 'error' };
      }
    }
    const reply = await steps().composeChatReply.executeWithOptions(
      { summary: `reply: ${choice.agent} · ${choice.product} · ${choice.intent} (router: ${path})` },
      [
        {
          shopPrefix: input.shopPrefix,
          choice,
          candidates: plan.candidates,
          fallback: plan.fallback,
          batch: texts,
          draft,
        },
      ],
    );
    if (reply.replaced) {
      log.warn('chat reply replaced by the safe reply', {
        turn: state.turns + 1,
        ...reply.replaced,
        draft: draft?.text.slice(0, 300),
      });
    }
    const meta: ChatReplyMeta = { ...reply.choice, path, writer: reply.writer, lang: reply.lang };
    if (reply.replaced) meta.replaced = reply.replaced;
    log.info('chat turn', { turn: state.turns + 1, ...meta });
    await sendReply(batch, reply.text, reply.choice.agent, meta);
  }

  /** The router's structured choice; invalid output gets one repair attempt, then the keyword fallback. */
  async function choose(plan: ChatTurnPlan): Promise<{ choice: ChatChoice; path: ChatPath }> {
    const call = (messages: ChatMessage[], what: string) =>
      // The summary is what the Web UI shows on the activity.
      llmActivities(input.model, { summary: `chat ${input.chatId}: ${what}`, ...ROUTE_CALL }).llmChat({
        model: input.model,
        messages,
        format: plan.router.format,
        options: { temperature: 0, num_predict: ROUTE_NUM_PREDICT },
        kind: 'chat.route',
        purpose: `chat ${input.chatId}: ${what}`,
      });
    // A router call that fails for good (node down, timed out twice) costs the customer nothing but the model's
    // pick: the keywords answer instead, and the turn goes on.
    const fallback = (err: unknown) => {
      log.warn('router call failed: keyword fallback', { error: failureMessage(err), fallback: plan.fallback });
      return { choice: plan.fallback, path: 'fallback' as const };
    };
    let first;
    try {
      first = await call(plan.router.messages, 'route');
    } catch (err) {
      return fallback(err);
    }
    const parsed = parseChoice(first.content, plan.router);
    if ('choice' in parsed) return { choice: parsed.choice, path: 'model' };
    log.warn('router output invalid: asking once more', { error: parsed.error, content: first.content.slice(0, 200) });
    let second;
    try {
      second = await call(
        [
          ...plan.router.messages,
          { role: 'assistant', content: first.content.slice(0, 500) },
          { role: 'user', content: repairPrompt(parsed.error) },
        ],
        'route (repair)',
      );
    } catch (err) {
      return fallback(err);
    }
    const again = parseChoice(second.content, plan.router);
    if ('choice' in again) return { choice: again.choice, path: 'repaired' };
    log.warn('router output invalid twice: keyword fallback', { error: again.error, fallback: plan.fallback });
    return { choice: plan.fallback, path: 'fallback' };
  }

  /** Records and sends a reply, unless a manager took over meanwhile. */
  async function sendReply(batch: PendingChatMessage[], text: string, agent: ChatAgent, meta?: ChatReplyMeta) {
    state.turns++;
    state.lastAgent = agent;
    if (state.paused) {
      // A manager spoke while this answer was being written: they have the chat now, so it is not sent.
      log.info('reply dropped: a manager took over', { turn: state.turns });
      await save();
      return;
    }
    const replyId = `${input.channel}:${input.chatId}:${state.turns}`;
    await channel.deliverChatReply({
      channel: input.channel,
      chatId: input.chatId,
      replyId,
      turn: state.turns,
      text,
      agent,
      inReplyTo: batch.map((m) => m.id),
      ...(meta ? { meta } : {}),
    });
    record({ role: 'bot', text, at: Date.now(), id: replyId, agent, ...(meta ? { meta } : {}) });
    await save();
  }

  /** Before structured replies: route, then the agent writes free text, grounded afterwards (kept for replay). */
  async function answerFreeText(batch: PendingChatMessage[]): Promise<void> {
    const history = state.messages.slice();
    const texts = batch.map((m) => m.text);
    for (const m of batch) record({ role: 'customer', text: m.text, at: m.receivedAt, id: m.id });
    const [agent, prompts] = await Promise.all([
      route(texts, history),
      chat.buildAgentPrompts({ shopPrefix: input.shopPrefix, summary: state.summary, history, batch: texts }),
    ]);
    const res = await llm.llmChat({
      model: input.model,
      messages: [{ role: 'system', content: prompts.systems[agent] }, ...prompts.turns],
      options: { temperature: 0.2, num_predict: 200 },
      purpose: `chat ${input.chatId}: ${agent} agent`,
    });
    let text = res.content.trim();
    if (agent === 'product') text = groundProductReply(text, prompts.products);
    if (!text) text = 'Thanks for your message! A colleague will get back to you shortly.';
    await sendReply(batch, text, agent);
  }

  async function route(texts: string[], history: ChatLine[]): Promise<ChatAgent> {
    const context = history
      .slice(-4)
      .map((l) => `${l.role}: ${l.text}`)
      .join('\n');
    const messages: ChatMessage[] = [
      { role: 'system', content: ROUTER_SYSTEM },
      {
        role: 'user',
        content: `${context ? `Earlier:\n${context}\n\n` : ''}New messages:\n${texts.join('\n')}`,
      },
    ];
    const res = await llm.llmChat({
      model: input.model,
      messages,
      format: ROUTER_SCHEMA as unknown as Record<string, unknown>,
      options: { temperature: 0, num_predict: 80 },
      purpose: `chat ${input.chatId}: route`,
    });
    return parseRoute(res.content) ?? keywordRoute(texts.join(' '));
  }
}

/**
 * A product or delivery choice needs support in the customer's words (a product named, product or delivery
 * keywords: the plan's keyword choice). Without any, it is what a small model picks for "hello" (the first
 * enum values), and the general agent answers instead.
 */
export function supportedChoice(choice: ChatChoice, plan: Pick<ChatTurnPlan, 'fallback' | 'candidates'>): ChatChoice {
  // Delivery words and no product named: a delivery question, whatever a small model picked (both models sent
  // "How much is shipping?" to the product agent, which can only ask which product is meant).
  if (choice.agent === 'product' && plan.fallback.agent === 'delivery' && plan.candidates.length === 0) {
    return plan.fallback;
  }
  if (choice.agent === 'general' || plan.fallback.agent !== 'general') return choice;
  return { agent: 'general', product: 'none', intent: 'other' };
}

/**
 * A chat turn waits for its LLM calls: a router pick is worth at most ~20 s and two tries before the keywords
 * take over; the general agent's draft ~45 s. Past that a customer is better served by the fallback.
 */
const ROUTE_CALL = {
  startToCloseTimeout: '20 seconds',
  retry: { ...LLM_CALL.retry, maximumAttempts: 2 },
} satisfies ActivityOptions;
const AGENT_CALL = {
  startToCloseTimeout: '45 seconds',
  retry: { ...LLM_CALL.retry, maximumAttempts: 2 },
} satisfies ActivityOptions;

/** The innermost failure message (an activity's own, e.g. InferenceTimeout), for the log. */
function failureMessage(err: unknown): string {
  let cur: unknown = err;
  let msg = String(err);
  for (let i = 0; cur && i < 5; i++) {
    if (cur instanceof Error) msg = cur.message;
    cur = (cur as { cause?: unknown }).cause;
  }
  return msg;
}

/** The patch id of a turn's storage steps as local activities. */
export const CHAT_LOCAL_STEPS_PATCH = 'chat-local-steps';
/** The patch id of structured replies (router picks, data states, replies checked). */
export const STRUCTURED_REPLIES_PATCH = 'chat-structured-replies';
/** {agent, product, intent} is about 30 tokens; the bound leaves room for whitespace, not for prose. */
const ROUTE_NUM_PREDICT = 64;
/** Two or three sentences: more only gives a small model room to ramble or loop. */
const GENERAL_NUM_PREDICT = 96;

/** What the repair attempt tells the model. */
export function repairPrompt(error: string): string {
  return `That answer is not valid: ${error}. Answer again with only the JSON object {"agent": ..., "product": ..., "intent": ...}, using the allowed values.`;
}

/** The router's structured output checked against this turn's enums, or why it is unusable. */
export function parseChoice(
  content: string,
  allowed: { agents: readonly string[]; products: readonly string[]; intents: readonly string[] },
): { choice: ChatChoice } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(content);
  } catch {
    return { error: `not JSON: ${JSON.stringify(content.slice(0, 80))}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  const problems: string[] = [];
  const pickOne = (field: string, values: readonly string[]): string => {
    const raw = o[field];
    const hit = typeof raw === 'string' ? values.find((x) => x.toLowerCase() === raw.trim().toLowerCase()) : undefined;
    if (hit === undefined) {
      problems.push(
        typeof raw === 'string'
          ? `"${field}" must be one of ${values.join(', ')}, not ${JSON.stringify(raw.slice(0, 60))}`
          : `"${field}" is missing`,
      );
    }
    return hit ?? '';
  };
  const choice: ChatChoice = {
    agent: pickOne('agent', allowed.agents) as ChatAgent,
    product: pickOne('product', allowed.products),
    intent: pickOne('intent', allowed.intents),
  };
  return problems.length ? { error: problems.join('; ') } : { choice };
}

/** The router's agent, or undefined when the model's JSON is unusable. */
export function parseRoute(content: string): ChatAgent | undefined {
  try {
    const v = JSON.parse(content) as { agent?: unknown };
    return v.agent === 'product' || v.agent === 'delivery' || v.agent === 'general' ? v.agent : undefined;
  } catch {
    return undefined;
  }
}

/** Fallback when structured output failed: cheap keywords beat a wrong agent. */
export function keywordRoute(text: string): ChatAgent {
  const t = text.toLowerCase();
  if (/deliver|shipping|ship |parcel|tracking|return|refund|express/.test(t)) return 'delivery';
  if (/price|cost|how much|stock|size|colou?r|available|buy/.test(t)) return 'product';
  return 'general';
}

const PRICE_RE =
  /(?:€|\$|£|\b(?:eur|usd|gbp)\b)\s?(\d+(?:[.,]\d{1,2})?)|(\d+(?:[.,]\d{1,2})?)\s?(?:€|\$|£|\b(?:eur|usd|gbp|euros?|dollars?)\b)|\b(\d+[.,]\d{2})\b/gi;

/** Every price-like amount in a text, as numbers. */
export function extractPrices(text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(PRICE_RE)) {
    const raw = m[1] ?? m[2] ?? m[3];
    if (raw) out.push(Number(raw.replace(',', '.')));
  }
  return out;
}

/**
 * The product agent must never state a price the ontology does not have. A reply with any other amount is
 * replaced by one written from the facts; a reply that names an out-of-stock product without saying so
 * gets the stock fact appended.
 */
export function groundProductReply(reply: string, products: ProductFact[]): string {
  const allowed = new Set(products.flatMap((p) => (p.price !== undefined ? [Number(p.price)] : [])));
  const invented = extractPrices(reply).filter((n) => !allowed.has(n));
  if (invented.length > 0 || !reply) return factsReply(products);
  const lower = reply.toLowerCase();
  const saysOut = /out of stock|sold out|not (?:in stock|available)|unavailable/.test(lower);
  const notes = products
    .filter((p) => isOut(p) && lower.includes(p.name.toLowerCase()) && !saysOut)
    .map((p) => `Please note: ${p.name} is currently out of stock.`);
  return notes.length ? `${reply} ${notes.join(' ')}` : reply;
}

function isOut(p: ProductFact): boolean {
  return p.availability === 'OutOfStock' || p.availability === 'SoldOut' || p.availability === 'Discontinued';
}

/** A plain answer written only from the facts. */
export function factsReply(products: ProductFact[]): string {
  if (products.length === 0) {
    return "I couldn't find that product in our catalogue. A colleague will check and get back to you.";
  }
  const lines = products.slice(0, 3).map((p) => {
    const price = p.price !== undefined ? `costs ${p.price} ${p.currency ?? ''}`.trim() : 'has no listed price';
    const stock = isOut(p)
      ? 'it is currently out of stock'
      : p.availability === 'PreOrder'
        ? 'it is available for pre-order'
        : 'it is in stock';
    return `${p.name} ${price}, and ${stock}.`;
  });
  return lines.join(' ');
}

/** Folds lines that drop out of the kept history into a bounded running summary (newest text kept). */
export function foldSummary(summary: string, lines: ChatLine[]): string {
  const add = lines.map((l) => `${l.role}: ${l.text.length > 160 ? `${l.text.slice(0, 157)}...` : l.text}`).join(' | ');
  const next = summary ? `${summary} | ${add}` : add;
  return next.length > SUMMARY_MAX_CHARS ? `...${next.slice(next.length - SUMMARY_MAX_CHARS + 3)}` : next;
}
