/**
 * Retrieval (RAG), OpenAI-compatible where OpenAI's shape fits: `/v1/vector_stores` (create, get, delete), their
 * files (upload text or markdown; ingestion is `ingestWorkflow`, chunked with a text splitter and embedded on the
 * store model's pinned queue) and `/search` (top-k chunks with cosine scores). Stores belong to the key's tenant;
 * another tenant's store is a 404. `retrieveSources` is the chat completions' extension `vector_store_ids`: the
 * top chunks for the last user message become a system message of numbered sources, cited in the answer.
 *
 * Differences from OpenAI: a file is uploaded here directly (JSON `{text, filename}` or a raw text/markdown body),
 * not by `file_id` from a Files API; an `embedding_model` extension picks the model at creation.
 */
import { randomUUID } from 'node:crypto';
import express, { Router, type Request } from 'express';
import { z } from 'zod';
import { HttpError } from '../../common/errors';
import { SearchAttributeKey } from '../../common/search-attributes';
import { normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { ChatMessage } from '../../contracts/llm';
import type { ChunkHit, VectorFileRecord, VectorStoreRecord } from '../../contracts/vector';
import { formatOf } from '../../lib/vector/chunking';
import { createVectorBackend } from '../../lib/vector';
import type { VectorBackend } from '../../lib/vector/types';
import type { ingestWorkflow } from '../../workflows/ingest-workflow';
import { tenantOf } from '../middleware/auth';
import { requireModel } from '../model-check';
import { registerRoute } from '../openapi';
import { parse } from '../validate';
import { callerOf, decodeVector, runEmbeddings, type AiServer } from './completions';

const CHARS_PER_TOKEN = 4;

export const CreateVectorStoreBodySchema = z
  .object({
    name: z.string().max(256).optional(),
    metadata: z.record(z.string().max(64), z.string().max(512)).optional(),
    file_ids: z
      .array(z.string())
      .max(0, 'file_ids are not supported: upload with POST /v1/vector_stores/{id}/files')
      .optional(),
    /** Extension: the embedding model of this store (default: config EMBED_MODEL, else DEFAULT_MODEL). */
    embedding_model: z.string().trim().min(1).max(200).optional(),
    chunking_strategy: z
      .union([
        z.object({ type: z.literal('auto') }),
        z.object({
          type: z.literal('static'),
          static: z.object({
            max_chunk_size_tokens: z.number().int().min(100).max(4096),
            chunk_overlap_tokens: z.number().int().min(0),
          }),
        }),
      ])
      .optional(),
  })
  .loose();

export const UploadFileBodySchema = z
  .object({
    text: z.string().min(1),
    filename: z.string().trim().min(1).max(256).default('document.txt'),
    attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .loose();

export const SearchBodySchema = z
  .object({
    query: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(1, 'one query at a time')]),
    max_num_results: z.number().int().min(1).max(50).default(10),
    ranking_options: z
      .object({ score_threshold: z.number().min(-1).max(1).optional() })
      .loose()
      .optional(),
    filters: z.undefined({ message: 'filters are not supported' }).optional(),
  })
  .loose();

const storeParams = z.object({ id: z.string() });
registerRoute({
  method: 'post',
  path: '/v1/vector_stores',
  summary: 'Create a vector store (OpenAI shape; extension: embedding_model)',
  tag: 'retrieval',
  body: CreateVectorStoreBodySchema,
  responses: { 200: 'The vector_store object', 400: 'Invalid body', 404: 'model_not_found (embedding model)' },
});
registerRoute({
  method: 'get',
  path: '/v1/vector_stores/:id',
  summary: 'A vector store with its file counts',
  tag: 'retrieval',
  params: storeParams,
  responses: { 200: 'The vector_store object', 404: 'No such store for this tenant' },
});
registerRoute({
  method: 'delete',
  path: '/v1/vector_stores/:id',
  summary: 'Delete a vector store, its files and chunks',
  tag: 'retrieval',
  params: storeParams,
  responses: { 200: 'vector_store.deleted', 404: 'No such store for this tenant' },
});
registerRoute({
  method: 'post',
  path: '/v1/vector_stores/:id/files',
  summary:
    'Add a text or markdown file: JSON {text, filename} or a raw text/* body (?filename=); ingested by a workflow',
  tag: 'retrieval',
  params: storeParams,
  body: UploadFileBodySchema,
  rawBody: { contentType: 'text/markdown', description: 'or text/plain; the name from ?filename=' },
  responses: {
    200: 'The vector_store.file object, status in_progress',
    400: 'Empty or invalid body',
    404: 'No such store',
    413: 'Larger than VECTOR_MAX_FILE_BYTES',
  },
});
registerRoute({
  method: 'get',
  path: '/v1/vector_stores/:id/files',
  summary: 'The files of a vector store',
  tag: 'retrieval',
  params: storeParams,
  responses: { 200: 'A list of vector_store.file objects', 404: 'No such store' },
});
registerRoute({
  method: 'get',
  path: '/v1/vector_stores/:id/files/:fileId',
  summary: 'One file of a vector store (status: in_progress, completed, failed, cancelled)',
  tag: 'retrieval',
  params: z.object({ id: z.string(), fileId: z.string() }),
  responses: { 200: 'The vector_store.file object', 404: 'No such store or file' },
});
registerRoute({
  method: 'post',
  path: '/v1/vector_stores/:id/search',
  summary: 'Top-k chunks for a query, best first, with cosine scores (the query is embedded by a workflow)',
  tag: 'retrieval',
  params: storeParams,
  body: SearchBodySchema,
  responses: { 200: 'vector_store.search_results.page', 400: 'Invalid body', 404: 'No such store' },
});

const backends = new WeakMap<AiServer, VectorBackend>();

/** The API's vector store: the one in deps (tests), else the one config selects, opened once. */
export function vectorsOf(ai: AiServer): VectorBackend {
  let b = backends.get(ai) ?? ai.deps.vectors;
  if (!b) b = createVectorBackend(ai.deps.config);
  backends.set(ai, b);
  return b;
}

async function storeOf(ai: AiServer, req: Request, id: string, param?: string): Promise<VectorStoreRecord> {
  const store = await vectorsOf(ai).getStore(tenantOf(req), id);
  if (!store) throw new HttpError(404, 'not_found', `No vector store found with id '${id}'`, param ? { param } : {});
  return store;
}

async function storeObject(ai: AiServer, s: VectorStoreRecord) {
  const vectors = vectorsOf(ai);
  const [counts, bytes] = await Promise.all([vectors.fileCounts(s.id), vectors.usageBytes(s.id)]);
  return {
    id: s.id,
    object: 'vector_store',
    created_at: s.createdAt,
    name: s.name,
    usage_bytes: bytes,
    file_counts: counts,
    status: counts.in_progress > 0 ? 'in_progress' : 'completed',
    expires_after: null,
    expires_at: null,
    last_active_at: s.createdAt,
    metadata: s.metadata,
    // Extensions: how the store embeds.
    embedding_model: s.embeddingModel,
    dimensions: s.dimensions ?? null,
  };
}

function fileObject(f: VectorFileRecord, chunking: { chunkSize: number; chunkOverlap: number }) {
  return {
    id: f.id,
    object: 'vector_store.file',
    usage_bytes: f.bytes,
    created_at: f.createdAt,
    vector_store_id: f.storeId,
    status: f.status,
    last_error: f.lastError ?? null,
    attributes: {},
    chunking_strategy: {
      type: 'static',
      static: {
        max_chunk_size_tokens: Math.round(chunking.chunkSize / CHARS_PER_TOKEN),
        chunk_overlap_tokens: Math.round(chunking.chunkOverlap / CHARS_PER_TOKEN),
      },
    },
    // Extensions.
    filename: f.filename,
    chunk_count: f.chunkCount,
  };
}

/**
 * Stores `text` in S3 and starts its ingestion. Exported for the dev stack's sample store (scripts/dev.ts does
 * the same through HTTP); the workflow id is `ingest-<store>-<file>`.
 */
export async function addFile(
  ai: AiServer,
  req: Request,
  store: VectorStoreRecord,
  text: string,
  filename: string,
  contentType?: string,
): Promise<VectorFileRecord> {
  const { config, storage, temporal, catalog } = ai.deps;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > config.VECTOR_MAX_FILE_BYTES) {
    throw new HttpError(
      413,
      'file_too_large',
      `${bytes} bytes, more than the ${config.VECTOR_MAX_FILE_BYTES} allowed`,
      {
        limit: config.VECTOR_MAX_FILE_BYTES,
      },
    );
  }
  if (!text.trim()) throw new HttpError(400, 'invalid_request', 'the file is empty', { param: 'text' });
  const caller = callerOf(req);
  await ai.limits.admit(caller.keyId);
  await requireModel(catalog, store.embeddingModel);
  const fileId = `file-${randomUUID().replace(/-/g, '').slice(0, 24)}`;
  const format = formatOf(filename, contentType);
  const textKey = `vector-stores/${store.id}/${fileId}/source${format === 'markdown' ? '.md' : '.txt'}`;
  await storage.putObject(textKey, text, format === 'markdown' ? 'text/markdown' : 'text/plain');
  const chunking = chunkingOf(store, config);
  const file: VectorFileRecord = {
    id: fileId,
    storeId: store.id,
    filename,
    bytes,
    status: 'in_progress',
    createdAt: Math.floor(Date.now() / 1000),
    chunkCount: 0,
  };
  await vectorsOf(ai).addFile(file);
  try {
    await temporal.workflow.start<typeof ingestWorkflow>('ingestWorkflow', {
      taskQueue: ORCHESTRATOR_QUEUE,
      workflowId: `ingest-${store.id}-${fileId}`,
      args: [
        {
          caller,
          storeId: store.id,
          fileId,
          filename,
          textKey,
          format,
          model: store.embeddingModel,
          chunking,
          source: 'v1:vector_stores.files',
        },
      ],
      typedSearchAttributes: [
        { key: SearchAttributeKey.Kind, value: 'ingest' },
        { key: SearchAttributeKey.ModelId, value: store.embeddingModel },
        { key: SearchAttributeKey.TenantId, value: caller.tenantId },
      ],
      memo: { tenant: caller.tenantId },
      staticSummary: `ingest ${filename} (${bytes} bytes) into ${store.id} with ${store.embeddingModel}`,
    });
  } catch (err) {
    await vectorsOf(ai).setFileStatus(store.id, fileId, {
      status: 'failed',
      error: { code: 'server_error', message: 'the ingestion could not start' },
    });
    throw err;
  }
  return file;
}

