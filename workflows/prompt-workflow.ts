/**
 * promptWorkflow: one LLM call (`POST /prompts`) as a durable workflow. The call runs as an llm activity on
 * the model's pinned queue, so it waits durably for a free slot, is retried on another node of the same
 * model if one dies, and shows up in the Web UI with its model, node and Ollama's token counts.
 * Its num_predict is bounded by the `prompt` call kind; cancelling the workflow (`POST /prompts/:id/cancel`)
 * cancels the activity, which aborts the Ollama stream.
 */

import { ActivityFailure, ApplicationFailure, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { ErrorType } from '../common/errors';
import { promptStatusQuery } from '../contracts/definitions';
import type { PromptStatus, PromptWorkflowInput, PromptWorkflowResult } from '../contracts/prompt';
import { assertModelServed, llmActivities } from './policies';
import { SearchAttributeKey } from '../common/search-attributes';

/**
 * A cancel reaches the running activity with the response to its next heartbeat, and the worker sends one at
 * most every 0.8 × heartbeatTimeout: 10 s (not LLM_CALL's 30 s) stops a cancelled prompt's generation within
 * ~8 s. The activity heartbeats every ≤ 3.3 s meanwhile, so a live node never misses it.
 */
const PROMPT_HEARTBEAT_TIMEOUT = '10 seconds';

export async function promptWorkflow(input: PromptWorkflowInput): Promise<PromptWorkflowResult> {
  let status: PromptStatus = { phase: 'running', modelId: input.modelId };
  setHandler(promptStatusQuery, () => status);
  // The API may set these at start too; upserting here also covers workflows started by other clients.
  upsertSearchAttributes([
    { key: SearchAttributeKey.Kind, value: 'prompt' },
    { key: SearchAttributeKey.ModelId, value: input.modelId },
  ]);

  try {
    const hasPrompt = input.prompt !== undefined;
    const hasMessages = input.messages !== undefined;
    if (hasPrompt === hasMessages) {
      throw ApplicationFailure.create({
        type: ErrorType.InvalidRequest,
        nonRetryable: true,
        message: 'promptWorkflow needs exactly one of `prompt` and `messages`',
      });
    }
    // Decided by the input alone, so replay takes the same branch (runs started before the flag keep the check).
    if (!input.modelChecked) await assertModelServed(input.modelId);
    // The summary is what the Web UI shows on the activity: which model, and why it was called.
    const llm = llmActivities(input.modelId, {
      summary: `${input.modelId} · prompt`,
      heartbeatTimeout: PROMPT_HEARTBEAT_TIMEOUT,
    });
    const common = {
      model: input.modelId,
      options: input.options,
      format: input.format,
      purpose: 'prompt',
      kind: 'prompt' as const,
    };
    const res = hasPrompt
      ? await llm.llmGenerate({ ...common, prompt: input.prompt ?? '', system: input.system })
      : await llm.llmChat({ ...common, messages: input.messages ?? [] });
    status = { phase: 'completed', modelId: input.modelId, nodeId: res.nodeId, usage: res.usage };
    return { content: res.content, model: res.model, nodeId: res.nodeId, usage: res.usage, doneReason: res.doneReason };
  } catch (err) {
    // An activity's own message (e.g. ModelNotFound) is more useful than "Activity task failed".
    const reason = err instanceof ActivityFailure && err.cause ? err.cause : err;
    status = {
      phase: 'failed',
      modelId: input.modelId,
      error: reason instanceof Error ? reason.message : String(reason),
    };
    throw err;
  }
}
