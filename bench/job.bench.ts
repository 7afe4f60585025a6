/**
 * The job path, against baselines measured in the same run on the bench services:
 * 1. One LLM call from inside a job (SDK → AI gateway → Update `llmCall` → llm activity → Ollama), timed
 *    in the container around `ai_client.generate` (after one warm-up call), paired with the same request sent
 *    straight to Ollama: each iteration runs one direct call and one job back to back, alternating which goes
 *    first; "added" is the p50 / p95 of the per-iteration differences.
 *    Target (docs/operations.md, Benchmarks): ≤ 25 ms p50 added. The same iterations also time Temporal's floor
 *    for a job call (an Update whose handler runs the llm activity, bench/floor-workflows.ts) right after the
 *    direct call: the job path over that floor, per iteration (issue 15: within 10 ms).
 * 2. A trivial job end to end (POST /run → long poll GET /jobs/:id) paired with a bare `docker run` of the same
 *    script (create, start, wait, remove with the same image), alternating. Target: median of the per-pair
 *    ratios ≤ 1.5×.
 * 3. Throughput of trivial jobs with 1, 4 and 16 in flight on one executor.
 * API, orchestrator, llm and executor workers run in this process.
 */
import Docker from 'dockerode';
import type { FloorLlmInput } from './floor-workflows';
import yazl from 'yazl';
import {
  directGenerate,
  floorWorker,
  measurePaired,
  pairedOf,
  pairedRows,
  percentile,
  ratio,
  round,
  sleep,
  startStack,
  timeMs,
  type Bench,
  type Row,
  type Stack,
} from './lib';

const QUICK = Boolean(process.env.BENCH_QUICK);
const N_CALLS = Number(process.env.BENCH_JOB_CALLS ?? (QUICK ? 6 : 40));
const N_JOBS = Number(process.env.BENCH_JOB_N ?? (QUICK ? 4 : 20));
const IN_FLIGHT = [1, 4, 16];
const POLL_MS = 20;
const GOAL_ADDED_P50_MS = 25;
const GOAL_RATIO = 1.5;
const PROMPT = 'Answer with one word: what colour is the sky?';
const OPTIONS = { num_predict: 8, seed: 42, temperature: 0 };
const TRIVIAL = 'print("ok")\n';

/** A job that makes one warm-up SDK call, then prints how long one more call took (ms). */
const CALL_SCRIPT = `import json, time, ai_client
opts = ${JSON.stringify(OPTIONS)}
ai_client.generate(${JSON.stringify(PROMPT)}, **opts)  # warm-up
t0 = time.perf_counter()
ai_client.generate(${JSON.stringify(PROMPT)}, **opts)
print(json.dumps((time.perf_counter() - t0) * 1000))
`;

