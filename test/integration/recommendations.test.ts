/**
 * Recommendations through a real `@grpc/grpc-js` client and the SSE twin, against real parts: a Temporal dev
 * server, the moto emulator and a scripted streaming Ollama node (exact text, chunk timing, failures, cancel).
 * The API listens on a real port and shares its StreamHub with the gRPC server, so tokens travel the production
 * path: llm activity → POST /internal/streams/:id → the gRPC stream (or the SSE response).
 */
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import { loadRecommendationProto, startGrpcServer, type RunningGrpcServer } from '../../api/grpc/server';
import type { ApiDeps } from '../../api/deps';
import { createCatalog } from '../../lib/llm/catalog';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { StreamHub } from '../../lib/stream/hub';
import { readDailyTokens, utcDay } from '../../lib/usage/budget';
import type { Config } from '../../common/config';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { forever, startStreamingOllama, type StreamReply, type StreamingOllama } from '../helpers/streaming-ollama';
import { recordHistory } from '../helpers/histories';
import type { RunningWorkers } from '../../scripts/lib/workers';
import { startTestWorkers } from '../helpers/workers';

jest.setTimeout(240_000);

const KEY = 'rec-key-a';
const FAKE = 'rec-fake:1b';
const TEXT = '1. Temporal in practice: durable workflows. 2. gRPC streaming in Node: server streams explained.';
const CONTEXT = {
  visited_sites: [
    { url: 'https://github.com/temporalio/sdk-typescript', title: 'Temporal TypeScript SDK' },
    { url: 'https://stackoverflow.com/questions/1/grpc-streaming-node', title: 'gRPC streaming in Node' },
  ],
  search_queries: ['temporal workflow typescript', 'grpc node streaming'],
  time_spent: { 'github.com': 1200, 'stackoverflow.com': 300 },
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const words = (text: string) => text.split(/(?<= )/);

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;
let streaming: StreamingOllama;
let config: Config;
let deps: ApiDeps;
let http: Server;
let baseUrl: string;
let grpcServer: RunningGrpcServer;
let missingModelServer: RunningGrpcServer;
let script: () => StreamReply = () => ({ pieces: words(TEXT), delayMs: 15 });

interface RecommendResponse {
  content: string;
  is_final: string;
}
type RecommendClient = grpc.Client & {
  Recommend(req: Record<string, string>, md?: grpc.Metadata): grpc.ClientReadableStream<RecommendResponse>;
};

function client(port = grpcServer.port): RecommendClient {
  const loaded = grpc.loadPackageDefinition(loadRecommendationProto()) as unknown as {
    recommendation: { RecommendationService: grpc.ServiceClientConstructor };
  };
  return new loaded.recommendation.RecommendationService(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as RecommendClient;
}

const auth = (key = KEY) => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  return md;
};

interface Outcome {
  messages: RecommendResponse[];
  id?: string;
  error?: grpc.ServiceError;
}

/** Reads a whole call: its messages, the run id from the response metadata, and the status when it failed. */
function collect(call: grpc.ClientReadableStream<RecommendResponse>): Promise<Outcome> {
  const out: Outcome = { messages: [] };
  return new Promise((resolve) => {
    call.on('metadata', (md) => (out.id = md.get('x-recommendation-id')[0] as string | undefined));
    call.on('data', (m: RecommendResponse) => out.messages.push(m));
    call.on('error', (err: grpc.ServiceError) => {
      out.error = err;
      resolve(out);
    });
    call.on('end', () => resolve(out));
  });
}

const request = (overrides: Record<string, string> = {}) => ({
  user_id: 'user-1',
  browser_context: JSON.stringify(CONTEXT),
  content_type: 'technical',
  content_period: 'recent',
  ...overrides,
});

beforeAll(async () => {
  env = await createTemporalEnv();
  streaming = await startStreamingOllama({ models: [FAKE], reply: () => script() });
  config = testConfig({
    API_KEYS: `${KEY}:tenant-a`,
    S3_BUCKET: uid('rec'),
    OLLAMA_NODES: `stream-node=${streaming.url}`,
    RECOMMEND_MODEL: FAKE,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = await startTestWorkers(env, {
    config,
    storage,
    workflowsPath: require.resolve('../../workflows/recommendation-workflow'),
    nodes: [{ id: 'stream-node', url: streaming.url }],
  });
  const catalog = createCatalog({
    nodes: config.OLLAMA_NODES,
    nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
    temporal: env.client,
    namespace: 'default',
    cacheMs: 0,
  });
  const streams = new StreamHub();
  deps = { config, temporal: env.client, storage, catalog, logger: pino({ level: 'silent' }), streams };
  http = createApp(deps).listen(0, '127.0.0.1');
  await new Promise<void>((r) => http.once('listening', () => r()));
  baseUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  grpcServer = await startGrpcServer({ deps, hub: streams, host: '127.0.0.1', port: 0, internalUrl: baseUrl });
  missingModelServer = await startGrpcServer({
    deps: { ...deps, config: { ...config, RECOMMEND_MODEL: 'nobody-serves:1b' } },
    hub: streams,
    host: '127.0.0.1',
    port: 0,
    internalUrl: baseUrl,
  });
});

afterAll(async () => {
  await grpcServer?.close(1000);
  await missingModelServer?.close(1000);
  http?.closeAllConnections();
  await new Promise((r) => http?.close(r));
  await workers?.stop();
  await env?.teardown();
  await streaming?.close();
  storage?.close();
});

describe('gRPC Recommend', () => {
  it('streams the model’s text in ≥ 2 chunks, then a final message; metered; the result is fetchable', async () => {
    script = () => ({ pieces: words(TEXT), delayMs: 15 });
    const out = await collect(client().Recommend(request(), auth()));
    expect(out.error).toBeUndefined();
    const chunks = out.messages.slice(0, -1);
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    expect(chunks.every((m) => m.is_final === 'false' && m.content.length > 0)).toBe(true);
    expect(chunks.map((m) => m.content).join('')).toBe(TEXT);
    expect(out.messages.at(-1)).toEqual({ content: '', is_final: 'true' });
    expect(out.id).toMatch(/^rec-/);

    // The prompt was built from the analysis (topics), with a bounded num_predict.
    const node = streaming.requests.at(-1)!;
    expect(JSON.stringify(node.body.messages)).toContain('Topics: grpc, node, streaming, typescript, sdk, temporal');
    expect(node.options?.num_predict).toBe(config.RECOMMEND_NUM_PREDICT);

    // The stream ends with the text; the run itself ends after metering, then the full result is there.
    const running = (await (
      await fetch(`${baseUrl}/recommendations/${out.id}`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json()) as { status: string };
    expect(['running', 'completed']).toContain(running.status);
    await env.client.workflow.getHandle(out.id!).result();
    const res = await fetch(`${baseUrl}/recommendations/${out.id}`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; content: string; analysis: { topics: string[] } };
    expect(body.status).toBe('completed');
    expect(body.content).toBe(TEXT);
    expect(body.analysis.topics.slice(0, 3)).toEqual(['grpc', 'node', 'streaming']);

    expect((await env.client.workflow.getHandle(out.id!).describe()).memo?.tenant).toBe('tenant-a');
    await recordHistory('recommendation', env.client.workflow.getHandle(out.id!));
  });

  it('charges the call to the key (usage source recommendations)', async () => {
    const before = await readDailyTokens(storage, keyIdOf(KEY), utcDay());
    const out = await collect(client().Recommend(request(), auth()));
    expect(out.error).toBeUndefined();
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await sleep(50);
      after = await readDailyTokens(storage, keyIdOf(KEY), utcDay());
    }
    expect(after).toBeGreaterThan(before);
    await env.client.workflow.getHandle(out.id!).result();
  });

  it.each([
    ['no metadata', undefined],
    ['an unknown key', auth('not-a-key')],
  ])('%s → UNAUTHENTICATED', async (_label, md) => {
    const out = await collect(client().Recommend(request(), md ?? new grpc.Metadata()));
    expect(out.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(out.messages).toEqual([]);
  });

  it.each([
    ['not JSON', { browser_context: '{visited' }, /^browser_context: not JSON/],
    ['visited_sites missing', { browser_context: '{"search_queries": []}' }, /visited_sites missing$/],
    ['search_queries missing', { browser_context: '{"visited_sites": []}' }, /search_queries missing$/],
    ['too long', { browser_context: 'x'.repeat(10_001) }, /10001 characters, more than the 10000 allowed/],
    ['an unknown content type', { content_type: 'poetry' }, /^content_type: unknown "poetry"/],
  ])('%s → INVALID_ARGUMENT with a precise message', async (_label, overrides, message) => {
    const out = await collect(client().Recommend(request(overrides), auth()));
    expect(out.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(out.error?.details).toMatch(message);
  });

  it('no node serves the model → UNAVAILABLE', async () => {
    const out = await collect(client(missingModelServer.port).Recommend(request(), auth()));
    expect(out.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(out.error?.details).toContain('nobody-serves:1b');
  });

  it('a failing node → INTERNAL, not a hung stream', async () => {
    script = () => ({ pieces: [], fail: { status: 500, error: 'something broke inside the runner' } });
    const out = await collect(client().Recommend(request(), auth()));
    expect(out.error?.code).toBe(grpc.status.INTERNAL);
    expect(out.messages.filter((m) => m.is_final === 'true')).toEqual([]);
  });

  it('a client that cancels stops the generation: the node’s stream is closed, the workflow cancelled', async () => {
    script = () => ({ pieces: forever('more ', 'words '), delayMs: 20 });
    const before = streaming.requests.length;
    const call = client().Recommend(request(), auth());
    let id: string | undefined;
    call.on('metadata', (md) => (id = md.get('x-recommendation-id')[0] as string));
    let chunks = 0;
    await new Promise<void>((resolve) => {
      call.on('data', () => {
        if (++chunks === 3) resolve();
      });
    });
    call.on('error', () => undefined);
    call.cancel();
    const node = streaming.requests[before]!;
    await node.ended;
    expect(node.aborted).toBe(true);
    expect(node.finished).toBe(false);
    const handle = env.client.workflow.getHandle(id!);
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('CANCELLED');
  });

  it('serves gRPC health checks', async () => {
    const { protoPath } = await import('grpc-health-check');
    const protoLoader = await import('@grpc/proto-loader');
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const health = new def.grpc.health.v1.Health(
      `127.0.0.1:${grpcServer.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string }) => void): void;
    };
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      health.Check({ service: 'recommendation.RecommendationService' }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    expect(res.status).toBe('SERVING');
    health.close();
  });
  it('serves reflection: grpcurl can list the services', async () => {
    const protoLoader = await import('@grpc/proto-loader');
    const file = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(file, { keepCase: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const refl = new def.grpc.reflection.v1.ServerReflection(
      `127.0.0.1:${grpcServer.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<object, Record<string, unknown>> };
    const call = refl.ServerReflectionInfo();
    const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
      call.write({ list_services: '' });
    });
    call.end();
    refl.close();
    const names = (reply.list_services_response as { service: { name: string }[] }).service.map((x) => x.name);
    expect(names).toEqual(expect.arrayContaining(['recommendation.RecommendationService', 'grpc.health.v1.Health']));
  });
});

describe('latency and load (measured, printed)', () => {
  const pct = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

  /** Milliseconds to the first chunk of the same scripted reply straight from the node. */
  async function directFirstChunk(): Promise<number> {
    const t0 = performance.now();
    const res = await fetch(`${streaming.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: FAKE, messages: [{ role: 'user', content: 'x' }], stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    const ms = performance.now() - t0;
    await reader.cancel();
    return ms;
  }

  function grpcFirstChunk(): Promise<number> {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const call = client().Recommend(request(), auth());
      let first: number | undefined;
      call.on('data', () => (first ??= performance.now() - t0));
      call.on('error', reject);
      call.on('end', () => resolve(first!));
    });
  }

  it('time to the first chunk through gRPC vs the node directly; 50 concurrent streams all complete', async () => {
    script = () => ({ pieces: words(TEXT), delayMs: 5 });
    const direct: number[] = [];
    const viaGrpc: number[] = [];
    for (let i = 0; i < 20; i++) {
      direct.push(await directFirstChunk());
      viaGrpc.push(await grpcFirstChunk());
    }
    const outs = await Promise.all(Array.from({ length: 50 }, () => collect(client().Recommend(request(), auth()))));
    // Each failed stream with its reason, so a failure here says what went wrong.
    const failed = outs.filter((o) => o.messages.at(-1)?.is_final !== 'true');
    expect(failed.map((o) => `${o.id}: ${o.error?.code ?? '-'} ${o.error?.details ?? 'no final message'}`)).toEqual([]);
    console.log(
      `first chunk (ms, 20 sequential): direct p50 ${pct(direct, 0.5).toFixed(1)} p95 ${pct(direct, 0.95).toFixed(1)}; ` +
        `gRPC p50 ${pct(viaGrpc, 0.5).toFixed(1)} p95 ${pct(viaGrpc, 0.95).toFixed(1)}; 50 concurrent streams completed`,
    );
    await Promise.all(outs.map((o) => env.client.workflow.getHandle(o.id!).result()));
  });
});

describe('SSE twin POST /recommendations', () => {
  it('streams the same chunks and a final event', async () => {
    script = () => ({ pieces: words(TEXT), delayMs: 15 });
    const res = await fetch(`${baseUrl}/recommendations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(request()),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = (await res.text())
      .split('\n\n')
      .filter(Boolean)
      .map((e) => JSON.parse(e.replace(/^data: /, '')) as { content: string; is_final: string; id?: string });
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(
      events
        .slice(0, -1)
        .map((e) => e.content)
        .join(''),
    ).toBe(TEXT);
    expect(events.at(-1)).toMatchObject({ content: '', is_final: 'true', id: res.headers.get('x-recommendation-id') });
    // The run ends after its metering; let it, so no long poll outlives the test.
    await env.client.workflow.getHandle(res.headers.get('x-recommendation-id')!).result();
  });

  it('bad input → 400 with the same precise message', async () => {
    const res = await fetch(`${baseUrl}/recommendations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(request({ browser_context: '{"visited_sites": []}' })),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      'browser_context: search_queries missing',
    );
  });
});

/** The API's key fingerprint (api/middleware/auth.ts): the first 8 bytes of the key's sha256, in hex. */
function keyIdOf(key: string): string {
  return createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
}
