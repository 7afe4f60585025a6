/** The chat activity contract: what chatWorkflow proxies on the orchestrator queue (imported as types only). */
import type { ChatMessage } from './llm';

export type ChatAgent = 'product' | 'delivery' | 'general';
export const CHAT_AGENTS: readonly ChatAgent[] = ['product', 'delivery', 'general'];

/** One line of the conversation as the chat keeps it (customer, human manager or the bot). */
export interface ChatLine {
  role: 'customer' | 'manager' | 'bot';
  text: string;
  /** Workflow time when it was recorded (ms since epoch). */
  at: number;
  /** The channel's message id (customer/manager) or the reply id (bot). */
  id?: string;
  /** Which agent wrote a bot line. */
  agent?: ChatAgent;
  /** A customer line that arrived while a manager had the chat: recorded, never answered by the bot. */
  held?: boolean;
  /** A bot line: how it was chosen and written (router path, pick, writer, a replaced draft). */
  meta?: ChatReplyMeta;
}

/** Chat state, written to DynamoDB (table `chats`) each turn and carried through continue-as-new. */
export interface ChatState {
  channel: string;
  chatId: string;
  workflowId: string;
  /** Answered batches over the whole conversation; also numbers the replies. */
  turns: number;
  /** The most recent lines (bounded); older ones are folded into `summary`. */
  messages: ChatLine[];
  /** Running summary of the lines that no longer fit in `messages`. */
  summary: string;
  lastAgent?: ChatAgent;
  paused: boolean;
  pausedUntil?: number;
  /** Recent channel message ids (bounded), so a redelivery after continue-as-new or a restart is still ignored. */
  seenIds: string[];
  updatedAt: number;
}

/** A product as the ontology states it; the only source of prices the product agent may use. */
export interface ProductFact {
  id: string;
  name: string;
  sku?: string;
  description?: string;
  /** The literal from the ontology, e.g. "39.90". */
  price?: string;
  currency?: string;
  /** schema.org availability local name: InStock, OutOfStock, PreOrder, ... */
  availability?: string;
  inventory?: number;
  options: { name: string; values: string[] }[];
}

export interface BuildAgentPromptsInput {
  /** S3 prefix of the shop's data (`<prefix>ontology.ttl`, `<prefix>delivery-policy.md`). */
  shopPrefix: string;
  summary: string;
  /** Conversation before this batch (most recent last). */
  history: ChatLine[];
  /** The customer's messages being answered now. */
  batch: string[];
}

/**
 * Every agent's prompt at once, so the workflow builds them while the router runs (one hop less per reply).
 * An agent's messages for llmChat: `[{role: 'system', content: systems[agent]}, ...turns]`.
 */
export interface AgentPrompts {
  /** System prompt per agent, with its facts (ontology lines or policy text) and the running summary. */
  systems: Record<ChatAgent, string>;
  /** Recent history as chat turns, then the batch as one user message; the same for every agent. */
  turns: ChatMessage[];
  /** Products whose facts went into the product prompt; the workflow grounds a product reply on them. */
  products: ProductFact[];
}

/** Product questions the data answers; the router's intent enum also lists the policy's delivery topics. */
export const PRODUCT_INTENTS = ['price', 'stock', 'options', 'description'] as const;
export type ProductIntent = (typeof PRODUCT_INTENTS)[number];
/** The intent when nothing more specific fits (any agent). */
export const OTHER_INTENT = 'other';
/** The product value when the customer names none. */
export const NO_PRODUCT = 'none';

/** What a batch is about: the router's structured output, or the keyword fallback's. */
export interface ChatChoice {
  agent: ChatAgent;
  /** A product name from the catalogue, or 'none'. */
  product: string;
  /** A product intent, a delivery topic id, or 'other'. */
  intent: string;
}

/** How the choice was obtained: the model's first answer, its answer after one repair, or keywords. */
export type ChatPath = 'model' | 'repaired' | 'fallback';

/** Who wrote a reply's text: code from the shop data, the model (checked), or a fixed polite line. */
export type ChatWriter = 'data' | 'model' | 'fallback';

/** Why the model's draft was not sent (the safe data-only reply went instead). */
export type ReplyProblemReason = 'empty' | 'echo' | 'repetition' | 'price' | 'fact' | 'language' | 'truncated';

/** Recorded with every bot reply (chat state line and outbox), so each turn says how it was made. */
export interface ChatReplyMeta extends ChatChoice {
  path: ChatPath;
  writer: ChatWriter;
  /** The customer's language (LANGUAGES code). */
  lang: string;
  /** Set when the model's draft was replaced: why, and what exactly was wrong. */
  replaced?: { reason: ReplyProblemReason; detail: string };
}

