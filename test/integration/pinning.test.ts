/**
 * Pinning: two Ollama nodes serving different models, each with its own llm workers. Every call for a model
 * must be answered by the node that serves it (never the other one, which would have to load it).
 * Both nodes are private `ollama serve`s set up like the dev stack's (scripts/lib/services.ts
 * prepareNodeModelsDir: their own models dir, blobs linked from the shared cache): node 1 serves the suite's
 * model; node 2 serves only a second name for the same weights (`/api/copy`, then the original removed from node
 * 2), so each model lives on exactly one node whatever else the shared cache holds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { llmQueue, nodeQueue, normalizeModel } from '../../common/task-queues';
import { freePort, prepareNodeModelsDir, startOllama, type Service } from '../../scripts/lib/services';
import type { Toolchain } from '../../scripts/lib/toolchain';
import { createLlmWorkers } from '../../workers/llm';
import { promptWorkflow } from '../../workflows/prompt-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { createCatalog } from '../../lib/llm/catalog';
import { createModelCheckActivities } from '../../activities/llm/model-check';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(600_000);

const MODEL_A = normalizeModel(services.model);
const MODEL_B = 'pinned-b:latest';
const PER_MODEL = 3;

async function ollama(url: string, route: string, body: unknown, method = 'POST'): Promise<void> {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${route} answered ${res.status}: ${text}`);
}

/** A private node serving MODEL_A from the shared cache (node 2 then renames it). */
async function startNode(dir: string, name: string): Promise<Service> {
  const modelsDir = path.join(dir, name);
  const { missing } = prepareNodeModelsDir(services.ollamaModels, modelsDir, [MODEL_A]);
  if (missing.length) throw new Error(`${MODEL_A} is not in ${services.ollamaModels}`);
  return startOllama({ ollama: services.ollamaBin } as Toolchain, {
    port: await freePort(),
    modelsDir,
    numParallel: 2,
    logFile: path.join(dir, `${name}.log`),
    name,
  });
}

describe('pinned model queues across two nodes', () => {
  let env: TestWorkflowEnvironment;
  let node1: Service | undefined;
  let node2: Service | undefined;
  let dir: string;
  let workers: RunningWorkers | undefined;
  const taskQueue = uid('orchestrator');
  const queuesOf = (ws: Worker[]) => ws.map((w) => w.options.taskQueue).sort();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ainode-pinning-'));
    [env, node1, node2] = await Promise.all([createTemporalEnv(), startNode(dir, 'node-1'), startNode(dir, 'node-2')]);
    await ollama(node2.url, '/api/copy', { source: MODEL_A, destination: MODEL_B });
    await ollama(node2.url, '/api/delete', { model: MODEL_A }, 'DELETE');
    const node1Workers = await createLlmWorkers({
      connection: env.nativeConnection,
      config: testConfig({ NODE_ID: 'node-1', OLLAMA_URL: node1.url, OLLAMA_NUM_PARALLEL: '2' }),
      waitForNodeMs: 30_000,
    });
    const node2Workers = await createLlmWorkers({
      connection: env.nativeConnection,
      config: testConfig({ NODE_ID: 'node-2', OLLAMA_URL: node2.url, OLLAMA_NUM_PARALLEL: '2' }),
      waitForNodeMs: 30_000,
    });
    // Each node's workers poll only the queues of the models it serves, plus its own node queue.
    expect(queuesOf(node1Workers)).toEqual([llmQueue(MODEL_A), nodeQueue('node-1')].sort());
    expect(queuesOf(node2Workers)).toEqual([llmQueue(MODEL_B), nodeQueue('node-2')].sort());
    const orchestrator = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../workflows/prompt-workflow'),
      activities: createModelCheckActivities({
        catalog: createCatalog({
          nodes: [
            { id: 'node-1', url: node1.url },
            { id: 'node-2', url: node2.url },
          ],
          nodeTimeoutMs: 2000,
        }),
      }),
    });
    workers = runWorkers([...node1Workers, ...node2Workers, orchestrator]);
  });

  afterAll(async () => {
    await workers?.stop();
    await env?.teardown();
    await Promise.all([node1?.stop(), node2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers every call for a model on the node that serves it', async () => {
    const calls = [MODEL_A, MODEL_B].flatMap((modelId) =>
      Array.from({ length: PER_MODEL }, (_, i) =>
        env.client.workflow
          .execute(promptWorkflow, {
            taskQueue,
            workflowId: uid('pin'),
            args: [{ modelId, prompt: `Count to ${i + 2}.`, options: { num_predict: 4, temperature: 0 } }],
          })
          .then((r) => ({ modelId, ...r })),
      ),
    );
    const results = await Promise.all(calls);
    expect(results).toHaveLength(2 * PER_MODEL);
    for (const r of results) {
      expect({ model: r.modelId, nodeId: r.nodeId }).toEqual({
        model: r.modelId,
        nodeId: r.modelId === MODEL_A ? 'node-1' : 'node-2',
      });
      expect(r.model).toBe(r.modelId);
      expect(r.usage.completionTokens).toBeGreaterThan(0);
    }
  });
});
