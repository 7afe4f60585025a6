/**
 * Idle memory of each process role: every worker entry point and the API run as child processes
 * (`node --import tsx`, as `npm start` runs them) against the bench services; once they had time to connect and
 * settle, VmRSS is read from /proc for the process and all its descendants; then the same for the compiled
 * entry points (`dist/`, plain node, as deployed). Each form has its own baseline, an idle empty script run the
 * same way (`node --import tsx idle.ts` for the tsx rows, `node idle.js` for the compiled ones), so the ratio
 * shows what each role adds over bare Node. A row says whether its RSS settled or when the bench gave up waiting.
 * Target (docs/operations.md, Benchmarks): ≤ 250 MB each, compiled.
 *
 * Then 1,000 chats open at once on one orchestrator (compiled, as deployed): each chat gets one message and its
 * reply (scripted LLM, replies to a local callback), then all sit idle in the worker's sticky cache, waiting for
 * their next message. The orchestrator's RSS is read once they settle, next to its own idle RSS before the chats
 * (same process, same run). Target (issue 15): ≤ 500 MB.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { freePort, stopProcess } from '../scripts/lib/services';
import { entryIfExists, spawnTs } from '../scripts/lib/stack';
import { ROOT } from '../scripts/lib/toolchain';
import { bundleWorkflows } from '../scripts/bundle-workflows';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chatWorkflowInput } from '../api/routes/webhooks';
import { chatMessageSignal } from '../contracts/definitions';
import { ORCHESTRATOR_QUEUE } from '../common/task-queues';
import { ratio, round, sleep, startStack, type Bench, type BenchContext, type Row } from './lib';

const IDLE_CHATS = Number(process.env.BENCH_IDLE_CHATS ?? 1000);
const IDLE_CHATS_GOAL_MB = 500;
/** How many signalWithStart calls are in flight at once while the chats are opened. */
const OPEN_CONCURRENCY = 10;
const IDLE_CHATS_TIMEOUT_MS = Number(process.env.BENCH_IDLE_CHATS_TIMEOUT_MS ?? 900_000);
const FAKE_MODEL = 'benchfake:1b';
/** BENCH_RSS_ONLY_CHATS=1: only the chats' row, on the sources (the roles' rows and the build take minutes). */
const ONLY_CHATS = process.env.BENCH_RSS_ONLY_CHATS === '1';

const GOAL_MB = 250;
const SETTLE_MS = Number(process.env.BENCH_RSS_SETTLE_MS ?? 10_000);
const MAX_SAMPLES = 30;

