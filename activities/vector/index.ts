/**
 * The vector activities (orchestrator queue) behind ingestWorkflow: split a file's text (read from S3) into
 * chunks written back to S3 in embedding batches, hand one batch's texts to the workflow for llmEmbed on the
 * model's queue, store a batch's vectors, and record a file's status. Only keys and bounded batches travel in
 * payloads; the file's text never does.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../common/errors';
import type { ChunkPlan, VectorActivities } from '../../contracts/vector';
import type { Storage } from '../../lib/storage/clients';
import { splitText } from '../../lib/vector/chunking';
import { DimensionMismatchError, vectorFromB64, type VectorBackend } from '../../lib/vector/types';

export type { VectorActivities } from '../../contracts/vector';

export interface VectorActivityDeps {
  storage: Storage;
  vectors: VectorBackend;
}

/** Where a file's chunk batches live in S3. */
export const chunkBatchPrefix = (storeId: string, fileId: string) => `vector-stores/${storeId}/${fileId}/chunks/`;

function notFound(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: ErrorType.NotFound, nonRetryable: true, message });
}

export function createVectorActivities(deps: VectorActivityDeps): VectorActivities {
  const { storage, vectors } = deps;

  async function readJson<T>(key: string): Promise<T> {
    const bytes = await storage.getObjectBytes(key);
    if (!bytes) throw notFound(`no object ${key}`);
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  }

  return {
    async vectorChunkFile(input): Promise<ChunkPlan> {
      const bytes = await storage.getObjectBytes(input.textKey);
      if (!bytes) throw notFound(`the uploaded text ${input.textKey} is gone`);
      const chunks = await splitText(Buffer.from(bytes).toString('utf8'), input.format, input.chunking);
      const prefix = chunkBatchPrefix(input.storeId, input.fileId);
      const batches = Math.ceil(chunks.length / input.batchSize);
      await Promise.all(
        Array.from({ length: batches }, (_, b) =>
          storage.putObject(
            `${prefix}${b}.json`,
            JSON.stringify(chunks.slice(b * input.batchSize, (b + 1) * input.batchSize)),
            'application/json',
          ),
        ),
      );
      return { chunks: chunks.length, batches, batchSize: input.batchSize, batchKeyPrefix: prefix };
    },

    async vectorReadBatch({ key }) {
      return readJson<string[]>(key);
    },

    async vectorWriteBatch(input) {
      const texts = await readJson<string[]>(input.key);
      if (texts.length !== input.embeddingsB64.length) {
        throw ApplicationFailure.create({
          type: ErrorType.InvalidRequest,
          nonRetryable: true,
          message: `batch ${input.key}: ${texts.length} texts but ${input.embeddingsB64.length} vectors`,
        });
      }
      const rows = texts.map((text, i) => ({
        index: input.firstIndex + i,
        text,
        vector: vectorFromB64(input.embeddingsB64[i]!),
      }));
      try {
        await vectors.upsertChunks(input.storeId, input.fileId, rows);
      } catch (err) {
        if (err instanceof DimensionMismatchError) {
          throw ApplicationFailure.create({ type: ErrorType.InvalidRequest, nonRetryable: true, message: err.message });
        }
        throw err;
      }
      return { written: rows.length, dimensions: rows[0]?.vector.length ?? 0 };
    },

    async vectorSetFileStatus(input) {
      await vectors.setFileStatus(input.storeId, input.fileId, {
        status: input.status,
        ...(input.chunkCount !== undefined ? { chunkCount: input.chunkCount } : {}),
        ...(input.error ? { error: input.error } : {}),
      });
    },
  };
}
