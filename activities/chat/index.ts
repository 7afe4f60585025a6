/**
 * Chat activities (orchestrator queue): agent prompts grounded in the shop's S3 data, and chat state in
 * DynamoDB. LLM calls themselves are not here: the workflow makes them on the model's pinned queue.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../common/errors';
import type { Storage } from '../storage/clients';
import {
  conversationTurns,
  deliverySystemPrompt,
  generalSystemPrompt,
  productSystemPrompt,
  withSummary,
} from './agents';
import { parseOntology, selectProducts } from './ontology';
import { readChatState, writeChatState } from './state';
import type { AgentPrompts, BuildAgentPromptsInput, ChatActivities, ProductFact } from './types';

export type { ChatActivities } from './types';

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

  return {
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
