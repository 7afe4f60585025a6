/**
 * A tiny benchmark harness for `npm run bench`. It starts the services the way `npm test` does (moto, one
 * Ollama node with the default model, and here also a Temporal dev server, all on free ports), hands them to
 * each `bench/*.bench.ts`, and turns their rows into JSON + a markdown table. Every target is compared with
 * a baseline measured in the same run, so results are ratios on the same machine, never absolute promises.
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type Config } from '../common/config';
import { normalizeModel } from '../common/task-queues';
import { freePort, startMoto, startOllama, startTemporal, type Service } from '../scripts/lib/services';
import { readToolchain, STATE_DIR, type Toolchain } from '../scripts/lib/toolchain';

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