/** VmRSS in kB of a pid, or 0 when it is gone. */
function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** pid and every descendant (walks /proc/<pid>/stat parent links). */
function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 is the ppid; the command name (field 2) may contain spaces, so split after its closing paren.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(entry), ppid);
    } catch {
      // exited while we looked
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

interface Idle {
  mb: number;
  waitedS: number;
  /** Two samples in a row within 2%; false when the bench gave up waiting (the last sample is reported). */
  steady: boolean;
}

/**
 * Tree RSS (MB) once idle: after the settle time, sampled every second until two samples in a row are within
 * 2% (start-up work such as the workflow bundle may still be running on a loaded machine), at most MAX_SAMPLES.
 */
async function idleRssMb(proc: ChildProcess, name: string, signal: AbortSignal): Promise<Idle> {
  const t0 = Date.now();
  await sleep(SETTLE_MS);
  const sample = () => {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode})`);
    return processTree(proc.pid!).reduce((sum, pid) => sum + rssKb(pid), 0) / 1024;
  };
  const waitedS = () => Math.round((Date.now() - t0) / 1000);
  let prev = sample();
  for (let i = 1; i < MAX_SAMPLES && !signal.aborted; i++) {
    await sleep(1000);
    const cur = sample();
    if (Math.abs(cur - prev) <= 0.02 * prev) return { mb: cur, waitedS: waitedS(), steady: true };
    prev = cur;
  }
  return { mb: prev, waitedS: waitedS(), steady: false };
}

const steadiness = (m: Idle) => (m.steady ? `steady after ${m.waitedS} s` : `not steady after ${m.waitedS} s`);

interface Role {
  name: string;
  entry: string;
  env?: Record<string, string>;
}

async function measure(ctx: BenchContext, role: Role): Promise<Idle> {
  const logFile = path.join(ctx.logDir, `rss-${role.name}.log`);
  const proc = ctx.track(spawnTs(role.name, role.entry, { env: { ...ctx.env, ...role.env }, logFile }));
  try {
    return await idleRssMb(proc, role.name, ctx.signal);
  } catch (err) {
    throw new Error(`${(err as Error).message}; see ${logFile}`);
  } finally {
    await stopProcess(proc, 10_000);
  }
}

/**
 * RSS of one orchestrator (`entry`, its process tree) idle, then with IDLE_CHATS chats open: each answered once,
 * then idle. The llm worker (scripted node) runs in this process; the chats' replies come to a local callback.
 */
async function idleChatsRows(ctx: BenchContext, entry: string, bundlePath: string): Promise<Row[]> {
  const metric = `orchestrator RSS with ${IDLE_CHATS} chats open, idle after one reply each`;
  let replied = 0;
  const callback = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      replied++;
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => callback.listen(0, '127.0.0.1', r));
  const stack = await startStack(ctx, {
    llm: 'fake',
    fake: {
      model: FAKE_MODEL,
      script: (req) => (req.format ? '{"agent":"general","product":"none","intent":"other"}' : 'Thanks, noted!'),
    },
  });
  const logFile = path.join(ctx.logDir, 'rss-orchestrator-chats.log');
  const proc = ctx.track(
    spawnTs('orchestrator', entry, {
      env: {
        ...ctx.env,
        WORKFLOW_BUNDLE_PATH: bundlePath,
        DEFAULT_MODEL: FAKE_MODEL,
        OLLAMA_NODES: `fake=${stack.fake!.url}`,
        CHANNEL_CALLBACK_URL: `http://127.0.0.1:${(callback.address() as AddressInfo).port}/replies`,
        CHANNEL_WEBHOOK_SECRET: 'bench-webhook-secret',
      },
      logFile,
    }),
  );
  try {
    const before = await idleRssMb(proc, 'orchestrator', ctx.signal);
    const input = { ...chatWorkflowInput(stack.config, ''), model: FAKE_MODEL, quietMs: 50, maxWaitMs: 500 };
    const run = Date.now().toString(36);
    const t0 = Date.now();
    let next = 0;
    const opener = async () => {
      while (next < IDLE_CHATS && !ctx.signal.aborted) {
        const chatId = `idle-${run}-${next++}`;
        await stack.client.workflow.signalWithStart('chatWorkflow', {
          workflowId: `chat-bench-${chatId}`,
          taskQueue: ORCHESTRATOR_QUEUE,
          args: [{ ...input, chatId }],
          signal: chatMessageSignal,
          signalArgs: [{ id: `${chatId}-1`, text: 'hello', personType: 'user', createdAt: Date.now() }],
        });
      }
    };
    await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, opener));
    while (replied < IDLE_CHATS && Date.now() - t0 < IDLE_CHATS_TIMEOUT_MS && !ctx.signal.aborted) await sleep(1000);
    const openedS = Math.round((Date.now() - t0) / 1000);
    const after = await idleRssMb(proc, 'orchestrator', ctx.signal);
    return [
      {
        bench: 'rss',
        metric,
        value: round(after.mb, 1),
        unit: 'MB',
        baseline: round(before.mb, 1),
        ratio: ratio(after.mb, before.mb),
        goal: `≤ ${IDLE_CHATS_GOAL_MB} MB`,
        pass: replied >= IDLE_CHATS && after.mb <= IDLE_CHATS_GOAL_MB,
        note:
          `${entry.endsWith('.js') ? 'compiled' : 'tsx'}; baseline: the same orchestrator idle before the chats; ` +
          `${replied} of ${IDLE_CHATS} replied in ${openedS} s; ` +
          `${round(((after.mb - before.mb) * 1024) / Math.max(1, replied))} kB per chat; ${steadiness(after)}`,
      },
    ];
  } catch (err) {
    return [
      { bench: 'rss', metric, value: NaN, unit: 'MB', pass: false, note: `${(err as Error).message}; see ${logFile}` },
    ];
  } finally {
    await stopProcess(proc, 10_000);
    await stack.stop();
    callback.closeAllConnections();
    await new Promise<void>((r) => callback.close(() => r()));
  }
}

