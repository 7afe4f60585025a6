/** Shared data shapes and zod schemas. Workflow-safe: no Node built-ins, no I/O. */
import { z } from 'zod';
import type { LlmUsage } from './llm-usage';
import type { LlmCallKind } from '../common/llm-bounds';

export const ChatMessageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().max(200_000),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

/** Ollama generation options we pass through (subset; unknown keys are rejected by the API). */
export const LlmOptionsSchema = z
  .object({
    temperature: z.number().min(0).max(2),
    top_p: z.number().min(0).max(1),
    top_k: z.number().int().min(0),
    seed: z.number().int(),
    num_predict: z.number().int().min(-2).max(32_768),
    stop: z.array(z.string()).max(8),
    repeat_penalty: z.number(),
  })
  .partial()
  .strict();
export type LlmOptions = z.infer<typeof LlmOptionsSchema>;

/** Token counts and timings reported by Ollama itself (never by user code). */
export type { LlmUsage } from './llm-usage';
export { addUsage, emptyUsage } from './llm-usage';

export interface LlmResult {
  content: string;
  model: string;
  nodeId: string;
  usage: LlmUsage;
  /** Why generation stopped: 'stop', 'length' (num_predict reached), 'repetition' (a loop was cut off). */
  doneReason?: string;
}

/** `format`: 'json' or a JSON schema (Ollama structured outputs). */
export type LlmFormat = 'json' | Record<string, unknown>;

export interface LlmChatInput {
  model: string;
  messages: ChatMessage[];
  format?: LlmFormat;
  options?: LlmOptions;
  /** Shown in the Web UI as the activity summary (who asked and why). */
  purpose?: string;
  /** Decides the call's num_predict bound (common/llm-bounds.ts); default 'prompt'. */
  kind?: LlmCallKind;
  /** Push the tokens, as they come, to the API process that holds the client's connection (lib/stream). */
  stream?: StreamTarget;
}

/** Where a streamed generation's tokens go: an API process's stream endpoint and the stream's token. */
export interface StreamTarget {
  url: string;
  token: string;
}

export interface LlmGenerateInput {
  model: string;
  prompt: string;
  system?: string;
  format?: LlmFormat;
  options?: LlmOptions;
  purpose?: string;
  /** Decides the call's num_predict bound (common/llm-bounds.ts); default 'prompt'. */
  kind?: LlmCallKind;
}

export interface LlmEmbedInput {
  model: string;
  input: string | string[];
  /** 'base64': vectors as little-endian float32 in base64 (`embeddingsB64`), a quarter of JSON's payload size. */
  encoding?: 'float' | 'base64';
}

export interface LlmEmbedResult {
  /** Empty when `encoding` was base64. */
  embeddings: number[][];
  embeddingsB64?: string[];
  model: string;
  nodeId: string;
  usage: Pick<LlmUsage, 'promptTokens' | 'totalDurationMs'>;
}

/** The llm activity contract: what workflows proxy on `ainode-llm.<model>` queues. */
export interface LlmActivities {
  llmChat(input: LlmChatInput): Promise<LlmResult>;
  llmGenerate(input: LlmGenerateInput): Promise<LlmResult>;
  llmEmbed(input: LlmEmbedInput): Promise<LlmEmbedResult>;
}
