/**
 * Restart the Temporal dev server (same db file, same port) while prompts are generating. Its own stack: a
 * `temporal server start-dev` process for this file with a db file in a temp dir, the orchestrator and an llm
 * worker in this process over a scripted Ollama that streams slowly, the production API app.
 * Asserted: every prompt started before the restart completes after it with the whole generated text; the API
 * answers again once the server is back.
 */
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { freePort, startTemporal, type Service } from '../../scripts/lib/services';
import type { Toolchain } from '../../scripts/lib/toolchain';
import { startStreamingOllama, type StreamingOllama } from '../helpers/streaming-ollama';
import { quietRuntime, services, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';

jest.setTimeout(300_000);

const MODEL = 'fake-restart:1b';
const KEY = 'key-faults-temporal';
const auth = () => ({ Authorization: `Bearer ${KEY}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WORDS = Array.from({ length: 40 }, (_, i) => `w${i} `);
const PROMPTS = 3;

let dir: string;
let temporalSvc: Service | undefined;
let port: number;
let uiPort: number;
let nodeA: StreamingOllama;
let storage: Storage;
let workers: RunningWorkers | undefined;
let connection: NativeConnection | undefined;
let clientConnection: Connection | undefined;
let app: Express;

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
  dir = mkdtempSync(path.join(tmpdir(), 'ainode-faults-temporal-'));
  port = await freePort();
  uiPort = await freePort();
  temporalSvc = await startServer(1);
  const address = `127.0.0.1:${port}`;
  nodeA = await startStreamingOllama({ models: [MODEL], reply: () => ({ pieces: WORDS, delayMs: 150 }) });
  const config = testConfig({
    API_KEYS: `${KEY}:tenant-faults`,
    S3_BUCKET: uid('faults-temporal'),
    OLLAMA_URL: nodeA.url,
    OLLAMA_NODES: `node-a=${nodeA.url}`,
    NODE_ID: 'node-a',
    DEFAULT_MODEL: MODEL,
    TEMPORAL_ADDRESS: address,
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  connection = await NativeConnection.connect({ address });
  workers = runWorkers([
    await createOrchestratorWorker({
      connection,
      config,
      storage,
      overrides: { workflowsPath: require.resolve('../../workflows/prompt-workflow') },
    }),
    ...(await createLlmWorkers({ connection, config, waitForNodeMs: 10_000 })),
  ]);
  clientConnection = await Connection.connect({ address });
  const client = new Client({ connection: clientConnection });
  app = testApp({ client } as TestWorkflowEnvironment, { config, storage });
});

afterAll(async () => {
  await workers?.stop();
  await connection?.close();
  await clientConnection?.close();
  await temporalSvc?.stop();
  await nodeA?.close();
  storage?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('restart the Temporal dev server (same db file) while prompts generate', () => {
  it('every prompt started before the restart completes after it, with its whole text', async () => {
    const ids: string[] = [];
    for (let i = 0; i < PROMPTS; i++) {
      const res = await request(app)
        .post('/prompts')
        .set(auth())
        .send({ modelId: MODEL, prompt: `Count for me ${i}.` });
      expect(res.status).toBe(202);
      ids.push(res.body.id as string);
    }
    const deadline = Date.now() + 120_000;
    while (!nodeA.requests.some((r) => r.sent >= 3)) {
      if (Date.now() > deadline) throw new Error('no generation started');
      await sleep(100);
    }

    await temporalSvc!.stop();
    temporalSvc = await startServer(2);

    for (const id of ids) {
      let res = await request(app).get(`/prompts/${id}?waitMs=30000`).set(auth());
      for (let i = 0; i < 6 && (res.status !== 200 || res.body.status === 'running'); i++) {
        await sleep(res.status === 200 ? 0 : 1000);
        res = await request(app).get(`/prompts/${id}?waitMs=30000`).set(auth());
      }
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('completed');
      expect(res.body.result.nodeId).toBe('node-a');
      expect(String(res.body.result.content).trim()).toBe(WORDS.join('').trim());
    }
  });
});
