/**
 * The router: one structured-output call picks {agent, product, intent} from enums built from this shop's
 * data (product names from the ontology, delivery topics from the policy). The model only chooses; the
 * reply's facts are written by code. The keyword choice here is the deterministic fallback. Pure.
 */
import type { ChatMessage } from '../../contracts/llm';
import { DELIVERY_TOPIC_RULES, type DeliveryTopic } from './policy';
import {
  CHAT_AGENTS,
  NO_PRODUCT,
  OTHER_INTENT,
  PRODUCT_INTENTS,
  type ChatAgent,
  type ChatChoice,
  type ChatLine,
} from '../../contracts/chat';

/** A tiny model cannot choose among hundreds of names, and the schema travels with every call. */
export const MAX_ENUM_PRODUCTS = 40;
/** Lines of earlier conversation the router sees (follow-ups like "is it in stock?"). */
export const ROUTER_CONTEXT_LINES = 4;

const INTENT_HELP: Record<string, string> = {
  price: 'what a product costs',
  stock: 'whether it is in stock or can be ordered',
  options: 'sizes, colours or other options',
  description: 'what it is, its material',
  delivery_time: 'how long delivery takes',
  delivery_cost: 'what delivery costs',
  express: 'express delivery',
  eu_shipping: 'shipping to other countries',
  tracking: 'tracking an order',
  returns: 'returning an item',
  refund: 'getting money back',
  other: 'anything else',
};

/** The router's intent enum: product intents, the policy's topics, then 'other'. */
export function routerIntents(topics: DeliveryTopic[]): string[] {
  return [...PRODUCT_INTENTS, ...topics.map((t) => t.id), OTHER_INTENT];
}

/**
 * The router's product enum: the products the customer named if any, else the catalogue (capped, so the
 * model sees what the shop sells when it decides the agent), then 'none'.
 */
export function routerProducts(catalogue: string[], candidates: string[]): string[] {
  const names = candidates.length ? candidates : catalogue.slice(0, MAX_ENUM_PRODUCTS);
  return [...names, NO_PRODUCT];
}

/** JSON schema for Ollama `format`, so even a 135M model can only answer with valid choices. */
export function routerSchema(products: string[], intents: string[]): Record<string, unknown> {
  return {
    type: 'object',
    properties: {
      agent: { type: 'string', enum: [...CHAT_AGENTS] },
      product: { type: 'string', enum: products },
      intent: { type: 'string', enum: intents },
    },
    required: ['agent', 'product', 'intent'],
  };
}

export function routerSystemPrompt(products: string[], intents: string[]): string {
  return [
    'You classify the messages of a customer of an online shop. Answer with JSON {"agent": ..., "product": ..., "intent": ...}.',
    'agent: "product" for questions about products, prices, stock, sizes or colours; "delivery" for shipping, ' +
      'delivery times or costs, tracking, returns and refunds; "general" for anything else (greetings, thanks).',
    `product: the product the customer asks about, exactly one of: ${products.join(', ')}.`,
    `intent: what the customer wants to know, one of: ${intents.map((i) => `${i} (${INTENT_HELP[i] ?? i})`).join(', ')}.`,
  ].join('\n');
}

/** The router's user message: a few earlier lines for context, then the new messages. */
export function routerUserMessage(history: ChatLine[], batch: string[]): string {
  const context = history
    .slice(-ROUTER_CONTEXT_LINES)
    .map((l) => `${l.role}: ${l.text}`)
    .join('\n');
  return `${context ? `Earlier:\n${context}\n\n` : ''}New messages:\n${batch.join('\n')}`;
}

export function routerMessages(
  products: string[],
  intents: string[],
  history: ChatLine[],
  batch: string[],
): ChatMessage[] {
  return [
    { role: 'system', content: routerSystemPrompt(products, intents) },
    { role: 'user', content: routerUserMessage(history, batch) },
  ];
}

