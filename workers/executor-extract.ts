/**
 * The executor's extractor process (lib/zip/extract-isolated.ts forks it): started with a non-root uid, it
 * reads the archive from a file, extracts it with the executor's limits, and reports progress, then the
 * summary or the error, over IPC.
 */
import { promises as fs } from 'node:fs';
import { ArchiveError, extractZip, type ArchiveLimits } from '../lib/zip/extract';

interface Job {
  zipPath: string;
  destDir: string;
  limits: ArchiveLimits;
}

process.once('message', (job: Job) => {
  void (async () => {
    try {
      const buf = await fs.readFile(job.zipPath);
      const summary = await extractZip(buf, job.destDir, job.limits, {
        onProgress: (p) => process.send?.({ progress: p }),
      });
      process.send?.({ summary }, () => process.exit(0));
    } catch (err) {
      const e = err as Error;
      const error = { archive: err instanceof ArchiveError, message: e.message, entry: (err as ArchiveError).entry };
      process.send?.({ error }, () => process.exit(0));
    }
  })();
});
