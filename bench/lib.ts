/**
 * A tiny benchmark harness for `npm run bench`. It starts the services the way `npm test` does (moto, one
 * Ollama node with the default model, and here also a Temporal dev server, all on free ports), hands them to
 * each `bench/*.bench.ts`, and turns their rows into JSON + a markdown table. Benches build their in-process
 * workers and API with one builder, `startStack`. Every target is compared with a baseline measured in the same
 * run, as paired differences or per-run ratios (`measurePaired`), so results are comparisons on the same machine,
 * never absolute promises.
 */
import { dataConverterFor } from '../lib/codec/payload-codec';
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createApp } from '../api/app';
import { loadConfig, type Config } from '../common/config';
import { createLogger } from '../common/logger';
import { normalizeModel, ORCHESTRATOR_QUEUE } from '../common/task-queues';
import { createCatalog } from '../lib/llm/catalog';
import { createStorage, ensureStorage, type Storage } from '../lib/storage/clients';
import { freePort, startMoto, startOllama, startTemporal, type Service } from '../scripts/lib/services';
import { readToolchain, STATE_DIR, type Toolchain } from '../scripts/lib/toolchain';
import { runWorkers, type RunningWorkers } from '../scripts/lib/workers';
import { startFakeOllama, type FakeOllama, type FakeScript } from '../test/helpers/fake-ollama';
import { createExecutorWorker } from '../workers/executor';
import { createLlmWorkers } from '../workers/llm';
import { createOrchestratorWorker } from '../workers/orchestrator';

/** One measured number. `baseline`/`ratio` when it is compared with a baseline from the same run. */
export interface Row {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  baseline?: number;
  /** value / baseline */
  ratio?: number;
  /** The target in words, e.g. "≤ 50 ms p50 added". */
  goal?: string;
  /** Whether the target was met; absent when the row has no target. */
  pass?: boolean;
  note?: string;
}

export interface BenchContext {
  tc: Toolchain;
  /** Config pointing at the bench services (quiet logs); benches override what they need. */
  config: Config;
  /** The env that produced `config`, for child processes. */
  env: Record<string, string>;
  model: string;
  temporalAddress: string;
  ollamaUrl: string;
  awsEndpoint: string;
  logDir: string;
  log(msg: string): void;
  /** Aborted on Ctrl-C: benches stop early. */
  signal: AbortSignal;
  /** Registers a child process that the runner kills if the run is interrupted. */
  track(proc: ChildProcess): ChildProcess;
}

/** What every `bench/*.bench.ts` exports as `bench`. */
export interface Bench {
  name: string;
  run(ctx: BenchContext): Promise<Row[]>;
}

// ---------------------------------------------------------------- statistics

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(values: number[]): Summary {
  const n = values.length;
  return {
    n,
    min: n ? Math.min(...values) : NaN,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: n ? Math.max(...values) : NaN,
    mean: n ? values.reduce((a, b) => a + b, 0) / n : NaN,
  };
}

/** value / baseline, rounded to 3 places; NaN when the baseline is 0. */
export function ratio(value: number, baseline: number): number {
  return baseline === 0 ? NaN : round(value / baseline, 3);
}

export function round(x: number, places = 2): number {
  const f = 10 ** places;
  return Math.round(x * f) / f;
}

/** Milliseconds `fn` took (high-resolution clock). */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What `measurePaired` measured: per iteration, the baseline and the subject back to back. */
export interface Paired {
  baseline: number[];
  subject: number[];
  /** subject − baseline of each iteration: the paired difference. */
  added: number[];
  /** subject / baseline of each iteration. */
  ratios: number[];
}

/** A `Paired` from two series measured pair by pair elsewhere (e.g. first tokens recorded inside `measurePaired`). */
export function pairedOf(baseline: number[], subject: number[]): Paired {
  return {
    baseline,
    subject,
    added: subject.map((x, i) => x - baseline[i]!),
    ratios: subject.map((x, i) => (baseline[i] === 0 ? NaN : x / baseline[i]!)),
  };
}

/**
 * Measures `baseline` and `subject` back to back `n` times (after `warmup` unmeasured pairs), swapping which goes
 * first every iteration, so drift on a shared machine and "runs right after the other kind" hit both sides alike.
 * Each side returns the milliseconds it measured (`() => timeMs(fn)` for a plain call). Stops early on `signal`.
 */
export async function measurePaired(opts: {
  n: number;
  warmup?: number;
  signal?: AbortSignal;
  baseline: () => Promise<number>;
  subject: () => Promise<number>;
}): Promise<Paired> {
  const out: Paired = { baseline: [], subject: [], added: [], ratios: [] };
  const warmup = opts.warmup ?? 0;
  for (let i = 0; i < warmup + opts.n; i++) {
    opts.signal?.throwIfAborted();
    let b: number;
    let s: number;
    if (i % 2 === 0) {
      b = await opts.baseline();
      s = await opts.subject();
    } else {
      s = await opts.subject();
      b = await opts.baseline();
    }
    if (i < warmup) continue;
    out.baseline.push(b);
    out.subject.push(s);
    out.added.push(s - b);
    out.ratios.push(b === 0 ? NaN : s / b);
  }
  return out;
}

