/**
 * The AI gateway: the job container's only way out. It is an HTTP server on a per-job Unix socket, because
 * the container has no network at all and a socket file bind-mounted into it reaches exactly this process
 * and nothing else. Each request is authenticated by the job's token and becomes Workflow Update `llmCall`
 * on the job's workflow, so every LLM call is durable, visible in the job's history, and metered there.
 *
 * The one executor process serves every job's gateway, so one job must not be able to starve it: each
 * gateway caps its connections, times out slow headers and bodies, rate-limits requests, and checks the
 * token, the declared size, the rate and its in-flight slots BEFORE reading a body; bodies being held by all
 * gateways together have one byte budget. Error text sent back never carries internal addresses.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import { z } from 'zod';
import {
  isGrpcServiceError,
  ServiceError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ApplicationFailure } from '@temporalio/common';
import { ChatMessageSchema, LlmOptionsSchema } from '../../contracts/llm';
import { ErrorType, httpErrorOf, isErrorType } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { llmCallUpdate } from '../../contracts/definitions';
import type { LlmCallReply, LlmCallRequest } from '../../contracts/jobs';
import { traceGatewayCall } from '../telemetry/llm';
import { otelContext } from '../telemetry/tracing';

export interface GatewayLimits {
  /** Largest request body. */
  maxBodyBytes: number;
  /** Calls per job being read or running at once: user code cannot flood Temporal with concurrent updates. */
  maxConcurrentCalls: number;
  /** Open connections per job (idle keep-alive ones included). */
  maxConnections: number;
  /** Time to receive a request's headers, and its whole request. */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** Token bucket per job: sustained requests per second and burst. */
  ratePerSecond: number;
  burst: number;
}

export const DEFAULT_GATEWAY_LIMITS: GatewayLimits = {
  maxBodyBytes: 1_048_576,
  maxConcurrentCalls: 64,
  maxConnections: 80,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 15_000,
  ratePerSecond: 20,
  burst: 80,
};

/** Body bytes all gateways of this process may hold at once (declared sizes are reserved before reading). */
export const GATEWAY_BODY_BUDGET_BYTES = 64 * 1_048_576;
let bodyBytesReserved = 0;

const FormatSchema = z.union([z.literal('json'), z.record(z.string(), z.unknown())]);
/**
 * Any integer num_predict goes on to the job's workflow, which refuses one above the job's maximum (config
 * LLM_NUM_PREDICT) or an unbounded one (≤ 0) with a message naming that maximum.
 */
const OptionsSchema = LlmOptionsSchema.extend({ num_predict: z.number().int().optional() });
const common = {
  model: z.string().min(1).max(200).optional(),
  options: OptionsSchema.optional(),
  format: FormatSchema.optional(),
};
const GenerateSchema = z
  .object({ prompt: z.string().max(200_000), system: z.string().max(200_000).optional(), ...common })
  .strict();
const ChatSchema = z.object({ messages: z.array(ChatMessageSchema).min(1).max(500), ...common }).strict();
const CallIdSchema = z.string().regex(/^[\w-]{8,80}$/);

export interface GatewayOptions {
  client: Client;
  workflowId: string;
  socketPath: string;
  token: string;
  /** Called after each call (success or error), e.g. to heartbeat. */
  onCall?: (e: { ok: boolean; model?: string; code?: string }) => void;
  limits?: Partial<GatewayLimits>;
  /** Where a call's failure that is not the call's own answer (a Temporal RPC error) and its retries are logged. */
  logger?: Pick<Logger, 'warn'>;
  /** How long a call keeps retrying transient Temporal errors (default UPDATE_RETRY_BUDGET_MS). */
  updateRetryBudgetMs?: number;
}

/**
 * How long one call retries its Update through transient Temporal errors: a workflow task lost with a killed
 * orchestrator (the server re-sends the Update on the next attempt, ~10 s later), the server aborting in-flight
 * Updates when it reloads the workflow, an RPC deadline.
 */
export const UPDATE_RETRY_BUDGET_MS = 120_000;
const UPDATE_RETRY_MAX_DELAY_MS = 5_000;

/** gRPC codes of Temporal errors that another try of the same Update (same id) may get past. */
const TRANSIENT_GRPC_CODES = new Set<number>([
  GrpcStatus.UNAVAILABLE, // "workflow update was aborted" (registry cleared), the server unreachable
  GrpcStatus.FAILED_PRECONDITION, // WorkflowNotReady: the workflow task carrying the Update failed unexpectedly
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.RESOURCE_EXHAUSTED,
  GrpcStatus.ABORTED,
  GrpcStatus.INTERNAL,
  GrpcStatus.UNKNOWN,
]);

