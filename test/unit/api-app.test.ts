import request from 'supertest';
import pino from 'pino';
import type { Client } from '@temporalio/client';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import type { Catalog, ModelCatalog } from '../../lib/llm/catalog';
import type { Storage } from '../../lib/storage/clients';
import { loadConfig } from '../../common/config';
import { registeredRoutes } from '../../api/openapi';
import { idempotentId } from '../../api/idempotency';
import { webUiUrl } from '../../api/workflow-routes';

const KEY_A = 'key-aaaaaaaa';
const KEY_B = 'key-bbbbbbbb';

const emptyCatalog: Catalog = { models: [], nodes: [], generatedAt: new Date(0).toISOString() };

/** createApp with fakes: these tests never reach Temporal, which records any attempt to start a workflow. */
function makeApp(env: Record<string, string> = {}) {
  const starts: unknown[] = [];
  const temporal = {
    workflow: {
      start: async (...args: unknown[]) => {
        starts.push(args);
        throw new Error('no Temporal in unit tests');
      },
    },
  } as unknown as Client;
  const catalog: ModelCatalog = { get: async () => emptyCatalog, hasModel: async () => false };
  const config = loadConfig({ API_KEYS: `${KEY_A}:tenant-a,${KEY_B}:tenant-b`, LOG_LEVEL: 'silent', ...env });
  const deps: ApiDeps = { config, temporal, catalog, storage: {} as Storage, logger: pino({ level: 'silent' }) };
  return { app: createApp(deps), starts };
}

const auth = (key: string) => ({ Authorization: `Bearer ${key}` });

describe('API skeleton', () => {
  it('answers /healthz without a key and echoes or creates X-Request-Id', async () => {
    const { app } = makeApp();
    const res = await request(app).get('/healthz').set('X-Request-Id', 'req-123');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
    expect(res.headers['x-request-id']).toBe('req-123');
    const generated = await request(app).get('/healthz');
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('401 for a missing key and for an unknown key, in the error shape', async () => {
    const { app } = makeApp();
    const missing = await request(app).get('/models');
    expect(missing.status).toBe(401);
    expect(missing.body).toEqual({
      error: { code: 'unauthorized', message: expect.stringMatching(/Missing API key/) },
    });
    expect(missing.headers['www-authenticate']).toBe('Bearer');

    const unknown = await request(app).get('/models').set(auth('key-not-configured'));
    expect(unknown.status).toBe(401);
    expect(unknown.body.error).toMatchObject({ code: 'unauthorized', message: 'Unknown API key' });

    const ok = await request(app).get('/models').set(auth(KEY_A));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual(emptyCatalog);
  });

  it('400 names the invalid field', async () => {
    const { app, starts } = makeApp();
    const noModel = await request(app).post('/prompts').set(auth(KEY_A)).send({ prompt: 'hi' });
    expect(noModel.status).toBe(400);
    expect(noModel.body.error.code).toBe('invalid_request');
    expect(noModel.body.error.message).toMatch(/^body\.modelId: /);
    expect(noModel.body.error.details.issues[0].field).toBe('body.modelId');

    const both = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .send({ modelId: 'gemma3:270m', prompt: 'hi', messages: [{ role: 'user', content: 'hi' }] });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toMatch(/^body\.prompt: give exactly one of prompt or messages/);

    const badOption = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .send({ modelId: 'gemma3:270m', prompt: 'hi', options: { temperature: 9 } });
    expect(badOption.status).toBe(400);
    expect(badOption.body.error.message).toMatch(/^body\.options\.temperature: /);
    expect(starts).toHaveLength(0);
  });

  it('400 model_not_found for a model no node serves, before any workflow starts', async () => {
    const { app, starts } = makeApp();
    const res = await request(app).post('/prompts').set(auth(KEY_A)).send({ modelId: 'nope:1b', prompt: 'hi' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('model_not_found');
    expect(res.body.error.message).toContain('nope:1b');
    expect(starts).toHaveLength(0);
  });

  it('400 for malformed JSON and 413 for an oversize body', async () => {
    const { app } = makeApp({ API_BODY_LIMIT_BYTES: '200' });
    const bad = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .set('Content-Type', 'application/json')
      .send('{"modelId": ');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_json');

    const big = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .send({ modelId: 'gemma3:270m', prompt: 'x'.repeat(1000) });
    expect(big.status).toBe(413);
    expect(big.body.error).toMatchObject({ code: 'payload_too_large', details: { limit: 200 } });
  });

  it('429 with Retry-After once a key exceeds its per-minute limit; other keys are unaffected', async () => {
    const { app } = makeApp({ API_RATE_LIMIT_PER_MINUTE: '2' });
    expect((await request(app).get('/models').set(auth(KEY_A))).status).toBe(200);
    expect((await request(app).get('/models').set(auth(KEY_A))).status).toBe(200);
    const limited = await request(app).get('/models').set(auth(KEY_A));
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: 'rate_limited', details: { limitPerMinute: 2 } });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect((await request(app).get('/models').set(auth(KEY_B))).status).toBe(200);
  });

  it('404 in the error shape for unknown routes and malformed prompt ids', async () => {
    const { app } = makeApp();
    const res = await request(app).get('/no/such/route').set(auth(KEY_A));
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'not_found', message: 'No route for GET /no/such/route' } });
    const badId = await request(app).get('/prompts/not-a-prompt').set(auth(KEY_A));
    expect(badId.status).toBe(400);
    expect(badId.body.error.message).toMatch(/^params\.id: /);
  });

  it('every route the app serves is registered and in /openapi.json, and nothing else is', async () => {
    const { app } = makeApp();
    const served = expressRoutes(app).sort();
    const registered = registeredRoutes()
      .map((r) => `${r.method} ${r.path}`)
      .sort();
    expect(served.length).toBeGreaterThan(20);
    expect(registered).toEqual(served);
    const doc = (await request(app).get('/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p.replace(/\{(\w+)\}/g, ':$1')}`))
      .sort();
    expect(documented).toEqual(served.map((r) => r.replace(/\*(\w+)/g, ':$1')).sort());
  });

  it('/openapi.json is public and documents every route with its schemas', async () => {
    const { app } = makeApp();
    const res = await request(app).get('/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/healthz', '/readyz', '/openapi.json', '/models', '/prompts', '/prompts/{id}']),
    );
    const post = doc.paths['/prompts'].post;
    const schema = post.requestBody.content['application/json'].schema;
    expect(schema.required).toEqual(['modelId']);
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['modelId', 'prompt', 'messages', 'options', 'format']),
    );
    expect(post.responses['202'].content['application/json'].schema.properties.statusUrl).toBeDefined();
    expect(post.responses['401'].content['application/json'].schema.$ref).toBe('#/components/schemas/Error');
    expect(doc.paths['/prompts/{id}'].get.parameters[0]).toMatchObject({ name: 'id', in: 'path', required: true });
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
  });
});

