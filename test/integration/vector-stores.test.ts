/**
 * Retrieval through the official `openai` client against real parts: a Temporal dev server, the moto emulator,
 * the real Ollama node with the real embedding model (all-minilm:l6-v2, created by setup) and the default chat
 * model, the embedded vector store in a temporary file. The shop's delivery policy and product ontology are
 * ingested by ingestWorkflow; a search for a delivery question must return the chunk that answers it first.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import OpenAI from 'openai';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createEmbeddedVectorStore, type VectorBackend } from '../../lib/vector';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import type { Config } from '../../common/config';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { testApp } from '../helpers/api';

jest.setTimeout(300_000);

const KEY = 'vs-key-a';
const KEY_B = 'vs-key-b';
const EMBED = process.env.AINODE_EMBED_MODEL || 'all-minilm:l6-v2';
const SHOP = path.join(__dirname, '..', 'fixtures', 'shop');

let env: TestWorkflowEnvironment;
let storage: Storage;
let vectors: VectorBackend;
let workers: RunningWorkers | undefined;
let config: Config;
let server: Server;
let baseUrl: string;
let dir: string;

const client = (apiKey = KEY) => new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0 });
const api = (p: string, init: RequestInit = {}, key = KEY) =>
  fetch(`${baseUrl}${p}`, {
    ...init,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
  });

/** Waits until the file's ingestion ends; returns the file object and the time it took. */
async function ingested(storeId: string, fileId: string): Promise<{ file: Record<string, unknown>; ms: number }> {
  const t0 = Date.now();
  const handle = env.client.workflow.getHandle(`ingest-${storeId}-${fileId}`);
  await handle.result();
  const file = (await (await api(`/v1/vector_stores/${storeId}/files/${fileId}`)).json()) as Record<string, unknown>;
  return { file, ms: Date.now() - t0 };
}

