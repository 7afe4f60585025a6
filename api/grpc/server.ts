/**
 * The gRPC recommendation service (proto/recommendation.proto, a contract fixed by existing clients), served by
 * the API process so it shares the API's StreamHub: the llm activity pushes tokens to `/internal/streams/:id` of
 * this process, and each one reaches the gRPC stream as a RecommendResponse. Also serves grpc.health.v1.Health
 * and server reflection, so grpcurl and load balancers work. Errors map to gRPC status codes in one place
 * (`grpcStatusOf`); every call ends with a final message or a status, never a hung stream.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { HttpError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { Caller } from '../../contracts/completion';
import type { RecommendRequest } from '../../contracts/recommendation';
import type { ApiDeps } from '../deps';
import type { StreamHub } from '../../lib/stream/hub';
import { toHttpError } from '../middleware/errors';
import { tracedServerStream } from './tracing';
import { KeyLimits } from '../v1/limits';
import {
  startRecommendation,
  stopRecommendation,
  validRecommendRequest,
  type RecommendServer,
  type StartedRecommendation,
} from '../routes/recommendations';

/** The service's fully qualified name (health checks and reflection name it). */
export const RECOMMENDATION_SERVICE = 'recommendation.RecommendationService';
export const PROTO_PATH = path.join(__dirname, '..', '..', 'proto', 'recommendation.proto');
/** Field names as the proto spells them (user_id, is_final), so messages are the proto's shapes. */
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true };

export interface RecommendResponse {
  content: string;
  is_final: 'false' | 'true';
}

export interface GrpcServerOptions {
  deps: ApiDeps;
  hub: StreamHub;
  /** Shared with the HTTP API when given; else this server's own (same config). */
  limits?: KeyLimits;
  host: string;
  /** 0: any free port (tests). */
  port: number;
  /** This process's HTTP base URL as llm workers reach it (`/internal/streams/:id`). */
  internalUrl: string;
}

export interface RunningGrpcServer {
  server: grpc.Server;
  port: number;
  health: HealthImplementation;
  /** Graceful shutdown, forced after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/**
 * `authorization: Bearer <key>` metadata → the caller, with the HTTP API's rules (api/middleware/auth.ts): keys
 * from API_KEYS, compared as digests in constant time; the key id is the same fingerprint, so usage and limits
 * are the key's whichever transport it uses.
 */
export function grpcAuthenticator(keys: ReadonlyMap<string, string>): (md: grpc.Metadata) => Caller | undefined {
  const known = [...keys].map(([key, tenant]) => ({ digest: sha256(key), tenant }));
  return (md) => {
    const value = md.get('authorization')[0];
    const m = /^Bearer\s+(\S+)\s*$/i.exec(typeof value === 'string' ? value : '');
    if (!m) return undefined;
    const digest = sha256(m[1]!);
    let tenant: string | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, digest)) tenant = k.tenant;
    return tenant ? { tenantId: tenant, keyId: digest.subarray(0, 8).toString('hex') } : undefined;
  };
}

/** An API failure as a gRPC status: bad input, no node serving the model, limits, timeouts; else INTERNAL. */
export function grpcStatusOf(err: HttpError): grpc.status {
  if (err.code === 'model_not_found' || err.code === 'model_unavailable') return grpc.status.UNAVAILABLE;
  if (err.status === 400 || err.status === 413) return grpc.status.INVALID_ARGUMENT;
  if (err.status === 401) return grpc.status.UNAUTHENTICATED;
  if (err.status === 403) return grpc.status.PERMISSION_DENIED;
  if (err.status === 404) return grpc.status.NOT_FOUND;
  if (err.status === 429) return grpc.status.RESOURCE_EXHAUSTED;
  if (err.status === 504) return grpc.status.DEADLINE_EXCEEDED;
  // Everything else (a failed node, out of memory, a bug) is a failure inside.
  return grpc.status.INTERNAL;
}

export function loadRecommendationProto(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
}

