/** Workflow for bench/pinning.bench.ts: one bounded llm call on the queue the bench names (pinned or shared). */
import { proxyActivities } from '@temporalio/workflow';
import type { LlmActivities, LlmResult } from '../contracts/llm';

export interface PinningCall {
  queue: string;
  model: string;
  prompt: string;
  numPredict: number;
}

export async function pinningCall(input: PinningCall): Promise<LlmResult> {
  const { llmGenerate } = proxyActivities<LlmActivities>({
    taskQueue: input.queue,
    // Generous: on the shared queue a call may wait for its node to swap models in.
    startToCloseTimeout: '15 minutes',
    retry: { maximumAttempts: 1 },
  });
  return llmGenerate({
    model: input.model,
    prompt: input.prompt,
    kind: 'prompt',
    purpose: 'bench',
    options: { num_predict: input.numPredict, temperature: 0, seed: 42 },
  });
}
