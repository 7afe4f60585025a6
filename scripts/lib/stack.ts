/**
 * Pieces of the local stack above the raw services (scripts/lib/services.ts): running TypeScript entry points
 * as children, making a reused Temporal server or Ollama node fit for ainode, and seeding storage. Used by the
 * dev supervisor (`npm start`) and the benchmarks.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { readSearchAttributes } from './services';
import { ROOT } from './toolchain';
import type { Storage } from '../../lib/storage/clients';

const execFileAsync = promisify(execFile);

/**
 * V8 flags a worker role starts with (compose gives the same in `command:`; docker-compose.yml). The orchestrator's
 * heap is bounded: with the reusable V8 context every workflow run it has processed leaves garbage that V8 keeps as
 * heap, so 1,000 chats answered once each left 1.2 GB of RSS; with 256 MB per isolate (main thread and the
 * workflow thread), about 0.5 GB (docs/scaling.md, "Chats on one orchestrator"). 256 MB holds the sticky cache of 250 runs
 * (ORCHESTRATOR_MAX_CACHED_WORKFLOWS, workers/orchestrator.ts) with room to spare. `ORCHESTRATOR_HEAP_MB` overrides it.
 */
export const DEFAULT_ORCHESTRATOR_HEAP_MB = 256;
export const ORCHESTRATOR_HEAP_MB = Number(process.env.ORCHESTRATOR_HEAP_MB) || DEFAULT_ORCHESTRATOR_HEAP_MB;
export const ROLE_NODE_ARGS: Readonly<Record<string, readonly string[]>> = {
  orchestrator: [`--max-old-space-size=${ORCHESTRATOR_HEAP_MB}`],
};

/**
 * Runs a TypeScript entry point with `node --import tsx`: the tsx loader inside one Node process, so signals
 * reach the program itself and its RSS is not doubled by a tsx wrapper process. Output goes to `logFile` and,
 * with `echo`, to our stdout with a `[name] ` prefix per line.
 * The child gets its own process group: a terminal's Ctrl-C then reaches only the supervisor, which stops each
 * child with exactly one signal (the workers treat a second signal as "exit now, skip draining").
 * `killOnExit` SIGKILLs it if this process exits without stopping it first.
 */
export function spawnTs(
  name: string,
  entry: string,
  opts: { env?: NodeJS.ProcessEnv; logFile: string; echo?: boolean },
): ChildProcess {
  mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  // A compiled entry (dist/**/*.js) runs on plain node, as in production; sources run through tsx.
  const loader = entry.endsWith('.js') ? [] : ['--import', 'tsx'];
  const role = path.basename(entry).replace(/\.(ts|js)$/, '');
  const proc = spawn(process.execPath, ['--enable-source-maps', ...(ROLE_NODE_ARGS[role] ?? []), ...loader, entry], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const prefix = `[${name}] `;
  for (const stream of [proc.stdout, proc.stderr]) {
    stream.pipe(log, { end: false });
    if (!opts.echo) continue;
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) process.stdout.write(prefix + line + '\n');
    });
  }
  const killOnExit = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  proc.once('exit', () => {
    process.removeListener('exit', killOnExit);
    log.end();
  });
  return proc;
}

/** The entry file relative to the repo root, or undefined when it is not there (yet). */
export function entryIfExists(relative: string): string | undefined {
  return existsSync(path.join(ROOT, relative)) ? relative : undefined;
}

/**
 * Registers any of our search attributes that a Temporal server lacks (a reused dev server may have been
 * started without them). Returns the names it created.
 */
export async function ensureSearchAttributes(
  temporalBin: string,
  address: string,
  namespace: string,
): Promise<string[]> {
  const base = ['--address', address, '--namespace', namespace];
  const { stdout } = await execFileAsync(temporalBin, ['operator', 'search-attribute', 'list', ...base], {
    timeout: 15_000,
  });
  const existing = new Set(stdout.split(/\s+/));
  const created: string[] = [];
  for (const [name, type] of Object.entries(readSearchAttributes())) {
    if (existing.has(name)) continue;
    await execFileAsync(
      temporalBin,
      ['operator', 'search-attribute', 'create', ...base, '--name', name, '--type', type],
      {
        timeout: 15_000,
      },
    );
    created.push(name);
  }
  return created;
}

