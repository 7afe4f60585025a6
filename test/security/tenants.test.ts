/**
 * Attacks by one tenant on another through the API (issue 14, weaknesses 8 and 9 and the low items): another
 * tenant's ids on every route, a forged list cursor, API keys that must not reach the logs, JSON that must not be
 * parsed before authentication, and the Temporal Web UI link that only operators get. Production app, real
 * Temporal dev server and emulator; the other tenant's resources are real (uploaded, started, stored).
 * Each case asserts the harm did not happen: the other tenant's data is not returned or changed.
 */
import { Writable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createJobRecord, getFunction, recordJobResult } from '../../lib/jobs/store';
import type { ModelCatalog } from '../../lib/llm/catalog';
import type { Config } from '../../common/config';
import { createLogger } from '../../common/logger';
import { createEmbeddedVectorStore } from '../../lib/vector/embedded';
import { registeredRoutes } from '../../api/openapi';
import { userRecommendationWorkflowId } from '../../api/routes/users';
import type { ExecutionResult } from '../../contracts/jobs';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { buildZip } from '../fixtures/jobs/zips';

jest.setTimeout(120_000);

const KEY_A = 'tenant-a-key-0123456789';
const KEY_B = 'tenant-b-key-0123456789';
const OPERATOR = 'operator-key-0123456789';
const A = (r: request.Test) => r.set('Authorization', `Bearer ${KEY_A}`);
const B = (r: request.Test) => r.set('Authorization', `Bearer ${KEY_B}`);

/** Every model is served: these tests are about ownership, not models. */
const anyModel: ModelCatalog = {
  hasModel: async () => true,
  get: async () => ({
    generatedAt: new Date().toISOString(),
    nodes: [],
    models: ['smollm2:135m', 'all-minilm:l6-v2'].map((name) => ({
      id: name,
      name,
      size: 0,
      status: 'available' as const,
      available: true,
      queue: `ainode-llm.${name}`,
      nodes: [],
      loaded: false,
    })),
  }),
};

