/**
 * The two vector store implementations against one contract: embedded (SQLite + sqlite-vec, in memory) and
 * pgvector through the `pg` client. pgvector runs against PGVECTOR_TEST_URL when set (a real PostgreSQL with the
 * extension, e.g. docker-compose's `pgvector` service), else against PGlite (PostgreSQL compiled to WASM) with
 * its pgvector extension, served on a local port by pglite-socket: the same wire protocol and SQL, no server to
 * install (Debian bookworm has no pgvector package). Also: the text splitter's chunks.
 */
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { VectorStoreRecord } from '../../contracts/vector';
import { createEmbeddedVectorStore, createPgVectorStore, splitText, formatOf } from '../../lib/vector';
import { DimensionMismatchError, vectorFromB64, type VectorBackend } from '../../lib/vector/types';

jest.setTimeout(60_000);

const v = (...xs: number[]) => Float32Array.from(xs);

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A PostgreSQL URL with pgvector, and how to stop what was started for it. */
async function pgUrl(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (process.env.PGVECTOR_TEST_URL) return { url: process.env.PGVECTOR_TEST_URL, stop: async () => {} };
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [path.join(__dirname, '..', 'helpers', 'pglite-pgvector-server.mjs'), String(port)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the PGlite server exited (${code})`)));
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
  });
  child.removeAllListeners('exit');
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const store = (id: string, tenantId = 'tenant-a'): VectorStoreRecord => ({
  id,
  tenantId,
  name: `store ${id}`,
  createdAt: 1_700_000_000,
  embeddingModel: 'all-minilm:l6-v2',
  metadata: { team: 'shop' },
});

const file = (storeId: string, id: string, filename = `${id}.md`) => ({
  id,
  storeId,
  filename,
  bytes: 100,
  status: 'in_progress' as const,
  createdAt: 1_700_000_001,
  chunkCount: 0,
});

const impls: [string, () => Promise<{ backend: VectorBackend; stop: () => Promise<void> }>][] = [
  ['embedded (sqlite-vec)', async () => ({ backend: createEmbeddedVectorStore(':memory:'), stop: async () => {} })],
  [
    `pgvector (${process.env.PGVECTOR_TEST_URL ? 'PGVECTOR_TEST_URL' : 'PGlite + pgvector over pg'})`,
    async () => {
      const pg = await pgUrl();
      // PGlite is one session: one connection keeps each transaction to itself.
      const backend = createPgVectorStore(pg.url, { max: 1 });
      await backend.init();
      return { backend, stop: pg.stop };
    },
  ],
];

describe.each(impls)('%s', (_name, make) => {
  let backend: VectorBackend;
  let stop: () => Promise<void>;
  const sid = (s: string) => `vs_${s}_${Date.now().toString(36)}`;

  beforeAll(async () => {
    ({ backend, stop } = await make());
  });
  afterAll(async () => {
    await backend?.close();
    await stop?.();
  });

  it('keeps stores per tenant: another tenant’s store is not found and cannot be deleted', async () => {
    const id = sid('own');
    await backend.createStore(store(id));
    expect(await backend.getStore('tenant-a', id)).toEqual(store(id));
    expect(await backend.getStore('tenant-b', id)).toBeUndefined();
    expect(await backend.deleteStore('tenant-b', id)).toBe(false);
    expect(await backend.getStore('tenant-a', id)).toBeDefined();
  });

  it('ranks chunks by cosine similarity within one store, best first, scores in [-1, 1]', async () => {
    const a = sid('rank');
    const b = sid('other');
    await backend.createStore(store(a));
    await backend.createStore(store(b));
    await backend.addFile(file(a, 'file-1', 'policy.md'));
    await backend.addFile(file(b, 'file-9'));
    await backend.upsertChunks(a, 'file-1', [
      { index: 0, text: 'north', vector: v(0, 1, 0) },
      { index: 1, text: 'east', vector: v(1, 0, 0) },
      { index: 2, text: 'north-east', vector: v(1, 1, 0) },
    ]);
    // The other store's chunk is nearer still, but never crosses stores.
    await backend.upsertChunks(b, 'file-9', [{ index: 0, text: 'exact', vector: v(1, 0.1, 0) }]);
    const hits = await backend.search(a, v(1, 0.1, 0), 2);
    expect(hits.map((h) => h.text)).toEqual(['east', 'north-east']);
    expect(hits[0]).toMatchObject({ storeId: a, fileId: 'file-1', filename: 'policy.md', chunkIndex: 1 });
    expect(hits[0]!.score).toBeCloseTo(1 / Math.sqrt(1.01), 5);
    expect(hits[1]!.score).toBeCloseTo(1.1 / (Math.sqrt(1.01) * Math.SQRT2), 5);
    expect((await backend.search(a, v(0, 0, 1), 5)).every((h) => h.score >= -1 && h.score <= 1)).toBe(true);
    expect((await backend.getStore('tenant-a', a))!.dimensions).toBe(3);
  });

  it('replaces a chunk index written again (a retried batch), and rejects another vector size', async () => {
    const id = sid('retry');
    await backend.createStore(store(id));
    await backend.addFile(file(id, 'file-1'));
    await backend.upsertChunks(id, 'file-1', [{ index: 0, text: 'first', vector: v(1, 0) }]);
    await backend.upsertChunks(id, 'file-1', [{ index: 0, text: 'again', vector: v(0, 1) }]);
    const hits = await backend.search(id, v(0, 1), 10);
    expect(hits.map((h) => [h.text, h.chunkIndex])).toEqual([['again', 0]]);
    await expect(backend.upsertChunks(id, 'file-1', [{ index: 1, text: 'x', vector: v(1, 0, 0) }])).rejects.toThrow(
      DimensionMismatchError,
    );
    await expect(backend.search(id, v(1, 0, 0), 1)).rejects.toThrow(DimensionMismatchError);
  });

  it('tracks files: status, chunk count, last error, counts by status and usage bytes', async () => {
    const id = sid('files');
    await backend.createStore(store(id));
    await backend.addFile(file(id, 'file-a'));
    await backend.addFile(file(id, 'file-b'));
    await backend.addFile(file(id, 'file-c'));
    await backend.upsertChunks(id, 'file-a', [{ index: 0, text: 'héllo', vector: v(1, 0) }]);
    await backend.setFileStatus(id, 'file-a', { status: 'completed', chunkCount: 1 });
    await backend.setFileStatus(id, 'file-b', { status: 'failed', error: { code: 'server_error', message: 'boom' } });
    expect(await backend.getFile(id, 'file-a')).toMatchObject({ status: 'completed', chunkCount: 1 });
    expect((await backend.getFile(id, 'file-b'))!.lastError).toEqual({ code: 'server_error', message: 'boom' });
    expect(await backend.getFile(id, 'nope')).toBeUndefined();
    expect((await backend.listFiles(id)).map((f) => f.id)).toEqual(['file-a', 'file-b', 'file-c']);
    expect(await backend.fileCounts(id)).toEqual({ in_progress: 1, completed: 1, failed: 1, cancelled: 0, total: 3 });
    expect(await backend.usageBytes(id)).toBe(6);
  });

  it('deletes a store with its files and chunks', async () => {
    const id = sid('del');
    await backend.createStore(store(id));
    await backend.addFile(file(id, 'file-1'));
    await backend.upsertChunks(id, 'file-1', [{ index: 0, text: 'gone', vector: v(1, 0) }]);
    expect(await backend.deleteStore('tenant-a', id)).toBe(true);
    expect(await backend.getStore('tenant-a', id)).toBeUndefined();
    expect(await backend.listFiles(id)).toEqual([]);
    expect(await backend.search(id, v(1, 0), 5)).toEqual([]);
  });
});

describe('chunking', () => {
  it('splits markdown at headings with overlap bounded by chunk size', async () => {
    const md = ['# Delivery', 'Ships in 2 days. '.repeat(30), '## Returns', 'Return within 30 days. '.repeat(30)].join(
      '\n\n',
    );
    const chunks = await splitText(md, 'markdown', { chunkSize: 200, chunkOverlap: 20 });
    expect(chunks.length).toBeGreaterThan(4);
    expect(chunks.every((c) => c.length <= 200)).toBe(true);
    expect(chunks[0]!.startsWith('# Delivery')).toBe(true);
    expect(chunks.some((c) => c.startsWith('## Returns'))).toBe(true);
  });

  it('picks markdown from the name or content type', () => {
    expect(formatOf('a.md')).toBe('markdown');
    expect(formatOf('a.txt', 'text/markdown; charset=utf-8')).toBe('markdown');
    expect(formatOf('a.ttl', 'text/plain')).toBe('text');
  });

  it('decodes the llm activities’ base64 float32 vectors', () => {
    const b64 = Buffer.from(Float32Array.from([0.5, -1, 2]).buffer).toString('base64');
    expect(Array.from(vectorFromB64(b64))).toEqual([0.5, -1, 2]);
  });
});
