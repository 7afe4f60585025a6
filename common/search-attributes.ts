/**
 * The search attributes registered on the Temporal namespace, declared once: their names and typed keys.
 * temporal-config/search-attributes.json registers the same table (a unit test checks they agree).
 * Workflow-safe: `defineSearchAttributeKey` is pure.
 */
import { defineSearchAttributeKey } from '@temporalio/common';

export const SearchAttribute = {
  Kind: 'AinodeKind',
  ModelId: 'ModelId',
  FunctionId: 'FunctionId',
  ChatId: 'ChatId',
  TenantId: 'TenantId',
  WaitingForInput: 'WaitingForInput',
} as const;

/** Typed keys for `searchAttributes`/`typedSearchAttributes` and `upsertSearchAttributes`. */
export const SearchAttributeKey = {
  Kind: defineSearchAttributeKey(SearchAttribute.Kind, 'KEYWORD'),
  ModelId: defineSearchAttributeKey(SearchAttribute.ModelId, 'KEYWORD'),
  FunctionId: defineSearchAttributeKey(SearchAttribute.FunctionId, 'KEYWORD'),
  ChatId: defineSearchAttributeKey(SearchAttribute.ChatId, 'KEYWORD'),
  TenantId: defineSearchAttributeKey(SearchAttribute.TenantId, 'KEYWORD'),
  WaitingForInput: defineSearchAttributeKey(SearchAttribute.WaitingForInput, 'BOOL'),
} as const;

/** What `AinodeKind` holds: which kind of work a workflow is. */
export type AinodeKind =
  | 'prompt'
  | 'job'
  | 'design'
  | 'chat'
  | 'completion'
  | 'embeddings'
  | 'ingest'
  | 'recommendation'
  | 'user-recommendation';
