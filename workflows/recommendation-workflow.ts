/**
 * One recommendation run (gRPC `Recommend` or `POST /recommendations`): analyse the browsing context (a
 * deterministic activity, memoised by the context's hash), then one chat call on the model's pinned queue whose
 * tokens the llm activity pushes to the API process holding the client's stream (lib/stream). Metered like a
 * completion (source `recommendations`); the result (text and analysis) stays fetchable as the workflow's result.
 * Cancelling the workflow (the client cancelled the call) cancels the activity, which aborts Ollama.
 */
import {
  CancellationScope,
  CancelledFailure,
  proxyActivities,
  workflowInfo,
  type RetryPolicy,
} from '@temporalio/workflow';
import type {
  BrowsingAnalysis,
  RecommendationWorkflowInput,
  RecommendationWorkflowResult,
} from '../contracts/recommendation';
import type { ChatMessage } from '../contracts/llm';
import type { UsageActivities } from '../activities/usage';
import type { RecommendActivities } from '../activities/recommend';
import { NON_RETRYABLE_ERROR_TYPES } from '../common/errors';
import { assertModelServed, llmActivities, STORAGE } from './policies';

/** A client is waiting on a stream: a cancel reaches the activity with its next heartbeat response. */
const RECOMMEND_HEARTBEAT_TIMEOUT = '10 seconds';
/** A client is waiting: one retry (perhaps on another node), then the client gets its error and decides. */
const INTERACTIVE_RETRY: RetryPolicy = {
  initialInterval: '500 milliseconds',
  maximumAttempts: 2,
  nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
};
/** Steady suggestions, not creative writing. */
const RECOMMEND_TEMPERATURE = 0.3;

const usage = proxyActivities<UsageActivities>(STORAGE);
const recommend = proxyActivities<RecommendActivities>(STORAGE);

/** The chat messages for a recommendation: built from the analysis only, never from raw URLs or the user id. */
export function recommendationMessages(
  analysis: BrowsingAnalysis,
  input: Pick<RecommendationWorkflowInput, 'contentType' | 'contentPeriod'>,
): ChatMessage[] {
  const b = analysis.behaviour;
  const lines = [
    `Topics: ${analysis.topics.join(', ') || 'none found'}`,
    `Interests: ${analysis.interests.map((i) => `${i.name} (${i.score})`).join(', ') || 'unknown'}`,
    `Browsing pattern: ${b.pattern}` +
      (b.topSites.length ? `; most time on ${b.topSites.map((s) => s.site).join(', ')}` : '') +
      (b.engagement !== 'unknown' ? `; ${b.engagement} reading` : ''),
    `Preferred formats: ${analysis.preferences.formats.join(', ') || 'any'}; depth: ${analysis.preferences.depth}`,
    `Wanted: ${input.contentType} content, ${input.contentPeriod}`,
  ];
  return [
    {
      role: 'system',
      content:
        'You recommend content to read or watch next. Given a summary of what someone has been browsing, answer ' +
        'with 3 to 5 numbered recommendations, each a title and one sentence on why it fits. Plain text, no preamble.',
    },
    { role: 'user', content: lines.join('\n') },
  ];
}

export async function recommendationWorkflow(
  input: RecommendationWorkflowInput,
): Promise<RecommendationWorkflowResult> {
  const analysis = await recommend.analyzeBrowsingContext(input.context);
  await assertModelServed(input.model);
  const llm = llmActivities(input.model, {
    summary: `${input.model} · ${input.source} (${input.contentType})${input.stream ? ' · stream' : ''}`,
    heartbeatTimeout: RECOMMEND_HEARTBEAT_TIMEOUT,
    retry: INTERACTIVE_RETRY,
  });
  let res;
  try {
    res = await llm.llmChat({
      model: input.model,
      messages: recommendationMessages(analysis, input),
      options: { num_predict: input.numPredict, temperature: RECOMMEND_TEMPERATURE },
      stream: input.stream,
      purpose: input.source,
      kind: 'prompt',
    });
  } catch (err) {
    // The client cancelled: the API cancelled us, then closed the stream (the activity stopped on that).
    if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('the client cancelled');
    throw err;
  }
  await usage.recordApiUsage({
    caller: input.caller,
    callId: workflowInfo().workflowId,
    source: input.source,
    model: res.model,
    promptTokens: res.usage.promptTokens,
    completionTokens: res.usage.completionTokens,
  });
  return {
    content: res.content,
    analysis,
    model: res.model,
    nodeId: res.nodeId,
    usage: res.usage,
    doneReason: res.doneReason,
  };
}
