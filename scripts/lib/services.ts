/**
 * Starting and stopping the local services (Temporal dev server, moto, Ollama nodes) as child processes.
 * Shared by the dev supervisor (`npm start`), the test runner (`npm test`), test helpers and benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT, type Toolchain } from './toolchain';

export interface Service {
  name: string;
  url: string;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function isPortOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    sock.setTimeout(500);
    sock.once('connect', () => (sock.destroy(), resolve(true)));
    sock.once('error', () => resolve(false));
    sock.once('timeout', () => (sock.destroy(), resolve(false)));
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`);
}

export async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  return res.ok;
}

/** Spawns a process whose output goes to `logFile` (and, with `prefix`, to our stdout line by line). */
export function spawnService(
  name: string,
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; logFile: string; echo?: boolean; cwd?: string },
): ChildProcess {
  mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const proc = spawn(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `[${name}] `;
  for (const stream of [proc.stdout, proc.stderr]) {
    stream?.pipe(log, { end: false });
    if (opts.echo) {
      let buf = '';
      stream?.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const line of lines) if (line.trim()) process.stdout.write(prefix + line + '\n');
      });
    }
  }
  return proc;
}

export async function stopProcess(proc: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

function service(name: string, port: number, url: string, proc: ChildProcess): Service {
  return { name, port, url, proc, stop: () => stopProcess(proc) };
}

export function readSearchAttributes(): Record<string, string> {
  return JSON.parse(readFileSync(path.join(ROOT, 'temporal-config', 'search-attributes.json'), 'utf8')) as Record<
    string,
    string
  >;
}

/** temporal-config/dev-server.flags as CLI arguments (one `--flag value` per line; # comments). */
export function readDevServerFlags(): string[] {
  const args: string[] = [];
  for (const line of readFileSync(path.join(ROOT, 'temporal-config', 'dev-server.flags'), 'utf8').split('\n')) {
    const t = line.trim();
    if (t && !t.startsWith('#')) args.push(...t.split(/\s+/, 2));
  }
  return args;
}

/** Temporal dev server (+ Web UI on uiPort) with our search attributes and dynamic config. */
export async function startTemporal(
  tc: Toolchain,
  opts: { port: number; uiPort: number; dbFile?: string; logFile: string; echo?: boolean },
): Promise<Service> {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--ui-port',
    String(opts.uiPort),
  ];
  args.push('--log-level', 'warn', '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true');
  args.push(...readDevServerFlags());
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  for (const [name, type] of Object.entries(readSearchAttributes())) args.push('--search-attribute', `${name}=${type}`);
  const proc = spawnService('temporal', tc.temporal, args, { logFile: opts.logFile, echo: opts.echo });
  await waitFor('Temporal dev server', () => isPortOpen(opts.port), 60_000);
  return service('temporal', opts.port, `127.0.0.1:${opts.port}`, proc);
}

/** moto server: S3 + DynamoDB emulator. */
export async function startMoto(
  tc: Toolchain,
  opts: { port: number; logFile: string; echo?: boolean },
): Promise<Service> {
  const proc = spawnService('moto', tc.motoServer, ['-H', '127.0.0.1', '-p', String(opts.port)], {
    logFile: opts.logFile,
    echo: opts.echo,
  });
  const url = `http://127.0.0.1:${opts.port}`;
  await waitFor('moto server', () => httpOk(`${url}/moto-api/`), 60_000);
  return service('moto', opts.port, url, proc);
}

/** One `ollama serve` = one "GPU node". `modelsDir` decides which models it serves. */
export async function startOllama(
  tc: Toolchain,
  opts: { port: number; modelsDir?: string; numParallel?: number; logFile: string; echo?: boolean; name?: string },
): Promise<Service> {
  const proc = spawnService(opts.name ?? 'ollama', tc.ollama, ['serve'], {
    logFile: opts.logFile,
    echo: opts.echo,
    env: {
      OLLAMA_HOST: `127.0.0.1:${opts.port}`,
      OLLAMA_MODELS: opts.modelsDir ?? tc.ollamaModels,
      OLLAMA_NUM_PARALLEL: String(opts.numParallel ?? 4),
      OLLAMA_KEEP_ALIVE: '24h',
      OLLAMA_MAX_LOADED_MODELS: '2',
    },
  });
  const url = `http://127.0.0.1:${opts.port}`;
  await waitFor('ollama', () => httpOk(`${url}/api/version`), 60_000);
  return service(opts.name ?? 'ollama', opts.port, url, proc);
}