/** A store's chunking, from its metadata (set at creation) or config. */
function chunkingOf(
  store: VectorStoreRecord,
  config: { VECTOR_CHUNK_SIZE: number; VECTOR_CHUNK_OVERLAP: number },
): { chunkSize: number; chunkOverlap: number } {
  const size = Number(store.metadata['ainode.chunk_size']) || config.VECTOR_CHUNK_SIZE;
  const overlap = Number(store.metadata['ainode.chunk_overlap']);
  return {
    chunkSize: size,
    chunkOverlap: Number.isFinite(overlap) && overlap >= 0 ? overlap : config.VECTOR_CHUNK_OVERLAP,
  };
}

/** Embeds `query` with the store's model (embeddingsWorkflow, metered) and returns the nearest chunks. */
export async function searchStore(
  ai: AiServer,
  req: Request,
  store: VectorStoreRecord,
  query: string,
  k: number,
  source: string,
): Promise<ChunkHit[]> {
  if (!store.dimensions) return [];
  const r = await runEmbeddings(ai, req, store.embeddingModel, [query], source);
  const vector = Float32Array.from(decodeVector(r.embeddingsB64[0] ?? ''));
  return vectorsOf(ai).search(store.id, vector, k);
}

/** Chunks put into a chat completion: few enough for a small model's context. */
const RAG_SOURCES = 4;

