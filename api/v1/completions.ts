/**
 * The AI server's handlers, shared by the OpenAI-compatible routes (api/v1/router.ts) and the template routes
 * (api/routes/ai-server.ts): every call is a workflow on the orchestrator whose LLM work runs on the model's
 * pinned queue. A streamed completion's tokens come from the llm activity through this process's StreamHub
 * (lib/stream), so they reach the client as Ollama produces them; the workflow's result closes the stream if
 * the side channel did not (and is where a resume from another process reads from).
 */
import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import type { WorkflowHandle } from '@temporalio/client';
import { HttpError } from '../../common/errors';
import { boundNumPredict } from '../../common/llm-bounds';
import { SearchAttributeKey } from '../../common/search-attributes';
import { normalizeModel, ORCHESTRATOR_QUEUE } from '../../common/task-queues';
import type { Caller, CompletionWorkflowResult, EmbeddingsWorkflowResult } from '../../contracts/completion';
import type { ChatMessage, LlmFormat, LlmOptions } from '../../contracts/llm';
import type { StreamEntry, StreamEvent, StreamHub } from '../../lib/stream/hub';
import type { completionWorkflow, embeddingsWorkflow } from '../../workflows/completion-workflow';
import type { ApiDeps } from '../deps';
import { tenantOf } from '../middleware/auth';
import { describeFailure, toHttpError } from '../middleware/errors';
import { requireModel } from '../model-check';
import type { KeyLimits } from './limits';
import type { ChatCompletionBody } from './schemas';

export interface AiServer {
  deps: ApiDeps;
  hub: StreamHub;
  limits: KeyLimits;
}

/** A chat completion as ainode runs it. */
export interface CompletionRequest {
  model: string;
  messages: ChatMessage[];
  options: LlmOptions;
  format?: LlmFormat;
  /** The route, for usage rows and the Web UI summary. */
  source: string;
}

/** Characters per token for the context-length estimate (no tokenizer is exposed by Ollama). */
const CHARS_PER_TOKEN = 4;

export function callerOf(req: Request): Caller {
  return { tenantId: tenantOf(req), keyId: req.apiKeyId ?? 'unknown' };
}

/** An OpenAI message's content as text (text parts joined); `developer` is a system message. */
export function toChatMessages(
  messages: { role: string; content: string | { type: 'text'; text: string }[] | null }[],
  maxChars: number,
): ChatMessage[] {
  return messages.map((m, i) => {
    const content = typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join('\n');
    if (content.length > maxChars) {
      throw new HttpError(
        413,
        'message_too_large',
        `messages[${i}].content: ${content.length} characters, more than the ${maxChars} allowed`,
        { param: `messages[${i}].content`, limit: maxChars },
      );
    }
    const role = m.role === 'developer' ? 'system' : (m.role as ChatMessage['role']);
    return { role, content };
  });
}

/** OpenAI's body → our request; the model's served check happens when the call starts. */
export function fromOpenAi(body: ChatCompletionBody, maxChars: number, source: string): CompletionRequest {
  const options: LlmOptions = {};
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens != null) options.num_predict = Math.min(maxTokens, 32_768);
  if (body.temperature != null) options.temperature = body.temperature;
  if (body.top_p != null) options.top_p = body.top_p;
  if (body.seed != null) options.seed = body.seed;
  if (body.stop != null) options.stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  let format: LlmFormat | undefined;
  const rf = body.response_format;
  if (rf?.type === 'json_object') format = 'json';
  if (rf?.type === 'json_schema') format = rf.json_schema.schema ?? 'json';
  return {
    model: normalizeModel(body.model),
    messages: toChatMessages(body.messages, maxChars),
    options,
    ...(format ? { format } : {}),
    source,
  };
}

/** A started completion: its id (also the workflow id) and, for a stream, the hub entry readers follow. */
export interface StartedCompletion {
  id: string;
  created: number;
  model: string;
  handle: WorkflowHandle<typeof completionWorkflow>;
  entry?: StreamEntry;
  /** Settles with the workflow: the result, or the failure as an HttpError. */
  done: Promise<CompletionWorkflowResult>;
}

/** The base URL llm workers push tokens to: config, else the address this request came in on. */
export function internalUrl(config: Pick<ApiDeps['config'], 'API_INTERNAL_URL'>, req: Request): string {
  if (config.API_INTERNAL_URL) return config.API_INTERNAL_URL.replace(/\/$/, '');
  const addr = req.socket.localAddress ?? '127.0.0.1';
  return `http://${addr.includes(':') ? `[${addr}]` : addr}:${req.socket.localPort}`;
}

/**
 * Admits the call (limits, served model, context length), starts the workflow and, when streaming, opens the
 * stream its tokens arrive on. The call's tokens are charged to the key when the workflow completes.
 */
