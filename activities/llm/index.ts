/**
 * The llm activities (llmChat, llmGenerate, llmEmbed), run by the llm worker of a node on the model's pinned
 * queue. Each call streams from Ollama so it can heartbeat while tokens arrive and stop the moment the
 * activity is cancelled or runs past its time; usage comes from Ollama's own counts on the final chunk.
 * Every chat/generate call is bounded: num_predict per call kind (common/llm-bounds.ts), and a reply that falls
 * into a loop is cut off (repetition.ts). A cut-off answer is a result (`doneReason`), not an error.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { AbortableAsyncIterator, ChatResponse, GenerateResponse, Ollama, Options } from 'ollama';
import { ErrorType } from '../../common/errors';
import { boundNumPredict, DEFAULT_NUM_PREDICT, type LlmCallKind, type NumPredictTable } from '../../common/llm-bounds';
import type { LlmEmbedInput, LlmEmbedResult, LlmFormat, LlmOptions, LlmResult, LlmUsage } from '../../contracts/llm';
import { withRequestSignal } from '../../lib/llm/client';
import { toLlmFailure } from '../../lib/llm/errors';
import type { NodeSlots } from '../../lib/llm/node-slots';
import { RepetitionGuard } from '../../lib/llm/repetition';
import { traceOllamaCall } from '../../lib/telemetry/llm';
import { openStreamSink, type StreamSink } from '../../lib/stream/sink';
import type { LlmActivities } from '../../contracts/llm';

export type { LlmActivities } from '../../contracts/llm';
export { createOllamaClient, withRequestSignal } from '../../lib/llm/client';
export { toLlmFailure, type LlmCallContext } from '../../lib/llm/errors';
export { findRepetition, RepetitionGuard, type RepetitionCut } from '../../lib/llm/repetition';
export {
  createNodeActivities,
  WARM_KEEP_ALIVE,
  type NodeActivities,
  type NodeActivityDeps,
  type NodeHealth,
} from './node';

export interface LlmActivityDeps {
  /** Client for this node; `createOllamaClient(url)` lets a cancel abort even before the first byte. */
  ollama: Ollama;
  /** Reported in every result, so callers (and tests) see which node answered. */
  nodeId: string;
  /** Sent as `options.num_ctx` on every call: one fixed context per model, so Ollama never reloads it. */
  numCtx: number;
  /** Wall-clock limit of one call; past it the request is aborted and the activity fails InferenceTimeout. */
  callTimeoutMs: number;
  /** Sent as `keep_alive` when set, so the model stays loaded between calls. */
  keepAlive?: string | number;
  /** num_predict bounds per call kind (config LLM_NUM_PREDICT); every chat/generate call runs bounded. */
  numPredict?: NumPredictTable;
  /**
   * The node's generation slots, shared by all its model queues (lib/llm/node-slots.ts): each call holds one for
   * the generation's duration, so a node serving several models never runs more than its parallelism at once.
   */
  slots?: Pick<NodeSlots, 'acquire'>;
}

/** Longest pause between heartbeats while waiting for a cold model load or the next token. */
const MAX_HEARTBEAT_GAP_MS = 5_000;
/** Chunk heartbeats are throttled: one per token would cost a payload conversion each. */
const CHUNK_HEARTBEAT_EVERY_MS = 1_000;

/** Progress carried in heartbeats (visible as heartbeat details in the Web UI). */
export interface LlmProgress {
  chunks: number;
  chars: number;
  /** The call's kind and the num_predict it runs with (chat/generate only). */
  kind?: LlmCallKind;
  numPredict?: number;
}

const nsToMs = (ns: number | undefined) => Math.round((ns ?? 0) / 1_000) / 1_000;

type FinalChunk = Pick<
  GenerateResponse,
  | 'model'
  | 'done_reason'
  | 'prompt_eval_count'
  | 'eval_count'
  | 'total_duration'
  | 'load_duration'
  | 'prompt_eval_duration'
  | 'eval_duration'
>;

/** Ollama's counts and ns durations → our usage (ms). */
export function usageFromOllama(final: Partial<FinalChunk>): LlmUsage {
  const promptTokens = final.prompt_eval_count ?? 0;
  const completionTokens = final.eval_count ?? 0;
  return {
    promptTokens,
    completionTokens,
    totalTokens: promptTokens + completionTokens,
    totalDurationMs: nsToMs(final.total_duration),
    loadDurationMs: nsToMs(final.load_duration),
    promptEvalDurationMs: nsToMs(final.prompt_eval_duration),
    evalDurationMs: nsToMs(final.eval_duration),
  };
}

