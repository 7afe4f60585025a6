import { createOllamaClient } from '../../activities/llm';
import { freePort } from '../../scripts/lib/services';
import { servedModels } from '../../workers/llm';
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
    const logger = { warn: (m: string) => warnings.push(m) } as never;
    const pending = servedModels(createOllamaClient(url), { id: 'n1', url }, { waitMs: 20_000, logger });
    await new Promise((r) => setTimeout(r, 700));
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