/**
 * Whether `err`, from `executeUpdate`, is Temporal failing to deliver the Update rather than the Update's answer.
 * Sending the same Update id again is safe: the server answers an id it has seen with that Update's outcome, so
 * the call runs (and is metered) once.
 */
export function isTransientUpdateError(err: unknown): boolean {
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
  if (err instanceof ServiceError) {
    const cause = err.cause;
    return isGrpcServiceError(cause) && TRANSIENT_GRPC_CODES.has(cause.code);
  }
  return false;
}

/** The error's name, message and gRPC code, for a log line. */
function describeError(err: unknown): Record<string, unknown> {
  const e = err as { name?: string; message?: string; cause?: { code?: number; details?: string } };
  return { name: e?.name, message: e?.message, grpcCode: e?.cause?.code, details: e?.cause?.details };
}

export interface Gateway {
  socketPath: string;
  close(): Promise<void>;
}

class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** The GatewayError for a registry failure type: the same status, code and headers the API answers with. */
function typedGatewayError(type: ErrorType, message: string): GatewayError {
  const { status, code, headers } = httpErrorOf(type);
  return new GatewayError(status, code, message, headers);
}

/**
 * Removes what would tell a script where the platform's nodes live: URLs, IPv4/IPv6 addresses and host:port
 * pairs (Ollama's and Temporal's error text carries them).
 */
export function scrubAddresses(text: string): string {
  return text
    .replace(/\b[a-z][\w+.-]*:\/\/[^\s'"<>)]+/gi, '<internal>')
    .replace(/\[[0-9a-f:]+\](?::\d+)?/gi, '<internal>')
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, '<internal>')
    .replace(/\b[\w-]+(?:\.[\w-]+)*:\d{2,5}\b/g, '<internal>');
}

/**
 * Maps a failed update to what the SDK sees, through the error registry (limits and unknown models are the
 * caller's problem: 4xx); a failure of no registry type is an LLM failure (OllamaError's 502). Messages are
 * scrubbed of internal addresses; a failure that is not an ApplicationFailure (a Temporal or transport error)
 * is reported without its text.
 */
export function gatewayErrorOf(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    return typedGatewayError(
      isErrorType(cause.type) ? cause.type : ErrorType.OllamaError,
      scrubAddresses(cause.message),
    );
  }
  const name = (err as { name?: string }).name;
  if (name === 'WorkflowNotFoundError') return typedGatewayError(ErrorType.JobFinished, 'the job is no longer running');
  return typedGatewayError(ErrorType.OllamaError, 'the LLM call failed (internal error)');
}