export async function startCompletion(
  ai: AiServer,
  req: Request,
  creq: CompletionRequest,
  stream: boolean,
): Promise<StartedCompletion> {
  const { config, temporal, catalog } = ai.deps;
  const caller = callerOf(req);
  await ai.limits.admit(caller.keyId);
  await requireModel(catalog, creq.model);
  const numPredict = boundNumPredict('prompt', creq.options.num_predict, config.LLM_NUM_PREDICT);
  const promptChars = creq.messages.reduce((n, m) => n + m.content.length, 0);
  const estimate = Math.ceil(promptChars / CHARS_PER_TOKEN) + 4 * creq.messages.length;
  if (estimate + numPredict > config.LLM_NUM_CTX) {
    throw new HttpError(
      400,
      'context_length_exceeded',
      `This model's context is ${config.LLM_NUM_CTX} tokens; the messages are about ${estimate} tokens ` +
        `(${promptChars} characters) plus ${numPredict} for the answer. Shorten the messages or max_tokens.`,
      { param: 'messages', contextTokens: config.LLM_NUM_CTX, estimatedPromptTokens: estimate },
    );
  }
  const id = `chatcmpl-${randomUUID()}`;
  const entry = stream ? ai.hub.open(id) : undefined;
  if (entry) entry.tenant = caller.tenantId;
  const handle = await temporal.workflow.start<typeof completionWorkflow>('completionWorkflow', {
    taskQueue: ORCHESTRATOR_QUEUE,
    workflowId: id,
    args: [
      {
        caller,
        model: creq.model,
        messages: creq.messages,
        options: { ...creq.options, num_predict: numPredict },
        ...(creq.format ? { format: creq.format } : {}),
        ...(entry ? { stream: { url: `${internalUrl(config, req)}/internal/streams/${id}`, token: entry.token } } : {}),
        source: creq.source,
      },
    ],
    typedSearchAttributes: [
      { key: SearchAttributeKey.Kind, value: 'completion' },
      { key: SearchAttributeKey.ModelId, value: creq.model },
      { key: SearchAttributeKey.TenantId, value: caller.tenantId },
    ],
    memo: { tenant: caller.tenantId },
    staticSummary: `${creq.source} on ${creq.model} for ${caller.tenantId}${stream ? ' (stream)' : ''}`,
  });
  const timer = setTimeout(() => void handle.cancel().catch(() => undefined), config.AI_REQUEST_TIMEOUT_MS);
  const done = handle.result().then(
    (r) => {
      clearTimeout(timer);
      ai.limits.charge(caller.keyId, r.usage.totalTokens);
      // The side channel may have missed the end (or everything): the result is the truth.
      if (entry) {
        ai.hub.append(entry, r.content.slice(entry.text.length));
        ai.hub.finish(entry, { model: r.model, nodeId: r.nodeId, usage: r.usage, doneReason: r.doneReason });
      }
      return r;
    },
    (err: unknown) => {
      clearTimeout(timer);
      const httpErr = failureOf(err, config.AI_REQUEST_TIMEOUT_MS);
      if (entry) ai.hub.fail(entry, httpErr.code, httpErr.message);
      throw httpErr;
    },
  );
  done.catch(() => undefined);
  return { id, created: Math.floor(Date.now() / 1000), model: creq.model, handle, entry, done };
}

/** A workflow failure as the client should see it: a cancel (ours, on timeout or a gone client) is a 504. */
export function failureOf(err: unknown, timeoutMs: number): HttpError {
  const httpErr = toHttpError(err);
  if (httpErr.status !== 500) return httpErr;
  const { code, message } = describeFailure(err);
  if (/cancel/i.test(message) || code === 'workflow_failed') {
    return new HttpError(504, 'timeout', `The call was stopped: no answer within ${timeoutMs} ms, or it was cancelled`);
  }
  return new HttpError(502, code, message);
}

/** How one stream renders on the wire. */
export interface StreamFormat {
  /** Called once before any event (e.g. OpenAI's role chunk). */
  start?(res: Response): void;
  text(res: Response, text: string, offset: number): void;
  end(res: Response, e: Extract<StreamEvent, { kind: 'end' }>): void;
  error(res: Response, code: string, message: string): void;
}

export function sseHeaders(res: Response): void {
  res.status(200);
  res.setHeader('content-type', 'text/event-stream; charset=utf-8');
  res.setHeader('cache-control', 'no-cache, no-transform');
  res.setHeader('connection', 'keep-alive');
  res.setHeader('x-accel-buffering', 'no');
  res.flushHeaders();
  res.socket?.setNoDelay(true);
}

/**
 * Sends a stream from character `from` until it ends. A client that disconnects before the end has
 * AI_STREAM_RESUME_GRACE_MS to come back with Last-Event-ID; after that the generation is cancelled.
 */
