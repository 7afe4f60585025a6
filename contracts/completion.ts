/**
 * The AI server's calls (`/v1/chat/completions`, `/v1/embeddings` and the template routes): each one a workflow
 * whose LLM work runs on the model's pinned queue, metered per API key. Workflow-safe: types only.
 */
import type { ChatMessage, LlmFormat, LlmOptions, LlmUsage, StreamTarget } from './llm';

/** Who is charged for a call: the tenant and the API key's fingerprint (never the key). */
export interface Caller {
  tenantId: string;
  keyId: string;
}

export interface CompletionWorkflowInput {
  caller: Caller;
  model: string;
  messages: ChatMessage[];
  options?: LlmOptions;
  format?: LlmFormat;
  /** Set for streamed calls: where the llm activity pushes tokens (the API process holding the connection). */
  stream?: StreamTarget;
  /** The route that asked, for the usage rows, e.g. `v1:chat.completions`. */
  source: string;
}

export interface CompletionWorkflowResult {
  content: string;
  model: string;
  nodeId: string;
  usage: LlmUsage;
  doneReason?: string;
}

export interface EmbeddingsWorkflowInput {
  caller: Caller;
  model: string;
  texts: string[];
  source: string;
}

export interface EmbeddingsWorkflowResult {
  model: string;
  /** One vector per text, in order, as little-endian float32 in base64 (a quarter of JSON's payload size). */
  embeddingsB64: string[];
  promptTokens: number;
}

/** One metered call, as the usage table stores it. */
export interface ApiUsageRecord {
  caller: Caller;
  /** The workflow id: one row per call and model, so a retried write is the same row. */
  callId: string;
  source: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
}
