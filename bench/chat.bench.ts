/**
 * Chat reply latency and throughput. Replies go to a local signed callback (the real channel adapter path),
 * whose arrival time is the reply time. The LLM is a scripted fake Ollama answering at once, so what is
 * measured is the platform: webhook → signalWithStart → debounce → router + agent activities → callback.
 * 1. Bursts of 3 messages: (reply − last message accepted) − quiet window = overhead, which includes the two
 *    (instant) LLM calls. Target (docs/operations.md, Benchmarks): ≤ 100 ms p50.
 * 2. 200 chats at once on one orchestrator worker: replies per second and p95 latency, and a profile of where a
 *    reply's time goes, read from the histories of a sample of those chats (workflow task queue wait and run,
 *    each activity's queue wait and run; workflow tasks, activities, local activities and history events per
 *    reply), and the CPU each process of the stack (and each thread of this one) spent per reply, read from
 *    /proc: on a shared machine the latencies measure the machine's load, the CPU per reply much less so.
 *    BENCH_CHAT_CPU_PROFILE=<file> also writes a V8 CPU profile of this process's main thread for that phase.
 */
import http from 'node:http';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { signBody, SIGNATURE_HEADER, verifySignature } from '../lib/channel/signature';
import type { Client } from '@temporalio/client';
import { round, sleep, startStack, summarize, type Bench, type Row } from './lib';

/** How many of the concurrent chats' histories the profile reads. */
const PROFILE_SAMPLE = 40;

