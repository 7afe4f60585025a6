/** The one-shot prompt's shapes (`POST /prompts` → promptWorkflow). Workflow-safe: types only. */
import type { ChatMessage, LlmFormat, LlmOptions, LlmUsage } from './llm';

/** Where a one-shot prompt stands; `nodeId`/`usage` once the model answered, `error` when it failed. */
export interface PromptStatus {
  phase: 'running' | 'completed' | 'failed';
  modelId: string;
  nodeId?: string;
  usage?: LlmUsage;
  error?: string;
}

export interface PromptWorkflowInput {
  modelId: string;
  /** Exactly one of `prompt` (llmGenerate) and `messages` (llmChat). */
  prompt?: string;
  messages?: ChatMessage[];
  /** System prompt for `prompt`; with `messages`, put it in a system message. */
  system?: string;
  options?: LlmOptions;
  format?: LlmFormat;
  /**
   * Set by the API, which checked that a node serves the model just before starting the run: the workflow then
   * skips its own check (one local activity). Other clients leave it out and get the check.
   */
  modelChecked?: boolean;
}

export interface PromptWorkflowResult {
  content: string;
  model: string;
  /** The node whose llm worker answered. */
  nodeId: string;
  usage: LlmUsage;
  doneReason?: string;
}
