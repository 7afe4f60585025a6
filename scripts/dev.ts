/**
 * `npm start` (after scripts/setup): the whole platform on one machine. Starts what is not running and reuses
 * what is: the Temporal dev server + Web UI (persistent db in .ainode/), the moto S3/DynamoDB emulator, one
 * `ollama serve` per local node (two by default, each serving its own set of the cached models from its own
 * OLLAMA_MODELS dir, .ainode/ollama/<nodeId>/, linked to the shared cache); checks the Docker engine; creates the
 * bucket and tables and uploads the chat sample data; then runs the orchestrator, executor, one llm worker per
 * Ollama node and the API as child processes, each restarted with backoff when it crashes (a crash loop is
 * reported with its log's last lines). Output: one prefix per process on stdout, full logs in .ainode/logs/.
 * Ctrl-C / SIGTERM stops what this process started (only that), once, with a timeout; a second Ctrl-C forces it.
 *
 *   npm start                      everything
 *   npm start -- --services-only   infrastructure only (benchmarks, debugging workers in an IDE)
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type Config } from '../common/config';
import { normalizeModel } from '../common/task-queues';
import { createStorage, ensureStorage } from '../lib/storage/clients';
import { newPayloadKeySpec } from '../lib/codec/payload-codec';
import {
  httpOk,
  isPortOpen,
  prepareNodeModelsDir,
  startMoto,
  startOllama,
  startTemporal,
  stopProcess,
  type Service,
} from './lib/services';
import {
  dockerInfo,
  ensureModel,
  ensureSearchAttributes,
  entryIfExists,
  isLocal,
  nodeModels,
  ollamaModels,
  portOf,
  spawnTs,
  uploadDir,
} from './lib/stack';
import { readToolchain, ROOT, STATE_DIR, toolchainModels, type Toolchain } from './lib/toolchain';
import { bundleWorkflows } from './bundle-workflows';
import { seedSampleVectorStore } from './lib/sample-vector-store';
import { SupervisedProcess } from './lib/supervise';
import { devMetricsEnv, DEV_METRICS_BASE_PORT, startZipkinOrReuse, zipkinSpansEndpoint } from './lib/observability';

/** Zipkin's base URL once started or found (the trace viewer); undefined without one. */
let zipkinUrl: string | undefined;

/** Two local Ollama nodes unless OLLAMA_NODES says otherwise: the platform's pinning needs two to be seen. */
const DEFAULT_DEV_NODES = 'node-1=http://127.0.0.1:11434,node-2=http://127.0.0.1:11435';

const USAGE = `Usage: npm start [-- --services-only]

  --services-only   start Temporal, the S3/DynamoDB emulator and Ollama, create storage, and stop there
                    (no workers, no API)
  --help            this text

Configuration comes from the environment (and .env when present); see .env.example. Dev stack only:
  OLLAMA_NODES        default ${DEFAULT_DEV_NODES}
  OLLAMA_NODE_MODELS  which models each local node serves, e.g. node-1=smollm2:135m;node-2=gemma3:270m+smollm2:135m
                      (default: node-1 the default model, the other nodes every model setup installed; * = all)`;

const LOG_DIR = path.join(STATE_DIR, 'logs');
/** The emulator's address when AWS_ENDPOINT_URL is unset: local development never talks to real AWS by accident. */
const DEFAULT_EMULATOR_URL = 'http://127.0.0.1:4566';
/** Per child: how long a worker may drain in-flight tasks after SIGTERM before it is killed. */
const APP_STOP_TIMEOUT_MS = 15_000;
const SERVICE_STOP_TIMEOUT_MS = 5_000;

const say = (msg: string) => process.stdout.write(`[dev] ${msg}\n`);
const warn = (msg: string) => process.stdout.write(`[dev] WARNING: ${msg}\n`);
const rel = (file: string) => path.relative(process.cwd(), file) || file;

interface App {
  name: string;
  /** Restarted with backoff when it crashes (scripts/lib/supervise.ts); `proc` is the current process. */
  supervised: SupervisedProcess;
  logFile: string;
}

/** Everything this process started, so it can stop exactly that. */
class Supervisor {
  readonly services: Service[] = [];
  readonly apps: App[] = [];
  private stopping: Promise<void> | undefined;

