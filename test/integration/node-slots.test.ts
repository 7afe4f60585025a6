/**
 * Node slots, not queue slots: a node serving two models runs at most OLLAMA_NUM_PARALLEL generations at once in
 * all, however the calls are spread over its model queues (before, each model queue had the full count, so a
 * two-model node ran 2×). The scripted fake Ollama counts the generations it is serving at once. Also: one busy
 * model may use the whole budget, and a one-slot node serving two models serves both (no model starves).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createModelCheckActivities } from '../../activities/llm/model-check';
import { createCatalog } from '../../lib/llm/catalog';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { createLlmWorkers } from '../../workers/llm';
import { promptWorkflow } from '../../workflows/prompt-workflow';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { createTemporalEnv, testConfig, uid } from '../helpers/env';

jest.setTimeout(180_000);

const run = Date.now().toString(36);
// Unique model names per run: their queues (ainode-llm.<model>) are not shared with other tests.
const A = `slots-a-${run}:1b`;
const B = `slots-b-${run}:1b`;
const C = `slots-c-${run}:1b`;
const D = `slots-d-${run}:1b`;
const GENERATION_MS = 300;

/** A fake node that records, per model, how many generations it served and the most it ran at once. */
async function countingNode(models: string[]) {
  let inFlight = 0;
  const counts = { max: 0, served: new Map<string, number>() };
  const fake = await startFakeOllama({
    models,
    script: async (req) => {
      inFlight++;
      counts.max = Math.max(counts.max, inFlight);
      counts.served.set(req.model, (counts.served.get(req.model) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, GENERATION_MS));
      inFlight--;
      return 'ok';
    },
  });
  return { fake, counts };
}

describe('a node’s slots are shared by its model queues', () => {
  let env: TestWorkflowEnvironment;
  let workers: RunningWorkers | undefined;
  let two: Awaited<ReturnType<typeof countingNode>>;
  let one: Awaited<ReturnType<typeof countingNode>>;
  const fakes: FakeOllama[] = [];
  const taskQueue = uid('slots-orchestrator');

  beforeAll(async () => {
    env = await createTemporalEnv();
    two = await countingNode([A, B]);
    one = await countingNode([C, D]);
    fakes.push(two.fake, one.fake);
    const node = (id: string, url: string, slots: number) =>
      createLlmWorkers({
        connection: env.nativeConnection,
        config: testConfig({ NODE_ID: id, OLLAMA_URL: url, OLLAMA_NUM_PARALLEL: String(slots) }),
        waitForNodeMs: 10_000,
      });
    const orchestrator = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../workflows/prompt-workflow'),
      activities: createModelCheckActivities({
        catalog: createCatalog({
          nodes: [
            { id: 'two-slots', url: two.fake.url },
            { id: 'one-slot', url: one.fake.url },
          ],
          nodeTimeoutMs: 2000,
        }),
      }),
    });
    workers = runWorkers([
      ...(await node('two-slots', two.fake.url, 2)),
      ...(await node('one-slot', one.fake.url, 1)),
      orchestrator,
    ]);
  });

  afterAll(async () => {
    await workers?.stop();
    await env?.teardown();
    await Promise.all(fakes.map((f) => f.close()));
  });

  const prompts = (models: string[], perModel: number) =>
    Promise.all(
      models.flatMap((modelId) =>
        Array.from({ length: perModel }, () =>
          env.client.workflow.execute(promptWorkflow, {
            taskQueue,
            workflowId: uid('slots'),
            args: [{ modelId, prompt: 'hi', options: { num_predict: 4 } }],
          }),
        ),
      ),
    );

  it('runs at most the node’s parallelism across both model queues, and a lone busy model uses all of it', async () => {
    const both = await prompts([A, B], 6);
    expect(both.map((r) => r.content)).toEqual(Array(12).fill('ok'));
    expect(two.counts.served.get(A)).toBe(6);
    expect(two.counts.served.get(B)).toBe(6);
    // Two queues with a budget of 2 each would have let up to 4 run at once.
    expect(two.counts.max).toBe(2);

    two.counts.max = 0;
    const alone = await prompts([A], 6);
    expect(alone).toHaveLength(6);
    // The budget is the node's, not split per queue: a lone busy model gets both slots.
    expect(two.counts.max).toBe(2);
  });

  it('serves both models of a one-slot node, one generation at a time', async () => {
    const results = await prompts([C, D], 4);
    expect(results.map((r) => r.nodeId)).toEqual(Array(8).fill('one-slot'));
    expect(one.counts.served.get(C)).toBe(4);
    expect(one.counts.served.get(D)).toBe(4);
    expect(one.counts.max).toBe(1);
  });
});
