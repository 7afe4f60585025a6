/**
 * Tracing inside workflows: the same spans, trace header and sink as @temporalio/interceptors-opentelemetry's
 * workflow interceptors (`RunWorkflow:<type>`, `StartActivity:<type>`, `HandleSignal:<name>`, …, exported through
 * the worker's `exporter` sink made by `makeWorkflowExporter`), written without OpenTelemetry's modules.
 *
 * Why not the library's: with the reusable V8 context every workflow run evaluates its interceptor modules again,
 * and those pull in @opentelemetry/api, core and sdk-trace-base (~400 KB). Measured idle
 * (`bench/run.ts temporal-floor`, n=30): the production bundle cost +10.1 ms p50 per new run over a one-file bundle
 * with them, +1.5 ms with an empty interceptor module; every prompt, recommendation and chat's first turn paid
 * it, and every cached workflow held its own copy. A span here is a plain object; nothing is evaluated per run but
 * this file. docs/decisions.md, "Workflow tracing without OpenTelemetry's modules".
 *
 * Kept identical where replay can see it: the SDK flags are consulted exactly where the library consults them
 * (each consultation records the flag in new histories, and decides the same extra yields), so histories recorded
 * with either implementation replay with the other. Span ids come from the workflow's seeded Math.random, as the
 * library's do (no workflow here draws randomness for its commands).
 */
import {
  AsyncLocalStorage,
  ApplicationFailure,
  ContinueAsNew,
  defaultPayloadConverter,
  proxySinks,
  workflowInfo,
  type DisposeInput,
  type Headers,
  type Next,
  type Sinks,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptors,
  type WorkflowInternalsInterceptor,
  type WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { SdkFlags } from '@temporalio/workflow/lib/flags';
import { getActivator } from '@temporalio/workflow/lib/global-attributes';
import type { SdkFlag } from '@temporalio/workflow/lib/flags';

/** The header the library's client, workflow and activity interceptors carry the trace context in. */
export const TRACE_HEADER = '_tracer-data';

type HrTime = [number, number];

/** A span context: W3C ids and flags (bit 0: sampled). */
interface SpanCtx {
  traceId: string;
  spanId: string;
  traceFlags: number;
  traceState?: string;
}

/** What the worker's `exporter` sink takes (the library's serialisable span: a ReadableSpan without methods). */
interface SerializableSpan {
  name: string;
  kind: number;
  spanContext: SpanCtx & { isRemote?: boolean };
  parentSpanId?: string;
  startTime: HrTime;
  endTime: HrTime;
  status: { code: number; message?: string };
  attributes: Record<string, string | number | boolean>;
  links: never[];
  events: { name: string; attributes: Record<string, string>; time: HrTime; droppedAttributesCount: number }[];
  duration: HrTime;
  ended: boolean;
  droppedAttributesCount: number;
  droppedEventsCount: number;
  droppedLinksCount: number;
  instrumentationLibrary: { name: string; version?: string };
}

interface ExporterSinks extends Sinks {
  exporter: { export(spans: SerializableSpan[]): void };
}

const SPAN_KIND_INTERNAL = 0;
const STATUS_UNSET = 0;
const STATUS_OK = 1;
const STATUS_ERROR = 2;
const SCOPE = { name: '@temporalio/interceptor-workflow' };
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Hex ids from the workflow's deterministic Math.random (all-zero ids are invalid in W3C). */
function randomHex(chars: number): string {
  let id = '';
  for (let i = 0; i < chars; i++) id += Math.floor(Math.random() * 16).toString(16);
  return /^0+$/.test(id) ? id.slice(0, -1) + '1' : id;
}

function hrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** The active span of this run's async flow (one storage per run: modules are evaluated per run). */
const active = new AsyncLocalStorage<SpanCtx>();

function hasFlag(flag: SdkFlag): boolean {
  return getActivator().hasFlag(flag);
}

/** The remote parent a header carries (the W3C `traceparent` the client interceptor wrote), if any. */
function parentFromHeaders(headers: Headers): SpanCtx | undefined {
  const encoded = headers[TRACE_HEADER];
  if (encoded === undefined) return undefined;
  const carrier = defaultPayloadConverter.fromPayload<Record<string, string>>(encoded);
  const m = TRACEPARENT.exec(carrier?.traceparent ?? '');
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & 1, traceState: carrier.tracestate };
}

/** Headers with the active span's context in them, for the activity / child / signal being started. */
function headersWithContext(headers: Headers): Headers {
  const ctx = active.getStore();
  const carrier: Record<string, string> = {};
  if (ctx) {
    carrier.traceparent = `00-${ctx.traceId}-${ctx.spanId}-0${ctx.traceFlags.toString(16)}`;
    if (ctx.traceState) carrier.tracestate = ctx.traceState;
  }
  return { ...headers, [TRACE_HEADER]: defaultPayloadConverter.toPayload(carrier) };
}

class WorkflowSpan {
  readonly ctx: SpanCtx;
  private readonly start = Date.now();
  private status: { code: number; message?: string } = { code: STATUS_UNSET };
  private readonly attributes: Record<string, string | number | boolean> = {};
  private readonly events: SerializableSpan['events'] = [];

