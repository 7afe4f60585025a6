/** Workflows for bench/temporal-floor.bench.ts: the smallest shapes whose latency bounds every ainode path. */
import {
  allHandlersFinished,
  condition,
  defineSignal,
  defineUpdate,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import { llmQueue } from '../common/task-queues';
import type { LlmActivities, LlmGenerateInput } from '../contracts/llm';

const { floorNoop } = proxyActivities<{ floorNoop(): Promise<number> }>({ startToCloseTimeout: '10 seconds' });

export async function floorEmpty(): Promise<number> {
  return 1;
}

export async function floorOneActivity(): Promise<number> {
  return floorNoop();
}

export async function floorTimer(ms: number): Promise<void> {
  await sleep(ms);
}

// ---- the floors of the two LLM paths, with the real llm activity on the model's queue (bench/floors.bench.ts)

/** A prompt's floor: a workflow with one llm activity and nothing else (no model check, no search attributes). */
export async function floorLlmPrompt(input: FloorLlmInput): Promise<string> {
  return (await llmOn(input.model).llmGenerate(input.request)).content;
}

/** A job call's floor: an Update whose handler runs one llm activity; the host waits until told to stop. */
export const floorLlmCall = defineUpdate<string, [FloorLlmInput]>('floorLlmCall');
export const floorStop = defineSignal('floorStop');

export async function floorLlmHost(): Promise<void> {
  let stop = false;
  setHandler(floorLlmCall, async (input) => (await llmOn(input.model).llmGenerate(input.request)).content);
  setHandler(floorStop, () => void (stop = true));
  await condition(() => stop && allHandlersFinished());
}

export interface FloorLlmInput {
  model: string;
  request: LlmGenerateInput;
}

function llmOn(model: string) {
  return proxyActivities<LlmActivities>({ taskQueue: llmQueue(model), startToCloseTimeout: '1 minute' });
}
