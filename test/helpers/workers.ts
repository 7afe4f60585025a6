/**
 * The workers of an integration test: an orchestrator worker with only the workflows under test (faster to
 * bundle, independent of other workflows' files) and one llm worker group per Ollama node (real or scripted),
 * all started and stopped together through scripts/lib/workers.ts.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../common/config';
import type { Storage } from '../../lib/storage/clients';
import { runWorkers, type RunningWorkers } from '../../scripts/lib/workers';
import { createLlmWorkers } from '../../workers/llm';
import { createOrchestratorWorker } from '../../workers/orchestrator';

export interface TestNode {
  id: string;
  url: string;
  /** Config of this node's llm worker over the test's (e.g. a short LLM_CALL_TIMEOUT_MS). */
  config?: Partial<Config>;
  /** How long the worker waits for the node to answer at start (default 10 s; a real model loads slower). */
  waitForNodeMs?: number;
}

export async function startTestWorkers(
  env: TestWorkflowEnvironment,
  opts: { config: Config; storage: Storage; workflowsPath: string; nodes: TestNode[] },
): Promise<RunningWorkers> {
  const workers = runWorkers([]);
  try {
    workers.add(
      await createOrchestratorWorker({
        connection: env.nativeConnection,
        config: opts.config,
        storage: opts.storage,
        overrides: { workflowsPath: opts.workflowsPath },
      }),
    );
    for (const node of opts.nodes) {
      const llm = await createLlmWorkers({
        connection: env.nativeConnection,
        config: { ...opts.config, OLLAMA_URL: node.url, NODE_ID: node.id, ...node.config },
        waitForNodeMs: node.waitForNodeMs ?? 10_000,
      });
      workers.add(...llm);
    }
    return workers;
  } catch (err) {
    await workers.stop();
    throw err;
  }
}