  constructor(
    readonly name: string,
    private readonly parent: SpanCtx | undefined,
  ) {
    // Parent-based sampling, as the library's default sampler: a root is sampled, a child follows its parent.
    this.ctx = parent
      ? { traceId: parent.traceId, spanId: randomHex(16), traceFlags: parent.traceFlags, traceState: parent.traceState }
      : { traceId: randomHex(32), spanId: randomHex(16), traceFlags: 1 };
  }

  setAttribute(key: string, value: string): void {
    this.attributes[key] = value;
  }

  ok(): void {
    this.status = { code: STATUS_OK };
  }

  /** As the library does: an error status (unset for a benign failure) and an `exception` event. */
  failed(err: unknown, acceptable?: (err: unknown) => boolean): void {
    if (acceptable?.(err)) return this.ok();
    const benign = err instanceof ApplicationFailure && err.category === 'BENIGN';
    const message = err != null && typeof (err as Error).message === 'string' ? (err as Error).message : String(err);
    this.status = { code: benign ? STATUS_UNSET : STATUS_ERROR, message };
    const attributes: Record<string, string> = { 'exception.message': message };
    if (err instanceof Error) {
      attributes['exception.type'] = err.name;
      if (err.stack) attributes['exception.stacktrace'] = err.stack;
    }
    this.events.push({ name: 'exception', attributes, time: hrTime(Date.now()), droppedAttributesCount: 0 });
  }

  end(): void {
    if (!(this.ctx.traceFlags & 1)) return; // not sampled: propagated, never exported
    const end = Math.max(Date.now(), this.start);
    const span: SerializableSpan = {
      name: this.name,
      kind: SPAN_KIND_INTERNAL,
      spanContext: { ...this.ctx, isRemote: false },
      parentSpanId: this.parent?.spanId,
      startTime: hrTime(this.start),
      endTime: hrTime(end),
      status: this.status,
      attributes: this.attributes,
      links: [],
      events: this.events,
      duration: hrTime(end - this.start),
      ended: true,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
      instrumentationLibrary: SCOPE,
    };
    // A sink call is dropped during replay, so a replayed span is not exported twice.
    proxySinks<ExporterSinks>().exporter.export([span]);
  }
}

/** Runs `fn` in a new span, child of `parent` (a remote parent from headers) or of the active span. */
async function instrument<T>(
  name: string,
  fn: (span: WorkflowSpan) => Promise<T>,
  opts: { parent?: SpanCtx; acceptable?: (err: unknown) => boolean } = {},
): Promise<T> {
  const span = new WorkflowSpan(name, opts.parent ?? active.getStore());
  return active.run(span.ctx, async () => {
    try {
      const ret = await fn(span);
      span.ok();
      return ret;
    } catch (err) {
      span.failed(err, opts.acceptable);
      throw err;
    } finally {
      span.end();
    }
  });
}

function instrumentSync<T>(name: string, fn: (span: WorkflowSpan) => T, parent?: SpanCtx): T {
  const span = new WorkflowSpan(name, parent ?? active.getStore());
  return active.run(span.ctx, () => {
    try {
      const ret = fn(span);
      span.ok();
      return ret;
    } catch (err) {
      span.failed(err);
      throw err;
    } finally {
      span.end();
    }
  });
}

const isContinueAsNew = (err: unknown) => err instanceof ContinueAsNew;

class TracingInbound implements WorkflowInboundCallsInterceptor {
  async execute(
    input: Parameters<NonNullable<WorkflowInboundCallsInterceptor['execute']>>[0],
    next: Next<WorkflowInboundCallsInterceptor, 'execute'>,
  ): Promise<unknown> {
    const parent = parentFromHeaders(input.headers);
    if (!hasFlag(SdkFlags.OpenTelemetryInterceporsAvoidsExtraYields)) await Promise.resolve();
    return instrument(`RunWorkflow:${workflowInfo().workflowType}`, () => next(input), {
      parent,
      acceptable: isContinueAsNew,
    });
  }

  async handleSignal(
    input: Parameters<NonNullable<WorkflowInboundCallsInterceptor['handleSignal']>>[0],
    next: Next<WorkflowInboundCallsInterceptor, 'handleSignal'>,
  ): Promise<void> {
    if (!hasFlag(SdkFlags.OpenTelemetryInterceptorsTracesInboundSignals)) return next(input);
    const parent = parentFromHeaders(input.headers);
    if (!hasFlag(SdkFlags.OpenTelemetryInterceporsAvoidsExtraYields)) await Promise.resolve();
    return instrument(`HandleSignal:${input.signalName}`, () => next(input), { parent });
  }

