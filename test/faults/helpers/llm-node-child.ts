/**
 * One node's llm worker as its own process, the way `workers/llm.ts` runs it in production: `createLlmNode` and
 * `run()`, so its refreshes and its circuit breaker (LLM_BREAKER_*) work; config from the environment (OLLAMA_URL,
 * NODE_ID, the test's Temporal server). Logs go to stdout at LOG_LEVEL. Prints `worker-ready` once it polls.
 */
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../../../common/config';
import { createLogger } from '../../../common/logger';
import { createLlmNode } from '../../../workers/llm';
import { quietRuntime } from '../../helpers/env';

async function main(): Promise<void> {
  quietRuntime();
  const config = loadConfig(process.env);
  const logger = createLogger('llm-worker', config);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const node = await createLlmNode({ connection, config, logger, waitForNodeMs: 10_000 });
  const running = node.run();
  process.stdout.write('worker-ready\n');
  process.once('SIGTERM', () => void node.shutdown());
  await running;
  await connection.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
