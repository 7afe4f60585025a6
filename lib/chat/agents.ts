/**
 * The three agents' prompts. Each agent gets its facts in the system prompt (product: ontology lines;
 * delivery: the policy text) and is told to answer only from them; the history follows as chat turns.
 */
import type { ChatMessage } from '../../contracts/llm';
import { formatFacts } from './ontology';
import type { ChatLine, ProductFact } from '../../contracts/chat';

/** Lines of history sent to the model: enough for follow-ups, bounded for a small context window. */
export const HISTORY_TO_MODEL = 12;
/** Cap on policy text in the prompt, so a long policy cannot crowd out the conversation. */
export const POLICY_MAX_CHARS = 6000;

const BASE =
  'You are the customer assistant of an online shop, writing in a chat. Answer every question in the ' +
  "customer's messages in one short, friendly reply (at most 4 sentences), in the customer's language.";

export function productSystemPrompt(products: ProductFact[], catalogueNames: string[]): string {
  const facts = products.length
    ? formatFacts(products)
    : `(no product matched the question; products we sell: ${catalogueNames.join(', ') || 'none listed'})`;
  return [
    BASE,
    'Answer ONLY from the product facts below. State prices exactly as written there; never give a price ' +
      'that is not listed. If a product is OUT OF STOCK, say clearly that it is out of stock. If the facts ' +
      'do not answer the question, say you will ask a colleague.',
    `Product facts:\n${facts}`,
  ].join('\n\n');
}

export function deliverySystemPrompt(policy: string | undefined): string {
  const text = policy?.trim() ? policy.trim().slice(0, POLICY_MAX_CHARS) : '(no delivery policy is available)';
  return [
    BASE,
    'Answer ONLY from the delivery and returns policy below; quote its times and costs exactly. If it does ' +
      'not answer the question, say you will ask a colleague.',
    `Delivery policy:\n${text}`,
  ].join('\n\n');
}

/** Headings and fixed phrases of our prompts: a reply containing one leaked its instructions. */
export const PROMPT_MARKERS: readonly string[] = [
  'You are the customer assistant',
  'Product facts:',
  'Delivery policy:',
  'Earlier in this conversation:',
  'Answer ONLY from',
  'New messages:',
];

/** `language`: the customer's language by name, when it is not English (a small model needs telling). */
export function generalSystemPrompt(language?: string): string {
  return [
    BASE,
    'Help with greetings, thanks and general questions about the shop. Do not state prices, stock or ' +
      'delivery terms here; offer to look them up if the customer asks.',
    ...(language && language !== 'English' ? [`The customer writes in ${language}: answer in ${language}.`] : []),
  ].join('\n\n');
}

/** The system prompt with the running summary of what no longer fits in the history. */
export function withSummary(system: string, summary: string): string {
  return summary ? `${system}\n\nEarlier in this conversation: ${summary}` : system;
}

/** The recent history as chat turns, then the batch as one user message. */
export function conversationTurns(history: ChatLine[], batch: string[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const line of history.slice(-HISTORY_TO_MODEL)) {
    if (line.role === 'customer') messages.push({ role: 'user', content: line.text });
    else messages.push({ role: 'assistant', content: line.role === 'manager' ? `[manager] ${line.text}` : line.text });
  }
  messages.push({ role: 'user', content: batch.join('\n') });
  return messages;
}

/** System prompt (with summary), then the recent history as chat turns, then the batch. */
export function assembleMessages(system: string, summary: string, history: ChatLine[], batch: string[]): ChatMessage[] {
  return [{ role: 'system', content: withSummary(system, summary) }, ...conversationTurns(history, batch)];
}
