/**
 * Starting and stopping the local services (Temporal dev server, moto, Ollama nodes) as child processes.
 * Shared by the dev supervisor (`npm start`), the test runner (`npm test`), test helpers and benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
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
  opts: {
    port: number;
    uiPort: number;
    dbFile?: string;
    logFile: string;
    echo?: boolean;
    /** The API's payload codec endpoint, so the Web UI shows encrypted payloads (api/routes/codec.ts). */
    uiCodecEndpoint?: string;
  },
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
  if (opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
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

/**
 * One `ollama serve` = one "GPU node". `modelsDir` decides which models it serves. OLLAMA_NOPRUNE: at start
 * Ollama deletes the blobs no manifest of its own dir uses; a node with a subset of a shared cache must not.
 */
export async function startOllama(
  tc: Toolchain,
  opts: {
    port: number;
    modelsDir?: string;
    numParallel?: number;
    /** OLLAMA_MAX_LOADED_MODELS (default 2); 1 makes the node swap models (bench/pinning.bench.ts). */
    maxLoadedModels?: number;
    logFile: string;
    echo?: boolean;
    name?: string;
  },
): Promise<Service> {
  const proc = spawnService(opts.name ?? 'ollama', tc.ollama, ['serve'], {
    logFile: opts.logFile,
    echo: opts.echo,
    env: {
      OLLAMA_HOST: `127.0.0.1:${opts.port}`,
      OLLAMA_MODELS: opts.modelsDir ?? tc.ollamaModels,
      OLLAMA_NUM_PARALLEL: String(opts.numParallel ?? 4),
      OLLAMA_KEEP_ALIVE: '24h',
      OLLAMA_MAX_LOADED_MODELS: String(opts.maxLoadedModels ?? 2),
      OLLAMA_NOPRUNE: '1',
    },
  });
  const url = `http://127.0.0.1:${opts.port}`;
  await waitFor('ollama', () => httpOk(`${url}/api/version`), 60_000);
  return service(opts.name ?? 'ollama', opts.port, url, proc);
}

/** Where Ollama keeps a model's manifest: `gemma3:270m` → manifests/registry.ollama.ai/library/gemma3/270m. */
export function manifestPath(modelsDir: string, model: string): string {
  const colon = model.lastIndexOf(':');
  const [name, tag] =
    colon > model.lastIndexOf('/') ? [model.slice(0, colon), model.slice(colon + 1)] : [model, 'latest'];
  const parts = name.split('/');
  const full =
    parts.length >= 3
      ? parts
      : parts.length === 2
        ? ['registry.ollama.ai', ...parts]
        : ['registry.ollama.ai', 'library', name];
  return path.join(modelsDir, 'manifests', ...full, tag);
}

function isLink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The blob digests a manifest file names (config + layers), as blob file names (`sha256-…`). */
function blobsOf(manifestFile: string): string[] {
  const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as {
    config?: { digest?: string };
    layers?: { digest?: string }[];
  };
  return [m.config, ...(m.layers ?? [])].flatMap((l) => (l?.digest ? [l.digest.replace(':', '-')] : []));
}

/**
 * Makes `nodeDir` an OLLAMA_MODELS dir that serves exactly `models` from the shared cache `sharedDir`, without
 * copying gigabytes: each model's manifest is copied, and each blob it uses is a symlink to the cache's file (one
 * link per blob, not a linked blobs dir, so an `ollama rm` on this node removes its own links and never the
 * cache's files). Models placed here earlier and no longer listed are removed; models created on the node by
 * hand (`ollama create`, `/api/copy`) are left alone. Returns the models the cache does not have.
 */
export function prepareNodeModelsDir(sharedDir: string, nodeDir: string, models: string[]): { missing: string[] } {
  const stateFile = path.join(nodeDir, '.ainode-managed.json');
  const before: string[] = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as string[]) : [];
  mkdirSync(path.join(nodeDir, 'blobs'), { recursive: true });
  for (const old of before.filter((m) => !models.includes(m))) rmSync(manifestPath(nodeDir, old), { force: true });
  const missing: string[] = [];
  const placed: string[] = [];
  for (const model of models) {
    const src = manifestPath(sharedDir, model);
    if (!existsSync(src)) {
      missing.push(model);
      continue;
    }
    const dst = manifestPath(nodeDir, model);
    mkdirSync(path.dirname(dst), { recursive: true });
    copyFileSync(src, dst);
    for (const blob of blobsOf(src)) {
      const link = path.join(nodeDir, 'blobs', blob);
      const target = path.join(sharedDir, 'blobs', blob);
      if (isLink(link) && !existsSync(link)) rmSync(link); // dangling: the cache moved
      if (!isLink(link) && !existsSync(link)) symlinkSync(target, link);
    }
    placed.push(model);
  }
  writeFileSync(stateFile, JSON.stringify(placed) + '\n');
  return { missing };
}
