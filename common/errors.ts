/**
 * The error registry: every failure type of the platform, declared once with what a client sees (HTTP status
 * and `error.code`, for the API and the AI gateway alike) and whether a Temporal retry policy retries it.
 * Activities and workflows throw `ApplicationFailure.create({ type, nonRetryable })` with one of these types;
 * the API (api/middleware/errors.ts) and the gateway (lib/executor/gateway.ts) map them with `httpErrorOf`.
 * The type strings are recorded in workflow histories: never rename one. Workflow-safe: no I/O.
 */

/** What one failure type means to a client and to a retry policy. */
export interface FailureSpec {
  /** HTTP status of the API and gateway response. */
  readonly status: number;
  /** The public `error.code`. */
  readonly code: string;
  /** False: retrying cannot help, so it is in NON_RETRYABLE_ERROR_TYPES. A thrower may still make one failure final. */
  readonly retryable: boolean;
  /** Seconds for a Retry-After header: the condition is expected to clear. */
  readonly retryAfterS?: number;
  /** When it happens, one line (docs/api.md lists it). */
  readonly doc: string;
}

/** The registry, keyed by the failure type (ApplicationFailure.type). docs/api.md has it as a table (unit-tested). */
export const FAILURES = {
  // LLM calls (lib/llm/errors.ts maps Ollama's errors onto these).
  ModelNotFound: { status: 400, code: 'model_not_found', retryable: false, doc: 'no node serves the model' },
  // An llm worker re-reads its node's models every LLM_WORKER_REFRESH_MS (15 s by default).
  ModelUnavailable: {
    status: 503,
    code: 'model_unavailable',
    retryable: true,
    retryAfterS: 15,
    doc: 'a node has the model but no llm worker polls its queue (or its nodes are down): retry later',
  },
  NodeUnavailable: {
    status: 503,
    code: 'node_unavailable',
    retryable: true,
    doc: 'the Ollama node did not answer; a retry may land on another node of the same queue',
  },
  InferenceTimeout: { status: 504, code: 'inference_timeout', retryable: true, doc: 'generation took too long' },
  OutOfMemory: { status: 503, code: 'out_of_memory', retryable: true, doc: 'the node could not load the model' },
  InvalidRequest: {
    status: 400,
    code: 'invalid_request',
    retryable: false,
    doc: 'a request no retry can fix (bad options, invalid schema, ...)',
  },
  OllamaError: { status: 502, code: 'llm_failed', retryable: true, doc: 'any other failed Ollama call' },
  // Streamed generations (lib/stream): the client that holds the stream went away, so nobody wants the rest.
  StreamClosed: {
    status: 499,
    code: 'client_closed_request',
    retryable: false,
    doc: 'the client of a streamed completion disconnected; its generation was stopped',
  },
  // Resources and limits.
  NotFound: { status: 404, code: 'not_found', retryable: false, doc: 'no such resource (e.g. a code package)' },
  Conflict: { status: 409, code: 'conflict', retryable: true, doc: 'the resource is not in a state that allows it' },
  LimitExceeded: {
    status: 429,
    code: 'limit_exceeded',
    retryable: false,
    doc: "a job's LLM call or token limit is reached",
  },
  // Code packages (lib/zip/extract.ts ArchiveError).
  ArchiveInvalid: {
    status: 400,
    code: 'invalid_archive',
    retryable: false,
    doc: 'a code package is not a safe zip (.., absolute path, symlink, too big, no entry file)',
  },
  // The AI gateway: the job's workflow has closed, so the job cannot call the LLM any more.
  JobFinished: { status: 410, code: 'job_finished', retryable: false, doc: 'the job is no longer running' },
  // The graph engine (workflows/graph/state-graph.ts GraphErrorType): a retry replays the same graph.
  GraphStepLimitExceeded: {
    status: 500,
    code: 'graph_step_limit_exceeded',
    retryable: false,
    doc: 'a graph ran more supersteps than its limit (a loop that never exits)',
  },
  GraphInterruptTimeout: {
    status: 504,
    code: 'graph_interrupt_timeout',
    retryable: false,
    doc: 'a graph waited for an answer longer than its timeout and had no default',
  },
  GraphInvalid: {
    status: 500,
    code: 'graph_invalid',
    retryable: false,
    doc: 'the graph itself is wrong (unknown node, no entry, unknown branch)',
  },
  // Designs (workflows/design).
  DesignPlanInvalid: {
    status: 422,
    code: 'design_plan_invalid',
    retryable: false,
    doc: 'no usable plan from the model and nothing in the request the keyword plan knows',
  },
} as const satisfies Record<string, FailureSpec>;

/** Every failure type, by name: `ErrorType.ModelNotFound === 'ModelNotFound'`. */
export type ErrorType = keyof typeof FAILURES;
export const ErrorType = Object.freeze(
  Object.fromEntries(Object.keys(FAILURES).map((t) => [t, t])) as { readonly [T in ErrorType]: T },
);

/** Whether `type` is one of ours (own keys only: 'toString' is not a failure type). */
export function isErrorType(type: unknown): type is ErrorType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(FAILURES, type);
}

/** Types a Temporal retry policy must not retry: those the registry marks `retryable: false`. */
export const NON_RETRYABLE_ERROR_TYPES: readonly ErrorType[] = Object.freeze(
  (Object.keys(FAILURES) as ErrorType[]).filter((t) => !FAILURES[t].retryable),
);

/** What a client gets for a failure type: status, public code and headers (Retry-After). */
export function httpErrorOf(type: ErrorType): { status: number; code: string; headers?: Record<string, string> } {
  const spec: FailureSpec = FAILURES[type];
  return {
    status: spec.status,
    code: spec.code,
    ...(spec.retryAfterS ? { headers: { 'Retry-After': String(spec.retryAfterS) } } : {}),
  };
}

/** An error the API turns into `{error: {code, message, details}}` with `status` (and `headers`, e.g. Retry-After). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}
