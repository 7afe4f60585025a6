/**
 * The AI gateway: the job container's only way out. It is an HTTP server on a per-job Unix socket, because
 * the container has no network at all and a socket file bind-mounted into it reaches exactly this process
 * and nothing else. Each request is authenticated by the job's token and becomes Workflow Update `llmCall`
 * on the job's workflow, so every LLM call is durable, visible in the job's history, and metered there.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import { z } from 'zod';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ChatMessageSchema, LlmOptionsSchema } from '../../contracts/llm';
import { ErrorType, httpErrorOf, isErrorType } from '../../common/errors';
import { llmCallUpdate } from '../../contracts/definitions';
import type { LlmCallReply, LlmCallRequest } from '../../contracts/jobs';
import { traceGatewayCall } from '../telemetry/llm';
import { otelContext } from '../telemetry/tracing';

const MAX_BODY_BYTES = 1_048_576;
/** In-flight calls per job: user code cannot flood Temporal with unbounded concurrent updates. */
const MAX_CONCURRENT_CALLS = 64;

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
 * Maps a failed update to what the SDK sees, through the error registry (limits and unknown models are the
 * caller's problem: 4xx); a failure of no registry type is an LLM failure (OllamaError's 502).
 */
export function gatewayErrorOf(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    return typedGatewayError(isErrorType(cause.type) ? cause.type : ErrorType.OllamaError, cause.message);
  }
  const name = (err as { name?: string }).name;
  if (name === 'WorkflowNotFoundError') return typedGatewayError(ErrorType.JobFinished, 'the job is no longer running');
  return typedGatewayError(ErrorType.OllamaError, (err as Error).message ?? String(err));
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new GatewayError(413, 'payload_too_large', `request body over ${MAX_BODY_BYTES} bytes`));
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
  });
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** Starts the gateway on `socketPath` (replacing a stale socket file) and makes the socket usable by the container user. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  let inFlight = 0;
  // The context the gateway starts in: the job's runJobContainer activity (its span, when tracing is on).
  const jobContext = otelContext.active();
  const handle = opts.client.workflow.getHandle(opts.workflowId);
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown, headers?: Record<string, string>) => {
      res.writeHead(status, { ...headers, 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      let model: string | undefined;
      try {
        if (req.method === 'GET' && req.url === '/v1/health') return send(200, { ok: true });
        if (!tokenMatches(req.headers.authorization, opts.token)) {
          throw new GatewayError(401, 'unauthorized', 'missing or wrong job token');
        }
        if (req.method !== 'POST' || (req.url !== '/v1/generate' && req.url !== '/v1/chat')) {
          throw new GatewayError(404, 'not_found', `no route ${req.method} ${req.url}`);
        }
        const body = await readBody(req);
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
        model = call.model;
        const rawId = req.headers['x-ainode-call-id'];
        const callId = CallIdSchema.safeParse(rawId).success ? String(rawId) : randomUUID();
        if (inFlight >= MAX_CONCURRENT_CALLS) {
          throw new GatewayError(429, 'too_many_concurrent_calls', `at most ${MAX_CONCURRENT_CALLS} calls at once`);
        }
        inFlight++;
        try {
          // Traced as a child of the job's activity: the update carries the context on to the llm activity.
          const reply: LlmCallReply = await traceGatewayCall(
            { parent: jobContext, kind: call.kind, model: call.model, callId },
            () => handle.executeUpdate(llmCallUpdate, { args: [call], updateId: `llm-${callId}` }),
          );
          send(200, reply);
          opts.onCall?.({ ok: true, model: reply.model });
        } finally {
          inFlight--;
        }
      } catch (err) {
        const g = gatewayErrorOf(err);
        send(g.status, { error: { code: g.code, message: g.message } }, g.headers);
        opts.onCall?.({ ok: false, model, code: g.code });
      }
    })();
  });
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
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
