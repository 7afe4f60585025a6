/**
 * The one place where a failed Ollama call becomes a typed Temporal failure. The type decides what happens
 * next: ModelNotFound and InvalidRequest are not retried; NodeUnavailable, InferenceTimeout and OutOfMemory
 * are, and a retry may land on another node that polls the same model queue.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../common/errors';

/** Where the failed call went, for the message. */
export interface LlmCallContext {
  model?: string;
  nodeId?: string;
  url?: string;
}

/** Errors Node's fetch (undici) and the OS report when a node is down, restarting or drops the connection. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'ETIMEDOUT',
]);
/** undici's own limits on waiting for headers / the next body chunk. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const CONNECTION_MESSAGE = /fetch failed|terminated|other side closed|socket hang up|connection (refused|reset)/i;
const MEMORY_MESSAGE =
  /out of memory|requires more system memory|insufficient memory|not enough memory|cudaMalloc failed/i;
const NOT_FOUND_MESSAGE = /model ['"]?[^'"]*['"]? not found|model not found|no such model/i;
const TIMEOUT_MESSAGE = /timed? ?out|deadline exceeded/i;

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function isErrorLike(err: unknown): boolean {
  return typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string';
}

function httpStatus(err: unknown): number | undefined {
  const s = (err as { status_code?: unknown } | undefined)?.status_code;
  return typeof s === 'number' ? s : undefined;
}

/**
 * Maps anything an Ollama call can throw to an `ApplicationFailure` of an `ErrorType`:
 * 404 / "model not found" → ModelNotFound (non-retryable); connection refused/reset/fetch failed, 502/503 →
 * NodeUnavailable; timeouts → InferenceTimeout; memory errors → OutOfMemory; other 400s → InvalidRequest
 * (non-retryable). Anything else stays retryable. An ApplicationFailure passes through unchanged.
 */
export function toLlmFailure(err: unknown, ctx: LlmCallContext = {}): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  // Duck-typed: a DOMException (AbortSignal.timeout) or an error from another realm is no `instanceof Error`.
  const cause = isErrorLike(err) ? (err as Error) : undefined;
  const message = cause ? cause.message : String(err);
  const name = cause ? cause.name : '';
  const status = httpStatus(err);
  const code = errorCode(err);
  const where = [ctx.model && `model ${ctx.model}`, ctx.nodeId && `node ${ctx.nodeId}`, ctx.url]
    .filter(Boolean)
    .join(', ');
  const fail = (type: ErrorType, text: string, nonRetryable = false) =>
    ApplicationFailure.create({
      type,
      nonRetryable,
      message: where ? `${text} (${where})` : text,
      cause,
      details: [{ model: ctx.model, nodeId: ctx.nodeId, status, code }],
    });

  // Memory first: Ollama reports load failures as 500 with these texts, sometimes mid-stream.
  if (MEMORY_MESSAGE.test(message))
    return fail(ErrorType.OutOfMemory, `Not enough memory to run the model: ${message}`);
  if (status === 404 || NOT_FOUND_MESSAGE.test(message))
    return fail(ErrorType.ModelNotFound, `Model not found on this node: ${message}`, true);
  const timedOut = () => fail(ErrorType.InferenceTimeout, `LLM call timed out: ${message}`);
  if (name === 'TimeoutError' || (code && TIMEOUT_CODES.has(code))) return timedOut();
  if ((code && CONNECTION_CODES.has(code)) || status === 502 || status === 503 || CONNECTION_MESSAGE.test(message))
    return fail(ErrorType.NodeUnavailable, `Ollama node unavailable: ${message}`);
  if (status === undefined && TIMEOUT_MESSAGE.test(message)) return timedOut();
  if (status === 400) return fail(ErrorType.InvalidRequest, `Ollama rejected the request: ${message}`, true);
  return ApplicationFailure.create({
    type: ErrorType.OllamaError,
    nonRetryable: false,
    message: where ? `Ollama call failed: ${message} (${where})` : `Ollama call failed: ${message}`,
    cause,
    details: [{ model: ctx.model, nodeId: ctx.nodeId, status, code }],
  });
}
