/** API entry point: config → storage → Temporal client → catalog → Express app; stops once on SIGINT/SIGTERM. */
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../common/config';
import { createLogger } from '../common/logger';
import { createStorage, ensureStorage } from '../lib/storage/clients';
import { createCatalog } from '../lib/llm/catalog';
import { createApp } from './app';

/** How long in-flight requests get to finish on shutdown before connections are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

async function run(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('api', config);
  const storage = createStorage(config);
  let connection: Connection | undefined;
  let server: Server | undefined;
  try {
    await ensureStorage(storage);
    connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    const catalog = createCatalog({
      nodes: config.OLLAMA_NODES,
      nodeTimeoutMs: config.CATALOG_NODE_TIMEOUT_MS,
      temporal,
      namespace: config.TEMPORAL_NAMESPACE,
    });
    const app = createApp({ config, temporal, storage, catalog, logger });
    const listening = app.listen(config.API_PORT, config.API_HOST);
    server = listening;
    await new Promise<void>((resolve, reject) => {
      listening.once('listening', resolve);
      listening.once('error', reject);
    });
    logger.info({ url: `http://${config.API_HOST}:${config.API_PORT}`, docs: '/openapi.json' }, 'API listening');

    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    logger.info('shutting down');
    const closed = new Promise<void>((resolve) => listening.close(() => resolve()));
    listening.closeIdleConnections();
    const timer = setTimeout(() => listening.closeAllConnections(), SHUTDOWN_GRACE_MS);
    await closed;
    clearTimeout(timer);
  } finally {
    if (server?.listening) server.close();
    await connection?.close();
    storage.close();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
