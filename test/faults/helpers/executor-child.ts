/**
 * The executor worker as its own process, the way `workers/executor.ts` runs it (config from the environment:
 * EXECUTOR_ID, GATEWAY_SOCKET_DIR, the test's Temporal server and storage), so a fault test can `kill -9` it in the
 * middle of a job and start it again. At start it cleans up after a previous life (orphaned containers, work dirs,
 * stale gateway socket dirs), then prints `worker-ready removed=[...]` (the containers it removed).
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../../../common/config';
import { createLogger } from '../../../common/logger';
import { dataConverterFor } from '../../../lib/codec/payload-codec';
import { createStorage, ensureStorage } from '../../../lib/storage/clients';
import { createExecutorWorker } from '../../../workers/executor';
import { quietRuntime } from '../../helpers/env';

async function main(): Promise<void> {
  quietRuntime();
  const config = loadConfig(process.env);
  const logger = createLogger('executor', config);
  const storage = createStorage(config);
  await ensureStorage(storage);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const client = new Client({
    connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }),
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(config),
  });
  const { worker, removed } = await createExecutorWorker({
    connection,
    client,
    config,
    storage,
    logger,
    executorId: config.EXECUTOR_ID,
  });
  const running = worker.run();
  process.stdout.write(`worker-ready removed=${JSON.stringify(removed)}\n`);
  process.once('SIGTERM', () => worker.shutdown());
  await running;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
