/** What the Express app is built from; server.ts builds the real ones, tests pass their own. */
import type { Client } from '@temporalio/client';
import type { Config } from '../common/config';
import type { Logger } from '../common/logger';
import type { ModelCatalog } from '../lib/llm/catalog';
import type { Storage } from '../lib/storage/clients';
import type { StreamHub } from '../lib/stream/hub';
import type { VectorBackend } from '../lib/vector/types';

export interface ApiDeps {
  config: Config;
  temporal: Client;
  storage: Storage;
  catalog: ModelCatalog;
  logger: Logger;
  /** Streams of this process's streamed completions; createApp makes one when absent. */
  streams?: StreamHub;
  /** Vector stores (/v1/vector_stores); absent: the one config selects (VECTOR_STORE), opened on first use. */
  vectors?: VectorBackend;
}