export interface Citation {
  index: number;
  vector_store_id: string;
  file_id: string;
  filename: string;
  chunk_index: number;
  score: number;
}

/**
 * The chat completions' `vector_store_ids`: retrieves the top chunks for the last user message from the named
 * stores (each must be the tenant's: 404 otherwise) and inserts them, numbered, as a system message after the
 * leading system messages. Returns the messages to send and the citations the response carries.
 */
export async function retrieveSources(
  ai: AiServer,
  req: Request,
  storeIds: string[],
  messages: ChatMessage[],
): Promise<{ messages: ChatMessage[]; citations: Citation[]; sourcesText: string }> {
  const stores = await Promise.all(storeIds.map((id) => storeOf(ai, req, id, 'vector_store_ids')));
  const query = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  if (!query.trim()) return { messages, citations: [], sourcesText: '' };
  const hits = (
    await Promise.all(stores.map((s) => searchStore(ai, req, s, query, RAG_SOURCES, 'v1:chat.completions.retrieval')))
  )
    .flat()
    .sort((a, b) => b.score - a.score)
    .slice(0, RAG_SOURCES);
  if (hits.length === 0) return { messages, citations: [], sourcesText: query };
  const sources = hits.map((h, i) => `[${i + 1}] (${h.filename})\n${h.text}`).join('\n\n');
  const system: ChatMessage = {
    role: 'system',
    content:
      'Answer the user in one or two sentences from the numbered sources below, copying prices and numbers ' +
      'exactly as the sources state them, and cite the sources you use as [1], [2]. ' +
      'If the sources do not contain the answer, say that you do not know.\n\n' +
      sources,
  };
  const lead = messages.findIndex((m) => m.role !== 'system');
  const at = lead < 0 ? messages.length : lead;
  return {
    messages: [...messages.slice(0, at), system, ...messages.slice(at)],
    // What the answer may state: the sources and the question.
    sourcesText: `${sources}\n${query}`,
    citations: hits.map((h, i) => ({
      index: i + 1,
      vector_store_id: h.storeId,
      file_id: h.fileId,
      filename: h.filename,
      chunk_index: h.chunkIndex,
      score: h.score,
    })),
  };
}

