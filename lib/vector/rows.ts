/**
 * The records' rows, shared by both vector backends: the same tables and columns in SQLite and PostgreSQL, so one
 * mapping each way. JSON columns come back as text from SQLite and as objects from PostgreSQL (jsonb); bigint
 * columns as strings from `pg`.
 */
import type { VectorFileRecord, VectorStoreRecord } from '../../contracts/vector';

export interface StoreRow {
  id: string;
  tenant_id: string;
  name: string;
  created_at: number | string;
  embedding_model: string;
  dimensions: number | null;
  metadata: string | Record<string, string>;
}
export interface FileRow {
  store_id: string;
  id: string;
  filename: string;
  bytes: number;
  status: VectorFileRecord['status'];
  created_at: number | string;
  chunk_count: number;
  last_error: string | VectorFileRecord['lastError'] | null;
}

const json = <T>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;

export const STORE_COLUMNS = 'id, tenant_id, name, created_at, embedding_model, dimensions, metadata';
export const FILE_COLUMNS = 'store_id, id, filename, bytes, status, created_at, chunk_count, last_error';

/** The insert values of a store, in STORE_COLUMNS order. */
export const storeValues = (s: VectorStoreRecord) => [
  s.id,
  s.tenantId,
  s.name,
  s.createdAt,
  s.embeddingModel,
  s.dimensions ?? null,
  JSON.stringify(s.metadata),
];

/** The insert values of a file, in FILE_COLUMNS order. */
export const fileValues = (f: VectorFileRecord) => [
  f.storeId,
  f.id,
  f.filename,
  f.bytes,
  f.status,
  f.createdAt,
  f.chunkCount,
  f.lastError ? JSON.stringify(f.lastError) : null,
];

export function toStore(r: StoreRow): VectorStoreRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    createdAt: Number(r.created_at),
    embeddingModel: r.embedding_model,
    ...(r.dimensions ? { dimensions: r.dimensions } : {}),
    metadata: json<Record<string, string>>(r.metadata),
  };
}

export function toFile(r: FileRow): VectorFileRecord {
  return {
    id: r.id,
    storeId: r.store_id,
    filename: r.filename,
    bytes: r.bytes,
    status: r.status,
    createdAt: Number(r.created_at),
    chunkCount: r.chunk_count,
    ...(r.last_error ? { lastError: json<VectorFileRecord['lastError']>(r.last_error) } : {}),
  };
}
