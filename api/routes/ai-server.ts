/**
 * The routes of the AI-server template ainode replaces, as thin routes on the AI server's handlers
 * (api/v1/completions.ts): `POST /chat` → `{response, model, usage}`, `POST /chat/stream` → server-sent
 * events `data: <chunk>` ending with `data: [DONE]`, `POST /embed` `{texts}` → `{embeddings}`. The model
 * defaults to DEFAULT_MODEL. Errors use ainode's own shape, like every other non-/v1 route.
 */
import { Router, type Response } from 'express';
import { normalizeModel } from '../../common/task-queues';
import { parse } from '../validate';
import { registerRoute } from '../openapi';
import {
  decodeVector,
  pipeStream,
  runEmbeddings,
  startCompletion,
  toChatMessages,
  type AiServer,
  type CompletionRequest,
  type StreamFormat,
} from '../v1/completions';
import { TemplateChatBodySchema, TemplateEmbedBodySchema, type TemplateChatBody } from '../v1/schemas';

registerRoute({
  method: 'post',
  path: '/chat',
  summary: 'Chat (template route): {message} or {messages} → {response, model, usage}',
  tag: 'ai-server',
  body: TemplateChatBodySchema,
  responses: { 200: 'The answer', 400: 'Invalid body, unknown model' },
});
registerRoute({
  method: 'post',
  path: '/chat/stream',
  summary: 'Chat streamed as server-sent events (template route): data: <chunk> … data: [DONE]',
  tag: 'ai-server',
  body: TemplateChatBodySchema,
  responses: { 200: 'text/event-stream', 400: 'Invalid body, unknown model' },
});
registerRoute({
  method: 'post',
  path: '/embed',
  summary: 'Embeddings (template route): {texts} → {embeddings}',
  tag: 'ai-server',
  body: TemplateEmbedBodySchema,
  responses: { 200: '{embeddings, model}', 400: 'Invalid body, unknown model' },
});

function toRequest(ai: AiServer, body: TemplateChatBody): CompletionRequest {
  const { config } = ai.deps;
  const messages = toChatMessages(
    [
      ...(body.system ? [{ role: 'system', content: body.system }] : []),
      ...(body.messages ?? [{ role: 'user', content: body.message ?? '' }]),
    ],
    config.AI_MAX_MESSAGE_CHARS,
  );
  return {
    model: normalizeModel(body.model ?? config.DEFAULT_MODEL),
    messages,
    options: {
      ...(body.max_tokens ? { num_predict: body.max_tokens } : {}),
      ...(body.temperature !== undefined ? { temperature: body.temperature } : {}),
    },
    source: 'chat',
  };
}

/** `data: <chunk>` per piece of text; a chunk with newlines becomes several data lines (SSE joins them). */
const templateStream: StreamFormat = {
  text: (res: Response, text: string) => {
    res.write(
      text
        .split('\n')
        .map((l) => `data: ${l}\n`)
        .join('') + '\n',
    );
  },
  end: (res: Response) => {
    res.write('data: [DONE]\n\n');
  },
  error: (res: Response, code: string, message: string) => {
    res.write(`event: error\ndata: ${JSON.stringify({ error: { code, message } })}\n\n`);
  },
};

export function aiServerRouter(ai: AiServer): Router {
  const router = Router();
  router.post('/chat', async (req, res) => {
    const body = parse(TemplateChatBodySchema, req.body, 'body');
    const started = await startCompletion(ai, req, toRequest(ai, body), false);
    const r = await started.done;
    res.json({
      response: r.content,
      model: r.model,
      usage: {
        prompt_tokens: r.usage.promptTokens,
        completion_tokens: r.usage.completionTokens,
        total_tokens: r.usage.totalTokens,
      },
    });
  });
  router.post('/chat/stream', async (req, res) => {
    const body = parse(TemplateChatBodySchema, req.body, 'body');
    const started = await startCompletion(ai, req, { ...toRequest(ai, body), source: 'chat/stream' }, true);
    pipeStream(ai, req, res, started, 0, templateStream);
  });
  router.post('/embed', async (req, res) => {
    const body = parse(TemplateEmbedBodySchema, req.body, 'body');
    const r = await runEmbeddings(ai, req, body.model ?? ai.deps.config.DEFAULT_MODEL, body.texts, 'embed');
    res.json({ embeddings: r.embeddingsB64.map(decodeVector), model: r.model });
  });
  return router;
}
