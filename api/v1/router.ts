/**
 * The OpenAI-compatible API under `/v1`: chat completions (streaming included), embeddings and models, with
 * the same Bearer API keys as the rest of ainode. Errors use OpenAI's shape `{error: {message, type, param,
 * code}}` and status codes, so the official clients raise their usual exceptions (NotFoundError for an
 * unknown model, RateLimitError for 429, ...). A self-contained router: its own body limit, auth, limits
 * and error handler, mounted before the rest of the API.
 */
import express, { Router, type ErrorRequestHandler, type Response } from 'express';
import { HttpError } from '../../common/errors';
import { authenticate } from '../middleware/auth';
import { toHttpError } from '../middleware/errors';
import { parse } from '../validate';
import { registerRoute } from '../openapi';
import {
  decodeVector,
  fromOpenAi,
  parseEventId,
  pipeStream,
  resumeStream,
  runEmbeddings,
  startCompletion,
  type AiServer,
  type StartedCompletion,
  type StreamFormat,
} from './completions';
import { ChatCompletionBodySchema, EmbeddingsBodySchema } from './schemas';
import { retrieveSources, vectorStoresRouter, type Citation } from './vector-stores';
import { groundingOf } from '../../lib/vector/grounding';

/** An answer from retrieved sources: one or two sentences need no more (the client may ask for more). */
const RAG_MAX_TOKENS = 160;

registerRoute({
  method: 'post',
  path: '/v1/chat/completions',
  summary: 'OpenAI-compatible chat completion (stream: true for server-sent events; Last-Event-ID resumes)',
  tag: 'ai-server',
  body: ChatCompletionBodySchema,
  headers: { 'Last-Event-ID': 'Resume a stream: the id of the last event received (chatcmpl-…:offset)' },
  responses: {
    200: 'chat.completion, or text/event-stream of chat.completion.chunk ending with data: [DONE]',
    400: 'Invalid body (param names the field), or context_length_exceeded',
    404: 'model_not_found',
    413: 'A message or the body is too large',
    429: 'rate_limit_exceeded (requests or tokens a minute) or insufficient_quota (daily budget); Retry-After',
    503: 'The model cannot run now (node down, out of memory, no worker)',
    504: 'No answer within AI_REQUEST_TIMEOUT_MS',
  },
});
registerRoute({
  method: 'post',
  path: '/v1/embeddings',
  summary: 'OpenAI-compatible embeddings (string or array input, batched on the model’s nodes)',
  tag: 'ai-server',
  body: EmbeddingsBodySchema,
  responses: { 200: 'A list of embeddings', 400: 'Invalid body', 404: 'model_not_found' },
});
registerRoute({
  method: 'get',
  path: '/v1/models/:id',
  summary: 'One available model, OpenAI-compatible',
  tag: 'ai-server',
  responses: { 200: 'The model', 404: 'model_not_found' },
});
registerRoute({
  method: 'get',
  path: '/v1/models',
  summary: 'OpenAI-compatible model list (the available models of the catalog)',
  tag: 'ai-server',
  responses: { 200: 'A list of models' },
});

/** OpenAI's error types by status; the clients pick their exception class by status. */
function openAiType(status: number, code: string): string {
  if (code === 'insufficient_quota') return 'insufficient_quota';
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** Our error → OpenAI's status and body. An unknown model is a 404 there (a 400 on ainode's own routes). */
export function openAiError(err: unknown): { status: number; body: unknown; headers?: Record<string, string> } {
  const e = toHttpError(err);
  const status = e.code === 'model_not_found' ? 404 : e.status;
  const details = (e.details ?? {}) as { param?: string; issues?: { field: string }[] };
  const param = details.param ?? details.issues?.[0]?.field.replace(/^body\./, '') ?? null;
  const message = e.message.replace(/^body\./, '');
  return {
    status,
    body: { error: { message, type: openAiType(status, e.code), param, code: e.code } },
    headers: e.headers,
  };
}

const errorHandler: ErrorRequestHandler = (err, req, res, next) => {
  if (res.headersSent) return next(err);
  const out = openAiError(err);
  if (out.status >= 500) req.log?.error({ err }, 'request failed');
  if (out.headers) res.set(out.headers);
  res.status(out.status).json(out.body);
};