  /** A service that finishes starting after a Ctrl-C is stopped at once instead of being left behind. */
  addService(svc: Service): void {
    this.services.push(svc);
    if (this.stopping) void stopProcess(svc.proc, SERVICE_STOP_TIMEOUT_MS);
  }

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  /** Apps first (they drain work against the services), then the services. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const a of this.apps) a.supervised.stopRestarting();
      const running = this.apps.filter((a) => a.supervised.running);
      if (running.length) say(`stopping ${running.map((a) => a.name).join(', ')}`);
      await Promise.all(running.map((a) => stopProcess(a.supervised.proc, APP_STOP_TIMEOUT_MS)));
      if (this.services.length) say(`stopping ${this.services.map((s) => s.name).join(', ')}`);
      await Promise.all(this.services.map((s) => stopProcess(s.proc, SERVICE_STOP_TIMEOUT_MS)));
    })();
    return this.stopping;
  }

  /** Second Ctrl-C: no more waiting. */
  kill(): void {
    for (const a of this.apps) a.supervised.stopRestarting();
    for (const p of [...this.apps.map((a) => a.supervised.proc), ...this.services.map((s) => s.proc)]) {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
  }
}

function loadDevConfig(): Config {
  const envFile = path.join(ROOT, '.env');
  if (existsSync(envFile)) {
    process.loadEnvFile(envFile);
    say(`read ${rel(envFile)}`);
  }
  process.env.AWS_ENDPOINT_URL ||= DEFAULT_EMULATOR_URL;
  process.env.OLLAMA_NODES ||= DEFAULT_DEV_NODES;
  process.env.PAYLOAD_KEYS ||= devPayloadKeys();
  return loadConfig(process.env);
}

/**
 * The dev stack encrypts Temporal payloads too (lib/codec/payload-codec.ts): without PAYLOAD_KEYS, a key made once
 * and kept in .ainode/payload-keys (0600), so a restarted stack still reads the histories it wrote.
 */
function devPayloadKeys(): string {
  const file = path.join(STATE_DIR, 'payload-keys');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(STATE_DIR, { recursive: true });
  const spec = newPayloadKeySpec('dev1');
  writeFileSync(file, `${spec}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  say(`Temporal payloads: made an encryption key in ${rel(file)} (set PAYLOAD_KEYS to use your own)`);
  return spec;
}

async function startTemporalOrReuse(tc: Toolchain, config: Config, sup: Supervisor): Promise<string> {
  const address = config.TEMPORAL_ADDRESS;
  const port = portOf(address, 7233);
  const host = address.split(':')[0] ?? '127.0.0.1';
  if (await isPortOpen(port, host)) {
    say(`Temporal: reusing the server at ${address}`);
    if (tc.temporal) {
      const created = await ensureSearchAttributes(tc.temporal, address, config.TEMPORAL_NAMESPACE).catch((err) => {
        warn(`could not check search attributes on ${address}: ${(err as Error).message}`);
        return [];
      });
      if (created.length) say(`Temporal: registered search attributes ${created.join(', ')}`);
    }
    return config.TEMPORAL_UI_URL;
  }
  if (!isLocal(address)) throw new Error(`Temporal at ${address} does not answer, and it is not local to start it`);
  if (!tc.temporal) throw new Error('no Temporal CLI: run `npm run setup` and see what it could not do');
  const uiPort = portOf(config.TEMPORAL_UI_URL, 8233);
  const t0 = Date.now();
  const svc = await startTemporal(tc, {
    port,
    uiPort,
    dbFile: path.join(STATE_DIR, 'temporal.db'),
    logFile: path.join(LOG_DIR, 'temporal.log'),
    echo: true,
    // The Web UI decrypts payloads through the API's codec endpoint (an operator key in the path: it sends no headers).
    uiCodecEndpoint:
      config.PAYLOAD_KEYS.length && config.OPERATOR_API_KEYS[0]
        ? `${config.API_PUBLIC_URL}/codec/key/${config.OPERATOR_API_KEYS[0]}`
        : undefined,
  });
  sup.addService(svc);
  say(`Temporal: started on ${address} (Web UI :${uiPort}, db .ainode/temporal.db) in ${Date.now() - t0} ms`);
  return config.TEMPORAL_UI_URL;
}

async function startMotoOrReuse(tc: Toolchain, config: Config, sup: Supervisor): Promise<string> {
  const url = config.AWS_ENDPOINT_URL!.replace(/\/+$/, '');
  const port = portOf(url, 4566);
  if (await httpOk(`${url}/moto-api/`).catch(() => false)) {
    say(`S3/DynamoDB: reusing the moto server at ${url}`);
    return url;
  }
  if (await isPortOpen(port, new URL(url).hostname)) {
    // Not moto, but something answers: another emulator (or a proxy to AWS). ensureStorage will tell.
    say(`S3/DynamoDB: reusing the endpoint at ${url}`);
    return url;
  }
  if (!isLocal(url)) throw new Error(`the storage endpoint ${url} does not answer, and it is not local to start it`);
  const svc = await startMoto(tc, { port, logFile: path.join(LOG_DIR, 'moto.log') });
  sup.addService(svc);
  say(`S3/DynamoDB: started moto on ${url} (log: ${rel(path.join(LOG_DIR, 'moto.log'))})`);
  return url;
}

/**
 * Each node of OLLAMA_NODES: reused when it answers, else (when local) started with its own models dir that
 * serves its models from the shared cache. Then each of its models is made present (pulled where possible).
 */
async function startOllamaOrReuse(tc: Toolchain, config: Config, sup: Supervisor): Promise<void> {
  const perNode = nodeModels(
    config.OLLAMA_NODES.map((n) => n.id),
    process.env.OLLAMA_NODE_MODELS,
    { models: [...toolchainModels(tc), ...(tc.embedModel ? [tc.embedModel] : [])], defaultModel: config.DEFAULT_MODEL },
  );
  await Promise.all(
    config.OLLAMA_NODES.map(async (node) => {
      const models = perNode.get(node.id) ?? [];
      if (await httpOk(`${node.url}/api/version`).catch(() => false)) {
        say(`Ollama ${node.id}: reusing ${node.url}`);
      } else {
        if (!isLocal(node.url)) throw new Error(`Ollama node ${node.id} at ${node.url} does not answer`);
        if (!tc.ollama) throw new Error('no ollama binary: run `npm run setup` and see what it could not do');
        const modelsDir = path.join(STATE_DIR, 'ollama', node.id);
        const { missing } = prepareNodeModelsDir(tc.ollamaModels, modelsDir, models);
        if (missing.length) warn(`${missing.join(', ')} not in ${tc.ollamaModels}: ${node.id} will try to pull`);
        const logFile = path.join(LOG_DIR, `ollama-${node.id}.log`);
        const svc = await startOllama(tc, {
          name: `ollama:${node.id}`,
          port: portOf(node.url, 11434),
          modelsDir,
          numParallel: config.OLLAMA_NUM_PARALLEL,
          logFile,
        });
        sup.addService(svc);
        say(`Ollama ${node.id}: started on ${node.url} serving ${models.join(', ')} (log: ${rel(logFile)})`);
      }
      for (const model of models) {
        try {
          const how = await ensureModel(node.url, model);
          if (how === 'pulled') say(`Ollama ${node.id}: ${model} pulled`);
        } catch (err) {
          warn(`${(err as Error).message}. ${node.id} will not serve ${model}.`);
        }
      }
    }),
  );
}

async function prepareStorage(config: Config): Promise<void> {
  const storage = createStorage(config);
  try {
    await ensureStorage(storage);
    const keys = await uploadDir(storage, path.join(ROOT, 'test', 'fixtures', 'shop'), config.CHAT_SHOP_PREFIX);
    say(
      `storage: bucket ${config.S3_BUCKET} and tables ${config.DYNAMO_TABLE_PREFIX}* ready` +
        (keys.length ? `; uploaded ${keys.join(', ')}` : '; no chat sample data in test/fixtures/shop/ yet'),
    );
  } finally {
    storage.close();
  }
}

/** Spawns the workers and the API that exist; warns for those that do not (yet). */
async function startApps(tc: Toolchain, config: Config, model: string, sup: Supervisor): Promise<void> {
  const t0 = Date.now();
  const bundle = await bundleWorkflows();
  say(`workflow bundle built in ${Date.now() - t0} ms (${rel(bundle)})`);
  const env: NodeJS.ProcessEnv = {
    WORKFLOW_BUNDLE_PATH: bundle,
    TEMPORAL_ADDRESS: config.TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE: config.TEMPORAL_NAMESPACE,
    TEMPORAL_UI_URL: config.TEMPORAL_UI_URL,
    AWS_ENDPOINT_URL: config.AWS_ENDPOINT_URL,
    OLLAMA_NODES: config.OLLAMA_NODES.map((n) => `${n.id}=${n.url}`).join(','),
    DEFAULT_MODEL: model,
    JOB_RUNTIME_IMAGE: process.env.JOB_RUNTIME_IMAGE || tc.runtimeImage || config.JOB_RUNTIME_IMAGE,
    AINODE_TERRAFORM_BIN: tc.terraform,
    // Vector stores embed with the real embedding model when setup installed it.
    EMBED_MODEL: process.env.EMBED_MODEL || tc.embedModel || undefined,
    // Every process sends its spans to the dev stack's Zipkin (docs/operations.md, Observability).
    OTEL_EXPORTER_ZIPKIN_ENDPOINT:
      process.env.OTEL_EXPORTER_ZIPKIN_ENDPOINT || (zipkinUrl ? zipkinSpansEndpoint(zipkinUrl) : undefined),
  };
  const roles: { name: string; entry: string; env?: NodeJS.ProcessEnv }[] = [
    // Each worker serves Prometheus metrics on its own port (devMetricsEnv: 9464, 9465, ...).
    { name: 'orchestrator', entry: 'workers/orchestrator.ts', env: devMetricsEnv(0) },
    { name: 'executor', entry: 'workers/executor.ts', env: devMetricsEnv(1) },
    ...config.OLLAMA_NODES.map((n, i) => ({
      name: `llm:${n.id}`,
      entry: 'workers/llm.ts',
      env: { OLLAMA_URL: n.url, NODE_ID: n.id, ...devMetricsEnv(2 + i) },
    })),
    { name: 'api', entry: 'api/server.ts' },
  ];
  for (const role of roles) {
    if (!entryIfExists(role.entry)) {
      warn(`${role.entry} does not exist yet: ${role.name} not started`);
      continue;
    }
    const logFile = path.join(LOG_DIR, `${role.name.replace(':', '-')}.log`);
    // A crashed worker (or API) is started again with backoff; a crash loop is reported with its log's tail.
    const supervised = new SupervisedProcess({
      name: role.name,
      start: () => spawnTs(role.name, role.entry, { env: { ...env, ...role.env }, logFile, echo: true }),
      logFile,
      say,
      warn,
    });
    sup.apps.push({ name: role.name, supervised, logFile });
  }
}

async function printBanner(
  config: Config,
  uiUrl: string,
  model: string,
  apiUp: boolean,
  servicesOnly: boolean,
): Promise<void> {
  // What each node serves now (its /api/tags), so pinning (a model on one node) and spreading (on all) show.
  const served = await Promise.all(
    config.OLLAMA_NODES.map((n) =>
      ollamaModels(n.url).then(
        (models) => (models.length ? models.join(', ') : 'no model'),
        (err: unknown) => `not answering (${(err as Error).message})`,
      ),
    ),
  );
  const api = `http://${config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST}:${config.API_PORT}`;
  const key = [...config.API_KEYS.keys()][0] ?? 'dev-key';
  const lines = [
    '',
    servicesOnly ? 'ainode services are up (--services-only: no workers, no API)' : 'ainode is up',
    ...(servicesOnly
      ? []
      : [
          `  API          ${api}${apiUp ? '' : '   (not answering: see .ainode/logs/api.log)'}  · OpenAPI ${api}/openapi.json`,
          `  gRPC         ${api.replace(/^http:\/\//, '').replace(/:\d+$/, '')}:${config.GRPC_PORT} (recommendation.RecommendationService; health, reflection)`,
        ]),
    `  Web UI       ${uiUrl}`,
    `  Temporal     ${config.TEMPORAL_ADDRESS} (namespace ${config.TEMPORAL_NAMESPACE})`,
    `  S3/DynamoDB  ${config.AWS_ENDPOINT_URL} (bucket ${config.S3_BUCKET})`,
    ...config.OLLAMA_NODES.map((n, i) => `  Ollama       ${n.id} ${n.url}: ${served[i]}`),
    `  Models       default ${model}${servicesOnly ? '' : `; the catalog (which node serves what): GET ${api}/models`}`,
    `  Traces       ${zipkinUrl ?? 'not exported (no Zipkin: see the setup output)'}`,
    ...(servicesOnly
      ? []
      : [
          `  Metrics      ${api}/metrics; workers :${DEV_METRICS_BASE_PORT}-${DEV_METRICS_BASE_PORT + 1 + config.OLLAMA_NODES.length}/metrics`,
        ]),
    `  Logs         ${rel(LOG_DIR)}/`,
  ];
  if (!servicesOnly) {
    lines.push(
      '',
      'A first prompt:',
      `  curl -s -X POST ${api}/prompts -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\`,
      `    -d '{"modelId":"${model}","prompt":"Name three colours.","options":{"num_predict":32}}'`,
      `  curl -s ${api}/prompts/<id from the answer> -H 'Authorization: Bearer ${key}'`,
    );
  }
  lines.push('', 'Ctrl-C stops what this started.', '');
  process.stdout.write(lines.join('\n') + '\n');
}

/** The shop's sample vector store (scripts/lib/sample-vector-store.ts); a failure is a warning. */
async function seedSample(config: Config): Promise<void> {
  const apiUrl = `http://${config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST}:${config.API_PORT}`;
  const apiKey = [...config.API_KEYS.keys()][0] ?? 'dev-key';
  try {
    const shopDir = path.join(ROOT, 'test', 'fixtures', 'shop');
    const { id, created } = await seedSampleVectorStore({ apiUrl, apiKey, stateDir: STATE_DIR, shopDir });
    say(`sample vector store ${id} (shop policy and products)${created ? ': ingesting' : ''}; try:`);
    say(
      `  curl -s -X POST ${apiUrl}/v1/vector_stores/${id}/search -H 'Authorization: Bearer ${apiKey}' ` +
        `-H 'Content-Type: application/json' -d '{"query":"How long does delivery take?","max_num_results":3}'`,
    );
  } catch (err) {
    warn(`sample vector store not seeded: ${(err as Error).message}`);
  }
}

/** Waits for `/healthz`; gives up early when the API process exits (its log says why). */
async function waitForApi(api: App, port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && api.supervised.running) {
    if (await httpOk(`http://127.0.0.1:${port}/healthz`).catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

async function run(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const unknown = args.filter((a) => a !== '--services-only');
  if (unknown.length) throw new Error(`unknown argument ${unknown.join(' ')}\n${USAGE}`);
  const servicesOnly = args.includes('--services-only');

  const sup = new Supervisor();
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // A terminal's Ctrl-C reaches npm, tsx and us at once, and npm/tsx forward it too: copies within a second
    // are the same request. Only a later one means "stop waiting, kill everything".
    const now = Date.now();
    if (firstSignalAt && now - firstSignalAt < 1000) return;
    if (firstSignalAt) {
      warn('second signal: killing everything this started');
      sup.kill();
      process.exit(1);
    }
    firstSignalAt = now;
    say(`${sig}: shutting down`);
    void sup.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const tc = readToolchain();
    const config = loadDevConfig();
    const model = normalizeModel(process.env.DEFAULT_MODEL || tc.defaultModel || config.DEFAULT_MODEL);
    config.DEFAULT_MODEL = model;
    const t0 = Date.now();

    // Independent services start in parallel; settle all before failing, so the catch stops every one started.
    const settled = await Promise.allSettled([
      startTemporalOrReuse(tc, config, sup),
      startMotoOrReuse(tc, config, sup).then(() => prepareStorage(config)),
      startOllamaOrReuse(tc, config, sup),
      dockerInfo().then((d) =>
        d.ok
          ? say(`Docker engine ${d.version}: ok`)
          : warn(`Docker engine not available (${d.error}); jobs (POST /run) will fail until it runs`),
      ),
      startZipkinOrReuse(tc, { logDir: LOG_DIR, say, warn, addService: (s) => sup.addService(s) }).then((url) => {
        zipkinUrl = url;
      }),
    ]);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const uiUrl = (settled[0] as PromiseFulfilledResult<string>).value;
    say(`services ready in ${Date.now() - t0} ms`);

    let apiUp = false;
    if (!servicesOnly) {
      if (await isPortOpen(config.API_PORT, config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST)) {
        warn(
          `port ${config.API_PORT} is already in use: is another \`npm start\` running? Set API_PORT to move the API`,
        );
      }
      if (await isPortOpen(config.GRPC_PORT, config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST)) {
        warn(
          `port ${config.GRPC_PORT} is already in use: the API's gRPC server will not start. Set GRPC_PORT to move it`,
        );
      }
      await startApps(tc, config, model, sup);
      const api = sup.apps.find((a) => a.name === 'api');
      if (api) apiUp = await waitForApi(api, config.API_PORT, 90_000);
      if (apiUp) await seedSample(config);
    }
    if (sup.isStopping) return;
    await printBanner(config, uiUrl, model, apiUp, servicesOnly);
  } catch (err) {
    await sup.stop();
    throw err;
  }
}

run().catch((err) => {
  console.error(`[dev] ${(err as Error).message ?? err}`);
  process.exit(1);
});
