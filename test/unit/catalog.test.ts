import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createCatalog, mergeNodes, type Catalog, type ModelCatalog, type NodeAnswer } from '../../lib/llm/catalog';
import { createModelCheckActivities } from '../../activities/llm/model-check';
import { findModel } from '../../lib/llm/model-check';
import { requireModel } from '../../api/model-check';
import { errorHandler } from '../../api/middleware/errors';
import { ErrorType } from '../../common/errors';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';

/** Accepts TCP connections and never answers: a hung node. */
async function startSilentServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Node timeout where a test waits for a hung node: far above a healthy local fake's answer on a busy machine. */
const HUNG_NODE_TIMEOUT_MS = 3000;
/** Node timeout where every node answers (or refuses at once): it only bounds a failure, so it can be large. */
const NODE_TIMEOUT_MS = 15_000;

describe('model catalog', () => {
  let a: FakeOllama;
  let b: FakeOllama;
  let silent: { url: string; close: () => Promise<void> };
  const reply = () => 'ok';

  beforeAll(async () => {
    a = await startFakeOllama({ models: ['gemma3:270m', 'qwen3:0.6b'], script: reply });
    b = await startFakeOllama({ models: ['gemma3:270m', 'llama3'], script: reply });
    silent = await startSilentServer();
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close(), silent.close()]);
  });

  it('merges the nodes per model and reports a hung node unavailable after the node timeout', async () => {
    // Generous for the healthy local fakes on a busy machine; the hung node costs exactly this long.
    const catalog = createCatalog({
      nodes: [
        { id: 'a', url: a.url },
        { id: 'b', url: b.url },
        { id: 'hung', url: silent.url },
      ],
      nodeTimeoutMs: HUNG_NODE_TIMEOUT_MS,
    });
    const c = await catalog.get();

    expect(c.models.map((m) => m.name)).toEqual(['gemma3:270m', 'llama3:latest', 'qwen3:0.6b']);
    const gemma = c.models.find((m) => m.name === 'gemma3:270m')!;
    expect(gemma.queue).toBe('ainode-llm.gemma3:270m');
    expect(gemma.nodes.map((n) => n.id).sort()).toEqual(['a', 'b']);
    expect(gemma.available).toBe(true);
    // Without a Temporal client nobody can count pollers: absent, not zero.
    expect(gemma.pollers).toBeUndefined();
    expect(c.models.find((m) => m.name === 'llama3:latest')!.nodes).toEqual([
      { id: 'b', available: true, loaded: false },
    ]);

    const hung = c.nodes.find((n) => n.id === 'hung')!;
    expect(hung.available).toBe(false);
    expect(hung.error).toBe(`timed out after ${HUNG_NODE_TIMEOUT_MS} ms`);
    expect(hung.models).toEqual([]);
    expect(c.nodes.find((n) => n.id === 'a')).toMatchObject({ available: true, models: ['gemma3:270m', 'qwen3:0.6b'] });
    expect(Date.parse(c.generatedAt)).not.toBeNaN();

    await expect(catalog.hasModel('llama3')).resolves.toBe(true);
    await expect(catalog.hasModel('qwen3:0.6b')).resolves.toBe(true);
    await expect(catalog.hasModel('mistral')).resolves.toBe(false);
  });

  it('reports a refused node with the connection error', async () => {
    const gone = await startFakeOllama({ models: ['phi3:mini'], script: reply });
    const url = gone.url;
    await gone.close();
    const catalog = createCatalog({ nodes: [{ id: 'gone', url }], nodeTimeoutMs: NODE_TIMEOUT_MS, cacheMs: 0 });
    const c = await catalog.get();
    expect(c.nodes[0]).toMatchObject({ id: 'gone', available: false, models: [] });
    expect(c.nodes[0]!.error).toMatch(/ECONNREFUSED/);
    expect(c.models).toEqual([]);
    await expect(catalog.hasModel('phi3:mini')).resolves.toBe(false);
  });

  it('reuses one answer for bursts and asks again after cacheMs', async () => {
    const node = await startFakeOllama({ models: ['gemma3:270m'], script: reply });
    const cached = createCatalog({
      nodes: [{ id: 'n', url: node.url }],
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      cacheMs: 60_000,
    });
    const fresh = createCatalog({ nodes: [{ id: 'n', url: node.url }], nodeTimeoutMs: NODE_TIMEOUT_MS, cacheMs: 0 });
    const [first, second] = await Promise.all([cached.get(), cached.get()]);
    expect(second).toBe(first);
    // Even uncached, callers at the same moment share the build in flight (no burst of node requests).
    const [a, b] = await Promise.all([fresh.get(), fresh.get()]);
    expect(b).toBe(a);
    expect((await fresh.get()).nodes[0]!.available).toBe(true);

    await node.close();
    // Within the cache window the earlier answer stands; an uncached catalog sees the node gone.
    expect(await cached.get()).toBe(first);
    const after = await fresh.get();
    expect(after.nodes[0]!.available).toBe(false);
    await expect(fresh.hasModel('gemma3:270m')).resolves.toBe(false);
  });

  it('within staleMs answers at once with the last catalog and refreshes it in the background', async () => {
    const node = await startFakeOllama({ models: ['gemma3:270m'], script: reply });
    const swr = createCatalog({
      nodes: [{ id: 'n', url: node.url }],
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      cacheMs: 0,
      staleMs: 60_000,
    });
    const first = await swr.get();
    expect(first.nodes[0]!.available).toBe(true);
    await node.close();
    // Stale: the last answer comes back at once, and a refresh starts...
    expect(await swr.get()).toBe(first);
    // ...whose answer (the node gone) replaces it once it is in.
    let latest = first;
    for (let i = 0; i < 200 && latest.nodes[0]!.available; i++) {
      await new Promise((r) => setTimeout(r, 25));
      latest = await swr.get();
    }
    expect(latest.nodes[0]!.available).toBe(false);
  });

  it('merges loaded state only from available nodes, and sizes from every node', () => {
    const nodes: NodeAnswer[] = [
      { id: 'x', url: 'http://x', available: true, models: ['m:1', 'm:2'], loaded: ['m:2'], sizes: { 'm:2': 20 } },
      { id: 'y', url: 'http://y', available: false, error: 'down', models: ['m:1'], loaded: ['m:1'] },
    ];
    const models = mergeNodes(nodes, new Map([['ainode-llm.m:1', 3]]));
    expect(models).toEqual([
      {
        id: 'm:1',
        name: 'm:1',
        size: 0,
        status: 'available',
        queue: 'ainode-llm.m:1',
        pollers: 3,
        loaded: false,
        available: true,
        nodes: [
          { id: 'x', available: true, loaded: false },
          { id: 'y', available: false, loaded: true },
        ],
      },
      {
        id: 'm:2',
        name: 'm:2',
        size: 20,
        status: 'available',
        queue: 'ainode-llm.m:2',
        loaded: true,
        available: true,
        nodes: [{ id: 'x', available: true, loaded: true }],
      },
    ]);
  });

  it('a model whose queue has 0 pollers is unavailable, with the reason; unknown pollers keep node availability', () => {
    const nodes: NodeAnswer[] = [
      { id: 'x', url: 'http://x', available: true, models: ['new:1', 'old:1', 'other:1'], loaded: [] },
    ];
    const models = mergeNodes(
      nodes,
      new Map([
        ['ainode-llm.new:1', 0],
        ['ainode-llm.old:1', 2],
      ]),
    );
    const by = (name: string) => models.find((m) => m.name === name)!;
    expect(by('new:1')).toMatchObject({
      pollers: 0,
      available: false,
      status: 'unavailable',
      unavailableReason: 'no llm worker polls ainode-llm.new:1',
    });
    expect(by('old:1')).toMatchObject({ pollers: 2, available: true, status: 'available' });
    expect(by('old:1').unavailableReason).toBeUndefined();
    // Not in the map: Temporal was not asked (or did not answer) for it.
    expect(by('other:1')).toMatchObject({ available: true, status: 'available' });
    expect(by('other:1').pollers).toBeUndefined();
  });

  it('a model only on unreachable nodes is unavailable, naming the nodes and their errors', () => {
    const models = mergeNodes([
      { id: 'y', url: 'http://y', available: false, error: 'connect ECONNREFUSED', models: ['m:1'], loaded: [] },
    ]);
    expect(models[0]).toMatchObject({
      available: false,
      status: 'unavailable',
      unavailableReason: 'no reachable node serves it (y: connect ECONNREFUSED)',
    });
  });
});

