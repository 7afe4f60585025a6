/**
 * Pinning: two Ollama nodes serving different models, each with its own llm workers. Every call for a model
 * must be answered by the node that serves it (never the other one, which would have to load it).
 * Node 1 is the node `npm test` started (gemma3:270m); node 2 is started here with its own models dir and a
 * second model name created from the same GGUF.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { llmQueue, nodeQueue } from '../../common/task-queues';
import { freePort, startOllama, type Service } from '../../scripts/lib/services';
import { ROOT, type Toolchain } from '../../scripts/lib/toolchain';
import { createLlmWorkers } from '../../workers/llm';
import { promptWorkflow } from '../../workflows/prompt-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { createCatalog } from '../../activities/llm/catalog';
import { createModelCheckActivities } from '../../activities/llm/model-check';

jest.setTimeout(600_000);

const MODEL_A = services.model;
const MODEL_B = 'gemma3-b:270m';
const PER_MODEL = 3;

/** A second `ollama serve` whose only model is MODEL_B, built from the suite's GGUF. */
async function startSecondNode(dir: string): Promise<Service> {
  const node = await startOllama({ ollama: services.ollamaBin } as Toolchain, {
    port: await freePort(),
    modelsDir: path.join(dir, 'models'),
    numParallel: 2,
    logFile: path.join(dir, 'ollama.log'),
    name: 'ollama-2',
  });
  // The repo's Gemma 3 recipe (chat template + stop token) with FROM pointing at the GGUF.
  const gguf = path.join(services.ggufDir, 'gemma-3-270m-q4_k_m.gguf');
  const recipe = readFileSync(path.join(ROOT, 'scripts', 'assets', 'gemma3.Modelfile.tmpl'), 'utf8');
  const modelfile = path.join(dir, 'Modelfile');
  writeFileSync(modelfile, recipe.replace('__GGUF__', gguf));
  await promisify(execFile)(services.ollamaBin, ['create', MODEL_B, '-f', modelfile], {
    env: { ...process.env, OLLAMA_HOST: node.url.replace(/^http:\/\//, '') },
    timeout: 180_000,
  });
  return node;
}

describe('pinned model queues across two nodes', () => {
  let env: TestWorkflowEnvironment;
  let node2: Service | undefined;
  let dir: string;
  let workers: Worker[] = [];
  let running: Promise<void>[] = [];
  const taskQueue = uid('orchestrator');
  const queuesOf = (ws: Worker[]) => ws.map((w) => w.options.taskQueue).sort();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ainode-node2-'));
    [env, node2] = await Promise.all([createTemporalEnv(), startSecondNode(dir)]);
    const node1Workers = await createLlmWorkers({
      connection: env.nativeConnection,
      config: testConfig({ NODE_ID: 'node-1' }),
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
          nodes: [...testConfig().OLLAMA_NODES, { id: 'node-2', url: node2.url }],
          nodeTimeoutMs: 2000,
        }),
      }),
    });
    workers = [...node1Workers, ...node2Workers, orchestrator];
    running = workers.map((w) => w.run());
  });

  afterAll(async () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.all(running);
    await env?.teardown();
    await node2?.stop();
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
