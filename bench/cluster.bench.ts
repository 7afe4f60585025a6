/**
 * Throughput of cluster mode (scripts/lib/cluster.ts: the real Temporal server on PostgreSQL, every worker a
 * separate process) with 1 and with 2 of each worker kind, and with 1 and 2 Temporal history shards; the 1-of-each
 * run is the baseline of the same bench run. docs/scaling.md reads these figures.
 * Platform only: LLM nodes are scripted fakes that answer at once, so what is measured is Temporal, the
 *    orchestrators, the executors (real containers) and the API: replies/s of CHATS chats sent at once, and
 *    jobs/s of JOBS trivial jobs (one SDK call each) started at once.
 * (With the real model every Ollama node shares this machine's two cores: docs/scaling.md says what that means.)
 * Each configuration starts its own cluster (fresh database) and stops it before the next.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflows } from '../scripts/bundle-workflows';
import { installClusterTools, startCluster, waitForPollers, type Cluster } from '../scripts/lib/cluster';
import {
  jobScript,
  sendChat,
  startChannel,
  startJob,
  uploadFunction,
  waitJob,
  type ApiClient,
} from '../scripts/lib/cluster-workload';
import { startFakeOllama, type FakeOllama } from '../test/helpers/fake-ollama';
import { ratio, round, type Bench, type Row } from './lib';

const QUICK = Boolean(process.env.BENCH_QUICK);
const CHATS = Number(process.env.BENCH_CLUSTER_CHATS ?? (QUICK ? 40 : 100));
const JOBS = Number(process.env.BENCH_CLUSTER_JOBS ?? (QUICK ? 8 : 24));
const KEY = 'key-cluster-bench';
const SECRET = 'cluster-bench-secret';
const FAKE_MODEL = 'benchfake:1b';

interface Shape {
  label: string;
  workers: number;
  shards: number;
}

export const bench: Bench = {
  name: 'cluster',
  async run(ctx) {
    const tools = await installClusterTools(ctx.log);
    const bundle = await bundleWorkflows(path.join(ctx.logDir, 'cluster-workflow-bundle.js'));
    const channel = await startChannel(SECRET);
    const rows: Row[] = [];
    const dirs: string[] = [];

    const withCluster = async <T>(
      shape: Shape,
      nodes: FakeOllama[] | undefined,
      fn: (cluster: Cluster, c: ApiClient) => Promise<T>,
    ): Promise<T> => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'ainode-cluster-bench-'));
      dirs.push(dir);
      const cluster = await startCluster(ctx.tc, tools, {
        dir,
        orchestrators: shape.workers,
        executors: shape.workers,
        llmNodes: shape.workers,
        shards: shape.shards,
        bundlePath: bundle,
        models: [ctx.model],
        externalNodes: nodes?.map((n, i) => ({ id: `fake-${i + 1}`, url: n.url })),
        env: {
          // Chats and jobs use the default model: the fakes' model when the nodes are fakes.
          ...(nodes ? { DEFAULT_MODEL: FAKE_MODEL } : {}),
          API_KEYS: `${KEY}:tenant-bench`,
          API_RATE_LIMIT_PER_MINUTE: '100000',
          CHANNEL_WEBHOOK_SECRET: SECRET,
          CHANNEL_CALLBACK_URL: channel.url,
          CHAT_QUIET_MS: '300',
          CHAT_MAX_WAIT_MS: '3000',
          LLM_CALL_TIMEOUT_MS: '600000',
        },
        log: (m) => ctx.log(`cluster ${shape.label}: ${m}`),
      });
      try {
        await waitForPollers(cluster, KEY, nodes ? FAKE_MODEL : ctx.model, shape.workers);
        return await fn(cluster, { url: cluster.apiUrl, key: KEY });
      } finally {
        await cluster.stop();
      }
    };

    try {
      // 1. Platform only.
      const fakes = await Promise.all(
        [0, 1].map(() =>
          startFakeOllama({
            models: [FAKE_MODEL],
            script: (req) => (req.format ? '{"agent":"general","product":"none","intent":"other"}' : 'Noted, thanks!'),
          }),
        ),
      );
      const platform: { shape: Shape; chatsPerS: number; jobsPerS: number }[] = [];
      try {
        for (const shape of [
          { label: '1 each, 1 shard', workers: 1, shards: 1 },
          { label: '2 each, 1 shard', workers: 2, shards: 1 },
          { label: '2 each, 2 shards', workers: 2, shards: 2 },
        ]) {
          ctx.signal.throwIfAborted();
          const got = await withCluster(shape, fakes.slice(0, shape.workers), async (_cluster, c) => {
            const run = `${shape.workers}-${shape.shards}-${Date.now().toString(36)}`;
            // Warm-up: one chat and one job, so first-use costs (connections, caches, image) stay out.
            const fn = await uploadFunction(c, jobScript(1, 0));
            await sendChat(c.url, SECRET, `warm-${run}`, 'hello');
            await Promise.all([
              channel.replied(`warm-${run}`, 1, 120_000),
              waitJob(c, await startJob(c, fn, FAKE_MODEL), 300_000),
            ]);

            const ids = Array.from({ length: CHATS }, (_, i) => `c-${run}-${i}`);
            const t0 = performance.now();
            await Promise.all(ids.map((id) => sendChat(c.url, SECRET, id, 'is anyone there?')));
            const last = Math.max(...(await Promise.all(ids.map((id) => channel.replied(id, 1, 600_000)))));
            const chatsPerS = CHATS / ((last - t0) / 1000);

            const j0 = performance.now();
            const jobIds = await Promise.all(Array.from({ length: JOBS }, () => startJob(c, fn, FAKE_MODEL)));
            const jobs = await Promise.all(jobIds.map((id) => waitJob(c, id, 900_000)));
            const jobsPerS = JOBS / ((performance.now() - j0) / 1000);
            const failed = jobs.filter((j) => j.status !== 'succeeded').length;
            if (failed) throw new Error(`${failed} of ${JOBS} jobs did not succeed (${shape.label})`);
            return { chatsPerS, jobsPerS };
          });
          platform.push({ shape, ...got });
          ctx.log(`cluster ${shape.label}: ${round(got.chatsPerS)} replies/s, ${round(got.jobsPerS)} jobs/s`);
        }
      } finally {
        await Promise.all(fakes.map((f) => f.close()));
      }
      const base = platform[0]!;
      for (const p of platform) {
        rows.push(
          {
            bench: 'cluster',
            metric: `fake LLM, ${p.shape.label}: ${CHATS} chats at once, replies/s`,
            value: round(p.chatsPerS),
            unit: 'replies/s',
            ...(p === base ? {} : { baseline: round(base.chatsPerS), ratio: ratio(p.chatsPerS, base.chatsPerS) }),
            note: 'orchestrators + executors + llm workers, each a process; Temporal server on PostgreSQL',
          },
          {
            bench: 'cluster',
            metric: `fake LLM, ${p.shape.label}: ${JOBS} jobs at once (1 SDK call each), jobs/s`,
            value: round(p.jobsPerS, 3),
            unit: 'jobs/s',
            ...(p === base ? {} : { baseline: round(base.jobsPerS, 3), ratio: ratio(p.jobsPerS, base.jobsPerS) }),
            note: 'real containers on the one Docker engine',
          },
        );
      }
    } finally {
      await channel.close();
      for (const d of dirs) {
        rmSync(d, { recursive: true, force: true });
        rmSync(path.join('/var/tmp/ainode-cluster', path.basename(d)), { recursive: true, force: true });
      }
    }
    return rows;
  },
};