/** An Ollama `/api/tags` with real-looking sizes (the fake Ollama reports size 1 for every model). */
async function startTagsServer(models: { name: string; size: number }[]) {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/api/tags') return void res.end(JSON.stringify({ models }));
    if (req.url === '/api/ps') return void res.end(JSON.stringify({ models: [] }));
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A Temporal client that answers DescribeTaskQueue from a table (queue → poller count) and records the asks. */
function fakeTemporal(pollers: Record<string, number>) {
  const asked: string[] = [];
  const client = {
    connection: {
      withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
    },
    // The activity runner ties the Worker's client to the activity's cancellation.
    withAbortSignal: <T>(_signal: AbortSignal, fn: () => Promise<T>) => fn(),
    workflowService: {
      describeTaskQueue: async (req: { taskQueue: { name: string } }) => {
        asked.push(req.taskQueue.name);
        const n = pollers[req.taskQueue.name];
        if (n === undefined) throw new Error('no such queue in the fake');
        return { pollers: Array.from({ length: n }, (_, i) => ({ identity: `w${i}` })) };
      },
    },
  } as unknown as Client;
  return { client, asked };
}

describe('GET /models entries (through get(), with pollers and compat fields)', () => {
  let tags: Awaited<ReturnType<typeof startTagsServer>>;
  beforeAll(async () => {
    tags = await startTagsServer([
      { name: 'llama3:8b', size: 4661224676 },
      { name: 'fresh:latest', size: 1234 },
    ]);
  });
  afterAll(() => tags.close());

  it('carries id, name, size from /api/tags and status; a queue nobody polls makes its model unavailable', async () => {
    const { client, asked } = fakeTemporal({ 'ainode-llm.llama3:8b': 1, 'ainode-llm.fresh:latest': 0 });
    const catalog = createCatalog({
      nodes: [{ id: 'n', url: tags.url }],
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      temporal: client,
    });
    const c = await catalog.get();
    expect(asked.sort()).toEqual(['ainode-llm.fresh:latest', 'ainode-llm.llama3:8b']);
    expect(c.models.find((m) => m.name === 'llama3:8b')).toMatchObject({
      id: 'llama3:8b',
      name: 'llama3:8b',
      size: 4661224676,
      status: 'available',
      available: true,
      pollers: 1,
    });
    expect(c.models.find((m) => m.name === 'fresh:latest')).toMatchObject({
      id: 'fresh:latest',
      size: 1234,
      status: 'unavailable',
      available: false,
      pollers: 0,
      unavailableReason: 'no llm worker polls ainode-llm.fresh:latest',
    });
    // The node list keeps its shape: model names only.
    expect(c.nodes[0]).toEqual(expect.objectContaining({ models: ['fresh:latest', 'llama3:8b'] }));
    expect(c.nodes[0]).not.toHaveProperty('sizes');
    await expect(catalog.hasModel('llama3:8b')).resolves.toBe(true);
    await expect(catalog.hasModel('fresh')).resolves.toBe(false);
    expect(findModel(c, 'fresh')?.name).toBe('fresh:latest');
    expect(findModel(c, 'nope')).toBeUndefined();
  });

  it('a failed poller lookup leaves the count unknown and the model available', async () => {
    const { client } = fakeTemporal({ 'ainode-llm.llama3:8b': 1 });
    const catalog = createCatalog({
      nodes: [{ id: 'n', url: tags.url }],
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      temporal: client,
    });
    const fresh = findModel(await catalog.get(), 'fresh:latest')!;
    expect(fresh.pollers).toBeUndefined();
    expect(fresh).toMatchObject({ available: true, status: 'available' });
  });
});

/** A catalog whose answer is fixed (what requireModel and assertModelServed see). */
function fixedCatalog(nodes: NodeAnswer[], pollers?: Map<string, number>): ModelCatalog {
  const catalog: Catalog = { models: mergeNodes(nodes, pollers), nodes, generatedAt: new Date(0).toISOString() };
  return { get: async () => catalog, hasModel: async (m) => findModel(catalog, m)?.available ?? false };
}

const NODE_UP: NodeAnswer = { id: 'a', url: 'http://a', available: true, models: ['ok:1', 'new:1'], loaded: [] };
const NODE_DOWN: NodeAnswer = {
  id: 'b',
  url: 'http://b',
  available: false,
  error: 'down',
  models: ['gone:1'],
  loaded: [],
};
const POLLERS = new Map([
  ['ainode-llm.ok:1', 1],
  ['ainode-llm.new:1', 0],
]);

describe('requireModel (the API check before starting work)', () => {
  const app = express();
  app.get('/check/:model', async (req, res, next) => {
    try {
      const entry = await requireModel(fixedCatalog([NODE_UP, NODE_DOWN], POLLERS), req.params.model);
      res.json({ ok: entry.name });
    } catch (err) {
      next(err);
    }
  });
  app.use(errorHandler);

  it('passes an available model', async () => {
    const res = await request(app).get('/check/ok:1');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: 'ok:1' });
  });

  it('400 model_not_found naming the served models when no node lists it', async () => {
    const res = await request(app).get('/check/mistral');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('model_not_found');
    expect(res.body.error.message).toBe('No node serves model "mistral" (served: ok:1; see GET /models)');
    expect(res.headers['retry-after']).toBeUndefined();
  });

  it('503 model_unavailable with Retry-After when listed but nobody polls its queue', async () => {
    const res = await request(app).get('/check/new:1');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('15');
    expect(res.body.error).toMatchObject({
      code: 'model_unavailable',
      details: { model: 'new:1', reason: 'no llm worker polls ainode-llm.new:1' },
    });
    expect(res.body.error.message).toMatch(/^Model "new:1" is unavailable right now: no llm worker polls/);
  });

  it('503 model_unavailable when only unreachable nodes list it', async () => {
    const res = await request(app).get('/check/gone:1');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('15');
    expect(res.body.error.details.reason).toBe('no reachable node serves it (b: down)');
  });
});

