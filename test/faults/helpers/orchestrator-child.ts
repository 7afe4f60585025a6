/**
 * An orchestrator worker as its own process, so a fault test can `kill -9` it mid-work and start another: config
 * from the environment (the test's Temporal server, storage and nodes), workflows from FAULT_WORKFLOWS_PATH.
 * Prints `worker-ready` once it polls.
 */
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../../../common/config';
import { createStorage } from '../../../lib/storage/clients';
import { createOrchestratorWorker } from '../../../workers/orchestrator';
import { quietRuntime } from '../../helpers/env';

async function main(): Promise<void> {
  quietRuntime();
  const config = loadConfig(process.env);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const storage = createStorage(config);
  const worker = await createOrchestratorWorker({
    connection,
    config,
    storage,
    overrides: process.env.FAULT_WORKFLOWS_PATH ? { workflowsPath: process.env.FAULT_WORKFLOWS_PATH } : {},
  });
  const running = worker.run();
  process.stdout.write('worker-ready\n');
  process.once('SIGTERM', () => worker.shutdown());
  await running;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
