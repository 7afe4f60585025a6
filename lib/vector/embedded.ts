/**
 * The embedded vector store: one SQLite file with the sqlite-vec extension, no server. Chunks and records live in
 * plain tables; vectors in one vec0 table per dimension size, partitioned by store, so a k-nearest query scans
 * only its store's vectors (exact cosine, brute force in C: fine up to about a million vectors a store). The API
 * and the orchestrator worker open the same file (WAL: readers never wait for the writer), so it suits one host;
 * a cluster uses the pgvector store.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
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
  create table if not exists vector_stores (
    id text primary key, tenant_id text not null, name text not null, created_at integer not null,
    embedding_model text not null, dimensions integer, metadata text not null default '{}');
  create table if not exists vector_files (
    store_id text not null, id text not null, filename text not null, bytes integer not null, status text not null,
    created_at integer not null, chunk_count integer not null default 0, last_error text,
    primary key (store_id, id));
  create table if not exists vector_chunks (
    id integer primary key, store_id text not null, file_id text not null, chunk_index integer not null,
    text text not null, unique (store_id, file_id, chunk_index));
`;

const vecTable = (dims: number) => `vec_f32_${dims}`;

/** `file`: a path, or ':memory:' (tests). */
export function createEmbeddedVectorStore(file: string): VectorBackend {
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file);
  sqliteVec.load(db);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);

  const ensureVecTable = (dims: number) => {
    if (!Number.isInteger(dims) || dims <= 0 || dims > 16_000) throw new Error(`bad vector size ${dims}`);
    db.exec(
      `create virtual table if not exists ${vecTable(dims)} using vec0(` +
        `store_id text partition key, embedding float[${dims}] distance_metric=cosine)`,
    );
  };
  const storeById = (id: string) =>
    db.prepare('select * from vector_stores where id = ?').get(id) as StoreRow | undefined;

  const upsert = db.transaction((storeId: string, fileId: string, chunks: ChunkRow[]) => {
    const store = storeById(storeId);
    if (!store || chunks.length === 0) return;
    const dims = chunks[0]!.vector.length;
    for (const c of chunks) {
      if (c.vector.length !== (store.dimensions ?? dims)) {
        throw new DimensionMismatchError(store.dimensions ?? dims, c.vector.length);
      }
    }
    if (!store.dimensions) db.prepare('update vector_stores set dimensions = ? where id = ?').run(dims, storeId);
    ensureVecTable(dims);
    const find = db.prepare('select id from vector_chunks where store_id = ? and file_id = ? and chunk_index = ?');
    const delChunk = db.prepare('delete from vector_chunks where id = ?');
    const delVec = db.prepare(`delete from ${vecTable(dims)} where rowid = ?`);
    const insChunk = db.prepare('insert into vector_chunks (store_id, file_id, chunk_index, text) values (?, ?, ?, ?)');
    const insVec = db.prepare(`insert into ${vecTable(dims)} (rowid, store_id, embedding) values (?, ?, ?)`);
    for (const c of chunks) {
      const old = find.get(storeId, fileId, c.index) as { id: number } | undefined;
      if (old) {
        delVec.run(BigInt(old.id));
        delChunk.run(old.id);
      }
      const { lastInsertRowid } = insChunk.run(storeId, fileId, c.index, c.text);
      insVec.run(BigInt(lastInsertRowid), storeId, c.vector);
    }
  });

  const removeStore = db.transaction((storeId: string, dims: number | null) => {
    if (dims) {
      ensureVecTable(dims);
      const ids = db.prepare('select id from vector_chunks where store_id = ?').all(storeId) as { id: number }[];
      const delVec = db.prepare(`delete from ${vecTable(dims)} where rowid = ?`);
      for (const { id } of ids) delVec.run(BigInt(id));
    }
    db.prepare('delete from vector_chunks where store_id = ?').run(storeId);
    db.prepare('delete from vector_files where store_id = ?').run(storeId);
    db.prepare('delete from vector_stores where id = ?').run(storeId);
  });

  return {
    kind: 'embedded',
    async init() {},
    async createStore(s) {
      db.prepare(`insert into vector_stores (${STORE_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?)`).run(...storeValues(s));
    },
    async getStore(tenantId, id) {
      const r = storeById(id);
      return r && r.tenant_id === tenantId ? toStore(r) : undefined;
    },
    async deleteStore(tenantId, id) {
      const r = storeById(id);
      if (!r || r.tenant_id !== tenantId) return false;
      removeStore(id, r.dimensions);
      return true;
    },
    async addFile(f) {
      db.prepare(`insert into vector_files (${FILE_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?)`).run(...fileValues(f));
    },
    async getFile(storeId, fileId) {
      const r = db.prepare('select * from vector_files where store_id = ? and id = ?').get(storeId, fileId);
      return r ? toFile(r as FileRow) : undefined;
    },
    async listFiles(storeId) {
      const rows = db.prepare('select * from vector_files where store_id = ? order by created_at, id').all(storeId);
      return (rows as FileRow[]).map(toFile);
    },
    async setFileStatus(storeId, fileId, p: FileStatusPatch) {
      db.prepare(
        'update vector_files set status = ?, chunk_count = coalesce(?, chunk_count), last_error = ? ' +
          'where store_id = ? and id = ?',
      ).run(p.status, p.chunkCount ?? null, p.error ? JSON.stringify(p.error) : null, storeId, fileId);
    },
    async fileCounts(storeId): Promise<FileCounts> {
      const rows = db
        .prepare('select status, count(*) as n from vector_files where store_id = ? group by status')
        .all(storeId) as { status: keyof FileCounts; n: number }[];
      const counts = emptyCounts();
      for (const r of rows) {
        counts[r.status] = r.n;
        counts.total += r.n;
      }
      return counts;
    },
    async usageBytes(storeId) {
      const r = db
        .prepare('select coalesce(sum(length(cast(text as blob))), 0) as n from vector_chunks where store_id = ?')
        .get(storeId) as { n: number };
      return r.n;
    },
    async upsertChunks(storeId, fileId, chunks) {
      upsert(storeId, fileId, chunks);
    },
    async search(storeId, vector, k): Promise<ChunkHit[]> {
      const store = storeById(storeId);
      if (!store?.dimensions) return [];
      if (vector.length !== store.dimensions) throw new DimensionMismatchError(store.dimensions, vector.length);
      ensureVecTable(store.dimensions);
      const rows = db
        .prepare(
          `with knn as (select rowid, distance from ${vecTable(store.dimensions)} ` +
            'where embedding match ? and k = ? and store_id = ?) ' +
            'select c.file_id, c.chunk_index, c.text, f.filename, knn.distance from knn ' +
            'join vector_chunks c on c.id = knn.rowid ' +
            'join vector_files f on f.store_id = c.store_id and f.id = c.file_id order by knn.distance',
        )
        .all(vector, k, storeId) as {
        file_id: string;
        chunk_index: number;
        text: string;
        filename: string;
        distance: number;
      }[];
      return rows.map((r) => ({
        storeId,
        fileId: r.file_id,
        filename: r.filename,
        chunkIndex: r.chunk_index,
        text: r.text,
        score: 1 - r.distance,
      }));
    },
    async close() {
      db.close();
    },
  };
}
