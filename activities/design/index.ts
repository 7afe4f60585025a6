/** Design storage activities (orchestrator queue): Terraform files go to S3, only keys and sizes come back. */
import type { Storage } from '../../lib/storage/clients';
import { designFileKey, type DesignFileRef } from '../../contracts/design';

export interface DesignDeps {
  storage: Storage;
}

export function createDesignActivities({ storage }: DesignDeps) {
  return {
    /** Writes every file under `designs/<id>/<name>` (the latest revision wins). */
    async designStoreFiles(input: { designId: string; files: Record<string, string> }): Promise<DesignFileRef[]> {
      const refs: DesignFileRef[] = [];
      for (const [name, content] of Object.entries(input.files)) {
        const key = designFileKey(input.designId, name);
        await storage.putObject(key, Buffer.from(content), 'text/plain; charset=utf-8');
        refs.push({ name, key, size: Buffer.byteLength(content) });
      }
      return refs;
    },
  };
}

export type DesignActivities = ReturnType<typeof createDesignActivities>;
