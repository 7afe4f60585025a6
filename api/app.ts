/**
 * The Express app. Middleware order matters and is fixed here:
 * request id → logging → routes with their own auth (raw body) → public routes → API-key auth → per-key rate
 * limit → JSON body (size-limited, parsed only once authenticated) → authenticated routes → 404 → the one error handler.
 * Other routers are added in the two marked sections; each documents itself with `registerRoute`.
 */
import express from 'express';
import { pinoHttp } from 'pino-http';
import type { ApiDeps } from './deps';
import { requestId } from './middleware/request-id';
import { httpTracing } from './middleware/tracing';
import { METRICS_CONTENT_TYPE, metricsText } from '../lib/telemetry/metrics';
import { authenticate } from './middleware/auth';
import { rateLimitPerKey } from './middleware/rate-limit';
import { errorHandler, notFoundHandler } from './middleware/errors';
import { buildOpenApi, registerRoute } from './openapi';
import { healthRouter } from './routes/health';
import { modelsRouter } from './routes/models';
import { promptsRouter } from './routes/prompts';
import { webhooksRouter } from './routes/webhooks';
import { chatsRouter } from './routes/chats';
import { functionsRouter } from './routes/functions';
import { jobsRouter } from './routes/jobs';
import { designsRouter } from './routes/designs';
import { aiServerRouter } from './routes/ai-server';
import { streamsRouter } from './routes/streams';
import { codecRouter, redactCodecPath } from './routes/codec';
import { pseudonymizeUserPath } from '../lib/privacy/pseudonym';
import { recommendationsRouter } from './routes/recommendations';
import { usersRouter } from './routes/users';
import { v1Router } from './v1/router';
import type { AiServer } from './v1/completions';
import { KeyLimits } from './v1/limits';
import { StreamHub } from '../lib/stream/hub';

export { assertTenant, tenantOf } from './middleware/auth';

registerRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics of this API process (requests by route and status, queue backlog, ...)',
  tag: 'meta',
  public: true,
  responses: { 200: 'Prometheus text format' },
});

registerRoute({
  method: 'get',
  path: '/openapi.json',
  summary: 'This OpenAPI 3.1 document',
  tag: 'meta',
  public: true,
  responses: { 200: 'The document' },
});

/** Builds the API from its dependencies; `server.ts` listens, tests use supertest. */
export function createApp(deps: ApiDeps): express.Express {
  const { config } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);

  // First: every later step (logs, auth, routes, Temporal calls) runs inside the request's span.
  app.use(httpTracing);
  app.use(requestId);
  app.use(
    pinoHttp({
      logger: deps.logger,
      genReqId: (req) => req.id,
      autoLogging: config.LOG_LEVEL === 'silent' ? false : { ignore: (req) => req.url === '/healthz' },
      customLogLevel: (_req, res, err) =>
        err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
      quietReqLogger: true,
      // The codec endpoints accept an operator key in the path (for the Web UI): never log it.
      serializers: {
        // …and user ids (/users/:userId/…) appear as their pseudonyms.
        req: (r: { url?: string }) =>
          r.url
            ? Object.assign(r, { url: pseudonymizeUserPath(config.USER_PSEUDONYM_SECRET, redactCodecPath(r.url)) })
            : r,
      },
    }),
  );

  // --- Routes with their own authentication (raw body)
  // Mounted before the JSON parser: webhook signatures (HMAC) are computed over the exact raw bytes.
  app.use(webhooksRouter(deps));
  // The Temporal payload codec for the Web UI / CLI: operator keys, its own CORS and body limit.
  app.use(codecRouter(config));
  // llm workers push streamed tokens here (NDJSON), authenticated by each stream's own token.
  const ai: AiServer = {
    deps,
    hub: deps.streams ?? new StreamHub(),
    limits: new KeyLimits({
      requestsPerMinute: config.AI_REQUESTS_PER_MINUTE,
      tokensPerMinute: config.AI_TOKENS_PER_MINUTE,
      dailyTokenBudget: config.AI_DAILY_TOKEN_BUDGET,
      storage: deps.storage,
      logger: deps.logger,
    }),
  };
  app.use(streamsRouter(ai.hub));
  // The OpenAI-compatible API: its own body parser, auth, limits and OpenAI-shaped errors.
  app.use(v1Router(ai));

  // --- Public routes
  app.use(healthRouter(deps));
  let openapi: unknown;
  app.get('/openapi.json', (_req, res) => {
    // Built on first use, after every router module has registered its routes.
    openapi ??= buildOpenApi({ serverUrl: config.API_PUBLIC_URL });
    res.json(openapi);
  });

  // Prometheus scrape target (docs/operations.md, Observability); keep it off the public network.
  app.get('/metrics', (_req, res, next) => {
    metricsText().then((text) => res.type(METRICS_CONTENT_TYPE).send(text), next);
  });

  // Authenticated and rate-limited before the body is read: an anonymous caller cannot make us parse 1 MiB of JSON.
  app.use(authenticate(config.API_KEYS));
  app.use(rateLimitPerKey(config.API_RATE_LIMIT_PER_MINUTE));
  app.use(express.json({ limit: config.API_BODY_LIMIT_BYTES }));

  // --- Authenticated routes (add yours here)
  app.use(designsRouter(deps));
  app.use(modelsRouter(deps));
  app.use(promptsRouter(deps));
  app.use(chatsRouter(deps));
  app.use(functionsRouter(deps));
  app.use(jobsRouter(deps));
  app.use(aiServerRouter(ai));
  app.use(recommendationsRouter(ai));
  app.use(usersRouter(deps));

  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
