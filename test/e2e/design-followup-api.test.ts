/**
 * The design routes design-api.test.ts leaves out, through HTTP with the whole stack in process (a Temporal dev
 * server, the moto emulator, the orchestrator worker and an llm worker): a follow-up change with
 * `POST /designs/:id/messages` revises a finished design, and `POST /designs` with `graph: "v1"` runs
 * infraDesignV1Workflow. The llm worker's node is a scripted fake Ollama (exact replies per graph node), so
 * what is asserted is what the API reports (revision, phase, graph, plan, paths), never a model's prose.
 */
import request from 'supertest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Express } from 'express';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';
import type { RunningWorkers } from '../../scripts/lib/workers';
import { testApp } from '../helpers/api';
import { startTestWorkers } from '../helpers/workers';

jest.setTimeout(300_000);

const MODEL = 'fake-design:1b';
const KEY = 'key-followup-tenant';
const OTHER = 'key-other-tenant';
const auth = (key = KEY) => ({ Authorization: `Bearer ${key}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The graph node a request is for: every design prompt starts with `ainode design: <node>`. */
const nodeOf = (r: FakeRequest) => /ainode design: (\w+)/.exec(r.messages[0]?.content ?? '')?.[1] ?? 'unknown';
const userText = (r: FakeRequest) =>
  r.messages
    .filter((m) => m.role === 'user')
    .map((m) => m.content)
    .join('\n');

const FOLLOW_UP = 'add a logs bucket';
const bucketPlan = {
  resources: [
    { id: 'data', type: 'aws_s3_bucket', name: 'data', dependsOn: [], requirements: 'the data bucket' },
    { id: 'ver', type: 'aws_s3_bucket_versioning', name: 'data', dependsOn: ['data'], requirements: 'versioning' },
  ],
};
const logsBucket = { id: 'logs', type: 'aws_s3_bucket', name: 'logs', dependsOn: [], requirements: 'logs' };

/** A resource body by type, as the generator returns it. */
function generated(req: FakeRequest): unknown {
  const type = /Resource: (\w+)\./.exec(userText(req))?.[1];
  if (type === 'aws_s3_bucket_versioning') {
    return {
      attributes: { bucket: 'aws_s3_bucket.data.id' },
      blocks: [{ type: 'versioning_configuration', attributes: { status: 'Enabled' } }],
    };
  }
  return { attributes: { bucket: 'acme-data' } };
}

/** Replies per node, v2 and v1; `calls` counts each node's calls (0-based). */
const REPLIES: Record<string, (req: FakeRequest, call: number) => unknown> = {
  route: () => ({ category: 'infrastructure', reply: '' }),
  gather: () => ({ requirements: { region: 'eu-west-1', environment: 'prod' }, questions: [] }),
  // The follow-up reaches the planner with the original request: it adds the logs bucket.
  plan: (req) =>
    userText(req).includes(FOLLOW_UP) ? { resources: [...bucketPlan.resources, logsBucket] } : bucketPlan,
  generate: generated,
  fix: () => ({ files: [] }),
  consultant: (_req, call) =>
    call === 0
      ? { requirements: {}, questions: ['Which region?'] }
      : { requirements: { region: 'eu-west-1' }, questions: [] },
  promptGenerator: () => 'Create one private S3 bucket named logs in eu-west-1.',
  engineer: () => ({
    resources: [{ type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'acme-logs', force_destroy: false } }],
  }),
  lead: () => ({ approved: true, notes: '' }),
};

let env: TestWorkflowEnvironment;
let fake: FakeOllama;
let storage: Storage;
let workers: RunningWorkers | undefined;
let app: Express;
const calls: Record<string, number> = {};

beforeAll(async () => {
  env = await createTemporalEnv();
  fake = await startFakeOllama({
    models: [MODEL],
    script: (req) => {
      const node = nodeOf(req);
      const reply = REPLIES[node];
      if (!reply) throw new Error(`no scripted reply for node ${node}`);
      const out = reply(req, (calls[node] = (calls[node] ?? -1) + 1));
      return typeof out === 'string' ? out : JSON.stringify(out);
    },
  });
  const config = testConfig({
    API_KEYS: `${KEY}:tenant-f,${OTHER}:tenant-o`,
    S3_BUCKET: uid('e2e-followup'),
    OLLAMA_URL: fake.url,
    OLLAMA_NODES: `node-1=${fake.url}`,
    DEFAULT_MODEL: MODEL,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = await startTestWorkers(env, {
    config,
    storage,
    workflowsPath: require.resolve('../integration/design-workflows'),
    nodes: [{ id: config.NODE_ID, url: config.OLLAMA_URL }],
  });
  app = testApp(env, { config, storage });
});

afterAll(async () => {
  await workers?.stop();
  await env?.teardown();
  await fake?.close();
  storage?.close();
});

async function startDesign(body: Record<string, unknown>): Promise<string> {
  const res = await request(app)
    .post('/designs')
    .set(auth())
    .send({ modelId: MODEL, maxFixIterations: 0, ...body });
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ id: expect.stringMatching(/^design-/), status: 'running' });
  return res.body.id as string;
}

/** Polls `GET /designs/:id` until `done` holds; every answer seen on the way is kept, in order. */
async function pollUntil(id: string, done: (b: Record<string, any>) => boolean, seen: Record<string, any>[] = []) {
  const deadline = Date.now() + 240_000;
  for (;;) {
    const res = await request(app).get(`/designs/${id}`).set(auth());
    expect(res.status).toBe(200);
    seen.push(res.body);
    if (done(res.body)) return res.body as Record<string, any>;
    if (res.body.status !== 'running' || Date.now() > deadline) {
      throw new Error(`design ${id} did not get there: ${JSON.stringify(res.body).slice(0, 2000)}`);
    }
    await sleep(300);
  }
}

describe('POST /designs/:id/messages', () => {
  it('a follow-up change is accepted (202) and the finished design is revised from gather', async () => {
    const id = await startDesign({ request: 'An S3 bucket with versioning for our data' });
    const first = await pollUntil(id, (b) => b.phase === 'completed');
    // Finished, but the run stays open for follow-ups: status running, phase completed.
    expect(first).toMatchObject({ id, status: 'running', graph: 'v2', revision: 1 });
    expect(first.plan.resources.map((r: { id: string }) => r.id).sort()).toEqual(['data', 'ver']);
    expect(first.llmPaths).toMatchObject({ route: 'model', gather: 'model', plan: 'model' });

    const other = await request(app).post(`/designs/${id}/messages`).set(auth(OTHER)).send({ message: FOLLOW_UP });
    expect(other.status).toBe(404);
    const gathersBefore = fake.requests.filter((r) => nodeOf(r) === 'gather').length;
    const res = await request(app).post(`/designs/${id}/messages`).set(auth()).send({ message: FOLLOW_UP });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id, accepted: true });

    const second = await pollUntil(id, (b) => b.revision === 2 && b.phase === 'completed');
    expect(second.plan.resources.map((r: { id: string }) => r.id).sort()).toEqual(['data', 'logs', 'ver']);
    // Paths are per revision: this one started at gather, so the request was not routed again.
    expect(second.llmPaths).toMatchObject({ gather: 'model', plan: 'model' });
    expect(second.llmPaths).not.toHaveProperty('route');
    expect((second.files as { name: string }[]).map((f) => f.name).sort()).toEqual([
      'main.tf',
      'outputs.tf',
      'providers.tf',
      'variables.tf',
    ]);
    // The revision started again at gather, with the change request in what the model was sent.
    const gathers = fake.requests.filter((r) => nodeOf(r) === 'gather').slice(gathersBefore);
    expect(gathers.length).toBeGreaterThan(0);
    expect(userText(gathers[0]!)).toContain(FOLLOW_UP);
    const main = await request(app).get(`/designs/${id}/files/main.tf`).set(auth());
    expect(main.status).toBe(200);
    expect(main.text).toContain('resource "aws_s3_bucket" "logs"');

    // Once the run has closed, a follow-up is a 409 that says to start a new design.
    await env.client.workflow.getHandle(id).terminate('test done');
    const closed = await request(app).post(`/designs/${id}/messages`).set(auth()).send({ message: FOLLOW_UP });
    expect(closed.status).toBe(409);
    expect(closed.body.error.code).toBe('conflict');
  });

  it('a bad body → 400 naming the field; an unknown design → 404; a malformed id → 400', async () => {
    const unknown = await request(app)
      .post('/designs/design-does-not-exist/messages')
      .set(auth())
      .send({ message: FOLLOW_UP });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    for (const body of [{}, { message: '   ' }, { message: 42 }, { message: 'x', extra: true }]) {
      const bad = await request(app).post('/designs/design-does-not-exist/messages').set(auth()).send(body);
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe('invalid_request');
      expect(bad.body.error.message).toMatch(/^body/);
    }
    const malformed = await request(app).post('/designs/not-a-design/messages').set(auth()).send({ message: 'x' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toContain('params.id');
  });
});

describe('POST /designs with graph "v1"', () => {
  it('starts infraDesignV1Workflow; GET shows it waiting for answers, then completed', async () => {
    const id = await startDesign({ request: 'a logs bucket', graph: 'v1' });
    const desc = await env.client.workflow.getHandle(id).describe();
    expect(desc.type).toBe('infraDesignV1Workflow');
    expect(desc.memo).toMatchObject({ graph: 'v1', tenant: 'tenant-f' });

    const seen: Record<string, any>[] = [];
    const waiting = await pollUntil(id, (b) => b.phase === 'waiting_for_answers' && b.questions.length > 0, seen);
    expect(waiting).toMatchObject({ status: 'running', graph: 'v1', revision: 1 });
    const questionId = waiting.questions[0].id as string;
    // Recorded at once (a signal); the same Idempotency-Key sent again is the same answer, applied once.
    const send = () =>
      request(app)
        .post(`/designs/${id}/answers`)
        .set(auth())
        .set('Idempotency-Key', `${id}-round-1`)
        .send({ answers: { [questionId]: 'eu-west-1' } });
    const ack = await send();
    expect(ack.status).toBe(202);
    expect(ack.body).toMatchObject({ id, status: 'accepted', answerId: expect.stringMatching(/^answer-/) });
    const again = await send();
    expect([202, 409]).toContain(again.status); // 409 once the workflow has left the round
    if (again.status === 202) expect(again.body.answerId).toBe(ack.body.answerId);

    const done = await pollUntil(id, (b) => b.phase === 'completed', seen);
    expect(done).toMatchObject({ status: 'running', graph: 'v1', questions: [] });
    expect(done.answersApplied).toEqual([ack.body.answerId]);
    // Every scripted reply is valid: no repair, no fallback.
    expect(done.llmPaths).toEqual({ consultant: 'model', promptGenerator: 'model', engineer: 'model', lead: 'model' });
    expect(done.plan.resources.map((r: { type: string }) => r.type)).toEqual(['aws_s3_bucket']);
    expect(done.files.length).toBeGreaterThan(0);
    // Progress: every answer on the way named the v1 graph, and it went through its nodes.
    expect(seen.every((b) => b.graph === 'v1')).toBe(true);
    const nodes = (done.steps as { node: string }[]).map((s) => s.node);
    expect(nodes).toEqual(expect.arrayContaining(['consultant', 'ask', 'promptGenerator', 'engineer', 'lead']));
    const main = await request(app).get(`/designs/${id}/files/main.tf`).set(auth());
    expect(main.status).toBe(200);
    expect(main.text).toContain('resource "aws_s3_bucket" "logs"');
    await env.client.workflow.getHandle(id).terminate('test done');
  });
});

/** Reads a whole SSE response (the design stream ends after its `done` event) into its events. */
async function readEvents(id: string, headers: Record<string, string> = {}, query = '') {
  const res = await request(app)
    .get(`/designs/${id}/events${query}`)
    .set({ ...auth(), ...headers })
    .buffer(true)
    .parse((r, cb) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (text += c));
      r.on('end', () => cb(null, text));
    });
  const events = String(res.body)
    .split('\n\n')
    .filter((f) => f.startsWith('id: '))
    .map((f) => {
      const id = Number(/^id: (\d+)/m.exec(f)![1]);
      const type = /^event: (\w+)/m.exec(f)![1];
      const data = JSON.parse(/^data: (.*)$/m.exec(f)![1]!) as Record<string, any>;
      return { id, type, data };
    });
  return { res, events };
}

describe('GET /designs/:id/events, /diagram and /revisions', () => {
  it('streams the progress (resumable), draws the diagram and lists the revisions with their diffs', async () => {
    const id = await startDesign({ request: 'An S3 bucket with versioning for our data' });
    // The stream follows the design until the revision is done, whenever the client connects.
    const { res, events } = await readEvents(id);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('node_start');
    expect(types[types.length - 1]).toBe('done');
    expect(types).toEqual(expect.arrayContaining(['plan', 'resource', 'validation', 'files', 'revision']));
    expect(events.map((e) => e.id)).toEqual(events.map((_e, i) => i + 1));
    expect(events.find((e) => e.type === 'plan')!.data.plan.resources).toHaveLength(2);
    const validation = events.find((e) => e.type === 'validation')!.data;
    expect(validation).toMatchObject({ ok: true, schemaCheck: 'passed', terraformValidate: expect.any(String) });
    expect(events[events.length - 1]!.data).toMatchObject({ phase: 'completed', revision: 1 });

    // A reconnect with Last-Event-ID gets only what came after it.
    const resumed = await readEvents(id, { 'Last-Event-ID': '3' });
    expect(resumed.events.map((e) => e.id)).toEqual(events.slice(3).map((e) => e.id));
    expect(resumed.events.map((e) => e.type)).toEqual(types.slice(3));
    const bad = await request(app)
      .get(`/designs/${id}/events`)
      .set({ ...auth(), 'Last-Event-ID': 'abc' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^headers/);
    expect((await request(app).get(`/designs/${id}/events`).set(auth(OTHER))).status).toBe(404);

    // The diagram: Mermaid text, and SVG rendered in Node.
    const diagram = await request(app).get(`/designs/${id}/diagram`).set(auth());
    expect(diagram.status).toBe(200);
    expect(diagram.headers['content-type']).toMatch(/^text\/vnd\.mermaid/);
    expect(diagram.text).toContain('flowchart LR');
    expect(diagram.text).toContain('r_ver --> r_data');
    const svg = await request(app).get(`/designs/${id}/diagram?format=svg`).set(auth()).buffer(true);
    expect(svg.status).toBe(200);
    expect(svg.headers['content-type']).toMatch(/^image\/svg\+xml/);
    expect(String(svg.body ?? svg.text)).toContain('aws_s3_bucket.data');
    const png = await request(app).get(`/designs/${id}/diagram?format=png`).set(auth());
    expect(png.status).toBe(400);

    // A follow-up: a new revision from the previous files, committed; the revisions list both with diffs.
    expect((await request(app).post(`/designs/${id}/messages`).set(auth()).send({ message: FOLLOW_UP })).status).toBe(
      202,
    );
    await pollUntil(id, (b) => b.revision === 2 && b.phase === 'completed');
    const rev2 = await readEvents(id, { 'Last-Event-ID': String(events[events.length - 1]!.id) });
    expect(rev2.events.every((e) => e.data.revision === 2)).toBe(true);
    expect(rev2.events[rev2.events.length - 1]!.type).toBe('done');
    const revisions = await request(app).get(`/designs/${id}/revisions`).set(auth());
    expect(revisions.status).toBe(200);
    expect(revisions.body.revisions.map((r: { revision: number }) => r.revision)).toEqual([1, 2]);
    expect(revisions.body.revisions[1].message).toBe(`revision 2: ${FOLLOW_UP}`);
    expect(revisions.body.revisions[1].diff).toContain('+resource "aws_s3_bucket" "logs" {');
    expect(revisions.body.revisions[0].files).toEqual(['main.tf', 'outputs.tf', 'providers.tf', 'variables.tf']);
    await env.client.workflow.getHandle(id).terminate('test done');
  });
});