beforeAll(async () => {
  env = await createTemporalEnv();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ainode-vs-'));
  config = testConfig({
    API_KEYS: `${KEY}:tenant-a,${KEY_B}:tenant-b`,
    S3_BUCKET: uid('vs'),
    EMBED_MODEL: EMBED,
    // Small chunks: the policy's bullets land in different chunks, so "the right chunk" means something.
    VECTOR_CHUNK_SIZE: '160',
    VECTOR_CHUNK_OVERLAP: '0',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  vectors = createEmbeddedVectorStore(path.join(dir, 'vectors.sqlite'));
  const orchestrator = await createOrchestratorWorker({
    connection: env.nativeConnection,
    config,
    storage,
    vectors,
    overrides: { workflowsPath: require.resolve('../../workflows') },
  });
  const llm = await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 60_000 });
  workers = runWorkers([orchestrator, ...llm]);
  const app = testApp(env, { config, storage, vectors });
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((r) => server.once('listening', () => r()));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await workers?.stop();
  await env?.teardown();
  await vectors?.close();
  storage?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('vector stores with the real embedding model', () => {
  let storeId: string;
  let policyFileId: string;

  it('creates a store in OpenAI’s shape, owned by the key’s tenant', async () => {
    const vs = await client().vectorStores.create({ name: 'shop' });
    expect(vs.object).toBe('vector_store');
    expect(vs.id).toMatch(/^vs_/);
    expect(vs.name).toBe('shop');
    expect(vs.file_counts).toEqual({ in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 });
    expect((vs as unknown as { embedding_model: string }).embedding_model).toBe(EMBED);
    storeId = vs.id;
    await expect(client(KEY_B).vectorStores.retrieve(storeId)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('ingests the delivery policy (JSON) and the product ontology (raw body) with a durable workflow', async () => {
    const res = await api(`/v1/vector_stores/${storeId}/files`, {
      method: 'POST',
      body: JSON.stringify({
        text: readFileSync(path.join(SHOP, 'delivery-policy.md'), 'utf8'),
        filename: 'delivery-policy.md',
      }),
    });
    expect(res.status).toBe(200);
    const up = (await res.json()) as { id: string; object: string; status: string; vector_store_id: string };
    expect(up).toMatchObject({ object: 'vector_store.file', status: 'in_progress', vector_store_id: storeId });
    policyFileId = up.id;
    const raw = await api(`/v1/vector_stores/${storeId}/files?filename=ontology.ttl`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: readFileSync(path.join(SHOP, 'ontology.ttl'), 'utf8'),
    });
    expect(raw.status).toBe(200);
    const ontologyId = ((await raw.json()) as { id: string }).id;

    const policy = await ingested(storeId, policyFileId);
    const ontology = await ingested(storeId, ontologyId);
    console.log(`ingest: delivery-policy.md ${policy.ms} ms, ontology.ttl ${ontology.ms} ms (after the first)`);
    expect(policy.file).toMatchObject({ status: 'completed', last_error: null });
    expect(policy.file.chunk_count as number).toBeGreaterThanOrEqual(4);
    expect(ontology.file).toMatchObject({ status: 'completed' });

    const vs = await client().vectorStores.retrieve(storeId);
    expect(vs.status).toBe('completed');
    expect(vs.file_counts).toMatchObject({ completed: 2, total: 2, in_progress: 0 });
    expect(vs.usage_bytes).toBeGreaterThan(600);
    expect((vs as unknown as { dimensions: number }).dimensions).toBe(384);
    await recordHistory('ingest-delivery-policy', env.client.workflow.getHandle(`ingest-${storeId}-${policyFileId}`));
  });

  it.each([
    ['How much does express next-day delivery cost?', 'Express delivery'],
    ['How many days do I have to return an item?', 'Returns are free within 30 days'],
    ['Do you ship to countries outside the European Union?', 'We do not ship outside the EU'],
  ])('search “%s” returns the chunk that answers it first', async (query, expected) => {
    const page = await client().vectorStores.search(storeId, { query, max_num_results: 5 });
    const results = page.data;
    console.log(
      `search “${query}”: ` +
        results.map((r) => `${r.score.toFixed(3)} ${JSON.stringify(r.content[0]!.text.slice(0, 40))}`).join(' | '),
    );
    expect(results.length).toBeGreaterThan(1);
    expect(results[0]!.file_id).toBe(policyFileId);
    expect(results[0]!.filename).toBe('delivery-policy.md');
    expect(results[0]!.content[0]!.text).toContain(expected);
    // Best first, cosine scores.
    const scores = results.map((r) => r.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(scores.every((s) => s <= 1 && s >= -1)).toBe(true);
  });

  it('is tenant-owned: another tenant’s search and upload are 404', async () => {
    await expect(client(KEY_B).vectorStores.search(storeId, { query: 'delivery' })).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
    const up = await api(
      `/v1/vector_stores/${storeId}/files`,
      { method: 'POST', body: JSON.stringify({ text: 'x', filename: 'x.txt' }) },
      KEY_B,
    );
    expect(up.status).toBe(404);
    expect(((await up.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('answers a chat completion from the named store and cites the retrieved chunks', async () => {
    const res = await api('/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify({
        model: services.model,
        messages: [{ role: 'user', content: 'How much does express delivery cost?' }],
        max_tokens: 40,
        vector_store_ids: [storeId],
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      object: string;
      id: string;
      choices: { message: { content: string } }[];
      citations: { index: number; vector_store_id: string; file_id: string; chunk_index: number; score: number }[];
    };
    expect(body.object).toBe('chat.completion');
    expect(body.citations.length).toBeGreaterThan(0);
    expect(body.citations[0]).toMatchObject({ index: 1, vector_store_id: storeId, file_id: policyFileId });
    // The model saw the sources: the workflow's input carries them as a system message.
    const history = await env.client.workflow.getHandle(body.id).fetchHistory();
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    expect(Buffer.from(payload?.data ?? new Uint8Array()).toString('utf8')).toContain('9.90 EUR');
    // Another tenant cannot name the store.
    const other = await api(
      '/v1/chat/completions',
      {
        method: 'POST',
        body: JSON.stringify({
          model: services.model,
          messages: [{ role: 'user', content: 'hi' }],
          vector_store_ids: [storeId],
        }),
      },
      KEY_B,
    );
    expect(other.status).toBe(404);
  });

  it('deletes the store', async () => {
    const del = await client().vectorStores.delete(storeId);
    expect(del).toMatchObject({ id: storeId, deleted: true });
    await expect(client().vectorStores.retrieve(storeId)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