function readBody(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        reject(new GatewayError(413, 'payload_too_large', `request body over ${maxBytes} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {});
      } catch {
        reject(new GatewayError(400, 'invalid_json', 'request body is not JSON'));
      }
    });
    req.on('error', reject);
    // A client that hangs up mid-body (or is cut by the request timeout) ends the read.
    req.on('close', () => reject(new GatewayError(408, 'request_timeout', 'request body not received')));
  });
}

/** A token bucket: `take()` is false when the job is over its rate. */
function tokenBucket(ratePerSecond: number, burst: number) {
  let tokens = burst;
  let last = Date.now();
  return {
    take(): boolean {
      const now = Date.now();
      tokens = Math.min(burst, tokens + ((now - last) / 1000) * ratePerSecond);
      last = now;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** Starts the gateway on `socketPath` (replacing a stale socket file) and makes the socket usable by the container user. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const limits: GatewayLimits = { ...DEFAULT_GATEWAY_LIMITS, ...opts.limits };
  let inFlight = 0;
  const bucket = tokenBucket(limits.ratePerSecond, limits.burst);
  // The context the gateway starts in: the job's runJobContainer activity (its span, when tracing is on).
  const jobContext = otelContext.active();
  const handle = opts.client.workflow.getHandle(opts.workflowId);
  let closed = false;
  const budgetMs = opts.updateRetryBudgetMs ?? UPDATE_RETRY_BUDGET_MS;
  /** Runs `update` again (same Update id) while Temporal fails it transiently, within the budget. */
  const executeWithRetry = async <T>(update: () => Promise<T>, updateId: string): Promise<T> => {
    const deadline = Date.now() + budgetMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await update();
      } catch (err) {
        if (closed || !isTransientUpdateError(err) || Date.now() >= deadline) throw err;
        const delay = Math.min(UPDATE_RETRY_MAX_DELAY_MS, 250 * 2 ** (attempt - 1), Math.max(0, deadline - Date.now()));
        opts.logger?.warn(
          { workflowId: opts.workflowId, updateId, attempt, err: describeError(err) },
          'AI gateway: Temporal did not deliver the call; sending it again',
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
  const server = http.createServer(
    {
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: 5_000,
      // How often Node looks for connections past those timeouts (its default, 30 s, lets slow-loris linger).
      connectionsCheckingInterval: 500,
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => {
      const send = (status: number, body: unknown, headers?: Record<string, string>) => {
        if (res.headersSent || res.destroyed) return;
        // A request refused before its body was read: close, rather than read what the client still sends.
        const close = req.complete ? {} : { connection: 'close' };
        res.writeHead(status, { ...headers, ...close, 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      void (async () => {
        let model: string | undefined;
        let slot = false;
        let reserved = 0;
        try {
          if (req.method === 'GET' && req.url === '/v1/health') return send(200, { ok: true });
          if (!tokenMatches(req.headers.authorization, opts.token)) {
            throw new GatewayError(401, 'unauthorized', 'missing or wrong job token');
          }
          if (req.method !== 'POST' || (req.url !== '/v1/generate' && req.url !== '/v1/chat')) {
            throw new GatewayError(404, 'not_found', `no route ${req.method} ${(req.url ?? '').slice(0, 100)}`);
          }
          const declared = Number(req.headers['content-length'] ?? NaN);
          if (declared > limits.maxBodyBytes) {
            throw new GatewayError(413, 'payload_too_large', `request body over ${limits.maxBodyBytes} bytes`);
          }
          if (!bucket.take()) {
            throw new GatewayError(429, 'rate_limited', `over ${limits.ratePerSecond} calls per second`, {
              'retry-after': '1',
            });
          }
          if (inFlight >= limits.maxConcurrentCalls) {
            throw new GatewayError(
              429,
              'too_many_concurrent_calls',
              `at most ${limits.maxConcurrentCalls} calls at once`,
            );
          }
          const want = Number.isFinite(declared) && declared >= 0 ? declared : limits.maxBodyBytes;
          if (bodyBytesReserved + want > GATEWAY_BODY_BUDGET_BYTES) {
            throw new GatewayError(503, 'gateway_busy', 'the gateway is busy; retry shortly', { 'retry-after': '1' });
          }
          reserved = want;
          bodyBytesReserved += reserved;
          inFlight++;
          slot = true;
          const body = await readBody(req, Math.min(limits.maxBodyBytes, want));
          let call: LlmCallRequest;
          if (req.url === '/v1/generate') {
            const p = GenerateSchema.safeParse(body);
            if (!p.success) throw new GatewayError(400, 'invalid_request', z.prettifyError(p.error));
            call = { kind: 'generate', ...p.data };
          } else {
            const p = ChatSchema.safeParse(body);
            if (!p.success) throw new GatewayError(400, 'invalid_request', z.prettifyError(p.error));
            call = { kind: 'chat', ...p.data };
          }
          // The parsed call is what travels on; the raw bytes are no longer held.
          bodyBytesReserved -= reserved;
          reserved = 0;
          model = call.model;
          const rawId = req.headers['x-ainode-call-id'];
          const callId = CallIdSchema.safeParse(rawId).success ? String(rawId) : randomUUID();
          // Traced as a child of the job's activity: the update carries the context on to the llm activity.
          const updateId = `llm-${callId}`;
          const reply: LlmCallReply = await traceGatewayCall(
            { parent: jobContext, kind: call.kind, model: call.model, callId },
            () => executeWithRetry(() => handle.executeUpdate(llmCallUpdate, { args: [call], updateId }), updateId),
          );
          send(200, reply);
          opts.onCall?.({ ok: true, model: reply.model });
        } catch (err) {
          const g = gatewayErrorOf(err);
          if (!(err instanceof GatewayError) && !(err instanceof WorkflowUpdateFailedError)) {
            opts.logger?.warn({ workflowId: opts.workflowId, err: describeError(err) }, 'AI gateway: call failed');
          }
          send(g.status, { error: { code: g.code, message: g.message } }, g.headers);
          opts.onCall?.({ ok: false, model, code: g.code });
        } finally {
          bodyBytesReserved -= reserved;
          if (slot) inFlight--;
        }
      })();
    },
  );
  server.maxConnections = limits.maxConnections;
  await fs.rm(opts.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => resolve());
  });
  // The container runs as another uid; the token, not file permissions, is what authenticates.
  await fs.chmod(opts.socketPath, 0o666);
  return {
    socketPath: opts.socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