type Ts = { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined;
const tsMs = (t: Ts) => (t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN);

/** Counts (not times) in a profile, per reply. */
const COUNT_WFT = 'workflow tasks';
const COUNT_EVENTS = 'history events';
const COUNT_LOCAL = 'local activities (markers)';
const COUNT_ACTIVITIES = 'activities scheduled';
const COUNTS = [COUNT_WFT, COUNT_ACTIVITIES, COUNT_LOCAL, COUNT_EVENTS];

/**
 * Where the time of one chat's first reply went, from its history: from the first event to the completion of the
 * reply's delivery, summed per kind (ms). Workflow task `wait` = scheduled → started (queue + dispatch), `run` =
 * started → completed (the worker); activity `wait` and `run` per activity type; `timer` = the debounce.
 */
async function profileChat(client: Client, workflowId: string): Promise<Map<string, number>> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const at = new Map<number, { ms: number; type?: string }>();
  const out = new Map<string, number>();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  const t0 = tsMs(events[0]?.eventTime as Ts);
  for (const e of events) {
    const id = Number(e.eventId);
    const ms = tsMs(e.eventTime as Ts);
    if (e.markerRecordedEventAttributes) add(COUNT_LOCAL, 1);
    if (e.activityTaskScheduledEventAttributes) add(COUNT_ACTIVITIES, 1);
    if (e.workflowTaskScheduledEventAttributes) at.set(id, { ms });
    else if (e.workflowTaskStartedEventAttributes) {
      const s = at.get(Number(e.workflowTaskStartedEventAttributes.scheduledEventId));
      if (s) add('workflow task: queue wait', ms - s.ms);
      at.set(id, { ms });
    } else if (e.workflowTaskCompletedEventAttributes) {
      const s = at.get(Number(e.workflowTaskCompletedEventAttributes.startedEventId));
      if (s) add('workflow task: run', ms - s.ms);
      add(COUNT_WFT, 1);
    } else if (e.activityTaskScheduledEventAttributes) {
      at.set(id, { ms, type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?' });
    } else if (e.activityTaskStartedEventAttributes) {
      const s = at.get(Number(e.activityTaskStartedEventAttributes.scheduledEventId));
      if (s) add(`${s.type}: queue wait`, ms - s.ms);
      at.set(id, { ms, type: s?.type });
    } else if (e.activityTaskCompletedEventAttributes) {
      const s = at.get(Number(e.activityTaskCompletedEventAttributes.startedEventId));
      if (s) add(`${s.type}: run`, ms - s.ms);
      if (s?.type === 'deliverChatReply') {
        out.set('total', ms - t0);
        out.set(COUNT_EVENTS, id);
        break;
      }
    } else if (e.timerStartedEventAttributes) at.set(id, { ms });
    else if (e.timerFiredEventAttributes) {
      const s = at.get(Number(e.timerFiredEventAttributes.startedEventId));
      if (s) add('debounce timer', ms - s.ms);
    }
  }
  return out;
}

/** CPU ticks (utime + stime) and command name of /proc/<pid>[/task/<tid>]/stat; undefined when gone. */
function statOf(file: string): { comm: string; ticks: number; ppid: number } | undefined {
  try {
    const stat = readFileSync(file, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // Fields after the command: state ppid ... utime (14th field overall) stime (15th).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { comm, ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/**
 * CPU time so far (clock ticks) of this process's threads, grouped by thread name (the main JS thread is `node`,
 * the workflow thread and the SDK's Rust runtime have their own names), and of each child process tree (the
 * Temporal dev server, moto, Ollama), grouped by command name.
 */
function cpuSnapshot(): Map<string, number> {
  const out = new Map<string, number>();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  for (const tid of readdirSync(`/proc/${process.pid}/task`)) {
    const s = statOf(`/proc/${process.pid}/task/${tid}/stat`);
    if (s) add(`bench process, thread ${s.comm}`, s.ticks);
  }
  const procs = new Map<number, { comm: string; ticks: number; ppid: number }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const s = statOf(`/proc/${e}/stat`);
    if (s) procs.set(Number(e), s);
  }
  const top = new Map<number, string>();
  for (const [pid, s] of procs) if (s.ppid === process.pid) top.set(pid, s.comm);
  for (const [pid, s] of procs) {
    let cur = pid;
    for (let i = 0; i < 20 && cur > 1 && !top.has(cur); i++) cur = procs.get(cur)?.ppid ?? 0;
    if (top.has(cur)) add(top.get(cur)!, s.ticks);
  }
  return out;
}

/** CPU seconds each entry used between two snapshots, largest first. */
function cpuSpent(before: Map<string, number>, after: Map<string, number>): [string, number][] {
  const hz = 100; // USER_HZ on Linux
  return [...after]
    .map(([k, v]): [string, number] => [k, (v - (before.get(k) ?? 0)) / hz])
    .filter(([, s]) => s >= 0.05)
    .sort((a, b) => b[1] - a[1]);
}

const MODEL = 'benchfake:1b';
const SECRET = 'bench-webhook-secret';
const QUICK = Boolean(process.env.BENCH_QUICK);
const BURSTS = Number(process.env.BENCH_CHAT_BURSTS ?? (QUICK ? 10 : 40));
const CONCURRENT = Number(process.env.BENCH_CHAT_CONCURRENT ?? (QUICK ? 20 : 200));
const QUIET_MS = 300;
const GOAL_OVERHEAD_P50_MS = 100;
/** At 200 concurrent chats: overhead targets (DESIGN.md), and how long the bench waits for each reply. */
const GOAL_CONCURRENT_P50_MS = 300;
const GOAL_CONCURRENT_P95_MS = 1000;
const REPLY_TIMEOUT_MS = 300_000;

export const bench: Bench = {
  name: 'chat',
  async run(ctx) {
    // The channel: records when each chat's reply arrives, and checks its signature.
    const arrivals = new Map<string, number>();
    const waiters = new Map<string, () => void>();
    let badSignatures = 0;
    const channel = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = performance.now();
        const raw = Buffer.concat(chunks);
        if (!verifySignature(SECRET, raw, req.headers[SIGNATURE_HEADER] as string | undefined)) badSignatures++;
        const chatId = (JSON.parse(raw.toString()) as { entity: { chatId: string } }).entity.chatId;
        if (!arrivals.has(chatId)) arrivals.set(chatId, at);
        waiters.get(chatId)?.();
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => channel.listen(0, '127.0.0.1', r));
    const callbackUrl = `http://127.0.0.1:${(channel.address() as AddressInfo).port}/replies`;
    const closeChannel = () => {
      channel.closeAllConnections();
      return new Promise<void>((r) => channel.close(() => r()));
    };

    const stack = await startStack(ctx, {
      workflows: 'orchestrator',
      llm: 'fake',
      fake: {
        model: MODEL,
        // A router answer valid under its schema (no shop data: product none), so the model path is measured.
        script: (req) => (req.format ? '{"agent":"general","product":"none","intent":"other"}' : 'Thanks, noted!'),
      },
      api: true,
      config: {
        CHANNEL_WEBHOOK_SECRET: SECRET,
        CHANNEL_CALLBACK_URL: callbackUrl,
        CHAT_QUIET_MS: QUIET_MS,
        CHAT_MAX_WAIT_MS: 10 * QUIET_MS,
      },
    }).catch(async (err: unknown) => {
      await closeChannel();
      throw err;
    });

    const run = Date.now().toString(36);
    let seq = 0;
    const workflowIds = new Map<string, string>();
    /** Posts one signed message; resolves when the webhook accepted it (the signal is in Temporal). */
    const send = async (chatId: string, text: string) => {
      const body = JSON.stringify({
        type: 'message',
        entity: { id: `b${run}-${++seq}`, chatId, plainText: text, personType: 'user', createdAt: Date.now() },
      });
      const res = await fetch(`${stack.apiUrl}/webhooks/channel`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(SECRET, body) },
        body,
      });
      if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
      workflowIds.set(chatId, ((await res.json()) as { workflowId: string }).workflowId);
      return performance.now();
    };
    const replied = (chatId: string, timeoutMs = 60_000) =>
      new Promise<number>((resolve, reject) => {
        const done = () => resolve(arrivals.get(chatId)!);
        if (arrivals.has(chatId)) return done();
        const timer = setTimeout(() => reject(new Error(`no reply for ${chatId}`)), timeoutMs);
        waiters.set(chatId, () => (clearTimeout(timer), done()));
      });

    try {
      // 1. Bursts, one chat at a time (the first also warms the worker's caches and connections).
      const overhead: number[] = [];
      for (let i = 0; i <= BURSTS; i++) {
        ctx.signal.throwIfAborted();
        const chatId = `bench-burst-${run}-${i}`;
        await send(chatId, 'hello');
        await sleep(50);
        await send(chatId, 'I have a question');
        await sleep(50);
        const last = await send(chatId, 'about delivery');
        const at = await replied(chatId);
        if (i > 0) overhead.push(at - last - QUIET_MS);
      }

      // 2. Many chats at once.
      const ids = Array.from({ length: CONCURRENT }, (_, i) => `bench-many-${run}-${i}`);
      // BENCH_CHAT_CPU_PROFILE=<file>: a V8 CPU profile of this process's main thread while the chats run.
      const profiler = process.env.BENCH_CHAT_CPU_PROFILE ? new Session() : undefined;
      if (profiler) {
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.start');
      }
      const load0 = os.loadavg()[0]!;
      const cpu0 = cpuSnapshot();
      const t0 = performance.now();
      const settled = await Promise.allSettled(
        ids.map(async (id) => {
          const sent = await send(id, 'is anyone there?');
          return (await replied(id, REPLY_TIMEOUT_MS)) - sent - QUIET_MS;
        }),
      );
      const latencies = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const missing = ids.length - latencies.length;
      const answered = ids.filter((id) => arrivals.has(id));
      const elapsedS = (Math.max(...answered.map((id) => arrivals.get(id)!)) - t0) / 1000;
      const cpu = cpuSpent(cpu0, cpuSnapshot());
      const load1 = os.loadavg()[0]!;
      if (profiler) {
        const { profile } = await profiler.post('Profiler.stop');
        writeFileSync(process.env.BENCH_CHAT_CPU_PROFILE!, JSON.stringify(profile));
        profiler.disconnect();
      }

      // 3. Profile: where the concurrent chats' time went, per reply (mean over a sample of their histories).
      const step = Math.max(1, Math.floor(ids.length / PROFILE_SAMPLE));
      const sample = answered.filter((_, i) => i % step === 0).slice(0, PROFILE_SAMPLE);
      const sums = new Map<string, number>();
      for (const id of sample) {
        for (const [k, v] of await profileChat(stack.client, workflowIds.get(id)!)) sums.set(k, (sums.get(k) ?? 0) + v);
      }
      const mean = (k: string) => (sums.get(k) ?? 0) / sample.length;
      const parts = [...sums.keys()]
        .filter((k) => k !== 'total' && !COUNTS.includes(k))
        .sort((a, b) => mean(b) - mean(a))
        .map((k) => `${k} ${round(mean(k))}`);
      const o = summarize(overhead);
      const l = summarize(latencies);
      const rows: Row[] = [
        {
          bench: 'chat',
          metric: `reply overhead after debounce p50 (n=${o.n})`,
          value: round(o.p50),
          unit: 'ms',
          goal: `≤ ${GOAL_OVERHEAD_P50_MS} ms`,
          pass: o.p50 <= GOAL_OVERHEAD_P50_MS,
          note: `reply − last message − ${QUIET_MS} ms quiet window; includes 2 instant (fake) LLM calls`,
        },
        { bench: 'chat', metric: `reply overhead after debounce p95 (n=${o.n})`, value: round(o.p95), unit: 'ms' },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: replies/s`,
          value: round(answered.length / elapsedS),
          unit: 'replies/s',
          note: `one orchestrator worker; quiet window ${QUIET_MS} ms`,
        },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: overhead p50 (n=${l.n})`,
          value: round(l.p50),
          unit: 'ms',
          goal: `≤ ${GOAL_CONCURRENT_P50_MS} ms`,
          pass: missing === 0 && l.p50 <= GOAL_CONCURRENT_P50_MS,
          note: 'reply − message accepted − quiet window; instant fake LLM',
        },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: overhead p95 (n=${l.n})`,
          value: round(l.p95),
          unit: 'ms',
          goal: `≤ ${GOAL_CONCURRENT_P95_MS} ms`,
          pass: missing === 0 && l.p95 <= GOAL_CONCURRENT_P95_MS,
        },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: no reply within ${REPLY_TIMEOUT_MS / 1000} s`,
          value: missing,
          unit: 'chats',
          pass: missing === 0,
        },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: where a reply's time goes (mean of ${sample.length} histories)`,
          value: round(mean('total')),
          unit: 'ms',
          note: `first event → reply delivered; sums per chat in ms: ${parts.join('; ')}`,
        },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: workflow tasks per reply (mean of ${sample.length} histories)`,
          value: round(mean(COUNT_WFT)),
          unit: 'tasks',
          note: COUNTS.filter((k) => k !== COUNT_WFT)
            .map((k) => `${k} ${round(mean(k))}`)
            .join('; '),
        },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: CPU per reply, all processes of the stack`,
          value: round((1000 * cpu.reduce((a, [, v]) => a + v, 0)) / Math.max(1, answered.length)),
          unit: 'ms',
          note:
            `CPU ms per reply: ${cpu.map(([k, v]) => `${k} ${round((1000 * v) / Math.max(1, answered.length))}`).join('; ')}; ` +
            `${round(elapsedS)} s wall on ${os.cpus().length} CPUs, load average ${round(load0)} → ${round(load1)}`,
        },
        {
          bench: 'chat',
          metric: 'replies with a bad signature',
          value: badSignatures,
          unit: 'count',
          pass: badSignatures === 0,
        },
      ];
      return rows;
    } finally {
      await stack.stop();
      await closeChannel();
    }
  },
};