async function zipOf(source: string): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  zip.addBuffer(Buffer.from(source), 'main.py');
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function upload(stack: Stack, source: string): Promise<string> {
  const res = await stack.api('POST', '/functions', { raw: await zipOf(source) });
  if (res.status !== 201) throw new Error(`POST /functions answered ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.functionId as string;
}

async function runJob(stack: Stack, functionId: string, model: string): Promise<any> {
  const res = await stack.api('POST', '/run', { json: { functionId, modelId: model, timeoutSec: 300 } });
  if (res.status !== 202) throw new Error(`POST /run answered ${res.status} ${JSON.stringify(res.body)}`);
  for (;;) {
    // A long poll, as a client should wait: polling would load the 2-core machine the LLM runs on.
    const s = await stack.api('GET', `/jobs/${res.body.jobId}?waitMs=30000`);
    if (['succeeded', 'failed', 'cancelled'].includes(s.body.status) && s.body.result) {
      if (s.body.status !== 'succeeded') throw new Error(`job ended ${s.body.status}: ${s.body.result.error}`);
      return s.body.result;
    }
    await sleep(POLL_MS);
  }
}

async function bareDockerRun(docker: Docker, image: string): Promise<void> {
  const c = await docker.createContainer({
    Image: image,
    Cmd: ['python3', '-c', TRIVIAL],
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await c.start();
    await c.wait();
  } finally {
    await c.remove({ force: true });
  }
}

export const bench: Bench = {
  name: 'job',
  async run(ctx) {
    const docker = new Docker({ socketPath: ctx.config.DOCKER_SOCKET });
    const image = ctx.config.JOB_RUNTIME_IMAGE;
    const floorQueue = `bench-job-floor-${Date.now().toString(36)}`;
    const stack = await startStack(ctx, {
      workflows: 'orchestrator',
      llm: 'real',
      executor: true,
      api: true,
      workers: async (s) => [await floorWorker(s.connection, floorQueue)],
    });
    const rows: Row[] = [];
    try {
      // 1. LLM call latency: a direct call and a job timing one SDK call inside the container (container start is
      //    outside the measured window), back to back in alternating order, so drift hits both sides alike.
      const callFn = await upload(stack, CALL_SCRIPT);
      const inJob = async () => {
        const r = await runJob(stack, callFn, ctx.model);
        const ms = Number(String(r.stdout).trim());
        if (!Number.isFinite(ms)) throw new Error(`the job printed no timing: ${String(r.stdout)}`);
        return ms;
      };
      const host = await stack.client.workflow.start('floorLlmHost', {
        taskQueue: floorQueue,
        workflowId: `${floorQueue}-host`,
      });
      const floorInput: FloorLlmInput = {
        model: ctx.model,
        request: { model: ctx.model, prompt: PROMPT, kind: 'job', options: OPTIONS },
      };
      const floorMs: number[] = [];
      const calls = await measurePaired({
        n: N_CALLS,
        warmup: 2,
        signal: ctx.signal,
        baseline: async () => {
          const direct = await timeMs(() => directGenerate(ctx, PROMPT, OPTIONS));
          floorMs.push(await timeMs(() => host.executeUpdate('floorLlmCall', { args: [floorInput] })));
          return direct;
        },
        subject: inJob,
      });
      await host.signal('floorStop');
      const floor = floorMs.slice(2); // the warm-up pairs' are not measured
      rows.push(
        ...pairedRows(
          'job',
          calls,
          { baseline: 'direct Ollama call', subject: 'SDK call inside a job' },
          { goalAddedMs: GOAL_ADDED_P50_MS, note: 'per iteration: in-job call − direct call, alternating order' },
        ),
        ...pairedRows(
          'job',
          pairedOf(floor, calls.subject),
          {
            baseline: 'job-call floor (Update → llm activity → result)',
            subject: 'SDK call inside a job vs its floor',
          },
          { goalAddedMs: 10, note: 'per iteration: in-job call − floor call (the same iterations); issue 15' },
        ),
      );

      // 2. Trivial job end to end vs bare docker run, paired the same way.
      const trivialFn = await upload(stack, TRIVIAL);
      const e2e = await measurePaired({
        n: N_JOBS,
        warmup: 1,
        signal: ctx.signal,
        baseline: () => timeMs(() => bareDockerRun(docker, image)),
        subject: () => timeMs(() => runJob(stack, trivialFn, ctx.model)),
      });
      const medianRatio = percentile(e2e.ratios, 50);
      rows.push(
        {
          bench: 'job',
          metric: `bare docker run p50 (n=${N_JOBS})`,
          value: round(percentile(e2e.baseline, 50)),
          unit: 'ms',
        },
        {
          bench: 'job',
          metric: 'trivial job POST /run → result p50',
          value: round(percentile(e2e.subject, 50)),
          unit: 'ms',
          baseline: round(percentile(e2e.baseline, 50)),
          ratio: round(medianRatio, 3),
          goal: `≤ ${GOAL_RATIO} × bare docker run (median of per-pair ratios)`,
          pass: medianRatio <= GOAL_RATIO,
          note: `ratio = median of ${e2e.ratios.length} per-pair ratios (ratio of p50s: ${ratio(percentile(e2e.subject, 50), percentile(e2e.baseline, 50))}); added p50 ${round(percentile(e2e.added, 50))} ms (paired)`,
        },
      );

      // 3. Throughput with K jobs in flight.
      for (const k of IN_FLIGHT) {
        ctx.signal.throwIfAborted();
        const ms = await timeMs(() =>
          Promise.all(Array.from({ length: k }, () => runJob(stack, trivialFn, ctx.model))),
        );
        rows.push({
          bench: 'job',
          metric: `trivial jobs/s with ${k} in flight`,
          value: round((k * 1000) / ms),
          unit: 'jobs/s',
        });
      }
    } finally {
      await stack.stop();
    }
    return rows;
  },
};
