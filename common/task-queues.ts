/**
 * Task-queue names. LLM work is pinned per model: every node serving `gemma3:270m` polls
 * `ainode-llm.gemma3:270m`, so Temporal never sends a model to a node that would have to load it.
 */
export const ORCHESTRATOR_QUEUE = 'ainode-orchestrator';
export const EXECUTOR_QUEUE = 'ainode-executor';
export const LLM_QUEUE_PREFIX = 'ainode-llm.';
export const NODE_QUEUE_PREFIX = 'ainode-node.';

/** Queue polled by every llm worker whose node serves `model`. */
export function llmQueue(model: string): string {
  return `${LLM_QUEUE_PREFIX}${normalizeModel(model)}`;
}

/** Queue for operations on one node (warm-up, pull, health). */
export function nodeQueue(nodeId: string): string {
  return `${NODE_QUEUE_PREFIX}${nodeId}`;
}

/** Ollama treats `gemma3` and `gemma3:latest` as the same model; so do we. */
export function normalizeModel(model: string): string {
  const trimmed = model.trim();
  return trimmed.includes(':') ? trimmed : `${trimmed}:latest`;
}
