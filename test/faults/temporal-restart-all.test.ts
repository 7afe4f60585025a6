/**
 * Restart the Temporal dev server (same db file, same port) while jobs, chats and a design run. Its own stack: a
 * `temporal server start-dev` process for this file with a db file in a temp dir; the production orchestrator
 * (every workflow), an llm worker and an executor (real Docker) in this process; a scripted fake Ollama; the
 * production API app. Every LLM call that reaches the node before the restart (but a chat's router call) is held
 * there until the server is back, so at the restart: a job's container sleeps, another job's LLM call (through the
 * executor's gateway, a workflow Update) waits for its reply, three chats wait for their agent's call and the
 * design for its consultant.
 * Asserted: every job succeeds with its whole output, every chat message gets exactly one reply, the design
 * completes with its plan; no LLM call was sent twice.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import request from 'supertest';
import Docker from 'dockerode';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { listOutboxMessages } from '../../lib/chat/state';
import { signBody, SIGNATURE_HEADER } from '../../lib/channel/signature';
import { CHANNEL } from '../../api/routes/webhooks';
import { containersOfJob, removeOrphans } from '../../lib/executor/container';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { createExecutorWorker } from '../../workers/executor';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { freePort, startTemporal, type Service } from '../../scripts/lib/services';
import { uploadDir } from '../../scripts/lib/stack';
import type { Toolchain } from '../../scripts/lib/toolchain';
import { startFakeOllama, type FakeOllama, type FakeRequest } from '../helpers/fake-ollama';
import { quietRuntime, services, testConfig, uid } from '../helpers/env';
import { testApp, uploadFunction } from '../helpers/api';
import { bundleWorkflowsTo } from './helpers/bundle';

jest.setTimeout(300_000);

const MODEL = 'fake-restart-all:1b';
const KEY = 'key-faults-restart-all';
const SECRET = 'faults-restart-webhook';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CHATS = 3;
/** Long enough that the sleeping job's container is still running when the server goes down. */
const SLEEP_S = 25;

const SCRIPT = `import json, time, ai_client
data = json.load(open("input.json"))
if data["mode"] == "sleep":
    print("sleeping", flush=True)
    time.sleep(data["seconds"])
    print("slept")
else:
    print(ai_client.generate("say " + data["word"]))
`;

/** v1 graph replies by node: the consultant has what it needs at once. */
const DESIGN: Record<string, () => unknown> = {
  consultant: () => ({ requirements: { region: 'eu-west-1' }, questions: [] }),
  promptGenerator: () => 'Create one private S3 bucket named logs in eu-west-1.',
  engineer: () => ({
    resources: [{ type: 'aws_s3_bucket', name: 'logs', attributes: { bucket: 'acme-logs', force_destroy: false } }],
  }),
  lead: () => ({ approved: true, notes: '' }),
};

function reply(req: FakeRequest): string {
  const first = req.messages[0]?.content ?? '';
  const node = /ainode design: (\w+)/.exec(first)?.[1];
  if (node) {
    const out = DESIGN[node]?.();
    if (out === undefined) throw new Error(`no scripted reply for design node ${node}`);
    return typeof out === 'string' ? out : JSON.stringify(out);
  }
  if (req.format) return JSON.stringify({ agent: 'general', product: 'none', intent: 'other' });
  const last = req.messages.at(-1)?.content ?? '';
  const say = /^say (\w+)$/.exec(last);
  if (say) return `${say[1]} back`;
  return 'Thanks for writing to us! A colleague will look into it and reply shortly.';
}

let dir: string;
let temporalSvc: Service | undefined;
let port: number;
let uiPort: number;
let fake: FakeOllama;
let storage: Storage;
let workers: RunningWorkers | undefined;
let connection: NativeConnection | undefined;
let clientConnection: Connection | undefined;
let app: Express;
const docker = new Docker();
const executorId = uid('exec-restart');
/** Outside the test's temp dir, like the other executor tests: the executor checks its dirs' ancestors. */
const workRoot = path.join(os.tmpdir(), uid('jobs'));
const gatewayDir = path.join(os.tmpdir(), uid('gw'));

/** Calls that reach the node before the restart wait here until the server is back. */
let openGate: () => void = () => {};
const gate = new Promise<void>((r) => (openGate = r));

