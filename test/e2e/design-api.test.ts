/**
 * Designs through the HTTP API with the whole stack in process: a Temporal dev server, the moto emulator, the
 * orchestrator worker (design activities, terraform validation when the binary is installed) and an llm
 * worker on the real Ollama node with the real small model. Questions are answered with defaults.
 * A real model's text is never asserted: only shapes and invariants (it completes or ends with a documented
 * reason, files parse, the plan is a DAG of known types). Exact paths (repair, fallback, plan repair) are
 * covered with a scripted Ollama in test/integration/design-workflow.test.ts. Every test starts its own design.
 */
import request from 'supertest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Express } from 'express';
import { parse } from '@cdktf/hcl2json';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { MAX_DESIGN_REQUEST_CHARS } from '../../api/routes/designs';
import { AWS_RESOURCE_TYPES } from '../../workflows/design/catalog';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import type { RunningWorkers } from '../../scripts/lib/workers';
import { testApp } from '../helpers/api';
import { startTestWorkers } from '../helpers/workers';

jest.setTimeout(1_500_000);

const KEY = 'key-design-tenant';
const OTHER = 'key-other-tenant';
const auth = (key = KEY) => ({ Authorization: `Bearer ${key}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;
let app: Express;

beforeAll(async () => {
  env = await createTemporalEnv();
  const config = testConfig({
    API_KEYS: `${KEY}:tenant-d,${OTHER}:tenant-o`,
    S3_BUCKET: uid('e2e-designs'),
    // A shared CPU may need minutes for one call; a timeout here would test the machine, not the design.
    LLM_CALL_TIMEOUT_MS: '600000',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = await startTestWorkers(env, {
    config,
    storage,
    workflowsPath: require.resolve('../integration/design-workflows'),
    nodes: [{ id: config.NODE_ID, url: config.OLLAMA_URL, waitForNodeMs: 60_000 }],
  });
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  await workers?.stop();
  await env?.teardown();
  storage?.close();
});

/** The README's request. */
const README_REQUEST = 'A static website on S3 behind CloudFront';
/** Failure types a design may end with (docs/api.md, "Designs"). */
const DOCUMENTED_FAILURES = ['DesignPlanInvalid', 'GraphStepLimitExceeded', 'ModelNotFound'];

async function startDesign(extra: Record<string, unknown> = {}): Promise<string> {
  const accepted = await request(app)
    .post('/designs')
    .set(auth())
    .send({
      request: README_REQUEST,
      modelId: services.model,
      // The fix loop is covered with exact replies in test/integration; here each call is CPU time.
      maxFixIterations: 0,
      maxQuestionRounds: 1,
      options: { temperature: 0, seed: 7 },
      ...extra,
    });
  expect(accepted.status).toBe(202);
  expect(accepted.body).toMatchObject({ id: expect.stringMatching(/^design-/), status: 'running' });
  return accepted.body.id as string;
}

/** Polls until the workflow closes or the design finished; questions are answered with defaults. */
async function settle(id: string): Promise<Record<string, any>> {
  for (;;) {
    const res = await request(app).get(`/designs/${id}`).set(auth());
    expect(res.status).toBe(200);
    const body = res.body as Record<string, any>;
    if (body.status !== 'running') return body;
    if (['completed', 'invalid', 'ended'].includes(body.phase)) return body;
    if (body.phase === 'waiting_for_answers' && body.questions.length > 0) {
      const answers = Object.fromEntries(
        (body.questions as { id: string }[]).map((q) => [q.id, 'use a sensible default']),
      );
      const ack = await request(app).post(`/designs/${id}/answers?wait=true`).set(auth()).send({ answers });
      // 409: the round timed out or was answered between the GET and this POST.
      expect([200, 409]).toContain(ack.status);
    }
    await sleep(500);
  }
}

describe('designs with the real model', () => {
  it("the README's request completes with files that parse, or ends with a documented reason", async () => {
    const id = await startDesign();
    const body = await settle(id);
    if (body.status === 'failed') {
      expect(DOCUMENTED_FAILURES).toContain(body.error.type);
      expect(body.phase).toBe('failed');
      return;
    }
    expect(['running', 'completed']).toContain(body.status); // running: in its follow-up window
    expect(['completed', 'invalid', 'ended']).toContain(body.phase);
    expect(body.llmCalls).toBeGreaterThan(0);
    for (const path of Object.values(body.llmPaths as Record<string, string>)) {
      expect(['model', 'repaired', 'fallback']).toContain(path);
    }
    expect(Array.isArray(body.notes)).toBe(true);
    expect(Object.keys(body.llmPaths)).toContain('route');
    if (body.phase !== 'completed') {
      // The model may (wrongly) call the request something else: a polite reply, and no files.
      expect(typeof body.reply).toBe('string');
      expect(body.files).toEqual([]);
      return;
    }
    expect(body.usage.totalTokens).toBeGreaterThan(0);
    // The plan is a DAG of known types, in levels that each depend only on earlier ones.
    const resources = body.plan.resources as { id: string; type: string; dependsOn: string[] }[];
    expect(resources.length).toBeGreaterThan(0);
    expect(resources.length).toBeLessThanOrEqual(12);
    for (const r of resources) expect(AWS_RESOURCE_TYPES as readonly string[]).toContain(r.type);
    const levelOf = new Map<string, number>();
    (body.plan.levels as string[][]).forEach((level, i) => level.forEach((rid) => levelOf.set(rid, i)));
    expect([...levelOf.keys()].sort()).toEqual(resources.map((r) => r.id).sort());
    for (const r of resources) for (const d of r.dependsOn) expect(levelOf.get(d)!).toBeLessThan(levelOf.get(r.id)!);
    expect(Object.keys(body.llmPaths)).toEqual(expect.arrayContaining(['route', 'plan']));

    const names = (body.files as { name: string }[]).map((f) => f.name).sort();
    expect(names).toEqual(['main.tf', 'outputs.tf', 'providers.tf', 'variables.tf']);
    expect(body.validation.output).toMatch(/terraform validate (not run|\()/);
    for (const name of names) {
      const file = await request(app).get(`/designs/${id}/files/${name}`).set(auth());
      expect(file.status).toBe(200);
      expect(file.headers['content-type']).toMatch(/^text\/plain/);
      // A real HCL2 parser accepts every file (resources are rendered from structured output).
      await expect(parse(name, file.text)).resolves.toBeDefined();
    }
    const main = await request(app).get(`/designs/${id}/files/main.tf`).set(auth());
    expect(main.text).toMatch(/resource "aws_[a-z0-9_]+" "/);
  });

  it('a running design is cancelled: 202, then GET reports cancelled; a closed one is 409; another tenant 404', async () => {
    const id = await startDesign();
    const other = await request(app).post(`/designs/${id}/cancel`).set(auth(OTHER));
    expect(other.status).toBe(404);
    const cancel = await request(app).post(`/designs/${id}/cancel`).set(auth());
    expect(cancel.status).toBe(202);
    expect(cancel.body).toEqual({ id, status: 'cancelling' });
    const body = await settle(id);
    expect(body).toMatchObject({ id, status: 'cancelled', phase: 'cancelled', error: { code: 'cancelled' } });
    const again = await request(app).post(`/designs/${id}/cancel`).set(auth());
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('conflict');
    const answers = await request(app)
      .post(`/designs/${id}/answers`)
      .set(auth())
      .send({ answers: { q1: 'x' } });
    expect(answers.status).toBe(409);
    expect((await request(app).get(`/designs/${id}`).set(auth(OTHER))).status).toBe(404);
  });
});

describe('bad input', () => {
  it('empty request → 400 naming the field', async () => {
    const res = await request(app).post('/designs').set(auth()).send({ request: '   ' });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('body.request');
  });

  it('cancelling an unknown design → 404; a malformed id → 400', async () => {
    const res = await request(app).post('/designs/design-does-not-exist/cancel').set(auth());
    expect(res.status).toBe(404);
    const bad = await request(app).post('/designs/not-a-design/cancel').set(auth());
    expect(bad.status).toBe(400);
  });

  it('the cancel route is in the OpenAPI document', async () => {
    const doc = await request(app).get('/openapi.json');
    expect(doc.body.paths['/designs/{id}/cancel']).toHaveProperty('post');
  });

  it('answers to an unknown design → 404; malformed answers → 400', async () => {
    const res = await request(app)
      .post('/designs/design-does-not-exist/answers')
      .set(auth())
      .send({ answers: { q1: 'x' } });
    expect(res.status).toBe(404);
    const bad = await request(app).post('/designs/design-does-not-exist/answers').set(auth()).send({ answers: {} });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('body.answers');
  });

  it('oversized request → 413', async () => {
    const res = await request(app)
      .post('/designs')
      .set(auth())
      .send({ request: 'x'.repeat(MAX_DESIGN_REQUEST_CHARS + 1) });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('unknown model → 400 and a bad file name → 400', async () => {
    const res = await request(app).post('/designs').set(auth()).send({ request: 'a bucket', modelId: 'nope:1b' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('model_not_found');
    const file = await request(app).get('/designs/design-x/files/..%2Fetc').set(auth());
    expect(file.status).toBe(400);
  });
});
