/**
 * The central claim of the design, measured: per-model queues pinned to nodes beat one shared queue, because a
 * pinned node never swaps models. Two real Ollama nodes, each able to hold one model at a time
 * (OLLAMA_MAX_LOADED_MODELS=1), and the two real models; the same mixed workload (models interleaved, all
 * submitted at once, short bounded calls) runs through
 * (a) pinned: ainode's llm workers (workers/llm.ts), node 1 serving model A on its queue, node 2 model B;
 * (b) shared: one queue that both nodes poll, every node able to load either model (the same llm activities).
 * Each mode starts from the same state: fresh nodes, node 1 with A loaded, node 2 with B. Model loads are counted
 * from each node's own log ("llama runner started"), cross-checked with Ollama's `load_duration`.
 * Targets (DESIGN.md): 0 reloads pinned; pinned throughput ≥ 1.5 × shared.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createLlmActivities, createOllamaClient, WARM_KEEP_ALIVE } from '../activities/llm';
import { llmQueue, normalizeModel } from '../common/task-queues';
import type { LlmResult } from '../contracts/llm';
import { NodeSlots } from '../lib/llm/node-slots';
import { freePort, prepareNodeModelsDir, startOllama, type Service } from '../scripts/lib/services';
import { runWorkers, type RunningWorkers } from '../scripts/lib/workers';
import { createLlmWorkers } from '../workers/llm';
import type { PinningCall } from './pinning-workflows';
import { ratio, round, startStack, summarize, type Bench, type BenchContext, type Row, type Stack } from './lib';

const QUICK = Boolean(process.env.BENCH_QUICK);
const N = Number(process.env.BENCH_PINNING_N ?? (QUICK ? 16 : 60));
/** OLLAMA_NUM_PARALLEL of each node, and its llm worker's slots. */
const SLOTS = 2;
const NUM_PREDICT = 8;
const GOAL_RATIO = 1.5;
const LOAD_LINE = /llama runner started/g;
const CALL_TIMEOUT_MS = 900_000;

type Mode = 'pinned' | 'shared';

interface ModeResult {
  mode: Mode;
  latencies: number[];
  wallMs: number;
  loads: number;
  /** Calls whose Ollama load_duration was over 100 ms (the model was loaded for them). */
  loadedCalls: number;
  loadMs: number;
  /** Pinned: calls answered by a node that does not serve the model (should be none). */
  wrongNode: number;
  /** Calls that failed (their reasons); throughput counts completed calls only. */
  failed: string[];
}

const countLoads = (logFile: string) => (readFileSync(logFile, 'utf8').match(LOAD_LINE) ?? []).length;