describe('assertModelServed (the workflow-side check)', () => {
  const quiet = { logger: new DefaultLogger('ERROR') };
  async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  const check = (catalog: ModelCatalog, model: string, client?: Client) =>
    new MockActivityEnvironment({}, { ...quiet, client }).run(
      createModelCheckActivities({ catalog }).assertModelServed,
      model,
    );

  it('ModelNotFound, non-retryable, when no node lists the model', async () => {
    const f = await failureOf(check(fixedCatalog([NODE_UP], POLLERS), 'mistral'));
    expect(f).toMatchObject({ type: ErrorType.ModelNotFound, nonRetryable: true });
    expect(f.message).toMatch(/served: ok:1/);
  });

  it('ModelUnavailable, non-retryable, when nobody polls its queue (so the workflow does not hang)', async () => {
    const f = await failureOf(check(fixedCatalog([NODE_UP], POLLERS), 'new:1'));
    expect(f).toMatchObject({ type: ErrorType.ModelUnavailable, nonRetryable: true });
    expect(f.message).toMatch(/no llm worker polls ainode-llm\.new:1/);
    await expect(check(fixedCatalog([NODE_UP], POLLERS), 'ok:1')).resolves.toBeUndefined();
  });

  it("counts pollers with the Worker's client when the catalog cannot (the orchestrator's catalog)", async () => {
    const noPollers = fixedCatalog([NODE_UP]);
    const { client, asked } = fakeTemporal({ 'ainode-llm.ok:1': 2, 'ainode-llm.new:1': 0 });
    await expect(check(noPollers, 'ok:1', client)).resolves.toBeUndefined();
    const f = await failureOf(check(noPollers, 'new:1', client));
    expect(f).toMatchObject({ type: ErrorType.ModelUnavailable, nonRetryable: true });
    expect(asked).toEqual(['ainode-llm.ok:1', 'ainode-llm.new:1']);
    // No client at all: the node's word stands.
    await expect(check(noPollers, 'new:1')).resolves.toBeUndefined();
  });
});