/**
 * The rows of a paired measurement: baseline p50, subject p50 (ratio of the p50s), and the added time as the
 * p50 / p95 of the per-iteration differences, never as a difference of percentiles. `goalAddedMs`: target for
 * the added p50.
 */
export function pairedRows(
  bench: string,
  p: Paired,
  names: { baseline: string; subject: string },
  opts: { goalAddedMs?: number; note?: string } = {},
): Row[] {
  const b = summarize(p.baseline);
  const s = summarize(p.subject);
  const a = summarize(p.added);
  const base = { bench, unit: 'ms' };
  const goal = opts.goalAddedMs;
  return [
    { ...base, metric: `${names.baseline} p50 (n=${b.n})`, value: round(b.p50), note: `p95 ${round(b.p95)} ms` },
    {
      ...base,
      metric: `${names.subject} p50`,
      value: round(s.p50),
      baseline: round(b.p50),
      ratio: ratio(s.p50, b.p50),
      note: `p95 ${round(s.p95)} ms`,
    },
    {
      ...base,
      metric: `${names.subject}: added p50 (paired, n=${a.n})`,
      value: round(a.p50),
      ...(goal === undefined ? {} : { goal: `≤ ${goal} ms p50 added`, pass: a.p50 <= goal }),
      note: opts.note ?? 'per iteration: subject − baseline, run back to back in alternating order',
    },
    { ...base, metric: `${names.subject}: added p95 (paired, n=${a.n})`, value: round(a.p95) },
  ];
}

// ---------------------------------------------------------------- results

/** A markdown table of rows (numbers rounded for reading; the JSON keeps them exact). */
export function markdownTable(rows: Row[]): string {
  const fmt = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '' : String(round(x, 2)));
  const lines = [
    '| bench | metric | value | unit | baseline | ratio | goal | pass | note |',
    '| --- | --- | ---: | --- | ---: | ---: | --- | --- | --- |',
  ];
  for (const r of rows) {
    const pass = r.pass === undefined ? '' : r.pass ? 'yes' : '**no**';
    const cells = [
      r.bench,
      r.metric,
      fmt(r.value),
      r.unit,
      fmt(r.baseline),
      fmt(r.ratio),
      r.goal ?? '',
      pass,
      r.note ?? '',
    ];
    lines.push(`| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- registry

/** Every `bench/*.bench.ts`, in file-name order; `names` keeps only those (by bench name or file stem). */
export function loadBenches(names: string[] = []): Bench[] {
  const files = readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort();
  const benches = files.map((f) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(__dirname, f)) as { bench?: Bench };
    if (!mod.bench || typeof mod.bench.run !== 'function') throw new Error(`bench/${f} does not export \`bench\``);
    return { stem: f.replace(/\.bench\.ts$/, ''), bench: mod.bench };
  });
  if (names.length === 0) return benches.map((b) => b.bench);
  const unknown = names.filter((n) => !benches.some((b) => b.stem === n || b.bench.name === n));
  if (unknown.length) {
    throw new Error(`no bench named ${unknown.join(', ')}; have: ${benches.map((b) => b.bench.name).join(', ')}`);
  }
  return benches.filter((b) => names.includes(b.stem) || names.includes(b.bench.name)).map((b) => b.bench);
}

// ---------------------------------------------------------------- services

