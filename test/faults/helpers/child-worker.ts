/**
 * Worker processes of a fault test: started with the test's environment, waited for until they poll, and
 * killed with SIGKILL (as a crash or the OOM killer would) or stopped at the end. Output goes to a log file
 * under the test's temp dir, shown when a start fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');

export interface ChildWorker {
  proc: ChildProcess;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function startChildWorker(opts: {
  entry: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
  readyTimeoutMs?: number;
}): Promise<ChildWorker> {
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const proc = spawn(process.execPath, ['--import', 'tsx', opts.entry], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stderr.pipe(log, { end: false });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const ready = new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (c: Buffer) => {
      log.write(c);
      out += c.toString();
      if (out.includes('worker-ready')) resolve();
    });
    proc.once('exit', (code, signal) =>
      reject(new Error(`${opts.entry} exited (${signal ?? code}) before it was ready:\n${tail(opts.logFile)}`)),
    );
  });
  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ready,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${opts.entry} not ready in ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    async kill9() {
      if (alive()) proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (!alive()) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '';
  }
}