/** The Recommend handler: auth → validation → start → the hub's events as messages; a cancel stops the run. */
function recommendHandler(rs: RecommendServer, internalUrl: string, logger: Logger) {
  const authenticate = grpcAuthenticator(rs.deps.config.API_KEYS);
  return (call: grpc.ServerWritableStream<RecommendRequest, RecommendResponse>): void => {
    let settled = false;
    const fail = (code: grpc.status, details: string) => {
      if (settled) return;
      settled = true;
      call.emit('error', { code, details, metadata: new grpc.Metadata() });
    };
    const caller = authenticate(call.metadata);
    if (!caller)
      return fail(grpc.status.UNAUTHENTICATED, 'Missing or unknown API key: send authorization: Bearer <key>');
    let started: StartedRecommendation | undefined;
    let unsubscribe: (() => void) | undefined;
    call.on('cancelled', () => {
      settled = true;
      unsubscribe?.();
      if (started) {
        logger.info({ id: started.id }, 'gRPC client cancelled: stopping the recommendation');
        stopRecommendation(rs, started);
      }
    });
    const run = async () => {
      const valid = validRecommendRequest(call.request);
      started = await startRecommendation(rs, caller, valid, internalUrl);
      if (call.cancelled) return stopRecommendation(rs, started);
      const s = started;
      // The run's id, for GET /recommendations/:id (the full result later) and the Web UI.
      const md = new grpc.Metadata();
      md.set('x-recommendation-id', s.id);
      call.sendMetadata(md);
      unsubscribe = rs.hub.read(s.entry, 0, (e) => {
        if (settled) return;
        if (e.kind === 'text') call.write({ content: e.text, is_final: 'false' });
        else if (e.kind === 'end') {
          settled = true;
          call.write({ content: '', is_final: 'true' });
          call.end();
        } else {
          // The workflow's failure carries the status; `done` settles right after the hub's error event.
          s.done.then(
            () => fail(grpc.status.INTERNAL, e.message),
            (err: unknown) => {
              const httpErr = toHttpError(err);
              fail(grpcStatusOf(httpErr), httpErr.message);
            },
          );
        }
      });
    };
    run().catch((err: unknown) => {
      const httpErr = toHttpError(err);
      if (httpErr.status >= 500) logger.error({ err }, 'gRPC Recommend failed');
      fail(grpcStatusOf(httpErr), httpErr.message);
    });
  };
}

/** Starts the gRPC server: RecommendationService, grpc.health.v1.Health and reflection (v1 and v1alpha). */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { deps } = opts;
  const config = deps.config;
  const rs: RecommendServer = {
    deps,
    hub: opts.hub,
    limits:
      opts.limits ??
      new KeyLimits({
        requestsPerMinute: config.AI_REQUESTS_PER_MINUTE,
        tokensPerMinute: config.AI_TOKENS_PER_MINUTE,
        dailyTokenBudget: config.AI_DAILY_TOKEN_BUDGET,
        storage: deps.storage,
        logger: deps.logger,
      }),
  };
  const pkgDef = loadRecommendationProto();
  const loaded = grpc.loadPackageDefinition(pkgDef) as unknown as {
    recommendation: { RecommendationService: grpc.ServiceClientConstructor };
  };
  const server = new grpc.Server();
  server.addService(loaded.recommendation.RecommendationService.service, {
    Recommend: tracedServerStream(
      `${RECOMMENDATION_SERVICE}/Recommend`,
      recommendHandler(rs, opts.internalUrl, deps.logger),
    ),
  });
  const health = new HealthImplementation({ '': 'SERVING', [RECOMMENDATION_SERVICE]: 'SERVING' });
  health.addToServer(server);
  const healthDef = protoLoader.loadSync(healthProtoPath, LOADER_OPTIONS);
  new ReflectionService({ ...pkgDef, ...healthDef }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  return {
    server,
    port,
    health,
    async close(graceMs = 10_000) {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(RECOMMENDATION_SERVICE, 'NOT_SERVING');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
