/**
 * Failure types shared by activities, workflows and the API. Activities throw
 * `ApplicationFailure.create({ type, nonRetryable })` with one of these types; the API maps them to HTTP
 * status codes in one place (api/middleware/errors.ts). Workflow-safe: no I/O.
 */
export const ErrorType = {
  /** No node serves the model: retrying cannot help. */
  ModelNotFound: 'ModelNotFound',
  /** A node serves the model but no llm worker polls its queue (or its nodes are down): retry later. */
  ModelUnavailable: 'ModelUnavailable',
  /** The Ollama node did not answer: retry, possibly on another node of the same queue. */
  NodeUnavailable: 'NodeUnavailable',
  /** Generation took longer than allowed. */
  InferenceTimeout: 'InferenceTimeout',
  /** The node could not load the model (memory). */
  OutOfMemory: 'OutOfMemory',
  /** A request that no retry can fix (bad options, invalid schema, ...). */
  InvalidRequest: 'InvalidRequest',
  NotFound: 'NotFound',
  Conflict: 'Conflict',
  LimitExceeded: 'LimitExceeded',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Types a Temporal retry policy must not retry. */
export const NON_RETRYABLE_ERROR_TYPES: readonly ErrorType[] = [
  ErrorType.ModelNotFound,
  ErrorType.InvalidRequest,
  ErrorType.NotFound,
  ErrorType.LimitExceeded,
];

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
