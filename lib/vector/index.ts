/** The vector store selected by config: VECTOR_STORE=embedded (default) or pgvector (PGVECTOR_URL). */
import type { Config } from '../../common/config';
import { createEmbeddedVectorStore } from './embedded';
import { createPgVectorStore } from './pgvector';
import type { VectorBackend } from './types';

export * from './types';
export { createEmbeddedVectorStore } from './embedded';
export { createPgVectorStore } from './pgvector';
export { formatOf, splitText } from './chunking';

export function createVectorBackend(
  config: Pick<Config, 'VECTOR_STORE' | 'VECTOR_DB_PATH' | 'PGVECTOR_URL'>,
): VectorBackend {
  if (config.VECTOR_STORE === 'pgvector') {
    if (!config.PGVECTOR_URL)
      throw new Error('VECTOR_STORE=pgvector needs PGVECTOR_URL (postgres://user:pass@host/db)');
    return createPgVectorStore(config.PGVECTOR_URL);
  }
  return createEmbeddedVectorStore(config.VECTOR_DB_PATH);
}