export type PrepareChatTurnInput = BuildAgentPromptsInput;

/** Everything the workflow needs for one turn's LLM calls, built from the shop data. */
export interface ChatTurnPlan {
  router: {
    /** System prompt (listing products and intents), then the recent context and the new messages. */
    messages: ChatMessage[];
    /** JSON schema for Ollama `format`: {agent, product, intent} with enums from this shop's data. */
    format: Record<string, unknown>;
    agents: ChatAgent[];
    products: string[];
    intents: string[];
  };
  /** The general agent's messages: system prompt (in the customer's language) and the conversation. */
  general: ChatMessage[];
  /** Products the customer's words name (this batch first, else recent customer lines), best first. */
  candidates: string[];
  /** The keyword choice, used when the router's output is unusable twice, and for the safe reply. */
  fallback: ChatChoice;
  /** The customer's language (LANGUAGES code, or 'und'). */
  lang: string;
}

export interface ComposeChatReplyInput {
  shopPrefix: string;
  choice: ChatChoice;
  /** From the turn's plan. */
  candidates: string[];
  fallback: ChatChoice;
  /** The customer's messages being answered. */
  batch: string[];
  /** The general agent's text, when the model wrote one. */
  draft?: { text: string; doneReason?: string };
}

export interface ComposedReply {
  text: string;
  /** The choice the reply answers (the router's, with an intent or product that did not fit corrected). */
  choice: ChatChoice;
  writer: ChatWriter;
  lang: string;
  replaced?: { reason: ReplyProblemReason; detail: string };
}

export interface ChatActivities {
  /** The router's prompt and schema (enums from the ontology and policy), the general agent's prompt, the keyword fallback. */
  prepareChatTurn(input: PrepareChatTurnInput): Promise<ChatTurnPlan>;
  /**
   * The reply: written from the data for product and delivery questions; for the general agent the model's
   * draft, checked (no prompt echo, no loop, no price or fact outside the data, the customer's script), else
   * the safe data-only reply.
   */
  composeChatReply(input: ComposeChatReplyInput): Promise<ComposedReply>;
  /**
   * Every agent's prompt (runs recorded before structured replies still replay through this; new turns use
   * prepareChatTurn / composeChatReply).
   */
  buildAgentPrompts(input: BuildAgentPromptsInput): Promise<AgentPrompts>;
  /** The stored state of a chat, for a fresh run after the previous one closed. */
  loadChatState(input: { channel: string; chatId: string }): Promise<ChatState | undefined>;
  saveChatState(state: ChatState): Promise<void>;
}

// ---------------------------------------------------------------- chatWorkflow input, messages, status, carry and result
/** One customer or manager message, as the webhook delivers it to `chat-<channel>-<chatId>`. */
export interface ChatInboundMessage {
  /** The channel's message id: the dedup key (a redelivered webhook carries the same id). */
  id: string;
  text: string;
  personType: 'user' | 'manager';
  /** When the channel says it was written (ms since epoch). */
  createdAt: number;
}
/** Where a chat stands: what the API's `GET /chats/:chatId` falls back to before the first turn is stored. */
export interface ChatStatus {
  channel: string;
  chatId: string;
  /** Answered batches over the whole conversation (across continue-as-new). */
  turns: number;
  /** Messages waiting for the next answer (debouncing, or arrived while answering). */
  pending: number;
  paused: boolean;
  pausedUntil?: number;
  lastAgent?: string;
  phase: 'idle' | 'debouncing' | 'answering' | 'paused';
}

export interface ChatWorkflowInput {
  channel: string;
  chatId: string;
  model: string;
  /** Debounce: answer once no message arrived for this long... */
  quietMs: number;
  /** ...but never later than this after the first unanswered message. */
  maxWaitMs: number;
  /** Close the run after this long without messages (state stays in DynamoDB for the next run). */
  idleCloseMs: number;
  /** A manager's message pauses the bot this long, unless resumed earlier. */
  managerPauseMs: number;
  /** Answered batches per run before continue-as-new (Temporal may suggest it earlier). */
  turnLimit: number;
  /** S3 prefix of the shop's ontology and delivery policy. */
  shopPrefix: string;
  /** Set by continue-as-new only. */
  carried?: ChatCarry;
}

/** What one run hands to the next. */
export interface ChatCarry {
  state: ChatState;
  pending: PendingChatMessage[];
  firstPendingAt?: number;
  lastMessageAt?: number;
  lastActivityAt: number;
}

export interface PendingChatMessage extends ChatInboundMessage {
  receivedAt: number;
}

export interface ChatWorkflowResult {
  turns: number;
  closedBy: 'idle';
}
