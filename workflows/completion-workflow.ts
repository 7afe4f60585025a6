/**
 * The AI server's calls as workflows: `completionWorkflow` (one chat completion, streamed or not) and
 * `embeddingsWorkflow` (texts in batches). Both run their LLM work on the model's pinned queue and write one
 * usage row per call, charged to the caller's API key. A streamed completion's tokens travel from the llm
 * activity straight to the API process that holds the client's connection (lib/stream); the workflow only
 * sees the result. Cancelling the workflow (the client disconnected) cancels the activity, which aborts Ollama.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { CompletionWorkflowInput, CompletionWorkflowResult } from '../contracts/completion';
import type { EmbeddingsWorkflowInput, EmbeddingsWorkflowResult } from '../contracts/completion';
import type { UsageActivities } from '../activities/usage';
import { INTERACTIVE_RETRY, INTERACTIVE_WAIT, meteredChat } from './metered-chat';
import { llmActivities, STORAGE } from './policies';

/** Texts per llmEmbed call: a batch is one Ollama request; several batches run at once on the model's nodes. */
export const EMBED_BATCH = 32;

const usage = proxyActivities<UsageActivities>(STORAGE);

export async function completionWorkflow(input: CompletionWorkflowInput): Promise<CompletionWorkflowResult> {
  // No model check here: the API checked the catalog a moment before starting us, and a check costs a catalog
  // build on the first token's path. If the model's workers vanish meanwhile, the task is not picked up and
  // INTERACTIVE_WAIT ends the call (the client gets its error) instead of a wait on a queue nobody polls.
  const res = await meteredChat({
    caller: input.caller,
    source: input.source,
    summary: `${input.model} · ${input.source}${input.stream ? ' · stream' : ''}`,
    scheduleToStartTimeout: INTERACTIVE_WAIT,
    input: {
      model: input.model,
      messages: input.messages,
      options: input.options,
      format: input.format,
      stream: input.stream,
      purpose: input.source,
      kind: 'prompt',
    },
  });
  return { content: res.content, model: res.model, nodeId: res.nodeId, usage: res.usage, doneReason: res.doneReason };
}

export async function embeddingsWorkflow(input: EmbeddingsWorkflowInput): Promise<EmbeddingsWorkflowResult> {
  // Checked by the API, as for completions.
  const llm = llmActivities(input.model, {
    summary: `${input.model} · ${input.source}`,
    scheduleToStartTimeout: INTERACTIVE_WAIT,
    retry: INTERACTIVE_RETRY,
  });
  const batches: string[][] = [];
  for (let i = 0; i < input.texts.length; i += EMBED_BATCH) batches.push(input.texts.slice(i, i + EMBED_BATCH));
  const results = await Promise.all(
    batches.map((texts) => llm.llmEmbed({ model: input.model, input: texts, encoding: 'base64' })),
  );
  const promptTokens = results.reduce((n, r) => n + r.usage.promptTokens, 0);
  const model = results[0]?.model ?? input.model;
  await usage.recordApiUsage({
    caller: input.caller,
    callId: workflowInfo().workflowId,
    source: input.source,
    model,
    promptTokens,
    completionTokens: 0,
  });
  return { model, embeddingsB64: results.flatMap((r) => r.embeddingsB64 ?? []), promptTokens };
}
