/**
 * ingestWorkflow: one file into a vector store. The text is in S3; an activity splits it (a real text splitter)
 * into batches written back to S3; each batch is embedded on the store model's pinned queue (llmEmbed, a few
 * batches at once) and stored; the file's status says in_progress → completed | failed | cancelled. A long file
 * continues-as-new every BATCHES_PER_RUN batches, so one run's history stays small (vectors are in it once each).
 * The caller's API key is charged Ollama's prompt tokens, once, at the end.
 */
import { CancellationScope, continueAsNew, isCancellation, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { UsageActivities } from '../activities/usage';
import type { VectorActivities } from '../contracts/vector';
import type { ChunkPlan, IngestWorkflowInput, IngestWorkflowResult } from '../contracts/vector';
import { assertModelServed, llmActivities, STORAGE } from './policies';

/** Chunks per llmEmbed call: one Ollama request, a few tens of KB of text. */
export const INGEST_EMBED_BATCH = 32;
/** Batches embedded at once: enough to use a node's parallel slots, few enough to leave room for chat. */
const EMBED_CONCURRENCY = 4;
/** Batches per run before continue-as-new: each adds its vectors (base64) twice to the history. */
const BATCHES_PER_RUN = 24;

const vector = proxyActivities<VectorActivities>(STORAGE);
const usage = proxyActivities<UsageActivities>(STORAGE);

export async function ingestWorkflow(input: IngestWorkflowInput): Promise<IngestWorkflowResult> {
  const { storeId, fileId } = input;
  let plan: ChunkPlan;
  let next: number;
  let promptTokens: number;
  let dimensions = 0;
  try {
    await assertModelServed(input.model);
    plan =
      input.progress?.plan ??
      (await vector.vectorChunkFile({
        storeId,
        fileId,
        textKey: input.textKey,
        format: input.format,
        chunking: input.chunking,
        batchSize: INGEST_EMBED_BATCH,
      }));
    next = input.progress?.nextBatch ?? 0;
    promptTokens = input.progress?.promptTokens ?? 0;
    const llm = llmActivities(input.model, { summary: `${input.model} · ingest ${fileId} into ${storeId}` });
    const end = Math.min(plan.batches, next + BATCHES_PER_RUN);
    for (let from = next; from < end; from += EMBED_CONCURRENCY) {
      const group = Array.from({ length: Math.min(EMBED_CONCURRENCY, end - from) }, (_, i) => from + i);
      const done = await Promise.all(
        group.map(async (b) => {
          const key = `${plan.batchKeyPrefix}${b}.json`;
          const texts = await vector.vectorReadBatch({ key });
          const emb = await llm.llmEmbed({ model: input.model, input: texts, encoding: 'base64' });
          const w = await vector.vectorWriteBatch({
            storeId,
            fileId,
            key,
            firstIndex: b * plan.batchSize,
            embeddingsB64: emb.embeddingsB64 ?? [],
          });
          return { tokens: emb.usage.promptTokens, dimensions: w.dimensions };
        }),
      );
      for (const d of done) {
        promptTokens += d.tokens;
        dimensions = d.dimensions || dimensions;
      }
    }
    next = end;
  } catch (err) {
    const cancelled = isCancellation(err);
    const message = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    await CancellationScope.nonCancellable(() =>
      vector.vectorSetFileStatus({
        storeId,
        fileId,
        status: cancelled ? 'cancelled' : 'failed',
        ...(cancelled ? {} : { error: { code: 'server_error', message } }),
      }),
    );
    throw err;
  }
  if (next < plan.batches) {
    return continueAsNew<typeof ingestWorkflow>({ ...input, progress: { plan, nextBatch: next, promptTokens } });
  }
  await usage.recordApiUsage({
    caller: input.caller,
    callId: workflowInfo().workflowId,
    source: input.source,
    model: input.model,
    promptTokens,
    completionTokens: 0,
  });
  await vector.vectorSetFileStatus({ storeId, fileId, status: 'completed', chunkCount: plan.chunks });
  return { storeId, fileId, chunks: plan.chunks, dimensions, model: input.model, promptTokens };
}
