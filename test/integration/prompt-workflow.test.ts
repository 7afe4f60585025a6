/**
 * promptWorkflow end to end on a real Temporal dev server: an in-process llm worker (createLlmWorkers)
 * against the real Ollama node `npm test` started, with the real small model.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';

import { createLlmWorkers } from '../../workers/llm';
import { promptStatusQuery } from '../../contracts/definitions';
import { promptWorkflow } from '../../workflows/prompt-workflow';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { createCatalog } from '../../lib/llm/catalog';
import { createModelCheckActivities } from '../../activities/llm/model-check';
import { SearchAttribute } from '../../common/search-attributes';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';

jest.setTimeout(180_000);

describe('promptWorkflow with the real model', () => {
  let env: TestWorkflowEnvironment;
  let workers: RunningWorkers | undefined;
  const taskQueue = uid('orchestrator');

  beforeAll(async () => {
    env = await createTemporalEnv();
    const config = testConfig({ NODE_ID: 'node-1' });
    const llmWorkers = await createLlmWorkers({ connection: env.nativeConnection, config, waitForNodeMs: 30_000 });
    // An orchestrator-like worker with only this workflow, so other workflows' bundles play no part here.
    const orchestrator = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../workflows/prompt-workflow'),
      activities: createModelCheckActivities({
        catalog: createCatalog({ nodes: config.OLLAMA_NODES, nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS }),
      }),
    });
    workers = runWorkers([...llmWorkers, orchestrator]);
  });

  afterAll(async () => {
    await workers?.stop();
    await env?.teardown();
  });

  it('answers a prompt with text and Ollama’s own non-zero token counts', async () => {
    const workflowId = uid('prompt');
    const result = await env.client.workflow.execute(promptWorkflow, {
      taskQueue,
      workflowId,
      args: [
        { modelId: services.model, prompt: 'Name one colour.', options: { num_predict: 16, temperature: 0, seed: 1 } },
      ],
    });
    expect(result.content.trim().length).toBeGreaterThan(0);
    expect(result.nodeId).toBe('node-1');
    expect(result.model).toBe(services.model);
    expect(result.usage.promptTokens).toBeGreaterThan(0);
    expect(result.usage.completionTokens).toBeGreaterThan(0);
    expect(result.usage.completionTokens).toBeLessThanOrEqual(16);
    await recordHistory('prompt-generate', env.client.workflow.getHandle(workflowId));
    expect(result.usage.totalTokens).toBe(result.usage.promptTokens + result.usage.completionTokens);

    const handle = env.client.workflow.getHandle(workflowId);
    expect(await handle.query(promptStatusQuery)).toMatchObject({ phase: 'completed', nodeId: 'node-1' });
    const { searchAttributes } = await handle.describe();
    expect(searchAttributes[SearchAttribute.Kind]).toEqual(['prompt']);
    expect(searchAttributes[SearchAttribute.ModelId]).toEqual([services.model]);

    // The Web UI shows the activity's summary: model and purpose.
    const history = await handle.fetchHistory();
    const scheduled = history.events?.find((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled?.activityTaskScheduledEventAttributes?.activityType?.name).toBe('llmGenerate');
    const summary = scheduled?.userMetadata?.summary?.data;
    expect(summary && JSON.parse(Buffer.from(summary).toString())).toBe(`${services.model} · prompt`);
  });

  it('answers chat messages the same way', async () => {
    const result = await env.client.workflow.execute(promptWorkflow, {
      taskQueue,
      workflowId: uid('prompt'),
      args: [
        {
          modelId: services.model,
          messages: [
            { role: 'system', content: 'You answer in one word.' },
            { role: 'user', content: 'What colour is grass?' },
          ],
          options: { num_predict: 16, temperature: 0 },
        },
      ],
    });
    expect(result.content.trim().length).toBeGreaterThan(0);
    expect(result.usage.promptTokens).toBeGreaterThan(0);
    expect(result.usage.completionTokens).toBeGreaterThan(0);
  });

  it('fails fast with a non-retryable ModelNotFound for a model no node serves', async () => {
    const workflowId = uid('prompt');
    const err = await env.client.workflow
      .execute(promptWorkflow, { taskQueue, workflowId, args: [{ modelId: 'no-such-model:1b', prompt: 'hello' }] })
      .then(
        () => undefined,
        (e: unknown) => e as { cause?: { type?: string; message?: string; cause?: unknown } },
      );
    // A local activity's failure surfaces as the ApplicationFailure itself.
    expect(err?.cause).toMatchObject({ type: 'ModelNotFound', nonRetryable: true });
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled).toHaveLength(0); // no llm activity was ever queued
  });

  it('rejects a request with both prompt and messages, without retrying', async () => {
    const workflowId = uid('prompt');
    await expect(
      env.client.workflow.execute(promptWorkflow, {
        taskQueue,
        workflowId,
        args: [{ modelId: services.model, prompt: 'a', messages: [{ role: 'user', content: 'b' }] }],
      }),
    ).rejects.toMatchObject({ cause: { type: 'InvalidRequest' } });
    expect(await env.client.workflow.getHandle(workflowId).query(promptStatusQuery)).toMatchObject({ phase: 'failed' });
  });
});
