import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createCatalog, mergeNodes, type CatalogNode } from '../../activities/llm/catalog';
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

  it('merges the nodes per model and reports a hung node unavailable without waiting for it', async () => {
    const catalog = createCatalog({
      nodes: [
        { id: 'a', url: a.url },
        { id: 'b', url: b.url },
        { id: 'hung', url: silent.url },
      ],
      nodeTimeoutMs: 300,
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
    expect(hung.error).toMatch(/timed out after 300 ms/);
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
    const catalog = createCatalog({ nodes: [{ id: 'gone', url }], nodeTimeoutMs: 2000, cacheMs: 0 });
    const c = await catalog.get();
    expect(c.nodes[0]).toMatchObject({ id: 'gone', available: false, models: [] });
    expect(c.nodes[0]!.error).toMatch(/ECONNREFUSED/);
    expect(c.models).toEqual([]);
    await expect(catalog.hasModel('phi3:mini')).resolves.toBe(false);
  });

  it('reuses one answer for bursts and asks again after cacheMs', async () => {
    const node = await startFakeOllama({ models: ['gemma3:270m'], script: reply });
    const cached = createCatalog({ nodes: [{ id: 'n', url: node.url }], nodeTimeoutMs: 1000, cacheMs: 60_000 });
    const fresh = createCatalog({ nodes: [{ id: 'n', url: node.url }], nodeTimeoutMs: 1000, cacheMs: 0 });
    const [first, second] = await Promise.all([cached.get(), cached.get()]);
    expect(second).toBe(first);
    expect((await fresh.get()).nodes[0]!.available).toBe(true);

    await node.close();
    // Within the cache window the earlier answer stands; an uncached catalog sees the node gone.
    expect(await cached.get()).toBe(first);
    const after = await fresh.get();
    expect(after.nodes[0]!.available).toBe(false);
    await expect(fresh.hasModel('gemma3:270m')).resolves.toBe(false);
  });

  it('merges loaded state only from available nodes', () => {
    const nodes: CatalogNode[] = [
      { id: 'x', url: 'http://x', available: true, models: ['m:1', 'm:2'], loaded: ['m:2'] },
      { id: 'y', url: 'http://y', available: false, error: 'down', models: ['m:1'], loaded: ['m:1'] },
    ];
    const models = mergeNodes(nodes, new Map([['ainode-llm.m:1', 3]]));
    expect(models).toEqual([
      {
        name: 'm:1',
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
        name: 'm:2',
        queue: 'ainode-llm.m:2',
        loaded: true,
        available: true,
        nodes: [{ id: 'x', available: true, loaded: true }],
      },
    ]);
  });
});
