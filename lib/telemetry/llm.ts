/**
 * The span and metrics of one Ollama call, made by the llm activities (activities/llm). The span is a child of the
 * activity's (the Temporal interceptor makes that one active), so a request's trace ends at the model with what it
 * did: model, node, prompt and completion token counts, and Ollama's own load / prompt-eval / eval durations.
 */
import { SpanKind, trace, type Context, type Span } from '@opentelemetry/api';
import { inSpan } from './tracing';
import { metrics } from './metrics';

/** What an llm activity returns, as far as tracing reads it (chat / generate results, embed results). */
export interface TracedLlmResult {
  model?: string;
  doneReason?: string;
  usage?: {
    promptTokens?: number;
    completionTokens?: number;
    totalDurationMs?: number;
    loadDurationMs?: number;
    promptEvalDurationMs?: number;
    evalDurationMs?: number;
  };
}

export interface OllamaCallInfo {
  node: string;
  model: string;
  /** chat, generate or embed. */
  op: string;
  /** The call kind whose num_predict bound it runs with (prompt, job, chat.route, ...), when it has one. */
  kind?: string;
}

/** Tokens per second of a generation (eval_count / eval_duration); undefined when Ollama reported no eval time. */
export function tokensPerSecond(usage: TracedLlmResult['usage']): number | undefined {
  const tokens = usage?.completionTokens ?? 0;
  const ms = usage?.evalDurationMs ?? 0;
  return tokens > 0 && ms > 0 ? (tokens * 1000) / ms : undefined;
}

function record(span: Span, info: OllamaCallInfo, result: TracedLlmResult, seconds: number): void {
  const u = result.usage ?? {};
  const tps = tokensPerSecond(u);
  span.setAttributes({
    'gen_ai.response.model': result.model ?? info.model,
    'gen_ai.usage.input_tokens': u.promptTokens ?? 0,
    'gen_ai.usage.output_tokens': u.completionTokens ?? 0,
    'ollama.total_duration_ms': u.totalDurationMs ?? 0,
    'ollama.load_duration_ms': u.loadDurationMs ?? 0,
    'ollama.prompt_eval_duration_ms': u.promptEvalDurationMs ?? 0,
    'ollama.eval_duration_ms': u.evalDurationMs ?? 0,
    ...(result.doneReason ? { 'gen_ai.response.finish_reasons': [result.doneReason] } : {}),
    ...(tps !== undefined ? { 'ollama.tokens_per_second': Math.round(tps * 10) / 10 } : {}),
  });
  const node = info.node;
  const model = info.model;
  metrics.llmCalls.inc({ node, model, kind: info.op, outcome: 'ok' });
  metrics.llmTokens.inc({ node, model, type: 'prompt' }, u.promptTokens ?? 0);
  metrics.llmTokens.inc({ node, model, type: 'completion' }, u.completionTokens ?? 0);
  metrics.llmCallDuration.observe({ node, model, kind: info.op }, seconds);
  if (tps !== undefined) metrics.llmTokensPerSecond.observe({ node, model }, tps);
  if (u.loadDurationMs !== undefined) metrics.modelLoad.observe({ node, model }, u.loadDurationMs / 1000);
}

/** Runs one Ollama call in its span (`ollama <op>`), counting it in the node's slots in use while it runs. */
export async function traceOllamaCall<T>(info: OllamaCallInfo, work: () => Promise<T>): Promise<T> {
  const started = process.hrtime.bigint();
  metrics.slotsInUse.inc({ node: info.node });
  try {
    return await inSpan(
      `ollama ${info.op}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'gen_ai.system': 'ollama',
          'gen_ai.operation.name': info.op,
          'gen_ai.request.model': info.model,
          'ainode.node_id': info.node,
          ...(info.kind ? { 'ainode.call_kind': info.kind } : {}),
        },
      },
      () => work(),
      (span, result) =>
        record(span, info, (result ?? {}) as TracedLlmResult, Number(process.hrtime.bigint() - started) / 1e9),
    );
  } catch (err) {
    const cancelled = (err as Error)?.name === 'AbortError' || (err as Error)?.name === 'CancelledFailure';
    metrics.llmCalls.inc({
      node: info.node,
      model: info.model,
      kind: info.op,
      outcome: cancelled ? 'cancelled' : 'error',
    });
    throw err;
  } finally {
    metrics.slotsInUse.dec({ node: info.node });
  }
}

/**
 * The AI gateway's span of one call from a job container (lib/executor/gateway.ts). Its parent is the context the
 * gateway started in (the job's `runJobContainer` activity), and it links to that activity's span, so the call, the
 * Workflow Update it becomes and the llm activity behind it sit in the job's trace.
 */
export async function traceGatewayCall<T>(
  info: { parent: Context; kind: string; model?: string; callId: string },
  work: () => Promise<T>,
): Promise<T> {
  const activity = trace.getSpanContext(info.parent);
  try {
    const out = await inSpan(
      'gateway llmCall',
      {
        kind: SpanKind.SERVER,
        parent: info.parent,
        attributes: {
          'ainode.gateway.call_kind': info.kind,
          'ainode.gateway.call_id': info.callId,
          ...(info.model ? { 'gen_ai.request.model': info.model } : {}),
        },
        links: activity && trace.isSpanContextValid(activity) ? [{ context: activity }] : [],
      },
      work,
    );
    metrics.gatewayCalls.inc({ outcome: 'ok' });
    return out;
  } catch (err) {
    metrics.gatewayCalls.inc({ outcome: 'error' });
    throw err;
  }
}
