/**
 * OpenTelemetry tracing for every Node process (API, orchestrator, executor, llm workers). `initTracing` registers
 * one tracer provider per process (W3C trace context, AsyncLocalStorage context); spans are exported to Zipkin when
 * OTEL_EXPORTER_ZIPKIN_ENDPOINT is set, and to any extra processors a caller passes (tests: an in-memory exporter).
 * With OTEL_SDK_DISABLED=true nothing is registered and the OpenTelemetry API stays a no-op.
 *
 * Temporal carries the context across processes: the client interceptor writes it into workflow start / signal /
 * update headers, the workflow interceptors (bundled into the workflow code) continue it and pass it to activities,
 * and workflow spans leave the sandbox through the `exporter` sink (`workerTracing`).
 */
import {
  context as otelContext,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { Resource } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NoopSpanProcessor,
  type Sampler,
  type SpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import type { InjectedSinks, WorkerOptions } from '@temporalio/worker';
import type { Config } from '../../common/config';

export { SpanKind, SpanStatusCode, trace, type Span, type Context };

/** The tracer name of ainode's own spans (HTTP, gRPC, Ollama, gateway). */
export const TRACER_NAME = 'ainode';

/**
 * The workflow interceptors module, bundled into the workflow code: `bundleWorkflowCode({ workflowInterceptorModules })`
 * for a prebuilt bundle, `interceptors.workflowModules` for a worker that bundles at start. It is workflow code
 * (workflows/tracing.ts: the library's workflow spans and trace header without OpenTelemetry's modules, which every
 * run would evaluate again); only its path is named here, nothing of it is imported.
 */
export const WORKFLOW_INTERCEPTOR_MODULES: string[] = [require.resolve('../../workflows/tracing')];

export type TracingConfig = Partial<
  Pick<Config, 'OTEL_SDK_DISABLED' | 'OTEL_SERVICE_NAME' | 'OTEL_EXPORTER_ZIPKIN_ENDPOINT'>
>;

export interface Tracing {
  readonly provider: NodeTracerProvider;
  readonly resource: Resource;
  /** The processor workflow spans go through (the sink hands them to it). */
  readonly spanProcessor: SpanProcessor;
  /** Where spans go: `zipkin <url>`, `in-process only`. */
  readonly exportsTo: string;
  /** Flushes and stops the exporters; call once at process end. */
  shutdown(): Promise<void>;
}

/** This process's tracing, once `initTracing` ran. */
let current: Tracing | undefined;

export function activeTracing(): Tracing | undefined {
  return current;
}

/** Fans one processor call out to several (the provider takes a list, the workflow sink takes one). */
class FanOutProcessor implements SpanProcessor {
  constructor(private readonly processors: SpanProcessor[]) {}
  onStart(span: Parameters<SpanProcessor['onStart']>[0], parent: Context): void {
    for (const p of this.processors) p.onStart(span, parent);
  }
  onEnd(span: Parameters<SpanProcessor['onEnd']>[0]): void {
    for (const p of this.processors) p.onEnd(span);
  }
  async forceFlush(): Promise<void> {
    await Promise.all(this.processors.map((p) => p.forceFlush()));
  }
  async shutdown(): Promise<void> {
    await Promise.all(this.processors.map((p) => p.shutdown()));
  }
}

/**
 * Registers the process's tracer provider (idempotent: a second call returns the first). `service` names the
 * process in the trace viewer (OTEL_SERVICE_NAME overrides it); `processors` are added to the configured export.
 */
export function initTracing(
  service: string,
  config: TracingConfig,
  opts: { processors?: SpanProcessor[]; exporter?: SpanExporter; sampler?: Sampler } = {},
): Tracing | undefined {
  if (current) return current;
  if (config.OTEL_SDK_DISABLED) return undefined;
  const resource = new Resource({ 'service.name': config.OTEL_SERVICE_NAME ?? service });
  const processors: SpanProcessor[] = [...(opts.processors ?? [])];
  const targets: string[] = [];
  if (config.OTEL_EXPORTER_ZIPKIN_ENDPOINT) {
    processors.push(new BatchSpanProcessor(new ZipkinExporter({ url: config.OTEL_EXPORTER_ZIPKIN_ENDPOINT })));
    targets.push(`zipkin ${config.OTEL_EXPORTER_ZIPKIN_ENDPOINT}`);
  }
  if (opts.exporter) processors.push(new BatchSpanProcessor(opts.exporter));
  const spanProcessor = processors.length === 1 ? processors[0]! : new FanOutProcessor(processors);
  // Spans are recorded (ids in logs and `traceparent`) even with no exporter; they are just not sent anywhere.
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor], sampler: opts.sampler });
  provider.register();
  current = {
    provider,
    resource,
    spanProcessor,
    exportsTo: targets.join(', ') || 'in-process only',
    async shutdown() {
      await provider.shutdown().catch(() => undefined);
      trace.disable();
      propagation.disable();
      otelContext.disable();
      current = undefined;
    },
  };
  return current;
}

export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** Interceptors for a Temporal Client: starts, signals and updates carry the caller's trace context. */
export function clientTracing(): { workflow: WorkflowClientInterceptor[] } {
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}

/**
 * Worker options that trace workflows and activities. The workflow interceptors are added as modules only when the
 * worker bundles at start; a prebuilt bundle (scripts/bundle-workflows.ts) has them built in. The `exporter` sink is
 * always there, so a bundle with the interceptors never calls a missing sink (a no-op one when tracing is off).
 */
export function workerTracing(opts: { bundled?: boolean } = {}): Pick<WorkerOptions, 'interceptors' | 'sinks'> {
  const t = current;
  const sinks = {
    exporter: makeWorkflowExporter(
      t?.spanProcessor ?? new NoopSpanProcessor(),
      t?.resource ?? new Resource({ 'service.name': 'ainode' }),
    ),
  } as InjectedSinks<never>;
  return {
    interceptors: {
      ...(opts.bundled ? {} : { workflowModules: WORKFLOW_INTERCEPTOR_MODULES }),
      activity: [
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
    },
    sinks,
  };
}

/** The `traceparent` header value of a span (W3C trace context), or undefined when tracing is off. */
export function traceparentOf(span: Span): string | undefined {
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & 1).toString(16)}`;
}

/** The active span's trace id, for logs (undefined when there is none). */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  const span = trace.getActiveSpan();
  if (!span) return undefined;
  const sc = span.spanContext();
  return trace.isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : undefined;
}

/**
 * Runs `work` in a new active span; ends it when `work` settles, recording a failure as the span's error. `after`
 * adds attributes from the result before the span ends.
 */
export async function inSpan<T>(
  name: string,
  opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context; links?: Link[] },
  work: (span: Span) => Promise<T>,
  after?: (span: Span, result: T) => void,
): Promise<T> {
  const parent = opts.parent ?? otelContext.active();
  const span = tracer().startSpan(
    name,
    { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes, links: opts.links },
    parent,
  );
  try {
    const result = await otelContext.with(trace.setSpan(parent, span), () => work(span));
    after?.(span, result);
    return result;
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
    throw err;
  } finally {
    span.end();
  }
}

/** W3C trace context from incoming headers (HTTP headers, gRPC metadata as a plain object). */
export function extractContext(carrier: Record<string, unknown>): Context {
  return propagation.extract(otelContext.active(), carrier, {
    get: (c, key) => {
      const v = c[key];
      return typeof v === 'string' || Array.isArray(v) ? (v as string | string[]) : undefined;
    },
    keys: (c) => Object.keys(c),
  });
}

export { otelContext };
