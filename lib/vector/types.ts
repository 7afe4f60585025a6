/**
 * Vector storage behind one interface: stores (owned by a tenant), their files and their chunks with vectors.
 * Two implementations: `embedded` (SQLite + sqlite-vec in one file, no server) and `pgvector` (PostgreSQL), chosen
 * by config VECTOR_STORE. Scores are cosine similarities; vectors are float32.
 */
import type {
  ChunkHit,
  FileCounts,
  VectorFileRecord,
  VectorFileStatus,
  VectorStoreRecord,
} from '../../contracts/vector';

export interface ChunkRow {
  index: number;
  text: string;
  vector: Float32Array;
}

export interface FileStatusPatch {
  status: VectorFileStatus;
  chunkCount?: number;
  error?: { code: string; message: string };
}

export interface VectorBackend {
  readonly kind: 'embedded' | 'pgvector';
  /** Creates tables (idempotent). */
  init(): Promise<void>;
  createStore(store: VectorStoreRecord): Promise<void>;
  /** The store when it exists and belongs to `tenantId`; another tenant's store is not found. */
  getStore(tenantId: string, id: string): Promise<VectorStoreRecord | undefined>;
  /** Deletes the store, its files and its chunks; false when it was not there (or is another tenant's). */
  deleteStore(tenantId: string, id: string): Promise<boolean>;
  addFile(file: VectorFileRecord): Promise<void>;
  getFile(storeId: string, fileId: string): Promise<VectorFileRecord | undefined>;
  listFiles(storeId: string): Promise<VectorFileRecord[]>;
  setFileStatus(storeId: string, fileId: string, patch: FileStatusPatch): Promise<void>;
  fileCounts(storeId: string): Promise<FileCounts>;
  /** Sum of the stored chunk texts' bytes. */
  usageBytes(storeId: string): Promise<number>;
  /**
   * Stores chunks of one file; a chunk index already stored is replaced, so a retried batch writes the same
   * rows. The first write fixes the store's dimensions; a vector of another size throws DimensionMismatch.
   */
  upsertChunks(storeId: string, fileId: string, chunks: ChunkRow[]): Promise<void>;
  /** The `k` chunks nearest to `vector` in one store, best first, with cosine similarity scores. */
  search(storeId: string, vector: Float32Array, k: number): Promise<ChunkHit[]>;
  close(): Promise<void>;
}

/** A vector whose size differs from the store's: retrying cannot fix it. */
export class DimensionMismatchError extends Error {
  constructor(
    readonly expected: number,
    readonly got: number,
  ) {
    super(`vectors of this store have ${expected} dimensions; got ${got} (was the embedding model changed?)`);
    this.name = 'DimensionMismatch';
  }
}

export function emptyCounts(): FileCounts {
  return { in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 };
}

/** float32 little-endian base64 → Float32Array (the llm activities' `embeddingsB64`). */
export function vectorFromB64(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  const out = new Float32Array(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}