/** `method path` of every route mounted on the app (Express 5 router stacks, sub-routers mounted at /). */
function expressRoutes(app: ReturnType<typeof createApp>): string[] {
  interface Layer {
    route?: { path: string; methods: Record<string, boolean> };
    handle?: { stack?: Layer[] };
  }
  const out: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [m, on] of Object.entries(layer.route.methods))
          if (on && m !== '_all') out.push(`${m} ${layer.route.path}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return [...new Set(out)];
}

describe('pieces the routes share', () => {
  it('webUiUrl links the run in the configured Web UI and namespace, encoded', () => {
    const config = { TEMPORAL_UI_URL: 'http://ui:8233', TEMPORAL_NAMESPACE: 'team a' };
    expect(webUiUrl(config, 'design-1')).toBe('http://ui:8233/namespaces/team%20a/workflows/design-1');
    expect(webUiUrl(config, 'a/b')).toBe('http://ui:8233/namespaces/team%20a/workflows/a%2Fb');
  });

  it('idempotentId: the same tenant and key give the same id; another tenant, key or none another', () => {
    const id = idempotentId('prompt', 'tenant-a', 'k1');
    expect(id).toMatch(/^prompt-[0-9a-f]{32}$/);
    expect(idempotentId('prompt', 'tenant-a', 'k1')).toBe(id);
    expect(idempotentId('prompt', 'tenant-b', 'k1')).not.toBe(id);
    expect(idempotentId('prompt', 'tenant-a', 'k2')).not.toBe(id);
    expect(idempotentId('job', 'tenant-a', undefined)).toMatch(/^job-[0-9a-f-]{36}$/);
  });

  it('an Idempotency-Key over 255 characters is a 400 naming the header, on /prompts and /run alike', async () => {
    const { app, starts } = makeApp();
    const key = 'k'.repeat(256);
    const prompt = await request(app)
      .post('/prompts')
      .set(auth(KEY_A))
      .set('Idempotency-Key', key)
      .send({ modelId: 'gemma3:270m', prompt: 'hi' });
    const run = await request(app)
      .post('/run')
      .set(auth(KEY_A))
      .set('Idempotency-Key', key)
      .send({ functionId: 'fn-1', modelId: 'gemma3:270m' });
    for (const res of [prompt, run]) {
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
      expect(res.body.error.message).toMatch(/^headers: /);
    }
    expect(starts).toHaveLength(0);
  });
});