export const bench: Bench = {
  name: 'rss',
  async run(ctx) {
    if (ONLY_CHATS) {
      const bundlePath = await bundleWorkflows(path.join(ctx.logDir, 'workflow-bundle.js'));
      // From the sources (tsx adds ~40 MB over the compiled form; dist/ may be older than the sources).
      return idleChatsRows(ctx, 'workers/orchestrator.ts', bundlePath);
    }
    const idleDir = path.join(ctx.logDir, 'rss');
    mkdirSync(idleDir, { recursive: true });
    // The same empty program twice: under tsx (.ts) and on plain node (.js), as spawnTs runs each form.
    const idleTs = path.join(idleDir, 'idle.ts');
    const idleJs = path.join(idleDir, 'idle.js');
    for (const f of [idleTs, idleJs]) writeFileSync(f, 'setInterval(() => undefined, 1000);\n');
    const baselines = {
      tsx: await measure(ctx, { name: 'baseline-tsx', entry: idleTs }),
      compiled: await measure(ctx, { name: 'baseline-node', entry: idleJs }),
    };

    const bundlePath = await bundleWorkflows(path.join(ctx.logDir, 'workflow-bundle.js'));
    const roles: Role[] = [
      // As `npm start` and the compose image run it: with the workflow bundle built ahead of time.
      { name: 'orchestrator', entry: 'workers/orchestrator.ts', env: { WORKFLOW_BUNDLE_PATH: bundlePath } },
      { name: 'executor', entry: 'workers/executor.ts' },
      { name: 'llm', entry: 'workers/llm.ts' },
      { name: 'api', entry: 'api/server.ts', env: { API_PORT: String(await freePort()) } },
    ];
    const rows: Row[] = [
      {
        bench: 'rss',
        metric: 'idle node --import tsx (baseline of the tsx rows)',
        value: round(baselines.tsx.mb, 1),
        unit: 'MB',
        note: steadiness(baselines.tsx),
      },
      {
        bench: 'rss',
        metric: 'idle plain node (baseline of the compiled rows)',
        value: round(baselines.compiled.mb, 1),
        unit: 'MB',
        note: steadiness(baselines.compiled),
      },
    ];
    // The deployed form: `npm run build` output on plain node (tsc into dist/, workflow bundle built ahead).
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    const sourceRoles = [...roles];
    for (const role of sourceRoles)
      roles.push({ ...role, entry: path.join('dist', role.entry.replace(/\.ts$/, '.js')) });
    for (const role of roles) {
      if (ctx.signal.aborted) break;
      const compiled = role.entry.endsWith('.js');
      const metric = `${role.name} idle RSS${compiled ? ' (compiled, as deployed)' : ' (tsx, as npm start runs it)'}`;
      if (!entryIfExists(role.entry)) {
        rows.push({ bench: 'rss', metric, value: NaN, unit: 'MB', note: `${role.entry} does not exist` });
        continue;
      }
      try {
        const idle = await measure(ctx, role);
        const baseline = (compiled ? baselines.compiled : baselines.tsx).mb;
        rows.push({
          bench: 'rss',
          metric,
          value: round(idle.mb, 1),
          unit: 'MB',
          baseline: round(baseline, 1),
          ratio: ratio(idle.mb, baseline),
          // The target is for the deployed form (node on dist/, no tsx); the tsx rows are for reference.
          ...(compiled ? { goal: `≤ ${GOAL_MB} MB`, pass: idle.mb <= GOAL_MB } : {}),
          note: `process tree, ${steadiness(idle)}`,
        });
      } catch (err) {
        rows.push({
          bench: 'rss',
          metric,
          value: NaN,
          unit: 'MB',
          goal: `≤ ${GOAL_MB} MB`,
          pass: false,
          note: (err as Error).message,
        });
      }
    }
    if (!ctx.signal.aborted && IDLE_CHATS > 0) {
      const compiled = path.join('dist', 'workers', 'orchestrator.js');
      rows.push(
        ...(await idleChatsRows(ctx, entryIfExists(compiled) ? compiled : 'workers/orchestrator.ts', bundlePath)),
      );
    }
    return rows;
  },
};
