/**
 * The dev stack's sample vector store: the shop's delivery policy and product descriptions (test/fixtures/shop/),
 * created through the API with the first API key at `npm start`, so `/v1/vector_stores/:id/search` and chat
 * completions with `vector_store_ids` can be tried at once. Its id is kept in .ainode/sample-vector-store.json and
 * reused while the store exists; ingestion runs as ingestWorkflow (visible in the Web UI).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const FILES = ['delivery-policy.md', 'ontology.ttl'];

export async function seedSampleVectorStore(opts: {
  apiUrl: string;
  apiKey: string;
  stateDir: string;
  shopDir: string;
}): Promise<{ id: string; created: boolean }> {
  const stateFile = path.join(opts.stateDir, 'sample-vector-store.json');
  const headers = { authorization: `Bearer ${opts.apiKey}` };
  if (existsSync(stateFile)) {
    const { id } = JSON.parse(readFileSync(stateFile, 'utf8')) as { id: string };
    const res = await fetch(`${opts.apiUrl}/v1/vector_stores/${id}`, { headers });
    if (res.ok) return { id, created: false };
  }
  const res = await fetch(`${opts.apiUrl}/v1/vector_stores`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'shop sample (delivery policy, products)', metadata: { sample: 'shop' } }),
  });
  if (!res.ok) throw new Error(`creating the sample vector store: ${res.status} ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  for (const name of FILES) {
    const file = path.join(opts.shopDir, name);
    if (!existsSync(file)) continue;
    const type = name.endsWith('.md') ? 'text/markdown' : 'text/plain';
    const up = await fetch(`${opts.apiUrl}/v1/vector_stores/${id}/files?filename=${encodeURIComponent(name)}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': type },
      body: readFileSync(file, 'utf8'),
    });
    if (!up.ok) throw new Error(`uploading ${name} to the sample vector store: ${up.status} ${await up.text()}`);
  }
  writeFileSync(stateFile, JSON.stringify({ id }) + '\n');
  return { id, created: true };
}
