/**
 * The one configuration schema. Every process parses the environment once, at start, and fails fast with
 * a message naming each bad variable. Units live in names (`_MS`, `_BYTES`, `_MB`). `.env.example`
 * mirrors this file. Not for workflow code (it reads process.env); workflows get values as arguments.
 */
import { z } from 'zod';
import { DEFAULT_NUM_PREDICT, parseNumPredictTable } from './llm-bounds';
import { parsePayloadKeys } from './payload-keys';

const int = (def: number) => z.coerce.number().int().nonnegative().default(def);
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** `id=url,id=url` → [{id, url}] */
const nodeList = z
  .string()
  .default('node-1=http://127.0.0.1:11434')
  .transform((s, ctx) => {
    const nodes: { id: string; url: string }[] = [];
    for (const part of s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const eq = part.indexOf('=');
      const id = eq > 0 ? part.slice(0, eq) : `node-${nodes.length + 1}`;
      const url = eq > 0 ? part.slice(eq + 1) : part;
      if (!/^https?:\/\/[^\s]+$/.test(url)) {
        ctx.addIssue({ code: 'custom', message: `"${part}" is not id=http(s)://host:port` });
        return z.NEVER;
      }
      nodes.push({ id, url: url.replace(/\/+$/, '') });
    }
    return nodes;
  });

/** `key:tenant,key:tenant` → Map(key → tenant) */
const apiKeys = z
  .string()
  .default('dev-key:dev')
  .transform((s, ctx) => {
    const keys = new Map<string, string>();
    for (const part of s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const [key, tenant] = part.split(':');
      if (!key || !tenant || key.length < 6) {
        ctx.addIssue({ code: 'custom', message: `"${part}" is not key:tenant (key ≥ 6 characters)` });
        return z.NEVER;
      }
      keys.set(key, tenant);
    }
    return keys;
  });

/** Comma-separated operator keys (≥ 16 characters): the codec endpoints and other cross-tenant operator routes. */
const operatorKeys = z
  .string()
  .default('dev-operator-key')
  .transform((s, ctx) => {
    const keys = s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    for (const [i, k] of keys.entries())
      if (k.length < 16)
        ctx.addIssue({ code: 'custom', message: `operator key ${i + 1} is shorter than 16 characters` });
    return keys;
  });

