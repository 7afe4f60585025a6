/**
 * One node's llm worker as its own process, so a fault test can `kill -9` it in the middle of a generation:
 * config from the environment (OLLAMA_URL, NODE_ID, the test's Temporal server). Prints `worker-ready` once it
 * polls its model queues.
 */
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../../../common/config';
import { createLlmWorkers } from '../../../workers/llm';
import { runWorkers } from '../../../scripts/lib/workers';
import { quietRuntime } from '../../helpers/env';

async function main(): Promise<void> {
  quietRuntime();
  const config = loadConfig(process.env);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const workers = runWorkers(await createLlmWorkers({ connection, config, waitForNodeMs: 10_000 }));
  process.stdout.write('worker-ready\n');
  process.once('SIGTERM', () => void workers.stop());
  await new Promise<void>(() => {});
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