/** Model names an Ollama node serves (`/api/tags`), normalised to `name:tag`. */
export async function ollamaModels(url: string, timeoutMs = 2000): Promise<string[]> {
  const res = await fetch(`${url}/api/tags`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`${url}/api/tags answered ${res.status}`);
  const body = (await res.json()) as { models?: { name: string }[] };
  return (body.models ?? []).map((m) => (m.name.includes(':') ? m.name : `${m.name}:latest`));
}

/**
 * Makes sure a node lists `model`: asks it to pull when missing (works where the Ollama registry is reachable).
 * Returns how it went, for the supervisor to print.
 */
export async function ensureModel(url: string, model: string, pullTimeoutMs = 600_000): Promise<'present' | 'pulled'> {
  const want = model.includes(':') ? model : `${model}:latest`;
  if ((await ollamaModels(url)).includes(want)) return 'present';
  const res = await fetch(`${url}/api/pull`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: want, stream: false }),
    signal: AbortSignal.timeout(pullTimeoutMs),
  });
  const text = await res.text();
  if (!res.ok || !(await ollamaModels(url)).includes(want)) {
    throw new Error(`${url} does not serve ${want} and could not pull it (${res.status}: ${text.slice(0, 200)})`);
  }
  return 'pulled';
}

/**
 * Which models each local Ollama node of the dev stack serves. `spec` is OLLAMA_NODE_MODELS,
 * `node-1=smollm2:135m;node-2=gemma3:270m+smollm2:135m` (`*` = every model of the toolchain); a node it does not
 * name gets the default: with one node, every model; with more, the first node the default model only and the
 * others every model, so one model is pinned to some nodes and the default spread over all of them.
 */
export function nodeModels(
  nodeIds: string[],
  spec: string | undefined,
  toolchain: { models: string[]; defaultModel: string },
): Map<string, string[]> {
  const norm = (m: string) => (m.includes(':') ? m : `${m}:latest`);
  const all = [...new Set([toolchain.defaultModel, ...toolchain.models].filter(Boolean).map(norm))];
  const given = new Map<string, string[]>();
  for (const part of (spec ?? '')
    .split(';')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`OLLAMA_NODE_MODELS: "${part}" is not node-id=model+model`);
    const id = part.slice(0, eq).trim();
    if (!nodeIds.includes(id))
      throw new Error(`OLLAMA_NODE_MODELS names ${id}, which is not in OLLAMA_NODES (${nodeIds.join(', ')})`);
    const models = part
      .slice(eq + 1)
      .split(/[+,]/)
      .map((m) => m.trim())
      .filter(Boolean);
    given.set(id, [...new Set(models.flatMap((m) => (m === '*' ? all : [norm(m)])))]);
  }
  const out = new Map<string, string[]>();
  nodeIds.forEach((id, i) => {
    const fallback = nodeIds.length > 1 && i === 0 ? all.slice(0, 1) : all;
    out.set(id, given.get(id) ?? fallback);
  });
  return out;
}

/** Whether the Docker engine answers; the server version, or the reason it does not. */
export async function dockerInfo(): Promise<{ ok: true; version: string } | { ok: false; error: string }> {
  try {
    const { stdout } = await execFileAsync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 10_000 });
    return { ok: true, version: stdout.trim() };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, error: (e.stderr || e.message).trim().split('\n')[0] ?? 'docker info failed' };
  }
}

const CONTENT_TYPES: Record<string, string> = {
  '.ttl': 'text/turtle',
  '.md': 'text/markdown',
  '.txt': 'text/plain',
  '.json': 'application/json',
};

/** Uploads every regular file of `dir` to `<prefix><filename>`; returns the keys. A missing dir uploads nothing. */
export async function uploadDir(storage: Storage, dir: string, prefix: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const keys: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    if (!statSync(file).isFile()) continue;
    const key = `${prefix}${name}`;
    await storage.putObject(key, readFileSync(file), CONTENT_TYPES[path.extname(name)] ?? 'application/octet-stream');
    keys.push(key);
  }
  return keys;
}

/** `host:port` or a URL → its port (default when absent). */
export function portOf(address: string, fallback: number): number {
  const m = /:(\d+)(?:\/.*)?$/.exec(address);
  return m ? Number(m[1]) : fallback;
}

/** Whether an address points at this machine (where we may start the service ourselves). */
export function isLocal(address: string): boolean {
  const host = address.includes('://') ? new URL(address).hostname : (address.split(':')[0] ?? '');
  return ['127.0.0.1', 'localhost', '0.0.0.0', '::1', '[::1]'].includes(host);
}
