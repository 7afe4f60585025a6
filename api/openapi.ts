/**
 * OpenAPI 3.1 document, built from what the routers register. Each router calls `registerRoute` at module
 * load next to its handler, with the same zod schemas it validates with, so the document cannot drift
 * from the validation. Served at `/openapi.json` (public).
 */
import { z, type ZodType } from 'zod';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** A response: a description, or a description with a zod schema of the JSON body. */
export type RouteResponse = string | { description: string; body?: ZodType; contentType?: string };

/** One documented operation. `path` uses Express syntax (`/prompts/:id`). */
export interface RouteDoc {
  method: HttpMethod;
  path: string;
  summary: string;
  description?: string;
  /** Group in the docs (defaults to the first path segment). */
  tag?: string;
  /** JSON request body. */
  body?: ZodType;
  /** A non-JSON request body (e.g. `application/zip` uploads), described by content type. */
  rawBody?: { contentType: string; description?: string };
  /** A zod object whose keys are the query parameters. */
  query?: ZodType;
  /** A zod object whose keys are the path parameters (default: every `:name` as a string). */
  params?: ZodType;
  /** Extra request headers, e.g. `{ 'Idempotency-Key': 'Same key → same resource' }`. */
  headers?: Record<string, string>;
  /** Keyed by status code. */
  responses: Record<number | string, RouteResponse>;
  /** No API key needed (health, webhooks with their own auth). */
  public?: boolean;
}

const routes = new Map<string, RouteDoc>();

/** Documents one route. Registering the same method and path again replaces it (safe under module reloads). */
export function registerRoute(doc: RouteDoc): void {
  routes.set(`${doc.method} ${doc.path}`, doc);
}

/** Every registered route (for tests and tooling). */
export function registeredRoutes(): RouteDoc[] {
  return [...routes.values()];
}

/** The common error body, referenced by every error response. */
export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string().describe('Stable machine-readable code, e.g. invalid_request, not_found, rate_limited'),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: ZodType): JsonSchema {
  // Request shapes are documented as clients send them (`input`); transforms/refinements cannot be expressed.
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete out.$schema;
  return out;
}

function parametersOf(schema: ZodType | undefined, where: 'query' | 'path', fallback: string[]): unknown[] {
  if (!schema) return fallback.map((name) => ({ name, in: where, required: true, schema: { type: 'string' } }));
  const js = jsonSchema(schema);
  const props = (js.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((js.required ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    ...(typeof s.description === 'string' ? { description: s.description } : {}),
    schema: s,
  }));
}

function responseOf(r: RouteResponse, status: string): unknown {
  const { description, body, contentType } = typeof r === 'string' ? { description: r } : r;
  const isError = Number(status) >= 400;
  const schema = body ? jsonSchema(body) : isError ? { $ref: '#/components/schemas/Error' } : undefined;
  return schema ? { description, content: { [contentType ?? 'application/json']: { schema } } } : { description };
}

/** Builds the OpenAPI 3.1 document from every registered route. */
export function buildOpenApi(info: { title?: string; version?: string; serverUrl?: string } = {}): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  const sorted = [...routes.values()].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  for (const doc of sorted) {
    // Express's `:id` and its wildcard `*name` (the rest of the path) are both OpenAPI path parameters.
    const pathParams = [...doc.path.matchAll(/[:*](\w+)/g)].map((m) => m[1]!);
    const oaPath = doc.path.replace(/[:*](\w+)/g, '{$1}');
    const parameters = [
      ...parametersOf(doc.params, 'path', pathParams),
      ...(doc.query ? parametersOf(doc.query, 'query', []) : []),
      ...Object.entries(doc.headers ?? {}).map(([name, description]) => ({
        name,
        in: 'header',
        required: false,
        description,
        schema: { type: 'string' },
      })),
    ];
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(doc.responses)) responses[status] = responseOf(r, status);
    if (!doc.public) {
      responses['401'] ??= responseOf('Missing or unknown API key', '401');
      responses['429'] ??= responseOf('Rate limit exceeded (see Retry-After)', '429');
    }
    const requestBody = doc.body
      ? { required: true, content: { 'application/json': { schema: jsonSchema(doc.body) } } }
      : doc.rawBody
        ? { required: true, description: doc.rawBody.description, content: { [doc.rawBody.contentType]: {} } }
        : undefined;
    (paths[oaPath] ??= {})[doc.method] = {
      operationId: `${doc.method}${oaPath.replace(/[{}]/g, '').replace(/[^\w]+(\w?)/g, (_m, c: string) => c.toUpperCase())}`,
      summary: doc.summary,
      ...(doc.description ? { description: doc.description } : {}),
      tags: [doc.tag ?? oaPath.split('/')[1] ?? 'root'],
      ...(parameters.length ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
      ...(doc.public ? { security: [] } : {}),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: info.title ?? 'ainode API',
      version: info.version ?? '0.1.0',
      description: 'Durable LLM workloads (prompts, jobs, agent graphs, chats) on Temporal.',
    },
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key from API_KEYS' } },
      schemas: { Error: jsonSchema(ErrorBodySchema) },
    },
  };
}