/** OpenAI's chunk stream: a role chunk, content deltas, a finish chunk, the usage chunk when asked, [DONE]. */
function openAiStream(
  c: Pick<StartedCompletion, 'id' | 'created' | 'model'>,
  includeUsage: boolean,
  citations?: Citation[],
  /** With retrieval: the sources the answer is checked against (a `grounding` field on the finish chunk). */
  sourcesText?: string,
): StreamFormat {
  let answer = '';
  const chunk = (res: Response, eventId: string | undefined, choices: unknown[], usage?: unknown, first = false) => {
    const body = {
      id: c.id,
      object: 'chat.completion.chunk',
      created: c.created,
      model: c.model,
      system_fingerprint: null,
      choices,
      ...(includeUsage ? { usage: usage ?? null } : {}),
      ...(first && citations ? { citations } : {}),
    };
    res.write(`${eventId ? `id: ${eventId}\n` : ''}data: ${JSON.stringify(body)}\n\n`);
  };
  return {
    start: (res) =>
      chunk(
        res,
        `${c.id}:0`,
        [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
        undefined,
        true,
      ),
    text: (res, text, offset) => {
      answer += text;
      chunk(res, `${c.id}:${offset}`, [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }]);
    },
    end: (res, e) => {
      const finish = { index: 0, delta: {}, logprobs: null, finish_reason: finishReason(e.end.doneReason) };
      if (sourcesText === undefined) chunk(res, `${c.id}:${e.offset}`, [finish]);
      else chunk(res, `${c.id}:${e.offset}`, [{ ...finish, grounding: groundingOf(answer, sourcesText) }]);
      if (includeUsage) chunk(res, undefined, [], usageOf(e.end.usage));
      res.write('data: [DONE]\n\n');
    },
    error: (res, code, message) => {
      const { status, body } = openAiError(new HttpError(500, code, message));
      res.write(`data: ${JSON.stringify({ ...(body as object), status })}\n\n`);
      res.write('data: [DONE]\n\n');
    },
  };
}

/** Ollama's done reason → OpenAI's finish_reason: a cut-off answer (num_predict, a loop) is `length`. */
export function finishReason(doneReason: string | undefined): 'stop' | 'length' {
  return doneReason === 'length' || doneReason === 'repetition' ? 'length' : 'stop';
}

const usageOf = (u: { promptTokens: number; completionTokens: number }) => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: u.promptTokens + u.completionTokens,
});

export function v1Router(ai: AiServer): Router {
  const { config, catalog } = ai.deps;
  const router = Router();
  // Mounted at / with full paths, so the route table (and OpenAPI) lists them as served.
  // Authenticate before reading the body: an anonymous caller cannot make us parse 1 MiB of JSON.
  router.use('/v1', authenticate(config.API_KEYS));
  router.use('/v1', express.json({ limit: config.API_BODY_LIMIT_BYTES }));

  router.post('/v1/chat/completions', async (req, res) => {
    const resume = parseEventId(req.get('last-event-id'));
    if (resume) {
      const { id, offset } = resume;
      const created = Math.floor(Date.now() / 1000);
      const model = typeof req.body?.model === 'string' ? req.body.model : '';
      const includeUsage = req.body?.stream_options?.include_usage === true;
      await resumeStream(ai, req, res, id, offset, openAiStream({ id, created, model }, includeUsage));
      return;
    }
    const body = parse(ChatCompletionBodySchema, req.body, 'body');
    const creq = fromOpenAi(body, config.AI_MAX_MESSAGE_CHARS, 'v1:chat.completions');
    const rag = body.vector_store_ids?.length
      ? await retrieveSources(ai, req, body.vector_store_ids, creq.messages)
      : undefined;
    if (rag) {
      creq.messages = rag.messages;
      // Answers from sources: steady and short unless the client asked otherwise.
      creq.options.temperature ??= 0;
      creq.options.num_predict ??= RAG_MAX_TOKENS;
    }
    const started = await startCompletion(ai, req, creq, body.stream === true);
    if (started.entry) {
      const includeUsage = body.stream_options?.include_usage === true;
      const format = openAiStream(started, includeUsage, rag?.citations, rag?.sourcesText);
      pipeStream(ai, req, res, started, 0, format);
      return;
    }
    const r = await started.done;
    res.json({
      id: started.id,
      object: 'chat.completion',
      created: started.created,
      model: r.model,
      system_fingerprint: null,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: r.content, refusal: null },
          logprobs: null,
          finish_reason: finishReason(r.doneReason),
          ...(rag ? { grounding: groundingOf(r.content, rag.sourcesText) } : {}),
        },
      ],
      usage: usageOf(r.usage),
      ...(rag ? { citations: rag.citations } : {}),
    });
  });

  router.post('/v1/embeddings', async (req, res) => {
    const body = parse(EmbeddingsBodySchema, req.body, 'body');
    const texts = typeof body.input === 'string' ? [body.input] : body.input;
    const r = await runEmbeddings(ai, req, body.model, texts, 'v1:embeddings');
    const base64 = body.encoding_format === 'base64';
    res.json({
      object: 'list',
      data: r.embeddingsB64.map((b64, index) => ({
        object: 'embedding',
        index,
        embedding: base64 ? b64 : decodeVector(b64),
      })),
      model: r.model,
      usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
    });
  });

  router.get('/v1/models', async (_req, res) => {
    const { models } = await catalog.get();
    res.json({
      object: 'list',
      data: models
        .filter((m) => m.available)
        .map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: 'ainode' })),
    });
  });

  router.get('/v1/models/:id', async (req, res) => {
    const { models } = await catalog.get();
    const m = models.find((x) => x.id === req.params.id && x.available);
    if (!m) throw new HttpError(404, 'model_not_found', `The model '${req.params.id}' does not exist`);
    res.json({ id: m.id, object: 'model', created: 0, owned_by: 'ainode' });
  });

  router.use(vectorStoresRouter(ai));
  router.use('/v1', (req, _res, next) =>
    next(new HttpError(404, 'not_found', `No route for ${req.method} /v1${req.path}`)),
  );
  router.use('/v1', errorHandler);
  return router;
}
