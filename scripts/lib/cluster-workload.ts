/**
 * A mixed workload driven through a cluster's HTTP API (scripts/lib/cluster.ts): jobs (a container whose script
 * makes LLM calls through the SDK), chats (signed webhook messages; replies arrive at a local signed callback) and
 * designs (questions answered with defaults). Shared by the cluster fault test and the cluster bench.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import yazl from 'yazl';
import { signBody, SIGNATURE_HEADER, verifySignature } from '../../lib/channel/signature';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ApiClient {
  url: string;
  key: string;
}

export async function api(
  c: ApiClient,
  method: string,
  path: string,
  body?: unknown,
  raw?: Buffer,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${c.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${c.key}`,
      ...(raw
        ? { 'content-type': 'application/zip' }
        : body !== undefined
          ? { 'content-type': 'application/json' }
          : {}),
    },
    body: raw ? new Uint8Array(raw) : body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** The channel: records each chat's replies and checks their signatures. */
export interface Channel {
  url: string;
  replies: Map<string, { at: number; text: string }[]>;
  badSignatures: () => number;
  /** Resolves when `chatId` has at least `n` replies. */
  replied(chatId: string, n: number, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

export async function startChannel(secret: string): Promise<Channel> {
  const replies = new Map<string, { at: number; text: string }[]>();
  let bad = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      if (!verifySignature(secret, raw, req.headers[SIGNATURE_HEADER] as string | undefined)) bad++;
      try {
        const msg = JSON.parse(raw.toString()) as { entity: { chatId: string; plainText?: string } };
        const list = replies.get(msg.entity.chatId) ?? [];
        list.push({ at: performance.now(), text: msg.entity.plainText ?? '' });
        replies.set(msg.entity.chatId, list);
      } catch {
        bad++;
      }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/replies`,
    replies,
    badSignatures: () => bad,
    async replied(chatId, n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const list = replies.get(chatId) ?? [];
        if (list.length >= n) return list[n - 1]!.at;
        await sleep(100);
      }
      throw new Error(`chat ${chatId}: ${replies.get(chatId)?.length ?? 0} of ${n} replies after ${timeoutMs} ms`);
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function zipOf(source: string): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  zip.addBuffer(Buffer.from(source), 'main.py');
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** A job script: `calls` SDK calls with `pauseS` seconds between them, then prints how many answered. */
export function jobScript(calls: number, pauseS: number): string {
  return `import time, ai_client
answered = 0
for i in range(${calls}):
    if i:
        time.sleep(${pauseS})
    r = ai_client.generate("Say one word: sky colour?", num_predict=4, temperature=0)
    answered += 1 if isinstance(r, dict) or r else 0
print(answered)
`;
}

export async function uploadFunction(c: ApiClient, source: string): Promise<string> {
  const res = await api(c, 'POST', '/functions', undefined, await zipOf(source));
  if (res.status !== 201) throw new Error(`POST /functions answered ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.functionId as string;
}

export async function startJob(c: ApiClient, functionId: string, modelId: string): Promise<string> {
  const res = await api(c, 'POST', '/run', { functionId, modelId, timeoutSec: 300 });
  if (res.status !== 202) throw new Error(`POST /run answered ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.jobId as string;
}

/** Long-polls GET /jobs/:id until it ends; returns the final record. */
export async function waitJob(c: ApiClient, jobId: string, timeoutMs: number): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = await api(c, 'GET', `/jobs/${jobId}?waitMs=20000`).catch(() => undefined);
    if (s && ['succeeded', 'failed', 'cancelled'].includes(s.body?.status) && s.body.result) return s.body;
    await sleep(200);
  }
  throw new Error(`job ${jobId} did not end within ${timeoutMs} ms`);
}

let seq = 0;
/** One signed customer message to POST /webhooks/channel. */
export async function sendChat(apiUrl: string, secret: string, chatId: string, text: string): Promise<void> {
  const body = JSON.stringify({
    type: 'message',
    entity: { id: `m-${chatId}-${++seq}`, chatId, plainText: text, personType: 'user', createdAt: Date.now() },
  });
  const res = await fetch(`${apiUrl}/webhooks/channel`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(secret, body) },
    body,
    signal: AbortSignal.timeout(60_000),
  });
  if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
}

export async function startDesign(c: ApiClient, modelId: string, request: string): Promise<string> {
  const res = await api(c, 'POST', '/designs', {
    request,
    modelId,
    maxFixIterations: 0,
    maxQuestionRounds: 1,
    options: { temperature: 0, seed: 7 },
  });
  if (res.status !== 202) throw new Error(`POST /designs answered ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

/** Polls a design until it is done (questions answered with defaults); returns its last state. */
export async function settleDesign(c: ApiClient, id: string, timeoutMs: number): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await api(c, 'GET', `/designs/${id}`).catch(() => undefined);
    const body = res?.body as Record<string, any> | undefined;
    if (body && res!.status === 200) {
      if (body.status !== 'running') return body;
      if (['completed', 'invalid', 'ended'].includes(body.phase)) return body;
      if (body.phase === 'waiting_for_answers' && body.questions?.length > 0) {
        const answers = Object.fromEntries(
          (body.questions as { id: string }[]).map((q) => [q.id, 'use a sensible default']),
        );
        await api(c, 'POST', `/designs/${id}/answers?wait=true`, { answers }).catch(() => undefined);
      }
    }
    await sleep(1000);
  }
  throw new Error(`design ${id} did not settle within ${timeoutMs} ms`);
}