  async handleUpdate(
    input: Parameters<NonNullable<WorkflowInboundCallsInterceptor['handleUpdate']>>[0],
    next: Next<WorkflowInboundCallsInterceptor, 'handleUpdate'>,
  ): Promise<unknown> {
    if (!hasFlag(SdkFlags.OpenTelemetryInterceptorsInstrumentsAllMethods)) return next(input);
    return instrument(
      `HandleUpdate:${input.name}`,
      (span) => {
        span.setAttribute('temporalUpdateId', input.updateId);
        return next(input);
      },
      { parent: parentFromHeaders(input.headers) },
    );
  }

  validateUpdate(
    input: Parameters<NonNullable<WorkflowInboundCallsInterceptor['validateUpdate']>>[0],
    next: Next<WorkflowInboundCallsInterceptor, 'validateUpdate'>,
  ): void {
    if (!hasFlag(SdkFlags.OpenTelemetryInterceptorsInstrumentsAllMethods)) return next(input);
    instrumentSync(
      `ValidateUpdate:${input.name}`,
      (span) => {
        span.setAttribute('temporalUpdateId', input.updateId);
        return next(input);
      },
      parentFromHeaders(input.headers),
    );
  }

  async handleQuery(
    input: Parameters<NonNullable<WorkflowInboundCallsInterceptor['handleQuery']>>[0],
    next: Next<WorkflowInboundCallsInterceptor, 'handleQuery'>,
  ): Promise<unknown> {
    if (!hasFlag(SdkFlags.OpenTelemetryInterceptorsInstrumentsAllMethods)) return next(input);
    return instrument(`HandleQuery:${input.queryName}`, () => next(input), {
      parent: parentFromHeaders(input.headers),
    });
  }
}

/** Starts `kind:name` as a span and hands the callee headers carrying it (activities, children, signals). */
async function startWithContext<I extends { headers: Headers }, T>(
  name: string,
  input: I,
  next: (input: I) => Promise<T>,
  acceptable?: (err: unknown) => boolean,
): Promise<T> {
  return instrument(
    name,
    async () => {
      const headers = headersWithContext(input.headers);
      if (!hasFlag(SdkFlags.OpenTelemetryInterceporsAvoidsExtraYields)) await Promise.resolve();
      return next({ ...input, headers });
    },
    { acceptable },
  );
}

class TracingOutbound implements WorkflowOutboundCallsInterceptor {
  scheduleActivity(
    input: Parameters<NonNullable<WorkflowOutboundCallsInterceptor['scheduleActivity']>>[0],
    next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>,
  ): Promise<unknown> {
    return startWithContext(`StartActivity:${input.activityType}`, input, next);
  }

  scheduleLocalActivity(
    input: Parameters<NonNullable<WorkflowOutboundCallsInterceptor['scheduleLocalActivity']>>[0],
    next: Next<WorkflowOutboundCallsInterceptor, 'scheduleLocalActivity'>,
  ): Promise<unknown> {
    if (!hasFlag(SdkFlags.OpenTelemetryInterceptorsTracesLocalActivities)) return next(input);
    return startWithContext(`StartActivity:${input.activityType}`, input, next);
  }

  startChildWorkflowExecution(
    input: Parameters<NonNullable<WorkflowOutboundCallsInterceptor['startChildWorkflowExecution']>>[0],
    next: Next<WorkflowOutboundCallsInterceptor, 'startChildWorkflowExecution'>,
  ): Promise<[Promise<string>, Promise<unknown>]> {
    return startWithContext(`StartChildWorkflow:${input.workflowType}`, input, next);
  }

  continueAsNew(
    input: Parameters<NonNullable<WorkflowOutboundCallsInterceptor['continueAsNew']>>[0],
    next: Next<WorkflowOutboundCallsInterceptor, 'continueAsNew'>,
  ): Promise<never> {
    return startWithContext(`ContinueAsNew:${input.options.workflowType}`, input, next, isContinueAsNew);
  }

  signalWorkflow(
    input: Parameters<NonNullable<WorkflowOutboundCallsInterceptor['signalWorkflow']>>[0],
    next: Next<WorkflowOutboundCallsInterceptor, 'signalWorkflow'>,
  ): Promise<void> {
    return startWithContext(`SignalWorkflow:${input.signalName}`, input, next);
  }

  /** Workflow log lines carry the active span's ids, as the API's and activities' do. */
  getLogAttributes(
    input: Record<string, unknown>,
    next: Next<WorkflowOutboundCallsInterceptor, 'getLogAttributes'>,
  ): Record<string, unknown> {
    const ctx = active.getStore();
    if (!ctx) return next(input);
    return next({
      trace_id: ctx.traceId,
      span_id: ctx.spanId,
      trace_flags: `0${ctx.traceFlags.toString(16)}`,
      ...input,
    });
  }
}

class TracingInternals implements WorkflowInternalsInterceptor {
  dispose(input: DisposeInput, next: Next<WorkflowInternalsInterceptor, 'dispose'>): void {
    active.disable();
    next(input);
  }
}

/** The interceptors factory the SDK calls for every workflow run (`workflowInterceptorModules`). */
export const interceptors = (): WorkflowInterceptors => ({
  inbound: [new TracingInbound()],
  outbound: [new TracingOutbound()],
  internals: [new TracingInternals()],
});