async function loadModel(url: string, model: string, numCtx: number): Promise<void> {
  // An empty prompt only loads the model, with the workers' num_ctx so the first call does not reload it.
  const res = await fetch(`${url}/api/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: '', keep_alive: WARM_KEEP_ALIVE, options: { num_ctx: numCtx } }),
  });
  if (!res.ok) throw new Error(`loading ${model} at ${url}: ${res.status} ${await res.text()}`);
}

/** Two fresh nodes for one mode: pinned, node i serves models[i] only; shared, both serve both. */
async function startNodes(ctx: BenchContext, dir: string, mode: Mode, models: [string, string]) {
  const nodes: { id: string; service: Service; logFile: string; model: string }[] = [];
  try {
    for (const [i, model] of models.entries()) {
      const id = `node-${i + 1}`;
      const modelsDir = path.join(dir, `${mode}-${id}`);
      const { missing } = prepareNodeModelsDir(ctx.tc.ollamaModels, modelsDir, mode === 'pinned' ? [model] : models);
      if (missing.length) throw new Error(`not in the model cache ${ctx.tc.ollamaModels}: ${missing.join(', ')}`);
      const logFile = path.join(ctx.logDir, `pinning-${mode}-${id}.log`);
      appendFileSync(logFile, `--- ${new Date().toISOString()} bench pinning, ${mode}\n`);
      const service = await startOllama(ctx.tc, {
        port: await freePort(),
        modelsDir,
        numParallel: SLOTS,
        maxLoadedModels: 1,
        logFile,
        name: `ollama-pinning-${id}`,
      });
      ctx.track(service.proc);
      nodes.push({ id, service, logFile, model });
    }
    // The same start for both modes: node 1 holds A, node 2 holds B.
    await Promise.all(nodes.map((n) => loadModel(n.service.url, n.model, ctx.config.LLM_NUM_CTX)));
    return nodes;
  } catch (err) {
    await Promise.all(nodes.map((n) => n.service.stop()));
    throw err;
  }
}

async function runMode(ctx: BenchContext, stack: Stack, dir: string, mode: Mode, models: [string, string]) {
  const nodes = await startNodes(ctx, dir, mode, models);
  let workers: RunningWorkers | undefined;
  const closers: (() => Promise<void>)[] = [];
  try {
    const sharedQueue = `bench-shared-${Date.now().toString(36)}`;
    workers = runWorkers([]);
    for (const n of nodes) {
      const config = {
        ...stack.config,
        OLLAMA_URL: n.service.url,
        NODE_ID: n.id,
        OLLAMA_NUM_PARALLEL: SLOTS,
        // Queued behind swaps on a loaded 2-core machine, a short call can take long: measure it, do not fail it.
        LLM_CALL_TIMEOUT_MS: CALL_TIMEOUT_MS,
      };
      if (mode === 'pinned') {
        // ainode's own llm workers: one queue per model the node serves, the node's slots shared.
        workers.add(...(await createLlmWorkers({ connection: stack.connection, config, warmUp: false })));
      } else {
        const activities = createLlmActivities({
          ollama: createOllamaClient(n.service.url),
          nodeId: n.id,
          numCtx: config.LLM_NUM_CTX,
          callTimeoutMs: config.LLM_CALL_TIMEOUT_MS,
          numPredict: config.LLM_NUM_PREDICT,
          keepAlive: WARM_KEEP_ALIVE,
          slots: new NodeSlots(SLOTS),
        });
        // One connection per node: the SDK allows one Worker per task queue per connection.
        const connection = await NativeConnection.connect({ address: ctx.temporalAddress });
        closers.push(() => connection.close());
        workers.add(
          await Worker.create({
            connection,
            taskQueue: sharedQueue,
            activities,
            maxConcurrentActivityTaskExecutions: SLOTS,
          }),
        );
      }
    }
    const loadsBefore = nodes.map((n) => countLoads(n.logFile));
    const calls: PinningCall[] = Array.from({ length: N }, (_, i) => {
      const model = models[i % 2]!;
      return {
        model,
        queue: mode === 'pinned' ? llmQueue(model) : sharedQueue,
        prompt: `Count from ${(i % 7) + 1} to ${(i % 7) + 5}.`,
        numPredict: NUM_PREDICT,
      };
    });
    const t0 = performance.now();
    const settled = await Promise.allSettled(
      calls.map(async (input, i) => {
        const s = performance.now();
        const r = await stack.client.workflow.execute<(c: PinningCall) => Promise<LlmResult>>('pinningCall', {
          taskQueue: stack.taskQueue,
          workflowId: `${stack.taskQueue}-${mode}-${i}`,
          args: [input],
        });
        return { ms: performance.now() - s, r, input };
      }),
    );
    const wallMs = performance.now() - t0;
    const done = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = settled.flatMap((r) =>
      r.status === 'rejected' ? [String((r.reason as Error).cause ?? r.reason)] : [],
    );
    const loads = nodes.reduce((sum, n, i) => sum + countLoads(n.logFile) - loadsBefore[i]!, 0);
    const servedBy = new Map(nodes.map((n) => [n.id, n.model]));
    return {
      mode,
      latencies: done.map((d) => d.ms),
      wallMs,
      loads,
      loadedCalls: done.filter((d) => (d.r.usage.loadDurationMs ?? 0) > 100).length,
      loadMs: done.reduce((sum, d) => sum + (d.r.usage.loadDurationMs ?? 0), 0),
      wrongNode: done.filter((d) => servedBy.get(d.r.nodeId) !== d.input.model).length,
      failed,
    } satisfies ModeResult;
  } finally {
    await workers?.stop();
    await Promise.all(closers.map((c) => c().catch(() => undefined)));
    await Promise.all(nodes.map((n) => n.service.stop()));
  }
}

export const bench: Bench = {
  name: 'pinning',
  async run(ctx) {
    const models = (ctx.tc.models ?? []).map(normalizeModel);
    if (models.length < 2)
      throw new Error(`the pinning bench needs two models; the toolchain has ${models.join(', ')}`);
    const pair: [string, string] = [models[0]!, models[1]!];
    const dir = mkdtempSync(path.join(tmpdir(), 'ainode-bench-pinning-'));
    const stack = await startStack(ctx, { workflows: { path: require.resolve('./pinning-workflows') } });
    try {
      const pinned = await runMode(ctx, stack, dir, 'pinned', pair);
      ctx.signal.throwIfAborted();
      const shared = await runMode(ctx, stack, dir, 'shared', pair);
      const rows: Row[] = [];
      const tput = (m: ModeResult) => (m.latencies.length * 1000) / m.wallMs;
      const workload = `${N} calls, ${pair.join(' / ')} interleaved, all at once; 2 nodes × ${SLOTS} slots, OLLAMA_MAX_LOADED_MODELS=1, num_predict ${NUM_PREDICT}`;
      for (const m of [shared, pinned]) {
        const l = summarize(m.latencies);
        const isPinned = m.mode === 'pinned';
        rows.push(
          {
            bench: 'pinning',
            metric: `${m.mode}: model loads during the workload`,
            value: m.loads,
            unit: 'loads',
            ...(isPinned ? { goal: '0', pass: m.loads === 0 } : {}),
            note: `node logs; ${m.loadedCalls} calls with load_duration > 100 ms, ${round(m.loadMs / 1000)} s of load_duration in all${isPinned ? `; ${m.wrongNode} calls on a node without the model` : ''}`,
          },
          {
            bench: 'pinning',
            metric: `${m.mode}: throughput`,
            value: round(tput(m), 3),
            unit: 'calls/s',
            ...(isPinned
              ? {
                  baseline: round(tput(shared), 3),
                  ratio: ratio(tput(m), tput(shared)),
                  goal: `≥ ${GOAL_RATIO} × shared`,
                  pass: tput(m) >= GOAL_RATIO * tput(shared),
                }
              : {}),
            note: isPinned ? `wall ${round(m.wallMs)} ms` : `wall ${round(m.wallMs)} ms; ${workload}`,
          },
          {
            bench: 'pinning',
            metric: `${m.mode}: failed calls`,
            value: m.failed.length,
            unit: 'calls',
            pass: m.failed.length === 0,
            note: m.failed[0]?.slice(0, 160) ?? '',
          },
          {
            bench: 'pinning',
            metric: `${m.mode}: call latency p95 (n=${l.n})`,
            value: round(l.p95),
            unit: 'ms',
            ...(isPinned
              ? {
                  baseline: round(summarize(shared.latencies).p95),
                  ratio: ratio(l.p95, summarize(shared.latencies).p95),
                }
              : {}),
            note: `p50 ${round(l.p50)} ms; submit → result, queueing included`,
          },
        );
      }
      return rows;
    } finally {
      await stack.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
