/**
 * One recommendation run (gRPC `Recommend` or `POST /recommendations`): analyse the browsing context (a
 * deterministic activity, memoised by the context's hash), then one chat call on the model's pinned queue whose
 * tokens the llm activity pushes to the API process holding the client's stream (lib/stream). Metered like a
 * completion (source `recommendations`); the result (text and analysis) stays fetchable as the workflow's result.
 * Cancelling the workflow (the client cancelled the call) cancels the activity, which aborts Ollama.
 */
import { proxyLocalActivities } from '@temporalio/workflow';
import type {
  BrowsingAnalysis,
  RecommendationWorkflowInput,
  RecommendationWorkflowResult,
} from '../contracts/recommendation';
import type { ChatMessage } from '../contracts/llm';
import type { RecommendActivities } from '../activities/recommend';
import { INTERACTIVE_WAIT, meteredChat } from './metered-chat';

/** Steady suggestions, not creative writing. */
const RECOMMEND_TEMPERATURE = 0.3;

/**
 * The analysis is pure computation in the orchestrator worker: a local activity (a marker in history, no task
 * queue round trip) keeps it off the first chunk's path.
 */
const recommend = proxyLocalActivities<RecommendActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

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
  // No model check here: the API checked the catalog a moment before starting us (as for completions).
  const res = await meteredChat({
    caller: input.caller,
    source: input.source,
    summary: `${input.model} · ${input.source} (${input.contentType})${input.stream ? ' · stream' : ''}`,
    scheduleToStartTimeout: INTERACTIVE_WAIT,
    input: {
      model: input.model,
      messages: recommendationMessages(analysis, input),
      options: { num_predict: input.numPredict, temperature: RECOMMEND_TEMPERATURE },
      stream: input.stream,
      purpose: input.source,
      kind: 'prompt',
    },
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
