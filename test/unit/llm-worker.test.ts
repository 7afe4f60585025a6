import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createOllamaClient } from '../../activities/llm';
import { freePort, manifestPath, prepareNodeModelsDir } from '../../scripts/lib/services';
import { nodeModels } from '../../scripts/lib/stack';
import { planRefresh, readServedModels, servedModels } from '../../workers/llm';
import { startFakeOllama } from '../helpers/fake-ollama';

describe('servedModels (what an llm worker polls)', () => {
  it('lists each model once, `x` and `x:latest` being the same model', async () => {
    const fake = await startFakeOllama({ models: ['gemma3', 'gemma3:latest', 'qwen3:0.6b'], script: () => '' });
    try {
      const models = await servedModels(createOllamaClient(fake.url), { id: 'n1', url: fake.url });
      expect(models).toEqual(['gemma3:latest', 'qwen3:0.6b']);
    } finally {
      await fake.close();
    }
  });

  it('waits for a node that comes up late', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const warnings: string[] = [];
    // The node comes up once the worker has said it is waiting: a real failed read, not a timed guess.
    let waited!: () => void;
    const waiting = new Promise<void>((r) => (waited = r));
    const logger = { warn: (m: string) => (warnings.push(m), waited()) } as never;
    const pending = servedModels(createOllamaClient(url), { id: 'n1', url }, { waitMs: 20_000, logger });
    await waiting;
    const fake = await startFakeOllama({ models: ['gemma3:270m'], script: () => '', port });
    try {
      await expect(pending).resolves.toEqual(['gemma3:270m']);
      expect(warnings[0]).toMatch(/waiting for Ollama node n1 at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    } finally {
      await fake.close();
    }
  });

  it('gives up with a message naming the node when it never answers', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await expect(servedModels(createOllamaClient(url), { id: 'n9', url }, { waitMs: 300 })).rejects.toThrow(
      `Ollama node n9 at ${url} did not answer /api/tags (ECONNREFUSED)`,
    );
  });
});

describe('planRefresh (which model Workers a refresh starts and stops)', () => {
  it('starts the models that appeared and stops the ones that left', () => {
    expect(planRefresh(['a:1', 'b:1'], ['b:1', 'c:1', 'd:1'])).toEqual({ start: ['c:1', 'd:1'], stop: ['a:1'] });
  });

  it('changes nothing when the node lists what is polled (`x` being `x:latest`)', () => {
    expect(planRefresh(['gemma3:latest', 'q:1'], ['q:1', 'gemma3'])).toEqual({ start: [], stop: [] });
  });

  it('a failed tags read (undefined) changes nothing: a briefly unreachable node keeps its pollers', () => {
    expect(planRefresh(['a:1', 'b:1'], undefined)).toEqual({ start: [], stop: [] });
  });

  it('a successful answer with no model stops every model Worker', () => {
    expect(planRefresh(['a:1', 'b:1'], [])).toEqual({ start: [], stop: ['a:1', 'b:1'] });
  });
});

