/**
 * Vector stores (retrieval): the records the stores keep, and the ingestion workflow's input and activities.
 * Workflow-safe: types only. A file's text never travels in a payload: it is in S3 (textKey), and its chunks
 * are written to S3 in batches that activities read by key.
 */
import type { Caller } from './completion';

export type VectorFileStatus = 'in_progress' | 'completed' | 'failed' | 'cancelled';

export interface VectorStoreRecord {
  id: string;
  tenantId: string;
  name: string;
  /** Unix seconds. */
  createdAt: number;
  /** Every chunk of the store is embedded with this model, and so is every query. */
  embeddingModel: string;
  /** Set by the first write; later writes with another size fail (non-retryable). */
  dimensions?: number;
  metadata: Record<string, string>;
}

export interface VectorFileRecord {
  id: string;
  storeId: string;
  filename: string;
  bytes: number;
  status: VectorFileStatus;
  createdAt: number;
  chunkCount: number;
  lastError?: { code: string; message: string };
}

export interface FileCounts {
  in_progress: number;
  completed: number;
  failed: number;
  cancelled: number;
  total: number;
}

/** One retrieved chunk; score is the cosine similarity (1 = same direction). */
export interface ChunkHit {
  storeId: string;
  fileId: string;
  filename: string;
  chunkIndex: number;
  text: string;
  score: number;
}

/** How a file is split: the text splitter's chunk size and overlap, in characters. */
export interface Chunking {
  chunkSize: number;
  chunkOverlap: number;
}

/** The chunks of one file, as the chunking activity wrote them: one S3 object per embedding batch. */
export interface ChunkPlan {
  chunks: number;
  batches: number;
  batchSize: number;
  /** `${prefix}${batch index}.json`, each a JSON array of chunk texts. */
  batchKeyPrefix: string;
}

export interface IngestWorkflowInput {
  caller: Caller;
  storeId: string;
  fileId: string;
  filename: string;
  /** The uploaded text in S3. */
  textKey: string;
  format: 'text' | 'markdown';
  model: string;
  chunking: Chunking;
  source: string;
  /** Set by continue-as-new: the plan, the next batch and the tokens so far. */
  progress?: { plan: ChunkPlan; nextBatch: number; promptTokens: number };
}

export interface IngestWorkflowResult {
  storeId: string;
  fileId: string;
  chunks: number;
  dimensions: number;
  model: string;
  promptTokens: number;
}

/** The vector activities (orchestrator queue). */
export interface VectorActivities {
  /** Splits the file's text and writes the chunks to S3 in batches; marks nothing. */
  vectorChunkFile(input: {
    storeId: string;
    fileId: string;
    textKey: string;
    format: 'text' | 'markdown';
    chunking: Chunking;
    batchSize: number;
  }): Promise<ChunkPlan>;
  /** The chunk texts of one batch (to embed on the model's queue). */
  vectorReadBatch(input: { key: string }): Promise<string[]>;
  /** Stores one batch's vectors with its texts (read again from S3 by key); idempotent by chunk index. */
  vectorWriteBatch(input: {
    storeId: string;
    fileId: string;
    key: string;
    firstIndex: number;
    embeddingsB64: string[];
  }): Promise<{ written: number; dimensions: number }>;
  vectorSetFileStatus(input: {
    storeId: string;
    fileId: string;
    status: VectorFileStatus;
    chunkCount?: number;
    error?: { code: string; message: string };
  }): Promise<void>;
}
