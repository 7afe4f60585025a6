/**
 * Chat activities (orchestrator queue): each turn's plan (the router's prompt and enum schema from the shop's
 * S3 data, the general agent's prompt, the keyword fallback), the reply (written from the data, or the model's
 * draft once it passes the checks), and chat state in DynamoDB. LLM calls themselves are not here: the
 * workflow makes them on the model's pinned queue.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../common/errors';
import type { Storage } from '../../lib/storage/clients';
import {
  PROMPT_MARKERS,
  conversationTurns,
  deliverySystemPrompt,
  generalSystemPrompt,
  productSystemPrompt,
  withSummary,
} from '../../lib/chat/agents';
import { detectLanguage, language } from '../../lib/chat/language';
import { formatFacts, parseOntology, selectProducts } from '../../lib/chat/ontology';
import { deliveryTopics, policyLines } from '../../lib/chat/policy';
import { dataReply } from '../../lib/chat/replies';
import { checkReply, findPrices } from '../../lib/chat/reply-check';
import {
  keywordChoice,
  reconcileChoice,
  routerIntents,
  routerMessages,
  routerProducts,
  routerSchema,
  routerSystemPrompt,
} from '../../lib/chat/router';
import { readChatState, writeChatState } from '../../lib/chat/state';
import {
  CHAT_AGENTS,
  type AgentPrompts,
  type BuildAgentPromptsInput,
  type ChatActivities,
  type ChatLine,
  type ComposedReply,
  type ProductFact,
} from '../../contracts/chat';

export type { ChatActivities } from '../../contracts/chat';

export interface ChatActivityDeps {
  storage: Storage;
  /** How long parsed shop data is reused before S3 is read again (an edited ontology shows up after this). */
  shopCacheMs?: number;
  now?: () => number;
}

export const ONTOLOGY_FILE = 'ontology.ttl';
export const DELIVERY_POLICY_FILE = 'delivery-policy.md';