const DELIVERY_WORDS =
  /deliver|shipping|\bship|parcel|package|track|where is my|arriv|return|refund|express|versand|liefer|envío|envio|entrega|livraison|expédi|retour|devol/i;
const PRODUCT_WORDS =
  /price|cost|how much|stock|size|colou?r|available|pre-?order|buy|discount|cuánto|cuesta|precio|talla|kostet|preis|größe|farbe|combien|coûte|prix|taille|couleur/i;

/** Product intents by customer words, most specific first. */
const PRODUCT_INTENT_WORDS: readonly [string, RegExp][] = [
  [
    'price',
    /price|cost|how much|expensive|cheap|discount|€|\beur\b|cuánto|cuesta|precio|kostet|preis|combien|coûte|prix/i,
  ],
  ['stock', /stock|available|availab|in store|do you have|have the|sold out|pre-?order|verfügbar|lager|disponible/i],
  ['options', /size|colou?r|length|option|variant|talla|größe|farbe|couleur|taille/i],
  ['description', /material|made of|describe|what is|tell me about|fabric|wash|quality/i],
];

/** Keyword routing: cheap, and better than a wrong agent when the model's output is unusable. */
export function keywordAgent(text: string, namesProduct: boolean): ChatAgent {
  if (DELIVERY_WORDS.test(text)) return 'delivery';
  if (namesProduct || PRODUCT_WORDS.test(text)) return 'product';
  return 'general';
}

/** The intent customer words point to, among those that fit `agent` and this shop's `intents`. */
export function keywordIntent(agent: ChatAgent, text: string, intents: string[]): string {
  const allowed = new Set(intents);
  if (agent === 'product') {
    for (const [intent, re] of PRODUCT_INTENT_WORDS) if (re.test(text)) return intent;
  } else if (agent === 'delivery') {
    for (const rule of DELIVERY_TOPIC_RULES) if (allowed.has(rule.id) && rule.ask.test(text)) return rule.id;
  }
  return OTHER_INTENT;
}

/**
 * The deterministic choice: keywords pick the agent and intent, name matching the product (a product named
 * in this batch counts as a product question).
 */
export function keywordChoice(
  batch: string[],
  candidates: string[],
  batchNamesProduct: boolean,
  intents: string[],
): ChatChoice {
  const text = batch.join('\n');
  const agent = keywordAgent(text, batchNamesProduct);
  return {
    agent,
    product: agent === 'product' ? (candidates[0] ?? NO_PRODUCT) : NO_PRODUCT,
    intent: keywordIntent(agent, text, intents),
  };
}

/** Intents that answer an agent's questions (besides 'other'). */
export function intentsOf(agent: ChatAgent, intents: string[]): string[] {
  const product = new Set<string>(PRODUCT_INTENTS);
  if (agent === 'product') return intents.filter((i) => product.has(i));
  if (agent === 'delivery') return intents.filter((i) => !product.has(i) && i !== OTHER_INTENT);
  return [];
}

/**
 * The router's choice made consistent with the data: the agent stands; an intent of another agent is replaced
 * by the keyword intent for this one. The product must be one the customer's words name: a small model
 * picks the first name in the enum for "hello", and stating that product's facts would answer nothing asked.
 */
export function reconcileChoice(
  choice: ChatChoice,
  opts: { catalogue: string[]; candidates: string[]; intents: string[]; batch: string[] },
): ChatChoice {
  const { agent } = choice;
  if (agent === 'general') return { agent, product: NO_PRODUCT, intent: OTHER_INTENT };
  const fits = choice.intent === OTHER_INTENT || intentsOf(agent, opts.intents).includes(choice.intent);
  const intent = fits ? choice.intent : keywordIntent(agent, opts.batch.join('\n'), opts.intents);
  if (agent === 'delivery') return { agent, product: NO_PRODUCT, intent };
  const named = opts.candidates.filter((c) => opts.catalogue.includes(c));
  const product = named.includes(choice.product) ? choice.product : (named[0] ?? NO_PRODUCT);
  return { agent, product, intent };
}
