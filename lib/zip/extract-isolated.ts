/**
 * Extraction without root. The executor runs as root (it holds the Docker socket and mounts quotas), but a
 * hostile archive is parsed and written by a child process with an unprivileged uid that owns only the
 * destination dir: a bug in the zip parser then runs as that uid, not as root. The limits, progress and cancel
 * behave as with `extractZip`; a process that is not root extracts in-process (it has nothing to drop).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  ArchiveAborted,
  ArchiveError,
  extractZip,
  type ArchiveLimits,
  type ArchiveSummary,
  type ExtractHooks,
} from './extract';

/** The uid (and gid) extraction runs as when the executor is root: not the job's (10001), not root. */
export const EXTRACT_UID = 10002;

interface ChildMessage {
  progress?: { entries: number; totalBytes: number };
  summary?: ArchiveSummary;
  error?: { archive: boolean; message: string; entry?: string };
}

export async function extractZipIsolated(
  buf: Buffer,
  destDir: string,
  limits: ArchiveLimits,
  hooks: ExtractHooks & { scratchDir: string; uid?: number },
): Promise<ArchiveSummary> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return extractZip(buf, destDir, limits, hooks);
  const uid = hooks.uid ?? EXTRACT_UID;
  const zipPath = path.join(hooks.scratchDir, 'package.zip');
  await fs.writeFile(zipPath, buf, { mode: 0o644 });
  await fs.mkdir(destDir, { recursive: true, mode: 0o755 });
  await fs.chown(destDir, uid, uid);
  // Compiled (dist/*.js) it runs as is; from TypeScript sources the child loads tsx like `npm start` does.
  const ext = path.extname(__filename);
  // The entry point lives with the other process entry points (workers/), so builds compile it.
  const child = fork(path.join(__dirname, `../../workers/executor-extract${ext}`), [], {
    uid,
    gid: uid,
    execArgv: ext === '.ts' ? ['--import', 'tsx'] : [],
    // Nothing of the executor's environment (credentials) reaches the child.
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: hooks.scratchDir,
      NODE_OPTIONS: '--max-old-space-size=512',
    },
    cwd: process.cwd(),
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
  try {
    return await new Promise<ArchiveSummary>((resolve, reject) => {
      const onAbort = () => {
        child.kill('SIGKILL');
        reject(new ArchiveAborted());
      };
      if (hooks.signal?.aborted) return onAbort();
      hooks.signal?.addEventListener('abort', onAbort, { once: true });
      child.on('message', (m: ChildMessage) => {
        if (m.progress) hooks.onProgress?.(m.progress);
        else if (m.summary) resolve(m.summary);
        else if (m.error) {
          reject(m.error.archive ? new ArchiveError(m.error.message, m.error.entry) : new Error(m.error.message));
        }
      });
      child.on('error', reject);
      child.on('exit', (code, signal) =>
        reject(new Error(`extractor exited (${signal ?? code}) before finishing: ${stderr.trim()}`)),
      );
      child.send({ zipPath, destDir, limits });
    });
  } finally {
    // Wait for the child to be gone, so nothing is written into destDir after this settles.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit').catch(() => undefined);
      child.kill('SIGKILL');
      await exited;
    }
    await fs.rm(zipPath, { force: true });
  }
}
