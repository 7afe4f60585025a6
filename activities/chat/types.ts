/** The chat activity contract: what chatWorkflow proxies on the orchestrator queue (imported as types only). */
import type { ChatMessage } from '../../common/types';

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

export interface ChatActivities {
  /** Builds every agent's prompt with its facts (ontology and delivery policy from S3, cached briefly). */
  buildAgentPrompts(input: BuildAgentPromptsInput): Promise<AgentPrompts>;
  /** The stored state of a chat, for a fresh run after the previous one closed. */
  loadChatState(input: { channel: string; chatId: string }): Promise<ChatState | undefined>;
  saveChatState(state: ChatState): Promise<void>;
}