/** Heartbeats for one call: on chunks (throttled) and on a timer while nothing arrives. */
function heartbeater(ctx: Context, progress: LlmProgress) {
  let last = 0;
  const beat = () => {
    last = Date.now();
    ctx.heartbeat({ ...progress });
  };
  const gap = Math.min(MAX_HEARTBEAT_GAP_MS, Math.max(200, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
  const timer = setInterval(() => {
    if (Date.now() - last >= gap) beat();
  }, gap);
  return {
    onChunk: () => {
      if (Date.now() - last >= CHUNK_HEARTBEAT_EVERY_MS) beat();
    },
    stop: () => clearInterval(timer),
  };
}

/** Settles with `work`, or rejects as soon as `signal` aborts (work is told through the same signal). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * A timed-out call is retried once (a retry may land on another, less busy node); a second timeout will not go
 * better a third time, so it is final. Bounded calls finish well within LLM_CALL_TIMEOUT_MS.
 */
const TIMEOUT_ATTEMPTS = 2;

/** `failure`, made final when it is an InferenceTimeout on the last attempt that may time out. */
function timeoutRetryRule(failure: ApplicationFailure, attempt: number): ApplicationFailure {
  if (failure.type !== ErrorType.InferenceTimeout || attempt < TIMEOUT_ATTEMPTS || failure.nonRetryable) return failure;
  return ApplicationFailure.create({
    type: failure.type,
    nonRetryable: true,
    message: `${failure.message}; attempt ${attempt}, not retried again`,
    cause: failure.cause,
    details: failure.details as unknown[] | undefined,
  });
}

/** The Ollama operation of each llm activity (span names `ollama chat`, ...). */
const OP_OF_ACTIVITY: Record<string, string> = { llmChat: 'chat', llmGenerate: 'generate', llmEmbed: 'embed' };

/**
 * Runs one Ollama call in the activity: joins cancellation and the call timeout into one signal, heartbeats,
 * and turns every failure into a typed one (a cancellation is rethrown as is, so Temporal records a cancel).
 */
async function guardedCall<T>(
  deps: LlmActivityDeps,
  model: string,
  work: (signal: AbortSignal, onChunk: () => void, progress: LlmProgress) => Promise<T>,
  bound: Pick<LlmProgress, 'kind' | 'numPredict'> = {},
  sink?: StreamSink,
): Promise<T> {
  const ctx = Context.current();
  const timeout = AbortSignal.timeout(deps.callTimeoutMs);
  const signal = AbortSignal.any([ctx.cancellationSignal, timeout, ...(sink ? [sink.closed] : [])]);
  const progress: LlmProgress = { chunks: 0, chars: 0, ...bound };
  const hb = heartbeater(ctx, progress);
  let release: (() => void) | undefined;
  try {
    // Waits for a node slot (heartbeating, cancellable) only when the node's other models hold them all.
    release = await deps.slots?.acquire(signal);
    // The Ollama call's span (model, node, token counts, durations) and metrics, a child of the activity's span.
    const op = OP_OF_ACTIVITY[ctx.info.activityType] ?? ctx.info.activityType;
    const traced = () =>
      traceOllamaCall({ node: deps.nodeId, model, op, kind: bound.kind }, () => work(signal, hb.onChunk, progress));
    return await withRequestSignal(signal, () => untilAborted(traced(), signal));
  } catch (err) {
    if (ctx.cancellationSignal.aborted) {
      void sink?.fail('cancelled', 'the generation was cancelled');
      // The progress travels with the cancel, so a job's cancelled call is billed for the tokens it produced.
      const reason = (ctx.cancellationSignal.reason as Error | undefined) ?? (err as Error);
      throw new CancelledFailure(reason?.message ?? 'cancelled', [{ ...progress }], reason);
    }
    if (sink?.closed.aborted) {
      // The client went away (or the API refused the push): nobody wants the rest, so retrying cannot help.
      throw ApplicationFailure.create({
        type: ErrorType.StreamClosed,
        nonRetryable: true,
        message: `stream closed after ${progress.chunks} chunks: ${(sink.closed.reason as Error | undefined)?.message ?? 'closed'}`,
      });
    }
    const failure = typedFailure(err, deps, model, progress, timeout.aborted, ctx.info.attempt);
    await sink?.fail(failure.type ?? 'error', failure.message);
    throw failure;
  } finally {
    release?.();
    hb.stop();
  }
}

/** Any failure of a call as a typed ApplicationFailure (with the timeout retry rule applied). */
function typedFailure(
  err: unknown,
  deps: LlmActivityDeps,
  model: string,
  progress: LlmProgress,
  timedOut: boolean,
  attempt: number,
): ApplicationFailure {
  if (timedOut) {
    const bounded = progress.numPredict === undefined ? '' : `, num_predict ${progress.numPredict}`;
    return timeoutRetryRule(
      ApplicationFailure.create({
        type: ErrorType.InferenceTimeout,
        message: `LLM call exceeded ${deps.callTimeoutMs} ms (model ${model}, node ${deps.nodeId}, ${progress.chunks} chunks received${bounded})`,
        details: [{ model, nodeId: deps.nodeId, attempt, ...progress }],
      }),
      attempt,
    );
  }
  return jobCallRule(timeoutRetryRule(toLlmFailure(err, { model, nodeId: deps.nodeId }), attempt), progress);
}

/**
 * A job's call that fails after Ollama produced tokens is final, with its progress in the details: the workflow
 * bills those tokens (a retry would produce them again, unbilled, and hold a model slot again).
 */
function jobCallRule(failure: ApplicationFailure, progress: LlmProgress): ApplicationFailure {
  if (progress.kind !== 'job' || progress.chunks === 0 || failure.nonRetryable) return failure;
  return ApplicationFailure.create({
    type: failure.type ?? undefined,
    nonRetryable: true,
    message: `${failure.message}; ${progress.chunks} tokens produced, not retried`,
    cause: failure.cause,
    details: [{ ...progress }],
  });
}

/** How a streamed reply ended: Ollama's final chunk, or our cut of a loop (no final chunk: the stream was aborted). */
type Collected<C> = { content: string; final: C; cut?: undefined } | { content: string; final?: undefined; cut: true };

/**
 * Iterates an Ollama stream to its final chunk, concatenating content; aborts it with `signal`. With a `guard`,
 * a reply that falls into a loop is aborted there and returned with one copy of the repeated block.
 */
async function collect<C extends { done: boolean }>(
  stream: AbortableAsyncIterator<C>,
  signal: AbortSignal,
  piece: (chunk: C) => string,
  onChunk: () => void,
  progress: LlmProgress,
  guard?: RepetitionGuard,
  sink?: StreamSink,
): Promise<Collected<C>> {
  // Also covers clients not built by createOllamaClient, whose fetch does not see the call's signal.
  const abort = () => stream.abort();
  if (signal.aborted) abort();
  signal.addEventListener('abort', abort, { once: true });
  try {
    let content = '';
    let keep: number | undefined;
    for await (const chunk of stream) {
      const text = piece(chunk);
      content += text;
      sink?.write(text);
      progress.chunks++;
      progress.chars += text.length;
      onChunk();
      if (chunk.done) return { content, final: chunk };
      keep = guard?.check(content)?.keep;
      if (keep !== undefined) break;
    }
    if (keep === undefined) throw new Error('Ollama stream ended without a final chunk');
    // Leaving the loop released the reader; aborting closes the connection, so Ollama stops generating.
    stream.abort();
    return { content: content.slice(0, keep).trimEnd(), cut: true };
  } finally {
    signal.removeEventListener('abort', abort);
  }
}

/** The call's options: the caller's, bounded to its kind's num_predict, with the node's fixed num_ctx. */
function requestOptions(deps: LlmActivityDeps, options: LlmOptions | undefined, numPredict: number): Partial<Options> {
  return { ...options, num_predict: numPredict, num_ctx: deps.numCtx };
}

function result<C extends FinalChunk>(
  deps: LlmActivityDeps,
  model: string,
  collected: Collected<C>,
  progress: LlmProgress,
  startedAt: number,
): LlmResult {
  const { content, final } = collected;
  if (!final) {
    // Cut off: Ollama sent no counts. One streamed chunk is one generated token; the prompt count is unknown.
    const ms = Date.now() - startedAt;
    const usage = usageFromOllama({ eval_count: progress.chunks });
    return {
      content,
      model,
      nodeId: deps.nodeId,
      usage: { ...usage, totalDurationMs: ms, evalDurationMs: ms },
      doneReason: 'repetition',
    };
  }
  return {
    content,
    model: final.model || model,
    nodeId: deps.nodeId,
    usage: usageFromOllama(final),
    // 'stop', or 'length' when num_predict was reached: a cut-off answer is a result, not an error.
    doneReason: final.done_reason || undefined,
  };
}

/** The num_predict and loop guard of one chat/generate call. */
function bounds(
  deps: LlmActivityDeps,
  input: { kind?: LlmCallKind; options?: LlmOptions; format?: LlmFormat },
): { numPredict: number; progress: Pick<LlmProgress, 'kind' | 'numPredict'>; guard: RepetitionGuard } {
  const kind = input.kind ?? 'prompt';
  const numPredict = boundNumPredict(kind, input.options?.num_predict, deps.numPredict ?? DEFAULT_NUM_PREDICT);
  // Structured output repeats legitimately (a list of like items); the schema and num_predict bound it.
  const guard = new RepetitionGuard({ structured: input.format !== undefined });
  return { numPredict, progress: { kind, numPredict }, guard };
}

/** The llm activities for one node. Register them on `llmQueue(model)` for every model the node serves. */
export function createLlmActivities(deps: LlmActivityDeps): LlmActivities {
  const keepAlive = deps.keepAlive === undefined ? {} : { keep_alive: deps.keepAlive };
  return {
    async llmChat(input) {
      const b = bounds(deps, input);
      const sink = input.stream ? openStreamSink(input.stream) : undefined;
      const out = await guardedCall(
        deps,
        input.model,
        async (signal, onChunk, progress) => {
          const startedAt = Date.now();
          const stream = await deps.ollama.chat({
            model: input.model,
            messages: input.messages,
            format: input.format,
            options: requestOptions(deps, input.options, b.numPredict),
            stream: true,
            ...keepAlive,
          });
          const collected = await collect<ChatResponse>(
            stream,
            signal,
            (c) => c.message?.content ?? '',
            onChunk,
            progress,
            b.guard,
            sink,
          );
          return result(deps, input.model, collected, progress, startedAt);
        },
        b.progress,
        sink,
      );
      // The API answers the client from this end; the workflow's result follows through Temporal.
      await sink
        ?.end({ model: out.model, nodeId: out.nodeId, usage: out.usage, doneReason: out.doneReason })
        .catch(() => {
          // The client is gone; the result is still the workflow's.
        });
      return out;
    },

    async llmGenerate(input) {
      const b = bounds(deps, input);
      return guardedCall(
        deps,
        input.model,
        async (signal, onChunk, progress) => {
          const startedAt = Date.now();
          const stream = await deps.ollama.generate({
            model: input.model,
            prompt: input.prompt,
            system: input.system,
            format: input.format,
            options: requestOptions(deps, input.options, b.numPredict),
            stream: true,
            ...keepAlive,
          });
          const collected = await collect<GenerateResponse>(
            stream,
            signal,
            (c) => c.response ?? '',
            onChunk,
            progress,
            b.guard,
          );
          return result(deps, input.model, collected, progress, startedAt);
        },
        b.progress,
      );
    },

    async llmEmbed(input: LlmEmbedInput): Promise<LlmEmbedResult> {
      return guardedCall(deps, input.model, async () => {
        const res = await deps.ollama.embed({
          model: input.model,
          input: input.input,
          options: { num_ctx: deps.numCtx },
          ...keepAlive,
        });
        const b64 = input.encoding === 'base64';
        return {
          embeddings: b64 ? [] : res.embeddings,
          ...(b64 ? { embeddingsB64: res.embeddings.map(float32Base64) } : {}),
          model: res.model || input.model,
          nodeId: deps.nodeId,
          usage: { promptTokens: res.prompt_eval_count ?? 0, totalDurationMs: nsToMs(res.total_duration) },
        };
      });
    },
  };
}

/** A vector as little-endian float32 bytes in base64 (OpenAI's `encoding_format: base64` uses the same). */
export function float32Base64(vector: number[]): string {
  const buf = Buffer.alloc(vector.length * 4);
  vector.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}