export function vectorStoresRouter(ai: AiServer): Router {
  const { config, catalog } = ai.deps;
  const router = Router();

  router.post('/v1/vector_stores', async (req, res) => {
    const body = parse(CreateVectorStoreBodySchema, req.body ?? {}, 'body');
    const model = normalizeModel(body.embedding_model ?? config.EMBED_MODEL ?? config.DEFAULT_MODEL);
    await requireModel(catalog, model);
    const metadata: Record<string, string> = { ...body.metadata };
    if (body.chunking_strategy?.type === 'static') {
      metadata['ainode.chunk_size'] = String(body.chunking_strategy.static.max_chunk_size_tokens * CHARS_PER_TOKEN);
      metadata['ainode.chunk_overlap'] = String(body.chunking_strategy.static.chunk_overlap_tokens * CHARS_PER_TOKEN);
    }
    const store: VectorStoreRecord = {
      id: `vs_${randomUUID().replace(/-/g, '').slice(0, 24)}`,
      tenantId: tenantOf(req),
      name: body.name ?? '',
      createdAt: Math.floor(Date.now() / 1000),
      embeddingModel: model,
      metadata,
    };
    await vectorsOf(ai).createStore(store);
    res.json(await storeObject(ai, store));
  });

  router.get('/v1/vector_stores/:id', async (req, res) => {
    res.json(await storeObject(ai, await storeOf(ai, req, req.params.id)));
  });

  router.delete('/v1/vector_stores/:id', async (req, res) => {
    const deleted = await vectorsOf(ai).deleteStore(tenantOf(req), req.params.id);
    if (!deleted) throw new HttpError(404, 'not_found', `No vector store found with id '${req.params.id}'`);
    res.json({ id: req.params.id, object: 'vector_store.deleted', deleted: true });
  });

  router.post(
    '/v1/vector_stores/:id/files',
    express.text({ type: ['text/*'], limit: config.VECTOR_MAX_FILE_BYTES }),
    async (req, res) => {
      const store = await storeOf(ai, req, req.params.id);
      let text: string;
      let filename: string;
      if (typeof req.body === 'string') {
        text = req.body;
        const q = typeof req.query.filename === 'string' ? req.query.filename.trim() : '';
        filename = q || (/markdown/i.test(req.get('content-type') ?? '') ? 'document.md' : 'document.txt');
      } else {
        const body = parse(UploadFileBodySchema, req.body ?? {}, 'body');
        text = body.text;
        filename = body.filename;
      }
      const file = await addFile(ai, req, store, text, filename, req.get('content-type'));
      res.json(fileObject(file, chunkingOf(store, config)));
    },
  );

  router.get('/v1/vector_stores/:id/files', async (req, res) => {
    const store = await storeOf(ai, req, req.params.id);
    const files = await vectorsOf(ai).listFiles(store.id);
    const data = files.map((f) => fileObject(f, chunkingOf(store, config)));
    res.json({
      object: 'list',
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: false,
    });
  });

  router.get('/v1/vector_stores/:id/files/:fileId', async (req, res) => {
    const store = await storeOf(ai, req, req.params.id);
    const file = await vectorsOf(ai).getFile(store.id, req.params.fileId);
    if (!file) throw new HttpError(404, 'not_found', `No file '${req.params.fileId}' in ${store.id}`);
    res.json(fileObject(file, chunkingOf(store, config)));
  });

  router.post('/v1/vector_stores/:id/search', async (req, res) => {
    const store = await storeOf(ai, req, req.params.id);
    const body = parse(SearchBodySchema, req.body ?? {}, 'body');
    const query = typeof body.query === 'string' ? body.query : body.query[0]!;
    const threshold = body.ranking_options?.score_threshold;
    const hits = (await searchStore(ai, req, store, query, body.max_num_results, 'v1:vector_stores.search')).filter(
      (h) => threshold === undefined || h.score >= threshold,
    );
    res.json({
      object: 'vector_store.search_results.page',
      search_query: [query],
      data: hits.map((h) => ({
        file_id: h.fileId,
        filename: h.filename,
        score: h.score,
        attributes: {},
        content: [{ type: 'text', text: h.text }],
        chunk_index: h.chunkIndex,
      })),
      has_more: false,
      next_page: null,
    });
  });

  return router;
}