describe('attacks across tenants (API)', () => {
  let env: TestWorkflowEnvironment;
  let storage: Storage;
  let config: Config;
  let app: Express;
  const logLines: string[] = [];
  const ids = {
    fn: `fn-${uid('a')}`,
    job: `job-${uid('a')}`,
    prompt: `prompt-${uid('a')}`,
    design: `design-${uid('a')}`,
    rec: `rec-${uid('a')}`,
    user: `user-${uid('a')}`,
    chat: `chat-${uid('a')}`,
    store: '',
    storeFile: 'file-none',
  };
  const neverPolled = uid('nobody-polls');

  beforeAll(async () => {
    env = await createTemporalEnv();
    config = testConfig({
      S3_BUCKET: uid('bkt').toLowerCase(),
      DYNAMO_TABLE_PREFIX: `${uid('p')}-`,
      API_KEYS: `${KEY_A}:tenant-a,${KEY_B}:tenant-b`,
      OPERATOR_API_KEYS: OPERATOR,
      CHANNEL_TENANT: 'tenant-a',
      VECTOR_DB_PATH: path.join(os.tmpdir(), `${uid('vec')}.sqlite`),
      EMBED_MODEL: 'all-minilm:l6-v2',
      LOG_LEVEL: 'info',
    });
    storage = createStorage(config);
    await ensureStorage(storage);
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    app = testApp(env, {
      config,
      storage,
      catalog: anyModel,
      vectors: createEmbeddedVectorStore(config.VECTOR_DB_PATH),
      logger: createLogger('api', config, sink),
    });

    // Tenant A's resources, made the way the platform makes them.
    const zip = await buildZip([{ name: 'main.py', data: 'print("secret of tenant a")' }]);
    const put = await A(request(app).put(`/functions/${ids.fn}?entry=main.py`))
      .set('content-type', 'application/zip')
      .send(zip);
    expect(put.status).toBeLessThan(300);
    const createdAt = new Date().toISOString();
    await createJobRecord(storage, {
      jobId: ids.job,
      tenantId: 'tenant-a',
      functionId: ids.fn,
      modelId: 'smollm2:135m',
      workflowId: ids.job,
      status: 'running',
      createdAt,
    });
    const result: ExecutionResult = {
      jobId: ids.job,
      status: 'succeeded',
      exitCode: 0,
      stdout: 'secret of tenant a',
      stderr: '',
      stdoutTruncated: false,
      stderrTruncated: false,
      timedOut: false,
      oomKilled: false,
      durationMs: 1,
      outputs: [{ name: 'out.txt', key: `jobs/${ids.job}/out/out.txt`, size: 18 }],
      llm_token_count: { prompt: 10, completion: 20, total: 30 },
      calls: 1,
      byModel: { 'smollm2:135m': { calls: 1, prompt: 10, completion: 20, total: 30, costUsd: 0.001 } },
      costUsd: 0.001,
      startedAt: createdAt,
      finishedAt: createdAt,
    };
    await storage.putObject(`jobs/${ids.job}/out/out.txt`, 'secret of tenant a');
    await recordJobResult(
      storage,
      {
        jobId: ids.job,
        tenantId: 'tenant-a',
        functionId: ids.fn,
        modelId: 'smollm2:135m',
        workflowId: ids.job,
        createdAt,
      },
      result,
    );
    // Workflows of tenant A (their memo names the tenant, as the API's starts do); nobody runs them.
    const start = (workflowType: string, workflowId: string) =>
      env.client.workflow.start(workflowType, {
        taskQueue: neverPolled,
        workflowId,
        args: [{}],
        memo: { tenant: 'tenant-a' },
      });
    await start('promptWorkflow', ids.prompt);
    await start('infraDesignWorkflow', ids.design);
    await start('recommendationWorkflow', ids.rec);
    await start(
      'userRecommendationWorkflow',
      userRecommendationWorkflowId(config.USER_PSEUDONYM_SECRET, 'tenant-a', ids.user),
    );
    const vs = await A(request(app).post('/v1/vector_stores')).send({ name: 'a-secrets' });
    expect(vs.status).toBe(200);
    ids.store = vs.body.id as string;
  });

  afterAll(async () => {
    storage?.close();
    await env?.teardown();
  });

  /** Tenant B's request on every route that takes an id: the path with tenant A's ids, and a valid body. */
  const cases: Record<string, { path: () => string; body?: unknown }> = {
    'GET /prompts/:id': { path: () => `/prompts/${ids.prompt}` },
    'POST /prompts/:id/cancel': { path: () => `/prompts/${ids.prompt}/cancel` },
    'GET /chats/:chatId': { path: () => `/chats/${ids.chat}` },
    'GET /chats/:chatId/messages': { path: () => `/chats/${ids.chat}/messages` },
    'POST /chats/:chatId/resume': { path: () => `/chats/${ids.chat}/resume` },
    'GET /functions/:id': { path: () => `/functions/${ids.fn}` },
    'GET /functions/:id/versions': { path: () => `/functions/${ids.fn}/versions` },
    'GET /jobs/:id': { path: () => `/jobs/${ids.job}` },
    'POST /jobs/:id/cancel': { path: () => `/jobs/${ids.job}/cancel` },
    'GET /jobs/:id/outputs/*name': { path: () => `/jobs/${ids.job}/outputs/out.txt` },
    'GET /designs/:id': { path: () => `/designs/${ids.design}` },
    'POST /designs/:id/answers': { path: () => `/designs/${ids.design}/answers`, body: { answers: { q1: 'x' } } },
    'POST /designs/:id/messages': {
      path: () => `/designs/${ids.design}/messages`,
      body: { message: 'make it public' },
    },
    'POST /designs/:id/cancel': { path: () => `/designs/${ids.design}/cancel` },
    'GET /designs/:id/files/:name': { path: () => `/designs/${ids.design}/files/main.tf` },
    'GET /designs/:id/events': { path: () => `/designs/${ids.design}/events` },
    'GET /designs/:id/diagram': { path: () => `/designs/${ids.design}/diagram` },
    'GET /designs/:id/revisions': { path: () => `/designs/${ids.design}/revisions` },
    'GET /recommendations/:id': { path: () => `/recommendations/${ids.rec}` },
    'GET /users/:userId/recommendations': { path: () => `/users/${ids.user}/recommendations` },
    'GET /v1/vector_stores/:id': { path: () => `/v1/vector_stores/${ids.store}` },
    'DELETE /v1/vector_stores/:id': { path: () => `/v1/vector_stores/${ids.store}` },
    'POST /v1/vector_stores/:id/files': { path: () => `/v1/vector_stores/${ids.store}/files`, body: { file_id: 'x' } },
    'GET /v1/vector_stores/:id/files': { path: () => `/v1/vector_stores/${ids.store}/files` },
    'GET /v1/vector_stores/:id/files/:fileId': { path: () => `/v1/vector_stores/${ids.store}/files/${ids.storeFile}` },
    'POST /v1/vector_stores/:id/search': { path: () => `/v1/vector_stores/${ids.store}/search`, body: { query: 'x' } },
  };
  /** Routes with an id that is not a tenant's resource, and why. */
  const notTenantOwned: Record<string, string> = {
    'PUT /functions/:id': 'ids are per tenant: B writes its own function (checked below: A’s is unchanged)',
    'POST /users/:userId/browsing-events': 'user ids are per tenant: B signals its own user’s workflow',
    'POST /internal/streams/:id': 'a stream’s own token, not an API key (the streams tests)',
    'GET /v1/models/:id': 'models are shared by every tenant',
    'POST /codec/key/:key/encode': 'an operator key in the path, not a tenant resource (the payload codec tests)',
    'POST /codec/key/:key/decode': 'an operator key in the path, not a tenant resource (the payload codec tests)',
  };

  it('every route that takes an id is covered here', () => {
    const withIds = registeredRoutes()
      .filter((r) => /[:*]/.test(r.path))
      .map((r) => `${r.method.toUpperCase()} ${r.path}`);
    const uncovered = withIds.filter((r) => !(r in cases) && !(r in notTenantOwned));
    expect(uncovered).toEqual([]);
  });

  // Cases of routes this checkout serves (a route added later fails the coverage test above until it has one).
  const served = new Set(registeredRoutes().map((r) => `${r.method.toUpperCase()} ${r.path}`));
  it.each(Object.keys(cases).filter((r) => served.has(r)))(
    '%s with another tenant’s id: 404, nothing of it returned',
    async (route) => {
      const [method] = route.split(' ') as [string, string];
      const c = cases[route]!;
      const m = method.toLowerCase() as 'get' | 'post' | 'delete';
      let req = B(request(app)[m](c.path()));
      if (c.body !== undefined) req = req.send(c.body as object);
      const res = await req;
      expect({ route, status: res.status }).toEqual({ route, status: 404 });
      expect(res.text).not.toContain('secret of tenant a');
      expect(res.text).not.toContain('a-secrets');
    },
  );

  it('the other tenant’s resources are intact after the attempts (cancel, delete, signals did nothing)', async () => {
    expect((await A(request(app).get(`/v1/vector_stores/${ids.store}`))).status).toBe(200);
    for (const id of [ids.design, ids.prompt]) {
      const handle = env.client.workflow.getHandle(id);
      expect((await handle.describe()).status.name).toBe('RUNNING');
      const history = await handle.fetchHistory();
      expect(history.events?.some((e) => e.workflowExecutionSignaledEventAttributes)).toBe(false);
      expect(history.events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes)).toBe(false);
    }
  });

  it('PUT /functions/:id with another tenant’s id writes the caller’s own function; the other’s is unchanged', async () => {
    const before = await getFunction(storage, 'tenant-a', ids.fn);
    const zip = await buildZip([{ name: 'main.py', data: 'print("b")' }]);
    const put = await B(request(app).put(`/functions/${ids.fn}?entry=main.py`))
      .set('content-type', 'application/zip')
      .send(zip);
    expect(put.status).toBeLessThan(300);
    expect(await getFunction(storage, 'tenant-a', ids.fn)).toEqual(before);
    expect((await getFunction(storage, 'tenant-b', ids.fn))?.sha256).not.toBe(before?.sha256);
  });

  it('lists and usage never show another tenant’s jobs', async () => {
    const jobs = await B(request(app).get('/jobs'));
    expect(jobs.status).toBe(200);
    expect(jobs.text).not.toContain(ids.job);
    const usage = await B(request(app).get('/usage'));
    expect(usage.status).toBe(200);
    expect(usage.body.totals.total).toBe(0);
    // Tenant A does see its own.
    expect((await A(request(app).get('/jobs'))).text).toContain(ids.job);
  });

  it('a forged or foreign list cursor is a 400 naming the field, not a 500', async () => {
    const garbage = await B(request(app).get('/jobs?cursor=not-a-cursor'));
    expect(garbage.status).toBe(400);
    expect(garbage.body.error.message).toContain('query.cursor');
    // A cursor built for tenant A's partition (what a page of A's list would return).
    const foreign = Buffer.from(
      JSON.stringify({ pk: 'tenant#tenant-a', sk: `job#${ids.job}`, gsi1pk: 'tenant#tenant-a', gsi1sk: 'x' }),
    ).toString('base64url');
    const res = await B(request(app).get(`/jobs?cursor=${foreign}`));
    expect(res.status).toBe(400);
    expect(res.text).not.toContain(ids.job);
  });

  it('JSON bodies are not parsed before authentication: no key → 401 even for broken or oversized JSON', async () => {
    const broken = await request(app).post('/run').set('content-type', 'application/json').send('{"not json');
    expect(broken.status).toBe(401);
    const big = await request(app)
      .post('/run')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ pad: 'x'.repeat(config.API_BODY_LIMIT_BYTES + 1024) }));
    expect(big.status).toBe(401);
    const v1 = await request(app).post('/v1/chat/completions').set('content-type', 'application/json').send('{"x');
    expect(v1.status).toBe(401);
    // Authenticated, the same broken body is the caller's 400.
    const own = await A(request(app).post('/run')).set('content-type', 'application/json').send('{"x');
    expect(own.status).toBe(400);
  });

  it('the Web UI link is given to operators only', async () => {
    const tenant = await A(request(app).get(`/jobs/${ids.job}`));
    expect(tenant.status).toBe(200);
    expect(tenant.body.webUiUrl).toBeUndefined();
    expect(tenant.text).not.toContain(config.TEMPORAL_UI_URL);
    const wrongKey = await A(request(app).get(`/jobs/${ids.job}`)).set('X-Operator-Key', KEY_B);
    expect(wrongKey.body.webUiUrl).toBeUndefined();
    const operator = await A(request(app).get(`/jobs/${ids.job}`)).set('X-Operator-Key', OPERATOR);
    expect(operator.body.webUiUrl).toContain(`/workflows/${ids.job}`);
  });

  it('API keys never reach the logs: Authorization, X-Api-Key, X-Operator-Key, cookies, keys in the query', async () => {
    logLines.length = 0;
    await A(request(app).get(`/jobs/${ids.job}?api_key=query-secret-1&token=query-secret-2`))
      .set('X-Api-Key', 'header-secret-3')
      .set('X-Operator-Key', OPERATOR)
      .set('Cookie', 'session=cookie-secret-4');
    await request(app).get('/jobs').set('Authorization', 'Bearer wrong-secret-5');
    const out = logLines.join('');
    expect(out).toContain('request completed');
    for (const secret of [KEY_A, OPERATOR, 'query-secret-1', 'query-secret-2', 'header-secret-3', 'cookie-secret-4']) {
      expect(out).not.toContain(secret);
    }
    expect(out).not.toContain('wrong-secret-5');
    expect(out).toContain('[redacted]');
  });
});