export function pipeStream(
  ai: AiServer,
  req: Request,
  res: Response,
  started: Pick<StartedCompletion, 'handle' | 'entry'>,
  from: number,
  format: StreamFormat,
): void {
  const entry = started.entry!;
  sseHeaders(res);
  format.start?.(res);
  let finished = false;
  const unsubscribe = ai.hub.read(entry, from, (e) => {
    if (e.kind === 'text') format.text(res, e.text, e.offset);
    else {
      finished = true;
      if (e.kind === 'end') format.end(res, e);
      else format.error(res, e.code, e.message);
      res.end();
    }
  });
  res.on('close', () => {
    unsubscribe();
    if (finished) return;
    setTimeout(() => {
      if (entry.readers > 0 || entry.end || entry.error) return;
      req.log?.info({ id: entry.id }, 'stream client gone: cancelling the generation');
      // Cancel first (recorded in the workflow's history), then refuse the push so the node stops at once.
      void started.handle
        .cancel()
        .catch(() => undefined)
        .finally(() => ai.hub.abandon(entry));
    }, ai.deps.config.AI_STREAM_RESUME_GRACE_MS).unref();
  });
}

/** `chatcmpl-<uuid>:<offset>` → its parts; undefined when it is not one of our event ids. */
export function parseEventId(value: string | undefined): { id: string; offset: number } | undefined {
  const m = /^(chatcmpl-[0-9a-f-]{36}):(\d{1,9})$/.exec(value ?? '');
  return m ? { id: m[1]!, offset: Number(m[2]) } : undefined;
}

/**
 * Resumes stream `id` for its tenant from character `offset`: from this process's hub while it has the stream,
 * else from the workflow (its result, once it completes). 404 for an unknown id or another tenant's.
 */
export async function resumeStream(
  ai: AiServer,
  req: Request,
  res: Response,
  id: string,
  offset: number,
  format: StreamFormat,
): Promise<void> {
  const tenant = tenantOf(req);
  const handle = ai.deps.temporal.workflow.getHandle<typeof completionWorkflow>(id);
  let entry = ai.hub.get(id);
  if (entry) {
    if (entry.tenant !== tenant) throw new HttpError(404, 'not_found', `No stream ${id}`);
  } else {
    const desc = await handle.describe().catch(() => undefined);
    if (!desc || desc.memo?.tenant !== tenant) throw new HttpError(404, 'not_found', `No stream ${id}`);
    entry = ai.hub.open(id);
    entry.tenant = tenant;
    const opened = entry;
    handle.result().then(
      (r) => {
        ai.hub.append(opened, r.content);
        ai.hub.finish(opened, { model: r.model, nodeId: r.nodeId, usage: r.usage, doneReason: r.doneReason });
      },
      (err: unknown) => {
        const e = failureOf(err, ai.deps.config.AI_REQUEST_TIMEOUT_MS);
        ai.hub.fail(opened, e.code, e.message);
      },
    );
  }
  pipeStream(ai, req, res, { handle, entry }, offset, format);
}

/** Runs texts through embeddingsWorkflow; vectors come back as float32 base64. */
export async function runEmbeddings(
  ai: AiServer,
  req: Request,
  model: string,
  texts: string[],
  source: string,
): Promise<EmbeddingsWorkflowResult> {
  const { config, temporal, catalog } = ai.deps;
  const caller = callerOf(req);
  if (texts.length > config.AI_MAX_EMBED_INPUTS) {
    throw new HttpError(
      400,
      'invalid_request',
      `input: ${texts.length} texts, more than the ${config.AI_MAX_EMBED_INPUTS} allowed in one call`,
      { param: 'input', limit: config.AI_MAX_EMBED_INPUTS },
    );
  }
  texts.forEach((t, i) => {
    if (t.length > config.AI_MAX_MESSAGE_CHARS) {
      throw new HttpError(
        413,
        'message_too_large',
        `input[${i}]: more than ${config.AI_MAX_MESSAGE_CHARS} characters`,
        {
          param: `input[${i}]`,
          limit: config.AI_MAX_MESSAGE_CHARS,
        },
      );
    }
  });
  await ai.limits.admit(caller.keyId);
  const modelId = normalizeModel(model);
  await requireModel(catalog, modelId);
  const id = `embed-${randomUUID()}`;
  const handle = await temporal.workflow.start<typeof embeddingsWorkflow>('embeddingsWorkflow', {
    taskQueue: ORCHESTRATOR_QUEUE,
    workflowId: id,
    args: [{ caller, model: modelId, texts, source }],
    typedSearchAttributes: [
      { key: SearchAttributeKey.Kind, value: 'embeddings' },
      { key: SearchAttributeKey.ModelId, value: modelId },
      { key: SearchAttributeKey.TenantId, value: caller.tenantId },
    ],
    memo: { tenant: caller.tenantId },
    staticSummary: `${source}: ${texts.length} texts on ${modelId} for ${caller.tenantId}`,
  });
  const timer = setTimeout(() => void handle.cancel().catch(() => undefined), config.AI_REQUEST_TIMEOUT_MS);
  try {
    const r = await handle.result();
    ai.limits.charge(caller.keyId, r.promptTokens);
    return r;
  } catch (err) {
    throw failureOf(err, config.AI_REQUEST_TIMEOUT_MS);
  } finally {
    clearTimeout(timer);
  }
}

/** float32 little-endian base64 → numbers. */
export function decodeVector(b64: string): number[] {
  const buf = Buffer.from(b64, 'base64');
  const out = new Array<number>(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}