/** Starts moto, one Ollama node and a Temporal dev server on free ports; `stop` stops exactly those. */
export async function startBenchServices(): Promise<{ ctx: BenchContext; stop(): Promise<void>; abort(): void }> {
  const tc = readToolchain();
  const controller = new AbortController();
  const children = new Set<ChildProcess>();
  const abort = () => {
    controller.abort();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  const logDir = path.join(STATE_DIR, 'logs', 'bench');
  const started: Service[] = [];
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop().catch(() => undefined)));
  };
  try {
    // Settle all before failing, so a failure stops every service that did start.
    const settled = await Promise.allSettled([
      startTemporal(tc, {
        port: await freePort(),
        uiPort: await freePort(),
        logFile: path.join(logDir, 'temporal.log'),
      }),
      startMoto(tc, { port: await freePort(), logFile: path.join(logDir, 'moto.log') }),
      startOllama(tc, { port: await freePort(), logFile: path.join(logDir, 'ollama.log'), numParallel: 4 }),
    ]);
    for (const r of settled) if (r.status === 'fulfilled') started.push(r.value);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const [temporal, moto, ollama] = started as [Service, Service, Service];
    const model = normalizeModel(process.env.DEFAULT_MODEL || tc.defaultModel);
    const env: Record<string, string> = {
      TEMPORAL_ADDRESS: temporal.url,
      AWS_ENDPOINT_URL: moto.url,
      OLLAMA_URL: ollama.url,
      OLLAMA_NODES: `node-1=${ollama.url}`,
      NODE_ID: 'node-1',
      DEFAULT_MODEL: model,
      JOB_RUNTIME_IMAGE: tc.runtimeImage,
      LOG_LEVEL: 'warn',
    };
    const ctx: BenchContext = {
      tc,
      config: loadConfig({ ...env, LOG_LEVEL: 'silent' }),
      env,
      model,
      temporalAddress: temporal.url,
      ollamaUrl: ollama.url,
      awsEndpoint: moto.url,
      logDir,
      log: (msg) => process.stdout.write(`[bench] ${msg}\n`),
      signal: controller.signal,
      track(proc) {
        children.add(proc);
        proc.once('exit', () => children.delete(proc));
        return proc;
      },
    };
    return { ctx, stop, abort };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A Worker for Temporal's floor workflows (bench/floor-workflows.ts) on a queue of their own: the floors the
 * prompt and job-call paths are read against (bench/floors.bench.ts, bench/job.bench.ts).
 */
export async function floorWorker(connection: NativeConnection, taskQueue: string): Promise<Worker> {
  return Worker.create({
    connection,
    taskQueue,
    workflowsPath: require.resolve('./floor-workflows'),
    activities: { floorNoop: async () => 1 },
  });
}

/**
 * The baseline of the latency benches: one request straight to Ollama (no Temporal, no API), with the same
 * fixed `num_ctx` the llm workers send, so both sides hit the same loaded model. Returns the text.
 */
export async function directGenerate(
  ctx: BenchContext,
  prompt: string,
  options: Record<string, unknown>,
): Promise<string> {
  const res = await fetch(`${ctx.ollamaUrl}/api/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: ctx.model,
      prompt,
      stream: false,
      options: { ...options, num_ctx: ctx.config.LLM_NUM_CTX },
      keep_alive: '24h',
    }),
  });
  const body = (await res.json()) as { response?: string; eval_count?: number; error?: string };
  if (!res.ok || !body.eval_count) throw new Error(`direct call failed: ${res.status} ${JSON.stringify(body)}`);
  return body.response ?? '';
}

// ---------------------------------------------------------------- in-process stack

/** Installs the Temporal runtime once per bench process, quiet (WARN) and without its own signal handlers. */
export function quietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  } catch {
    // installed by an earlier bench in this process
  }
}

const silent = () => undefined;
export const SILENT_LOGGER = { trace: silent, debug: silent, info: silent, warn: silent, error: silent, log: silent };

/** The API key every bench stack accepts; `Stack.api` sends it. */
export const BENCH_API_KEY = 'bench-key-0001';

export interface StackOptions {
  /**
   * What runs workflows: `'orchestrator'`, the production orchestrator worker (every ainode workflow and domain
   * activity); or a workflows module of the bench's own, bundled once, on a fresh task queue with `activities`.
   */
  workflows?:
    'orchestrator' | { path: string; activities?: object | ((deps: { config: Config; storage: Storage }) => object) };
  /**
   * The llm workers (workers/llm.ts, one queue per served model), on `'real'`: the bench Ollama node, or
   * `'fake'`: a scripted Ollama (`fake`) that serves `fake.model` only, so the platform is measured, not the model.
   */
  llm?: 'real' | 'fake';
  fake?: { model: string; script: FakeScript; /** llm slots (OLLAMA_NUM_PARALLEL), default 4 */ slots?: number };
  /** An executor worker on the local Docker engine (jobs). */
  executor?: boolean;
  /** The HTTP API on a free port, with BENCH_API_KEY and no rate limit. */
  api?: boolean;
  /** Config over the bench config (e.g. a bucket of the bench's own). */
  config?: Partial<Config>;
  /** More Workers on the same connection (e.g. a metered llm worker), started and stopped with the others. */
  workers?: (stack: Omit<Stack, 'workers' | 'stop'>) => Promise<Worker[]>;
}

export interface Stack {
  config: Config;
  connection: NativeConnection;
  client: Client;
  storage: Storage;
  /** The task queue of `workflows` (ORCHESTRATOR_QUEUE for the orchestrator). */
  taskQueue: string;
  workers: RunningWorkers;
  /** With `llm: 'fake'`. */
  fake?: FakeOllama;
  /** With `api`: its base URL. */
  apiUrl?: string;
  /** A request to the API (JSON, or a zip with `raw`), authenticated with BENCH_API_KEY. */
  api(
    method: string,
    url: string,
    opts?: { json?: unknown; raw?: Buffer; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any }>;
  /** Stops everything that started, in reverse order; safe to call more than once. */
  stop(): Promise<void>;
}

/**
 * The in-process stack every latency bench runs on: Temporal connections to the bench dev server, storage,
 * the chosen workers (via scripts/lib/workers.ts) and optionally the API, all in this process. A failure while
 * starting stops what had started.
 */
export async function startStack(ctx: BenchContext, opts: StackOptions): Promise<Stack> {
  quietRuntime();
  const undo: (() => Promise<unknown> | unknown)[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const fn of undo.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    })());
  try {
    let fake: FakeOllama | undefined;
    let config: Config = {
      ...ctx.config,
      API_KEYS: new Map([[BENCH_API_KEY, 'bench']]),
      API_RATE_LIMIT_PER_MINUTE: 1_000_000,
      GATEWAY_SOCKET_DIR: path.join(os.tmpdir(), `ainode-bench-gw-${process.pid}`),
      ...opts.config,
    };
    if (opts.llm === 'fake') {
      if (!opts.fake) throw new Error("startStack: llm 'fake' needs `fake`");
      const f = await startFakeOllama({ models: [opts.fake.model], script: opts.fake.script });
      fake = f;
      undo.push(() => f.close());
      const node = { id: 'fake', url: f.url };
      config = {
        ...config,
        DEFAULT_MODEL: opts.fake.model,
        OLLAMA_URL: node.url,
        NODE_ID: node.id,
        OLLAMA_NODES: [node],
        OLLAMA_NUM_PARALLEL: opts.fake.slots ?? 4,
      };
    }
    const storage = createStorage(config);
    undo.push(() => storage.close());
    await ensureStorage(storage);
    const connection = await NativeConnection.connect({ address: ctx.temporalAddress });
    undo.push(() => connection.close());
    const clientConnection = await Connection.connect({ address: ctx.temporalAddress });
    undo.push(() => clientConnection.close());
    // Same payload codec as the workers (none unless the bench sets PAYLOAD_KEYS).
    const client = new Client({
      connection: clientConnection,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter: dataConverterFor(config),
    });

    // Each Worker runs as soon as it exists, so a failure further on still stops (and releases) it.
    const workers = runWorkers([]);
    undo.push(() => workers.stop());
    let taskQueue = '';
    if (opts.workflows === 'orchestrator') {
      taskQueue = ORCHESTRATOR_QUEUE;
      workers.add(await createOrchestratorWorker({ connection, config, storage }));
    } else if (opts.workflows) {
      taskQueue = `bench-${path.basename(opts.workflows.path).replace(/\W/g, '-')}-${Date.now()}`;
      const workflowBundle = await bundleWorkflowCode({ workflowsPath: opts.workflows.path, logger: SILENT_LOGGER });
      const { activities } = opts.workflows;
      workers.add(
        await Worker.create({
          connection,
          taskQueue,
          workflowBundle,
          activities: typeof activities === 'function' ? activities({ config, storage }) : activities,
        }),
      );
    }
    if (opts.llm) workers.add(...(await createLlmWorkers({ connection, config, warmUp: false })));
    if (opts.executor) {
      const { worker } = await createExecutorWorker({
        connection,
        client,
        config,
        storage,
        docker: new Docker({ socketPath: config.DOCKER_SOCKET }),
        executorId: `bench-${process.pid}`,
      });
      workers.add(worker);
    }
    const partial = { config, connection, client, storage, taskQueue, fake };

    let apiUrl: string | undefined;
    if (opts.api) {
      const catalog = createCatalog({
        nodes: config.OLLAMA_NODES,
        nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
        // As api/server.ts builds it.
        staleMs: config.CATALOG_STALE_MS,
        temporal: client,
        namespace: config.TEMPORAL_NAMESPACE,
      });
      const app = createApp({ config, temporal: client, storage, catalog, logger: createLogger('api', config) });
      const server = app.listen(0, '127.0.0.1');
      await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
      undo.push(() => {
        server.closeAllConnections();
        return new Promise<void>((r) => server.close(() => r()));
      });
      apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
    const api: Stack['api'] = async (method, url, o = {}) => {
      if (!apiUrl) throw new Error('startStack: started without `api`');
      const res = await fetch(`${apiUrl}${url}`, {
        method,
        headers: {
          authorization: `Bearer ${BENCH_API_KEY}`,
          'content-type': o.raw ? 'application/zip' : 'application/json',
          ...o.headers,
        },
        body: o.raw ? new Uint8Array(o.raw) : o.json === undefined ? undefined : JSON.stringify(o.json),
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: the text itself
      }
      return { status: res.status, body };
    };

    if (opts.workers) workers.add(...(await opts.workers({ ...partial, apiUrl, api })));
    return { ...partial, workers, apiUrl, api, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