describe('readServedModels (one refresh read)', () => {
  it('returns the normalized models of a node that answers', async () => {
    const fake = await startFakeOllama({ models: ['x', 'y:2'], script: () => '' });
    try {
      await expect(readServedModels(createOllamaClient(fake.url))).resolves.toEqual({ models: ['x:latest', 'y:2'] });
    } finally {
      await fake.close();
    }
  });

  it('returns an error, without retrying or throwing, for a node that is down', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await expect(readServedModels(createOllamaClient(url))).resolves.toEqual({ error: 'ECONNREFUSED' });
  });

  it('gives up on a node that does not answer within the timeout', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((sock) => void sockets.add(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      const t0 = Date.now();
      await expect(readServedModels(createOllamaClient(url), 300)).resolves.toEqual({
        error: 'timed out after 300 ms',
      });
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe('dev stack: which models each local node serves', () => {
  const tc = { models: ['smollm2:135m', 'gemma3:270m'], defaultModel: 'smollm2:135m' };

  it('by default node-1 serves the default model and node-2 every model (pinning and spreading)', () => {
    expect(Object.fromEntries(nodeModels(['node-1', 'node-2'], undefined, tc))).toEqual({
      'node-1': ['smollm2:135m'],
      'node-2': ['smollm2:135m', 'gemma3:270m'],
    });
    // One node serves everything.
    expect(Object.fromEntries(nodeModels(['solo'], '', tc))).toEqual({ solo: ['smollm2:135m', 'gemma3:270m'] });
  });

  it('reads OLLAMA_NODE_MODELS (`;` between nodes, `+` between models, `*` for all, `x` = `x:latest`)', () => {
    const spec = 'node-1=gemma3:270m; node-2=*;node-3=mistral+smollm2:135m';
    expect(Object.fromEntries(nodeModels(['node-1', 'node-2', 'node-3', 'node-4'], spec, tc))).toEqual({
      'node-1': ['gemma3:270m'],
      'node-2': ['smollm2:135m', 'gemma3:270m'],
      'node-3': ['mistral:latest', 'smollm2:135m'],
      'node-4': ['smollm2:135m', 'gemma3:270m'],
    });
  });

  it('rejects a spec naming an unknown node or without `=`', () => {
    expect(() => nodeModels(['node-1'], 'node-9=x:1', tc)).toThrow(/names node-9, which is not in OLLAMA_NODES/);
    expect(() => nodeModels(['node-1'], 'smollm2:135m', tc)).toThrow(/is not node-id=model\+model/);
  });
});

describe('prepareNodeModelsDir (a node serving a subset of the shared cache)', () => {
  let root: string;
  const shared = () => path.join(root, 'shared');
  /** A fake cache entry: a manifest naming a config blob and one layer blob, both written. */
  function cacheModel(model: string, blobs: string[]): void {
    const file = manifestPath(shared(), model);
    mkdirSync(path.dirname(file), { recursive: true });
    mkdirSync(path.join(shared(), 'blobs'), { recursive: true });
    const [config, ...layers] = blobs.map((b) => ({ digest: `sha256:${b}` }));
    writeFileSync(file, JSON.stringify({ config, layers }));
    for (const b of blobs) writeFileSync(path.join(shared(), 'blobs', `sha256-${b}`), b);
  }
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'ainode-nodedir-'));
    cacheModel('a:1', ['aaa', 'shared']);
    cacheModel('b:1', ['bbb', 'shared']);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('copies the manifests of its models only and links each blob they use', () => {
    const node = path.join(root, 'node-1');
    expect(prepareNodeModelsDir(shared(), node, ['a:1', 'nope:1'])).toEqual({ missing: ['nope:1'] });
    expect(existsSync(manifestPath(node, 'a:1'))).toBe(true);
    expect(existsSync(manifestPath(node, 'b:1'))).toBe(false);
    expect(readdirSync(path.join(node, 'blobs')).sort()).toEqual(['sha256-aaa', 'sha256-shared']);
    const link = path.join(node, 'blobs', 'sha256-aaa');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(link, 'utf8')).toBe('aaa');
  });

  it('removing a blob link on the node (what `ollama rm` does) leaves the shared cache intact', () => {
    const node = path.join(root, 'node-1');
    prepareNodeModelsDir(shared(), node, ['a:1']);
    rmSync(path.join(node, 'blobs', 'sha256-aaa'));
    expect(readFileSync(path.join(shared(), 'blobs', 'sha256-aaa'), 'utf8')).toBe('aaa');
  });

  it('a later run drops the models it placed that are no longer listed, and keeps hand-made ones', () => {
    const node = path.join(root, 'node-1');
    prepareNodeModelsDir(shared(), node, ['a:1', 'b:1']);
    const handMade = manifestPath(node, 'mine:1');
    mkdirSync(path.dirname(handMade), { recursive: true });
    writeFileSync(handMade, '{}');
    prepareNodeModelsDir(shared(), node, ['b:1']);
    expect(existsSync(manifestPath(node, 'a:1'))).toBe(false);
    expect(existsSync(manifestPath(node, 'b:1'))).toBe(true);
    expect(existsSync(handMade)).toBe(true);
  });

  it('places manifests where Ollama looks for them', () => {
    expect(manifestPath('/m', 'gemma3:270m')).toBe('/m/manifests/registry.ollama.ai/library/gemma3/270m');
    expect(manifestPath('/m', 'gemma3')).toBe('/m/manifests/registry.ollama.ai/library/gemma3/latest');
    expect(manifestPath('/m', 'me/tuned:v2')).toBe('/m/manifests/registry.ollama.ai/me/tuned/v2');
    expect(manifestPath('/m', 'host:5000/me/x:1')).toBe('/m/manifests/host:5000/me/x/1');
  });
});
