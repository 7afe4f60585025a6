/**
 * The one place that turns errors into HTTP responses `{error: {code, message, details?}}`: our HttpError,
 * zod errors, body-parser errors, Temporal client errors, and workflow/activity failures by their type through
 * the error registry (common/errors.ts `httpErrorOf`).
 * Anything unrecognised is a 500 whose message says nothing about internals (the log has the stack).
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ZodError } from 'zod';
import {
  ApplicationFailure,
  TemporalFailure,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
} from '@temporalio/common';
import { isGrpcServiceError } from '@temporalio/client';
import { type ErrorType, HttpError, httpErrorOf, isErrorType } from '../../common/errors';
import { registeredRoutes } from '../openapi';

/** The error body every endpoint returns. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/**
 * The first ApplicationFailure with one of our ErrorTypes in an error's cause chain (WorkflowFailedError →
 * ActivityFailure → ApplicationFailure), or undefined.
 */
export function findTypedFailure(err: unknown): ApplicationFailure | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 10; depth++) {
    if (cur instanceof ApplicationFailure && isErrorType(cur.type)) return cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A client-safe description of why a workflow failed: our ErrorType and its message when known, else the
 * innermost Temporal failure message (written by our own workflow/activity code, never a stack).
 */
export function describeFailure(err: unknown): { code: string; message: string } {
  const typed = findTypedFailure(err);
  if (typed) return { code: httpErrorOf(typed.type as ErrorType).code, message: typed.message };
  let cur: unknown = err;
  let last: TemporalFailure | undefined;
  for (let depth = 0; cur && depth < 10; depth++) {
    if (cur instanceof TemporalFailure) last = cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return { code: 'workflow_failed', message: last?.message || 'The workflow failed' };
}

/** The HttpError for one of our failure types (status, code and headers from the registry). */
export function typedHttpError(type: ErrorType, message: string, details?: unknown): HttpError {
  const { status, code, headers } = httpErrorOf(type);
  return new HttpError(status, code, message, details, headers);
}

/** Maps any thrown value to a status and body. Exported for tests and for routes that report failures inline. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ZodError) {
    const issues = err.issues.map((i) => ({ field: i.path.map(String).join('.'), reason: i.message }));
    return new HttpError(400, 'invalid_request', issues[0] ? `${issues[0].field}: ${issues[0].reason}` : 'Invalid', {
      issues,
    });
  }
  // body-parser (http-errors) marks its errors with `type`.
  const type = (err as { type?: unknown } | null)?.type;
  if (type === 'entity.too.large') {
    const limit = (err as { limit?: number }).limit;
    return new HttpError(413, 'payload_too_large', `Request body exceeds ${limit ?? 'the'} byte limit`, { limit });
  }
  // Our own non-Temporal errors that carry a registry type (e.g. ArchiveError).
  if (err instanceof Error && isErrorType(type)) return typedHttpError(type, err.message);
  if (type === 'entity.parse.failed') return new HttpError(400, 'invalid_json', 'Request body is not valid JSON');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new HttpError(415, 'unsupported_encoding', 'Unsupported content encoding or charset');
  }
  if (err instanceof WorkflowNotFoundError) return new HttpError(404, 'not_found', 'No such resource');
  if (err instanceof WorkflowExecutionAlreadyStartedError) {
    return new HttpError(409, 'conflict', 'A workflow with this id already exists');
  }
  const typed = findTypedFailure(err);
  if (typed) return typedHttpError(typed.type as ErrorType, typed.message);
  // gRPC UNAVAILABLE (14) / DEADLINE_EXCEEDED (4), raised as is or as the cause of the client's ServiceError
  // ('Failed to query Workflow'): Temporal is down or slow; the client may retry.
  const grpc = grpcCodeOf(err);
  if (grpc === 14 || grpc === 4) {
    return new HttpError(503, 'temporal_unavailable', 'The workflow service is unavailable; retry later', undefined, {
      'Retry-After': '5',
    });
  }
  // S3/DynamoDB (or another dependency) unreachable: the client may retry; GET /readyz names what is down.
  const down = downDependency(err);
  if (down) {
    return new HttpError(
      503,
      down.what === 'storage' ? 'storage_unavailable' : 'dependency_unavailable',
      `${down.what === 'storage' ? 'Storage (S3/DynamoDB)' : 'A dependency'} is unavailable; retry later (GET /readyz says which)`,
      undefined,
      { 'Retry-After': '5' },
    );
  }
  // Other http-errors with an explicit client status (e.g. 400 from a malformed request line).
  const status = (err as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500 && (err as { expose?: boolean }).expose) {
    return new HttpError(status, 'bad_request', (err as Error).message);
  }
  return new HttpError(500, 'internal', 'Internal server error');
}

/** `/designs/:id/files/:name` → a regex over one path. */
function routeRegex(path: string): RegExp {
  const escaped = path
    .split(/(:\w+)/)
    .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${escaped.join('')}/?$`);
}

/** The documented methods of the route that `path` matches (empty for an unknown path). */
export function methodsOf(path: string): string[] {
  const methods = new Set<string>();
  for (const r of registeredRoutes()) if (routeRegex(r.path).test(path)) methods.add(r.method.toUpperCase());
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** 405 with `Allow` for a known path and another method; 404 for every path no router handled. */
export const notFoundHandler: RequestHandler = (req, _res, next) => {
  const allowed = methodsOf(req.path);
  if (allowed.length > 0 && !allowed.includes(req.method)) {
    next(
      new HttpError(
        405,
        'method_not_allowed',
        `${req.method} is not allowed on ${req.path}`,
        { allowed },
        {
          Allow: allowed.join(', '),
        },
      ),
    );
    return;
  }
  next(new HttpError(404, 'not_found', `No route for ${req.method} ${req.path}`));
};

/** Network errors of a dependency (S3/DynamoDB through the AWS SDK, an HTTP call): it is down or unreachable. */
const DOWN_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
]);

/**
 * Which dependency did not answer, for an error that means "unreachable": an AWS SDK error (it carries
 * `$metadata`) without an HTTP status got no response from S3/DynamoDB at all; any other error with a network
 * code (in its cause chain) is some other dependency. Undefined for everything else.
 */
function downDependency(err: unknown): { what: 'storage' | 'dependency' } | undefined {
  const meta = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  if (meta && typeof meta === 'object' && meta.httpStatusCode === undefined) return { what: 'storage' };
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 5; depth++) {
    const e = cur as { code?: unknown; cause?: unknown };
    if (typeof e.code === 'string' && DOWN_CODES.has(e.code)) return { what: 'dependency' };
    cur = e.cause;
  }
  return undefined;
}

/** The gRPC status code of a Temporal client error, or of the gRPC error it wraps (its cause). */
export function grpcCodeOf(err: unknown): number | undefined {
  if (isGrpcServiceError(err)) return err.code;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return isGrpcServiceError(cause) ? cause.code : undefined;
}

/** The one error handler, mounted last. 5xx are logged with the stack; 4xx at debug. */
export const errorHandler: ErrorRequestHandler = (err, req, res, next) => {
  if (res.headersSent) return next(err);
  const httpErr = toHttpError(err);
  if (httpErr.status >= 500) req.log?.error({ err }, 'request failed');
  else req.log?.debug({ err: { code: httpErr.code, message: httpErr.message } }, 'request rejected');
  const body: ErrorBody = { error: { code: httpErr.code, message: httpErr.message } };
  if (httpErr.details !== undefined) body.error.details = httpErr.details;
  if (httpErr.headers) res.set(httpErr.headers);
  res.status(httpErr.status).json(body);
};
