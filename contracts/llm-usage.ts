/**
 * Token and time counts of LLM calls, and their arithmetic. Kept apart from the zod schemas of contracts/llm.ts
 * because workflows import it: every module a workflow imports is evaluated again for each new workflow run (the
 * SDK's reusable V8 context keeps module state per workflow), so the workflow bundle carries no zod
 * (test/unit/workflow-bundle.test.ts).
 */
export interface LlmUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  totalDurationMs: number;
  loadDurationMs: number;
  promptEvalDurationMs: number;
  evalDurationMs: number;
}

export function emptyUsage(): LlmUsage {
  return {
    promptTokens: 0,
    completionTokens: 0,
    totalTokens: 0,
    totalDurationMs: 0,
    loadDurationMs: 0,
    promptEvalDurationMs: 0,
    evalDurationMs: 0,
  };
}

export function addUsage(a: LlmUsage, b: LlmUsage): LlmUsage {
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    totalDurationMs: a.totalDurationMs + b.totalDurationMs,
    loadDurationMs: a.loadDurationMs + b.loadDurationMs,
    promptEvalDurationMs: a.promptEvalDurationMs + b.promptEvalDurationMs,
    evalDurationMs: a.evalDurationMs + b.evalDurationMs,
  };
}