export function createChatActivities(deps: ChatActivityDeps): ChatActivities {
  const { storage } = deps;
  const ttl = deps.shopCacheMs ?? 30_000;
  const now = deps.now ?? Date.now;
  // Parsing the ontology on every turn would dominate the reply overhead; a short TTL keeps edits visible.
  const cache = new Map<string, { at: number; value: Promise<unknown> }>();

  function cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = cache.get(key);
    if (hit && now() - hit.at < ttl) return hit.value as Promise<T>;
    const value = load();
    cache.set(key, { at: now(), value });
    value.catch(() => cache.delete(key));
    return value;
  }

  const text = async (key: string) => {
    const bytes = await storage.getObjectBytes(key);
    return bytes ? Buffer.from(bytes).toString('utf8') : undefined;
  };

  const catalogue = (key: string) =>
    cached(`ontology:${key}`, async (): Promise<ProductFact[] | undefined> => {
      const ttl = await text(key);
      if (ttl === undefined) return undefined;
      try {
        return parseOntology(ttl);
      } catch (err) {
        // A broken ontology is the shop's data problem: retrying will not fix it.
        throw ApplicationFailure.create({
          type: ErrorType.InvalidRequest,
          nonRetryable: true,
          message: `${key} is not valid Turtle: ${(err as Error).message}`,
        });
      }
    });

  const shop = async (prefix: string) => {
    const [products, policy] = await Promise.all([
      catalogue(`${prefix}${ONTOLOGY_FILE}`),
      cached(`policy:${prefix}`, () => text(`${prefix}${DELIVERY_POLICY_FILE}`)),
    ]);
    return { products: products ?? [], policy };
  };

  return {
    async prepareChatTurn({ shopPrefix, summary, history, batch }) {
      const { products, policy } = await shop(shopPrefix);
      const intents = routerIntents(deliveryTopics(policy));
      const named = selectProducts(products, [batch]).map((p) => p.name);
      const candidates = named.length ? named : recentlyNamed(products, history);
      const enumProducts = routerProducts(
        products.map((p) => p.name),
        candidates,
      );
      const lang = detectLanguage(batch.join('\n'));
      return {
        router: {
          messages: routerMessages(enumProducts, intents, history, batch),
          format: routerSchema(enumProducts, intents),
          agents: [...CHAT_AGENTS],
          products: enumProducts,
          intents,
        },
        general: [
          { role: 'system', content: withSummary(generalSystemPrompt(language(lang.code).name), summary) },
          ...conversationTurns(history, batch),
        ],
        candidates,
        fallback: keywordChoice(batch, candidates, named.length > 0, intents),
        lang: lang.code,
      };
    },

    async composeChatReply(input): Promise<ComposedReply> {
      const data = await shop(input.shopPrefix);
      const catalogueNames = data.products.map((p) => p.name);
      const intents = routerIntents(deliveryTopics(data.policy));
      const customer = detectLanguage(input.batch.join('\n'));
      const fit = (c: typeof input.choice) =>
        reconcileChoice(c, { catalogue: catalogueNames, candidates: input.candidates, intents, batch: input.batch });
      const choice = fit(input.choice);
      if (choice.agent !== 'general' || input.draft === undefined) {
        const reply = dataReply(choice, data, customer.code);
        return { ...reply, choice, lang: customer.code };
      }
      const policy = policyLines(data.policy);
      const checked = checkReply(input.draft.text, {
        references: [
          generalSystemPrompt(language(customer.code).name),
          routerSystemPrompt(routerProducts(catalogueNames, input.candidates), intents),
          formatFacts(data.products),
          ...policy,
        ],
        markers: PROMPT_MARKERS,
        allowedPrices: [
          ...data.products.flatMap((p) => (p.price !== undefined ? [Number(p.price)] : [])),
          ...policy.flatMap(findPrices),
        ],
        customer,
        noNumbers: true,
        customerText: input.batch.join('\n'),
        doneReason: input.draft.doneReason,
      });
      if ('text' in checked) return { text: checked.text, choice, writer: 'model', lang: customer.code };
      // The safe reply answers what the customer's words point to: product or policy facts, else the polite line.
      const safeChoice = fit(input.fallback);
      const safe = dataReply(safeChoice, data, customer.code);
      return { ...safe, choice: safeChoice, lang: customer.code, replaced: checked.problem };
    },

    async buildAgentPrompts(input: BuildAgentPromptsInput): Promise<AgentPrompts> {
      const { shopPrefix, summary, history, batch } = input;
      const [all, policy] = await Promise.all([
        catalogue(`${shopPrefix}${ONTOLOGY_FILE}`),
        cached(`policy:${shopPrefix}`, () => text(`${shopPrefix}${DELIVERY_POLICY_FILE}`)),
      ]);
      // A follow-up ("is it in stock?") names no product: fall back to the latest line that did.
      const recent = history
        .slice(-6)
        .map((l) => [l.text])
        .reverse();
      const products = selectProducts(all ?? [], [batch, ...recent]);
      const names = (all ?? []).map((p) => p.name);
      return {
        systems: {
          product: withSummary(productSystemPrompt(products, names), summary),
          delivery: withSummary(deliverySystemPrompt(policy), summary),
          general: withSummary(generalSystemPrompt(), summary),
        },
        turns: conversationTurns(history, batch),
        products,
      };
    },

    async loadChatState({ channel, chatId }) {
      return readChatState(storage, channel, chatId);
    },

    async saveChatState(state) {
      await writeChatState(storage, state);
    },
  };
}

/** Products named in the recent customer lines, newest line first (a follow-up like "is it in stock?"). */
function recentlyNamed(products: ProductFact[], history: ChatLine[]): string[] {
  const lines = history
    .filter((l) => l.role === 'customer')
    .slice(-6)
    .map((l) => [l.text])
    .reverse();
  return selectProducts(products, lines).map((p) => p.name);
}
