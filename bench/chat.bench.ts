/**
 * Chat reply latency and throughput. Replies go to a local signed callback (the real channel adapter path),
 * whose arrival time is the reply time. The LLM is a scripted fake Ollama answering at once, so what is
 * measured is the platform: webhook → signalWithStart → debounce → router + agent activities → callback.
 * 1. Bursts of 3 messages: (reply − last message accepted) − quiet window = overhead, which includes the two
 *    (instant) LLM calls. Target (docs/operations.md, Benchmarks): ≤ 100 ms p50.
 * 2. 200 chats at once on one orchestrator worker: replies per second and p95 latency.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { signBody, SIGNATURE_HEADER, verifySignature } from '../lib/channel/signature';
import { round, sleep, startStack, summarize, type Bench, type Row } from './lib';

const MODEL = 'benchfake:1b';
const SECRET = 'bench-webhook-secret';
const QUICK = Boolean(process.env.BENCH_QUICK);
const BURSTS = Number(process.env.BENCH_CHAT_BURSTS ?? (QUICK ? 10 : 40));
const CONCURRENT = Number(process.env.BENCH_CHAT_CONCURRENT ?? (QUICK ? 20 : 200));
const QUIET_MS = 300;
const GOAL_OVERHEAD_P50_MS = 100;

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
      const t0 = performance.now();
      const latencies = await Promise.all(
        ids.map(async (id) => {
          const sent = await send(id, 'is anyone there?');
          return (await replied(id, 300_000)) - sent - QUIET_MS;
        }),
      );
      const elapsedS = (Math.max(...ids.map((id) => arrivals.get(id)!)) - t0) / 1000;
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
          value: round(CONCURRENT / elapsedS),
          unit: 'replies/s',
          note: `one orchestrator worker; quiet window ${QUIET_MS} ms`,
        },
        {
          bench: 'chat',
          metric: `${CONCURRENT} concurrent chats: overhead p95`,
          value: round(l.p95),
          unit: 'ms',
          note: `p50 ${round(l.p50)} ms; after the quiet window`,
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
