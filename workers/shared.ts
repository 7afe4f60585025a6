/** Boring entry-point plumbing shared by every worker role. */
import { NativeConnection, Runtime, DefaultLogger, type Worker } from '@temporalio/worker';
import type { Config } from '../common/config';

export async function connectWorker(config: Pick<Config, 'TEMPORAL_ADDRESS'>): Promise<NativeConnection> {
  return NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
}

export function installRuntimeLogger(level: string): void {
  const map: Record<string, 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'> = {
    trace: 'TRACE',
    debug: 'DEBUG',
    info: 'INFO',
    warn: 'WARN',
    error: 'ERROR',
    fatal: 'ERROR',
    silent: 'ERROR',
  };
  Runtime.install({ logger: new DefaultLogger(map[level] ?? 'INFO'), shutdownSignals: [] });
}

/**
 * Runs workers until SIGINT/SIGTERM, then shuts them down once (Temporal drains in-flight tasks up to the
 * workers' shutdownGraceTime) and exits; a second signal exits at once.
 */
export async function runUntilSignal(workers: Worker[], onStop?: () => Promise<void>): Promise<void> {
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await onStop?.();
  }
}
