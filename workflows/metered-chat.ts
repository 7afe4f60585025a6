/**
 * One interactive, metered chat call: what the AI server's completions and the recommendations share. The call
 * runs on the model's pinned queue (tokens pushed to the API process holding the client's stream, when
 * `stream` is set), then one usage row is charged to the caller's API key. A client is waiting, so failures
 * get one retry and then reach the client; a client that went away ends the run as cancelled.
 */
import {
  CancellationScope,
  CancelledFailure,
  proxyActivities,
  workflowInfo,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { NON_RETRYABLE_ERROR_TYPES } from '../common/errors';
import type { Caller } from '../contracts/completion';
import type { LlmChatInput, LlmResult } from '../contracts/llm';
import type { UsageActivities } from '../activities/usage';
import { llmActivities, STORAGE } from './policies';

/** Same as a prompt's: a cancel reaches the activity with its next heartbeat response, within ~8 s. */
const INTERACTIVE_HEARTBEAT_TIMEOUT = '10 seconds';
/**
 * A client is waiting: one retry (perhaps on another node) for a failed node or an out-of-memory load, then the
 * client gets its 503/504 and decides itself, instead of waiting through LLM_CALL's five attempts.
 */
export const INTERACTIVE_RETRY: RetryPolicy = {
  initialInterval: '500 milliseconds',
  maximumAttempts: 2,
  nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
};

/** The longest a call waits for a free slot on the model's nodes: the API gives up on the client's behalf then. */
export const INTERACTIVE_WAIT = '2 minutes';

const usage = proxyActivities<UsageActivities>(STORAGE);

export async function meteredChat(call: {
  caller: Caller;
  source: string;
  /** What the Web UI shows on the activity. */
  summary: string;
  input: LlmChatInput;
  /** How long the call may wait for a free slot before the client gets an error. */
  scheduleToStartTimeout?: Duration;
}): Promise<LlmResult> {
  const llm = llmActivities(call.input.model, {
    summary: call.summary,
    heartbeatTimeout: INTERACTIVE_HEARTBEAT_TIMEOUT,
    ...(call.scheduleToStartTimeout ? { scheduleToStartTimeout: call.scheduleToStartTimeout } : {}),
    retry: INTERACTIVE_RETRY,
  });
  let res: LlmResult;
  try {
    res = await llm.llmChat(call.input);
  } catch (err) {
    // The client went away: the API cancelled us, then closed the stream (the activity stopped on that). The
    // run is cancelled, whichever of the two reached the activity first.
    if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('the client went away');
    throw err;
  }
  await usage.recordApiUsage({
    caller: call.caller,
    callId: workflowInfo().workflowId,
    source: call.source,
    model: res.model,
    promptTokens: res.usage.promptTokens,
    completionTokens: res.usage.completionTokens,
  });
  return res;
}