/** `id=base64key,...` (common/payload-keys.ts); empty = payloads are not encrypted. */
const payloadKeys = z
  .string()
  .default('')
  .transform((s, ctx) => {
    const parsed = parsePayloadKeys(s);
    if ('problems' in parsed) {
      for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return parsed.keys;
  });

/** `model=usdPer1kPrompt/usdPer1kCompletion,...` */
const priceTable = z
  .string()
  .default('*=0.0001/0.0002')
  .transform((s, ctx) => {
    const prices: Record<string, { prompt: number; completion: number }> = {};
    for (const part of s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const m = /^(.+)=([\d.]+)\/([\d.]+)$/.exec(part);
      if (!m) {
        ctx.addIssue({ code: 'custom', message: `"${part}" is not model=promptPer1k/completionPer1k` });
        return z.NEVER;
      }
      prices[m[1]!] = { prompt: Number(m[2]), completion: Number(m[3]) };
    }
    return prices;
  });

/** `kind=default/max,...` over common/llm-bounds.ts DEFAULT_NUM_PREDICT. */
const numPredictTable = z
  .string()
  .default('')
  .transform((s, ctx) => {
    if (!s.trim()) return { ...DEFAULT_NUM_PREDICT };
    const parsed = parseNumPredictTable(s);
    if ('problems' in parsed) {
      for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return parsed.table;
  });

export const ConfigSchema = z.object({
  // --- Temporal
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_UI_URL: z.string().url().default('http://127.0.0.1:8233'),

  // --- API
  API_HOST: z.string().default('127.0.0.1'),
  API_PORT: int(8080),
  /** Comma-separated `key:tenant` pairs; clients send `Authorization: Bearer <key>`. */
  API_KEYS: apiKeys,
  API_BODY_LIMIT_BYTES: int(1_048_576),
  API_UPLOAD_LIMIT_BYTES: int(20 * 1_048_576),
  API_RATE_LIMIT_PER_MINUTE: int(600),
  API_PUBLIC_URL: z.string().url().default('http://127.0.0.1:8080'),
  /**
   * How long a request waits for a running workflow to answer a query (a design's or job's live status) or an
   * Update (`?wait=true` answers): both need a worker. Past it, 503 `workers_unavailable` with Retry-After;
   * without a bound the server holds a query about 30 s when no worker polls, then fails it.
   */
  WORKFLOW_QUERY_TIMEOUT_MS: int(5_000),
  /**
   * Operators' keys (`Authorization: Bearer <key>`): cross-tenant routes such as the payload codec endpoints that
   * let the Temporal Web UI and CLI show encrypted histories. Never a tenant's key.
   */
  OPERATOR_API_KEYS: operatorKeys,
  /**
   * AES-256-GCM keys for the Temporal payload codec, `id=base64key,...`: the first encrypts, all decrypt (rotation:
   * put the new key first, keep old ones until no history needs them). Empty: payloads go to Temporal in plaintext.
   * Every client and worker of one deployment needs the same list. `npm start` generates one (.ainode/payload-keys).
   */
  PAYLOAD_KEYS: payloadKeys,
  /**
   * Keys the pseudonyms that logs, workflow ids and the Web UI show instead of user ids (lib/privacy/pseudonym.ts).
   * Changing it changes every per-user workflow id: set it once per deployment.
   */
  USER_PSEUDONYM_SECRET: z.string().min(16).default('dev-pseudonym-secret'),
  /** The gRPC recommendation service (proto/recommendation.proto), served by the API process on API_HOST. */
  GRPC_PORT: int(50051),

  // --- AI server (/v1 OpenAI-compatible routes, /chat, /embed)
  /**
   * Where llm workers push a streamed completion's tokens to this API process (`/internal/streams/:id`).
   * Unset: the address the client's connection came in on, which works when workers reach the API the same way.
   */
  API_INTERNAL_URL: z.string().url().optional(),
  /** Per API key: requests a minute to /v1 and the template routes (429 rate_limit_exceeded). */
  AI_REQUESTS_PER_MINUTE: int(600),
  /** Per API key: tokens (prompt + completion) a minute; 0 = no limit. */
  AI_TOKENS_PER_MINUTE: int(200_000),
  /** Per API key: tokens a UTC day, persisted in the usage table (429 insufficient_quota); 0 = no budget. */
  AI_DAILY_TOKEN_BUDGET: int(5_000_000),
  /** One completion or embeddings call, end to end; past it the workflow is cancelled (504). */
  AI_REQUEST_TIMEOUT_MS: int(120_000),
  /** One message's content, in characters (413 when larger). */
  AI_MAX_MESSAGE_CHARS: int(32_768),
  /** Texts in one embeddings call (400 when more). */
  AI_MAX_EMBED_INPUTS: int(256),
  /** A streaming client that disconnects has this long to resume with Last-Event-ID before the generation stops. */
  AI_STREAM_RESUME_GRACE_MS: int(5_000),
  /** The model recommendations (gRPC Recommend, POST /recommendations) run on; unset: DEFAULT_MODEL. */
  RECOMMEND_MODEL: z.string().optional(),
  /** Tokens one recommendation may generate (bounded by LLM_NUM_PREDICT's `prompt` maximum). */
  RECOMMEND_NUM_PREDICT: int(400),
  /** A user's recommendations refresh once their browsing events have been quiet this long (debounce). */
  USER_REC_QUIET_MS: int(5_000),

  // --- Vector stores (/v1/vector_stores, retrieval in chat completions)
  /** `embedded`: SQLite + sqlite-vec in VECTOR_DB_PATH (one host, no server); `pgvector`: PostgreSQL at PGVECTOR_URL. */
  VECTOR_STORE: z.enum(['embedded', 'pgvector']).default('embedded'),
  /** The embedded store's file, shared by the API and the orchestrator worker on one host. */
  VECTOR_DB_PATH: z.string().default('.ainode/vectors.sqlite'),
  /** e.g. postgres://ainode:ainode@127.0.0.1:5432/ainode (docker-compose's pgvector service). */
  PGVECTOR_URL: z.string().optional(),
  /** The embedding model of new vector stores; unset: DEFAULT_MODEL (the chat model's embeddings). */
  EMBED_MODEL: z.string().optional(),
  /** Chunking of ingested files, in characters (the text splitter's chunkSize / chunkOverlap). */
  VECTOR_CHUNK_SIZE: z.coerce.number().int().min(100).default(800),
  VECTOR_CHUNK_OVERLAP: int(120),
  /** One uploaded file's size (413 when larger). */
  VECTOR_MAX_FILE_BYTES: int(2 * 1_048_576),

  // --- Storage (S3 + DynamoDB; an emulator locally)
  AWS_REGION: z.string().default('us-east-1'),
  /** Emulator endpoint; unset in AWS. */
  AWS_ENDPOINT_URL: z.string().url().optional(),
  AWS_ACCESS_KEY_ID: z.string().default('test'),
  AWS_SECRET_ACCESS_KEY: z.string().default('test'),
  S3_BUCKET: z.string().min(3).default('ainode'),
  DYNAMO_TABLE_PREFIX: z.string().default('ainode-'),
  /**
   * One S3/DynamoDB request: its connection must open within 3 s and its socket may stay silent at most this long
   * (the SDK then retries it, 3 attempts in all). Without it a storage that accepts connections and never answers
   * held a request, and the activity or API call around it, until it answered.
   */
  STORAGE_TIMEOUT_MS: int(10_000),

  // --- LLM nodes
  /** This llm worker's node. */
  OLLAMA_URL: z.string().url().default('http://127.0.0.1:11434'),
  NODE_ID: z
    .string()
    .regex(/^[\w.-]+$/)
    .default('node-1'),
  /** Parallel slots of this node; the worker runs this many LLM activities at once. */
  OLLAMA_NUM_PARALLEL: int(4),
  /** Every node, for the catalog (`GET /models`): `id=url,id=url`. */
  OLLAMA_NODES: nodeList,
  DEFAULT_MODEL: z.string().default('smollm2:135m'),
  /** Fixed context size for every request, so Ollama never reloads a model for a different num_ctx. */
  LLM_NUM_CTX: int(4096),
  /** Wall-clock limit of one LLM call; bounded calls (LLM_NUM_PREDICT) finish in seconds. Retried at most once. */
  LLM_CALL_TIMEOUT_MS: int(60_000),
  /**
   * num_predict per call kind, `kind=default/max,...` (e.g. `prompt=256/2048,chat.agent=160/400`); kinds not named
   * keep their defaults (common/llm-bounds.ts). Callers may ask for less than max, never more.
   */
  LLM_NUM_PREDICT: numPredictTable,
  CATALOG_NODE_TIMEOUT_MS: int(2000),
  /**
   * The API's model catalog: after its 1 s cache, the last answer is still used for this long while a fresh one is
   * built in the background, so a request's model check never waits for the nodes once the catalog is warm.
   */
  CATALOG_STALE_MS: int(15_000),
  /** How often an llm worker re-reads its node's `/api/tags` to poll new models and drop removed ones; 0: never. */
  LLM_WORKER_REFRESH_MS: int(15_000),
  /**
   * An llm worker's circuit breaker (lib/llm/breaker.ts): after this many node failures in a row (500s, refused
   * connections, timeouts) it stops polling its model queues until a probe of the node succeeds; 0: off.
   */
  LLM_BREAKER_FAILURES: int(3),
  /** Wait before the first probe of a node whose circuit opened; doubled after each failed probe. */
  LLM_BREAKER_OPEN_MS: int(10_000),
  LLM_BREAKER_MAX_OPEN_MS: int(120_000),
  /** `model=usdPer1kPrompt/usdPer1kCompletion,...`; `*` is the fallback. */
  PRICE_TABLE: priceTable,

  /** A prebuilt workflow bundle (scripts/bundle-workflows.ts); unset = bundle workflows/ at worker start. */
  WORKFLOW_BUNDLE_PATH: z.string().optional(),

  // --- Executor (jobs)
  DOCKER_SOCKET: z.string().default('/var/run/docker.sock'),
  JOB_RUNTIME_IMAGE: z.string().default('ainode/python-runtime:latest'),
  JOB_TIMEOUT_MS: int(300_000),
  JOB_MEMORY_MB: int(256),
  JOB_CPUS: z.coerce.number().positive().default(1),
  JOB_PIDS_LIMIT: int(128),
  JOB_OUTPUT_LIMIT_BYTES: int(1_048_576),
  JOB_MAX_LLM_CALLS: int(1000),
  JOB_MAX_TOKENS: int(1_000_000),
  /** Directory holding the per-job AI gateway sockets, bind-mounted into containers. */
  GATEWAY_SOCKET_DIR: z.string().default('/tmp/ainode-gateway'),
  /**
   * This executor's id: its job containers carry it as a label, and at start it removes the ones its previous life
   * left behind. Unset: `exec-<hostname>`. Two executors on one host (cluster mode) need distinct ids.
   */
  EXECUTOR_ID: z
    .string()
    .regex(/^[\w.-]+$/)
    .optional(),

  // --- Chats
  CHANNEL_WEBHOOK_SECRET: z.string().min(8).default('dev-webhook-secret'),
  CHANNEL_CALLBACK_URL: z.string().url().optional(),
  /** The tenant that owns the channel's chats: only its API keys can read or resume them. */
  CHANNEL_TENANT: z.string().min(1).default('dev'),
  CHAT_QUIET_MS: int(2000),
  CHAT_MAX_WAIT_MS: int(10_000),
  CHAT_IDLE_CLOSE_MS: int(24 * 3_600_000),
  CHAT_MANAGER_PAUSE_MS: int(30 * 60_000),
  /** Turns per run before the chat workflow continues-as-new (it also does when Temporal suggests it). */
  CHAT_TURN_LIMIT: z.coerce.number().int().positive().default(100),
  /** S3 prefix of the shop's data (ontology.ttl, delivery-policy.md); `npm start` uploads test/fixtures/shop/. */
  CHAT_SHOP_PREFIX: z.string().default('shop/'),

  // --- Logging
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool(false),

  // --- Observability (docs/operations.md, Observability)
  /** true: no tracer provider at all (the OpenTelemetry API stays a no-op, no trace ids). */
  OTEL_SDK_DISABLED: bool(false),
  /** Overrides the process's service name in traces (default: api, orchestrator, executor, llm-<NODE_ID>). */
  OTEL_SERVICE_NAME: z.string().optional(),
  /** Zipkin's span endpoint, e.g. http://127.0.0.1:9411/api/v2/spans; unset: spans are not exported. */
  OTEL_EXPORTER_ZIPKIN_ENDPOINT: z.string().url().optional(),
  /** A worker's Prometheus endpoint (app metrics, then the Temporal runtime's); 0: none. */
  METRICS_PORT: int(0),
  METRICS_HOST: z.string().default('127.0.0.1'),
  /** Where a worker's Temporal runtime serves its own Prometheus metrics (appended to METRICS_PORT's); 0: off. */
  TEMPORAL_METRICS_PORT: int(0),
});

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}\nSee .env.example for every variable.`,
    );
    this.name = 'ConfigError';
  }
}

/** Parses an environment (default: process.env). Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') cleaned[k] = v;
  const parsed = ConfigSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
  }
  return parsed.data;
}

/** Price of one call in USD from the price table (`*` when the model has no row). */
export function priceOf(config: Pick<Config, 'PRICE_TABLE'>, model: string, prompt: number, completion: number) {
  const row = config.PRICE_TABLE[model] ?? config.PRICE_TABLE['*'] ?? { prompt: 0, completion: 0 };
  return (prompt / 1000) * row.prompt + (completion / 1000) * row.completion;
}