const tc = () => ({ temporal: services.temporalBin }) as Toolchain;
const startServer = (n: number) =>
  startTemporal(tc(), {
    port,
    uiPort,
    dbFile: path.join(dir, 'temporal.db'),
    logFile: path.join(dir, `temporal-${n}.log`),
  });

beforeAll(async () => {
  quietRuntime();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ainode-faults-restart-all-'));
  const bundling = bundleWorkflowsTo(require.resolve('../../workflows'), path.join(dir, 'workflow-bundle.js'));
  port = await freePort();
  uiPort = await freePort();
  temporalSvc = await startServer(1);
  const address = `127.0.0.1:${port}`;
  fake = await startFakeOllama({
    models: [MODEL],
    script: async (req) => {
      // A router call is given 20 s, an agent's 45 s: chats are held at their agent.
      if (!isRouter(req)) await gate;
      return reply(req);
    },
  });
  const config = testConfig({
    API_KEYS: `${KEY}:shop`,
    CHANNEL_TENANT: 'shop',
    CHANNEL_WEBHOOK_SECRET: SECRET,
    CHAT_QUIET_MS: '500',
    S3_BUCKET: uid('faults-restart-all').toLowerCase(),
    DYNAMO_TABLE_PREFIX: `${uid('fra')}-`,
    OLLAMA_URL: fake.url,
    OLLAMA_NODES: `node-a=${fake.url}`,
    OLLAMA_NUM_PARALLEL: '16',
    NODE_ID: 'node-a',
    DEFAULT_MODEL: MODEL,
    TEMPORAL_ADDRESS: address,
    GATEWAY_SOCKET_DIR: gatewayDir,
    PRICE_TABLE: `${MODEL}=1/1`,
    // The job's call is held at the node while containers start and the server restarts: more than the 60 s default.
    LLM_CALL_TIMEOUT_MS: '180000',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  await uploadDir(storage, path.join(__dirname, '..', 'fixtures', 'shop'), config.CHAT_SHOP_PREFIX);
  connection = await NativeConnection.connect({ address });
  clientConnection = await Connection.connect({ address });
  const client = new Client({ connection: clientConnection });
  const { worker: executor } = await createExecutorWorker({
    connection,
    client,
    config,
    storage,
    docker,
    executorId,
    workRoot,
  });
  workers = runWorkers([
    await createOrchestratorWorker({
      connection,
      config,
      storage,
      overrides: { workflowBundle: { codePath: await bundling } },
    }),
    executor,
    ...(await createLlmWorkers({ connection, config, waitForNodeMs: 10_000 })),
  ]);
  app = testApp({ client } as TestWorkflowEnvironment, { config, storage });
  // POST /run and /designs answer 503 until an llm worker polls the model's queue.
  await waitFor('the llm worker to poll the model', async () => {
    const res = await request(app).get('/models').set(auth());
    return (
      res.status === 200 &&
      (res.body.models as { name: string; available: boolean }[]).some((m) => m.name === MODEL && m.available)
    );
  });
});

afterAll(async () => {
  openGate();
  await workers?.stop();
  await connection?.close();
  await clientConnection?.close();
  await temporalSvc?.stop();
  await removeOrphans(docker, executorId);
  await fake?.close();
  storage?.close();
  for (const d of [dir, workRoot, gatewayDir]) if (d) rmSync(d, { recursive: true, force: true });
});

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** A GET that may meet the server still coming up: retried on a 5xx until `done` holds. */
async function getUntil(url: string, done: (body: Record<string, any>) => boolean): Promise<Record<string, any>> {
  let last: unknown;
  await waitFor(
    url,
    async () => {
      const res = await request(app).get(url).set(auth());
      last = { status: res.status, body: res.body };
      return res.status === 200 && done(res.body);
    },
    180_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(last).slice(0, 2000)}`);
  });
  return (last as { body: Record<string, any> }).body;
}

const calls = (what: (r: FakeRequest) => boolean) => fake.requests.filter(what).length;
const isDesign = (r: FakeRequest) => /ainode design:/.test(r.messages[0]?.content ?? '');
const isRouter = (r: FakeRequest) => Boolean(r.format) && !isDesign(r);
const isJob = (r: FakeRequest) => /^say \w+$/.test(r.messages.at(-1)?.content ?? '');
const isAgent = (r: FakeRequest) => !r.format && !isDesign(r) && !isJob(r);

describe('restart the Temporal dev server (same db file) while jobs, chats and a design run', () => {
  it('they all finish: jobs succeed with their output, every chat message gets one reply, the design completes', async () => {
    // A job whose LLM call waits at the node, three chats at their agent call, a design at its consultant.
    const functionId = await uploadFunction(app, KEY, 'restart', SCRIPT);
    const run = async (inputData: unknown) => {
      const res = await request(app).post('/run').set(auth()).send({ functionId, modelId: MODEL, inputData });
      expect(res.status).toBe(202);
      return res.body.jobId as string;
    };
    // The jobs first (containers take seconds to start), then the chats and the design, whose calls the node
    // holds for only as long as the restart takes (a chat agent's call is given 45 s).
    const llmJob = await run({ mode: 'llm', word: 'restart' });
    const sleepJob = await run({ mode: 'sleep', seconds: SLEEP_S });
    await waitFor("both job containers, and the job's LLM call at the node", async () => {
      return (
        calls(isJob) === 1 &&
        (await containersOfJob(docker, sleepJob)).length === 1 &&
        (await containersOfJob(docker, llmJob)).length === 1
      );
    });

    const messageIds: string[] = [];
    for (let i = 0; i < CHATS; i++) {
      const id = `restart-m${i}`;
      const raw = JSON.stringify({
        type: 'message',
        entity: { id, chatId: `restart-chat-${i}`, plainText: `Hello, message ${i} here.`, personType: 'user' },
      });
      const res = await request(app)
        .post('/webhooks/channel')
        .set('content-type', 'application/json')
        .set(SIGNATURE_HEADER, signBody(SECRET, raw))
        .send(raw);
      expect(res.status).toBe(202);
      messageIds.push(id);
    }
    const design = await request(app)
      .post('/designs')
      .set(auth())
      .send({ modelId: MODEL, graph: 'v1', maxFixIterations: 0, request: 'a logs bucket' });
    expect(design.status).toBe(202);
    const designId = design.body.id as string;
    await waitFor("the chats' agent calls and the design's consultant at the node", () => {
      return calls(isAgent) === CHATS && calls(isDesign) === 1;
    });
    const heldCalls = fake.requests.filter((r) => !isRouter(r)).length;
    expect(heldCalls).toBe(CHATS + 2);

    await temporalSvc!.stop();
    // The sleeping job's container runs on while the server is down.
    expect(await containersOfJob(docker, sleepJob)).toHaveLength(1);
    temporalSvc = await startServer(2);
    openGate();

    const sleepResult = await getUntil(`/jobs/${sleepJob}?waitMs=20000`, (b) => b.status !== 'running' && b.result);
    expect(sleepResult).toMatchObject({ status: 'succeeded', result: { exitCode: 0 } });
    expect(sleepResult.result.stdout).toBe('sleeping\nslept\n');
    const llmResult = await getUntil(`/jobs/${llmJob}?waitMs=20000`, (b) => b.status !== 'running' && b.result);
    expect(llmResult).toMatchObject({ status: 'succeeded', result: { exitCode: 0 } });
    expect(llmResult.result.stdout).toBe('restart back\n');

    // A finished design stays open for follow-up changes: its graph has completed when its phase says so.
    const done = await getUntil(`/designs/${designId}`, (b) => b.phase === 'completed' || b.status !== 'running');
    expect(done).toMatchObject({ status: 'running', phase: 'completed', questions: [] });
    expect(done.validation.ok).toBe(true);
    expect(done.plan.resources.map((r: { type: string }) => r.type)).toEqual(['aws_s3_bucket']);

    for (let i = 0; i < CHATS; i++) {
      await waitFor(`a reply in chat ${i}`, async () => {
        const out = await listOutboxMessages(storage, CHANNEL, `restart-chat-${i}`, { limit: 10 });
        return out.length > 0;
      });
      const out = await listOutboxMessages(storage, CHANNEL, `restart-chat-${i}`, { limit: 10 });
      expect(out.map((m) => m.inReplyTo)).toEqual([[messageIds[i]]]);
    }

    // No call was sent twice: the held ones were answered once, then the remaining design nodes ran once each.
    expect(calls(isJob)).toBe(1);
    expect(calls(isRouter)).toBe(CHATS);
    expect(calls(isAgent)).toBe(CHATS);
    expect(calls(isDesign)).toBe(4);
    expect(await containersOfJob(docker, sleepJob)).toEqual([]);
    expect(await containersOfJob(docker, llmJob)).toEqual([]);
  });
});
