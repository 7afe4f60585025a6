/**
 * The PostgreSQL + pgvector store (config VECTOR_STORE=pgvector, PGVECTOR_URL): for a cluster, where the API and
 * the orchestrators run on several hosts. One `vector` column without a fixed size holds every store's vectors (a
 * store's size is fixed by its first write and checked under a row lock); a k-nearest query is an exact cosine
 * scan of one store's rows (`<=>`, the store_id index narrows it). An HNSW index needs a fixed size per column:
 * add one per size (`create index … using hnsw ((embedding::vector(384)) vector_cosine_ops) where …`) when a
 * store grows past a few hundred thousand chunks.
 */
import { Pool, type PoolClient } from 'pg';
import type { ChunkHit, FileCounts } from '../../contracts/vector';
import {
  FILE_COLUMNS,
  fileValues,
  STORE_COLUMNS,
  storeValues,
  toFile,
  toStore,
  type FileRow,
  type StoreRow,
} from './rows';
import { DimensionMismatchError, emptyCounts, type ChunkRow, type FileStatusPatch, type VectorBackend } from './types';

const SCHEMA = `
  create extension if not exists vector;
  create table if not exists vector_stores (
    id text primary key, tenant_id text not null, name text not null, created_at bigint not null,
    embedding_model text not null, dimensions integer, metadata jsonb not null default '{}');
  create table if not exists vector_files (
    store_id text not null references vector_stores (id) on delete cascade, id text not null,
    filename text not null, bytes integer not null, status text not null, created_at bigint not null,
    chunk_count integer not null default 0, last_error jsonb, primary key (store_id, id));
  create table if not exists vector_chunks (
    store_id text not null, file_id text not null, chunk_index integer not null, text text not null,
    embedding vector not null, primary key (store_id, file_id, chunk_index),
    foreign key (store_id, file_id) references vector_files (store_id, id) on delete cascade);
`;

/** pgvector's text form: `[1,2,3]`. */
const literal = (v: Float32Array) => `[${Array.from(v).join(',')}]`;

export function createPgVectorStore(url: string, opts: { max?: number } = {}): VectorBackend {
  const pool = new Pool({ connectionString: url, max: opts.max ?? 5 });
  let ready: Promise<void> | undefined;
  // Several processes may start at once: the schema is created under an advisory lock.
  const init = () =>
    (ready ??= (async () => {
      const c = await pool.connect();
      try {
        await c.query('select pg_advisory_lock(727001)');
        await c.query(SCHEMA);
      } finally {
        await c.query('select pg_advisory_unlock(727001)').catch(() => undefined);
        c.release();
      }
    })().catch((err: unknown) => {
      ready = undefined;
      throw err;
    }));
  const q = async <R extends object>(sql: string, params: unknown[] = []) => {
    await init();
    return (await pool.query<R>(sql, params)).rows;
  };
  const tx = async <T>(work: (c: PoolClient) => Promise<T>): Promise<T> => {
    await init();
    const c = await pool.connect();
    try {
      await c.query('begin');
      const out = await work(c);
      await c.query('commit');
      return out;
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  };

  return {
    kind: 'pgvector',
    init,
    async createStore(s) {
      await q(`insert into vector_stores (${STORE_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7)`, storeValues(s));
    },
    async getStore(tenantId, id) {
      const [r] = await q<StoreRow>('select * from vector_stores where id = $1 and tenant_id = $2', [id, tenantId]);
      return r ? toStore(r) : undefined;
    },
    async deleteStore(tenantId, id) {
      const rows = await q('delete from vector_stores where id = $1 and tenant_id = $2 returning id', [id, tenantId]);
      return rows.length > 0;
    },
    async addFile(f) {
      await q(`insert into vector_files (${FILE_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8)`, fileValues(f));
    },
    async getFile(storeId, fileId) {
      const [r] = await q<FileRow>('select * from vector_files where store_id = $1 and id = $2', [storeId, fileId]);
      return r ? toFile(r) : undefined;
    },
    async listFiles(storeId) {
      const rows = await q<FileRow>('select * from vector_files where store_id = $1 order by created_at, id', [
        storeId,
      ]);
      return rows.map(toFile);
    },
    async setFileStatus(storeId, fileId, p: FileStatusPatch) {
      await q(
        'update vector_files set status = $1, chunk_count = coalesce($2, chunk_count), last_error = $3 ' +
          'where store_id = $4 and id = $5',
        [p.status, p.chunkCount ?? null, p.error ? JSON.stringify(p.error) : null, storeId, fileId],
      );
    },
    async fileCounts(storeId): Promise<FileCounts> {
      const rows = await q<{ status: keyof FileCounts; n: string }>(
        'select status, count(*) as n from vector_files where store_id = $1 group by status',
        [storeId],
      );
      const counts = emptyCounts();
      for (const r of rows) {
        counts[r.status] = Number(r.n);
        counts.total += Number(r.n);
      }
      return counts;
    },
    async usageBytes(storeId) {
      const [r] = await q<{ n: string }>(
        'select coalesce(sum(octet_length(text)), 0) as n from vector_chunks where store_id = $1',
        [storeId],
      );
      return Number(r?.n ?? 0);
    },
    async upsertChunks(storeId, fileId, chunks: ChunkRow[]) {
      if (chunks.length === 0) return;
      await tx(async (c) => {
        const { rows } = await c.query<{ dimensions: number | null }>(
          'select dimensions from vector_stores where id = $1 for update',
          [storeId],
        );
        if (rows.length === 0) return;
        const dims = rows[0]!.dimensions ?? chunks[0]!.vector.length;
        for (const ch of chunks) {
          if (ch.vector.length !== dims) throw new DimensionMismatchError(dims, ch.vector.length);
        }
        if (rows[0]!.dimensions == null) {
          await c.query('update vector_stores set dimensions = $1 where id = $2', [dims, storeId]);
        }
        await c.query(
          'insert into vector_chunks (store_id, file_id, chunk_index, text, embedding) ' +
            'select $1, $2, u.i, u.t, u.e::vector from unnest($3::int[], $4::text[], $5::text[]) as u(i, t, e) ' +
            'on conflict (store_id, file_id, chunk_index) do update set text = excluded.text, embedding = excluded.embedding',
          [
            storeId,
            fileId,
            chunks.map((ch) => ch.index),
            chunks.map((ch) => ch.text),
            chunks.map((ch) => literal(ch.vector)),
          ],
        );
      });
    },
    async search(storeId, vector, k): Promise<ChunkHit[]> {
      const [store] = await q<{ dimensions: number | null }>('select dimensions from vector_stores where id = $1', [
        storeId,
      ]);
      if (!store?.dimensions) return [];
      if (vector.length !== store.dimensions) throw new DimensionMismatchError(store.dimensions, vector.length);
      const rows = await q<{ file_id: string; chunk_index: number; text: string; filename: string; score: number }>(
        'select c.file_id, c.chunk_index, c.text, f.filename, 1 - (c.embedding <=> $1::vector) as score ' +
          'from vector_chunks c join vector_files f on f.store_id = c.store_id and f.id = c.file_id ' +
          'where c.store_id = $2 order by c.embedding <=> $1::vector limit $3',
        [literal(vector), storeId, k],
      );
      return rows.map((r) => ({
        storeId,
        fileId: r.file_id,
        filename: r.filename,
        chunkIndex: r.chunk_index,
        text: r.text,
        score: Number(r.score),
      }));
    },
    async close() {
      await pool.end();
    },
  };
}
