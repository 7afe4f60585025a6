/**
 * Cluster mode: the production-like stack on one machine. The real Temporal server (not the dev server) on its own
 * PostgreSQL, with every worker role as separate processes, several of each: orchestrators, executors (distinct
 * EXECUTOR_IDs) and one llm worker per Ollama node, plus the API. Used by `npm run cluster` (scripts/cluster.ts),
 * the cluster fault test (test/cluster/cluster.test.ts, `npm run test:cluster`) and the cluster bench (bench/cluster.bench.ts).
 * What it needs beyond scripts/setup is installed lazily by scripts/lib/install-cluster.sh.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { loadConfig } from '../../common/config';
import { removeOrphans } from '../../lib/executor/container';
import { createStorage, ensureStorage } from '../../lib/storage/clients';
import { bundleWorkflows } from '../bundle-workflows';
import {
  freePort,
  httpOk,
  isPortOpen,
  prepareNodeModelsDir,
  spawnService,
  startMoto,
  startOllama,
  stopProcess,
  waitFor,
  type Service,
} from './services';
import { ensureSearchAttributes, spawnTs, uploadDir } from './stack';
import { ROOT, STATE_DIR, toolchainModels, type Toolchain } from './toolchain';

const execFileAsync = promisify(execFile);

/** What scripts/lib/install-cluster.sh installed (it prints this and writes .ainode/cluster-tools.json). */
export interface ClusterTools {
  temporalServer: string;
  temporalSqlTool: string;
  temporalServerVersion: string;
  /** PostgreSQL's bin dir (initdb, pg_ctl, postgres). */
  pgBin: string;
}

/** Runs scripts/lib/install-cluster.sh (idempotent; builds the server once, minutes) and returns the paths. */
export async function installClusterTools(log: (msg: string) => void = () => undefined): Promise<ClusterTools> {
  const child = spawn('bash', [path.join(ROOT, 'scripts', 'lib', 'install-cluster.sh')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    for (const line of c.toString().split('\n')) if (line.trim()) log(line.trim());
  });
  const code = await new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
  if (code !== 0) throw new Error(`scripts/lib/install-cluster.sh failed (exit ${code}); see its output above`);
  return JSON.parse(out.trim().split('\n').pop()!) as ClusterTools;
}

export type Role = 'orchestrator' | 'executor' | 'llm' | 'api';

export interface ClusterProcess {
  name: string;
  role: Role;
  proc: ChildProcess;
  logFile: string;
  /** An executor's EXECUTOR_ID: the label of its job containers. */
  executorId?: string;
}

export interface ClusterOptions {
  /** State of this cluster: the Temporal config, logs; the database too unless `pgDir` says otherwise. */
  dir: string;
  /** Where PostgreSQL keeps its data. Default `<dir>/pg`, or /var/tmp/ainode-cluster/<name>/pg as root. */
  pgDir?: string;
  orchestrators?: number;
  executors?: number;
  /** Ollama nodes, each with its own llm worker. */
  llmNodes?: number;
  /** Temporal history shards; fixed when the database is created. */
  shards?: number;
  /** LLM nodes already running elsewhere (e.g. scripted fakes for a platform-only bench): no Ollama is started. */
  externalNodes?: { id: string; url: string }[];
  /** More nodes beside the Ollama ones (each gets its llm worker too), e.g. a scripted node for one model. */
  extraNodes?: { id: string; url: string }[];
  /** Models every node serves (default: every chat model setup installed, and the embedding model). */
  models?: string[];
  /** The frontend's port; default a free one. */
  temporalPort?: number;
  apiPort?: number;
  /** A workflow bundle built already (scripts/bundle-workflows.ts); default: built into `dir`. */
  bundlePath?: string;
  /** Extra environment for every app process (API keys, channel callback, timeouts...). */
  env?: NodeJS.ProcessEnv;
  /** Prefix every process's output on our stdout. */
  echo?: boolean;
  log?: (msg: string) => void;
}

export interface Cluster {
  temporalAddress: string;
  apiUrl: string;
  awsEndpoint: string;
  nodes: { id: string; url: string }[];
  bucket: string;
  /** Every app process (by role); `kill` one to see the others carry on. */
  processes: ClusterProcess[];
  shards: number;
  dir: string;
  /** Sends `signal` (default SIGKILL) to one app process and waits for it to exit. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Apps first (they drain), then the services. Idempotent. */
  stop(): Promise<void>;
}

const DB_USER = 'temporal';
const APP_STOP_TIMEOUT_MS = 15_000;

/** The uid/gid PostgreSQL runs as: ours, or the `postgres` user's when we are root (initdb refuses root). */
async function pgIdentity(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const { stdout: uid } = await execFileAsync('id', ['-u', 'postgres']);
  const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

/** A private PostgreSQL: initdb on first use (trust auth, loopback only), then `postgres` in the foreground. */
export async function startPostgres(
  tools: ClusterTools,
  opts: { dataDir: string; port: number; logFile: string },
): Promise<Service> {
  const id = await pgIdentity();
  if (!existsSync(path.join(opts.dataDir, 'PG_VERSION'))) {
    // Parents must let the postgres user through; the data dir itself is its own (initdb wants 0700).
    mkdirSync(path.dirname(opts.dataDir), { recursive: true, mode: 0o755 });
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    if (id.uid !== undefined) chownTree(opts.dataDir, id.uid, id.gid!);
    await new Promise<void>((resolve, reject) => {
      const p = spawn(
        path.join(tools.pgBin, 'initdb'),
        ['-D', opts.dataDir, '-U', DB_USER, '--auth=trust', '--encoding=UTF8', '--no-instructions'],
        { ...id, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' },
      );
      let err = '';
      p.stderr.on('data', (c: Buffer) => (err += c.toString()));
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed (${code}): ${err.trim()}`))));
    });
  }
  const args = ['-D', opts.dataDir, '-p', String(opts.port), '-k', opts.dataDir, '-c', 'listen_addresses=127.0.0.1'];
  // Two Temporal stores × 20 connections, plus the schema tool and headroom.
  args.push('-c', 'max_connections=200');
  mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const proc = spawn(path.join(tools.pgBin, 'postgres'), args, { ...id, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.pipe(log, { end: false });
  proc.stderr.pipe(log, { end: false });
  await waitFor('PostgreSQL', () => isPortOpen(opts.port), 60_000);
  // SIGINT: PostgreSQL's "fast" shutdown (SIGTERM waits for every client to disconnect).
  return { name: 'postgres', port: opts.port, url: `127.0.0.1:${opts.port}`, proc, stop: () => stopPg(proc) };
}

async function stopPg(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGINT');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Creates both databases and brings their schemas to the newest version the server ships (the schemas are embedded
 * in temporal-sql-tool: `--schema-name postgresql/v12/...`). A marker file makes it a no-op the next time.
 */
export async function setupTemporalSchema(tools: ClusterTools, opts: { pgPort: number; dir: string }): Promise<void> {
  const marker = path.join(opts.dir, `schema-${tools.temporalServerVersion}.done`);
  if (existsSync(marker)) return;
  const base = ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(opts.pgPort), '-u', DB_USER];
  const sql = async (args: string[]) => {
    try {
      await execFileAsync(tools.temporalSqlTool, [...base, ...args], { timeout: 120_000 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`temporal-sql-tool ${args.join(' ')}: ${(e.stderr || e.stdout || e.message).trim()}`);
    }
  };
  for (const [db, schema] of [
    ['temporal', 'postgresql/v12/temporal'],
    ['temporal_visibility', 'postgresql/v12/visibility'],
  ] as const) {
    const fresh = !existsSync(path.join(opts.dir, `db-${db}.created`));
    if (fresh) {
      await sql(['--db', db, 'create-database']);
      await sql(['--db', db, 'setup-schema', '-v', '0.0']);
      writeFileSync(path.join(opts.dir, `db-${db}.created`), '');
    }
    await sql(['--db', db, 'update-schema', '--schema-name', schema]);
  }
  writeFileSync(marker, new Date().toISOString() + '\n');
}

/** temporal-config/cluster-postgres.yaml with its placeholders filled in. */
export function renderServerConfig(values: Record<string, string | number>): string {
  const template = readFileSync(path.join(ROOT, 'temporal-config', 'cluster-postgres.yaml'), 'utf8');
  return template.replace(/\$\{([A-Z_]+)\}/g, (whole, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`cluster-postgres.yaml: no value for ${whole}`);
    return String(v);
  });
}

/**
 * A free port below 32768: the server stores membership ports in a SMALLINT column (cluster_membership.rpc_port),
 * so the kernel's ephemeral ports (32768 and up) make it fail at start with "out of range for type smallint".
 */
async function freeLowPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port below 32768 for the Temporal server');
}

/** The Temporal server (frontend, history, matching and worker services in one process) on PostgreSQL. */
export async function startTemporalServer(
  tools: ClusterTools,
  opts: { pgPort: number; port: number; shards: number; dir: string; logFile: string },
): Promise<Service> {
  const ports = {
    FRONTEND_PORT: opts.port,
    FRONTEND_HTTP_PORT: await freeLowPort(),
    FRONTEND_MEMBERSHIP_PORT: await freeLowPort(),
    HISTORY_PORT: await freeLowPort(),
    HISTORY_MEMBERSHIP_PORT: await freeLowPort(),
    MATCHING_PORT: await freeLowPort(),
    MATCHING_MEMBERSHIP_PORT: await freeLowPort(),
    WORKER_PORT: await freeLowPort(),
    WORKER_MEMBERSHIP_PORT: await freeLowPort(),
  };
  const configFile = path.join(opts.dir, 'temporal-server.yaml');
  writeFileSync(
    configFile,
    renderServerConfig({
      ...ports,
      LOG_LEVEL: 'warn',
      SHARDS: opts.shards,
      PG_PORT: opts.pgPort,
      PG_USER: DB_USER,
      DYNAMIC_CONFIG: path.join(ROOT, 'temporal-config', 'dynamic-config.yaml'),
    }),
  );
  const proc = spawnService(
    'temporal-server',
    tools.temporalServer,
    ['--config-file', configFile, '--allow-no-auth', 'start'],
    { logFile: opts.logFile },
  );
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`temporal-server exited (${code}); see ${opts.logFile}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([waitFor('Temporal server', () => isPortOpen(opts.port), 120_000), exited]);
  return {
    name: 'temporal-server',
    port: opts.port,
    url: `127.0.0.1:${opts.port}`,
    proc,
    stop: () => stopProcess(proc, 10_000),
  };
}

/** The namespace (72 h retention) and our search attributes, as the compose stack's temporal-setup does. */
export async function setupNamespace(temporalCli: string, address: string, namespace: string): Promise<void> {
  const base = ['--address', address, '--namespace', namespace];
  await waitFor(
    'Temporal frontend',
    async () => {
      await execFileAsync(temporalCli, ['operator', 'cluster', 'health', '--address', address], { timeout: 10_000 });
      return true;
    },
    120_000,
  );
  const exists = await execFileAsync(temporalCli, ['operator', 'namespace', 'describe', ...base], {
    timeout: 15_000,
  }).then(
    () => true,
    () => false,
  );
  if (!exists)
    await execFileAsync(temporalCli, ['operator', 'namespace', 'create', ...base, '--retention', '72h'], {
      timeout: 15_000,
    });
  // A new namespace reaches the services' caches within seconds; registering attributes needs it there.
  await waitFor(
    `namespace ${namespace}`,
    async () => {
      await ensureSearchAttributes(temporalCli, address, namespace);
      return true;
    },
    60_000,
  );
}

/** Starts a whole cluster; on any failure stops what it started and rethrows. */
export async function startCluster(tc: Toolchain, tools: ClusterTools, opts: ClusterOptions): Promise<Cluster> {
  const log = opts.log ?? (() => undefined);
  const n = {
    orchestrators: opts.orchestrators ?? 2,
    executors: opts.executors ?? 2,
    llmNodes: opts.llmNodes ?? 2,
    shards: opts.shards ?? 4,
  };
  const dir = path.resolve(opts.dir);
  const logs = path.join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const services: Service[] = [];
  const processes: ClusterProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all(processes.map((p) => stopProcess(p.proc, APP_STOP_TIMEOUT_MS)));
      // A killed executor leaves its job containers behind (a restarted one would remove them at start; these
      // executors are not restarted): they go with the cluster.
      const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
      await Promise.all(
        processes.filter((p) => p.executorId).map((p) => removeOrphans(docker, p.executorId!).catch(() => undefined)),
      );
      await Promise.all(services.map((s) => s.stop().catch(() => undefined)));
    })());

  try {
    const t0 = Date.now();
    const pgDir =
      opts.pgDir ??
      (process.getuid?.() === 0
        ? // The postgres user must reach its data dir; a checkout under /root would not let it.
          path.join('/var/tmp/ainode-cluster', path.basename(dir), 'pg')
        : path.join(dir, 'pg'));
    const pg = await startPostgres(tools, {
      dataDir: pgDir,
      port: await freePort(),
      logFile: path.join(logs, 'postgres.log'),
    });
    services.push(pg);
    // The shard count is the database's: the first start decides it.
    const shardsFile = path.join(pgDir, '..', 'shards');
    if (existsSync(shardsFile)) n.shards = Number(readFileSync(shardsFile, 'utf8').trim());
    else writeFileSync(shardsFile, `${n.shards}\n`);
    await setupTemporalSchema(tools, { pgPort: pg.port, dir: path.dirname(pgDir) });
    log(`PostgreSQL on 127.0.0.1:${pg.port} (data ${pgDir}), schema ready in ${Date.now() - t0} ms`);

    const temporalPort = opts.temporalPort ?? (await freeLowPort());
    // Each service is tracked as soon as it is up, so a failure of another one still stops it.
    const track = async (started: Promise<Service>) => {
      const svc = await started;
      services.push(svc);
      return svc;
    };
    const [, moto, ...ollamas] = await Promise.all([
      track(
        startTemporalServer(tools, {
          pgPort: pg.port,
          port: temporalPort,
          shards: n.shards,
          dir,
          logFile: path.join(logs, 'temporal-server.log'),
        }),
      ),
      track(startMoto(tc, { port: await freePort(), logFile: path.join(logs, 'moto.log') })),
      ...Array.from({ length: opts.externalNodes ? 0 : n.llmNodes }, async (_, i) => {
        const id = `node-${i + 1}`;
        const modelsDir = path.join(dir, 'ollama', id);
        const models = opts.models ?? [...toolchainModels(tc), ...(tc.embedModel ? [tc.embedModel] : [])];
        prepareNodeModelsDir(tc.ollamaModels, modelsDir, models);
        return track(
          startOllama(tc, {
            name: `ollama:${id}`,
            port: await freePort(),
            modelsDir,
            numParallel: 4,
            logFile: path.join(logs, `ollama-${id}.log`),
          }),
        );
      }),
    ]);
    const temporalAddress = `127.0.0.1:${temporalPort}`;
    await setupNamespace(tc.temporal, temporalAddress, 'default');
    log(`Temporal server ${tools.temporalServerVersion} on ${temporalAddress} (${n.shards} history shards)`);

    const nodes = [
      ...(opts.externalNodes ?? ollamas.map((o, i) => ({ id: `node-${i + 1}`, url: o.url }))),
      ...(opts.extraNodes ?? []),
    ];
    const apiPort = opts.apiPort ?? (await freePort());
    const env: NodeJS.ProcessEnv = {
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      AWS_ENDPOINT_URL: moto!.url,
      OLLAMA_NODES: nodes.map((x) => `${x.id}=${x.url}`).join(','),
      DEFAULT_MODEL: tc.defaultModel,
      JOB_RUNTIME_IMAGE: tc.runtimeImage,
      AINODE_TERRAFORM_BIN: tc.terraform,
      EMBED_MODEL: tc.embedModel || undefined,
      API_PORT: String(apiPort),
      API_HOST: '127.0.0.1',
      GRPC_PORT: String(await freePort()),
      API_PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
      API_INTERNAL_URL: `http://127.0.0.1:${apiPort}`,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      ...opts.env,
    };
    const config = loadConfig({ ...process.env, ...env });
    const storage = createStorage(config);
    try {
      await ensureStorage(storage);
      await uploadDir(storage, path.join(ROOT, 'test', 'fixtures', 'shop'), config.CHAT_SHOP_PREFIX);
    } finally {
      storage.close();
    }
    env.WORKFLOW_BUNDLE_PATH = opts.bundlePath ?? (await bundleWorkflows(path.join(dir, 'workflow-bundle.js')));

    const spawnRole = (role: Role, name: string, entry: string, extra: NodeJS.ProcessEnv = {}) => {
      const logFile = path.join(logs, `${name}.log`);
      const proc = spawnTs(name, entry, { env: { ...env, ...extra }, logFile, echo: opts.echo });
      processes.push({ name, role, proc, logFile, executorId: extra.EXECUTOR_ID });
    };
    for (let i = 1; i <= n.orchestrators; i++)
      spawnRole('orchestrator', `orchestrator-${i}`, 'workers/orchestrator.ts');
    for (let i = 1; i <= n.executors; i++)
      // Unique per cluster too: an executor removes containers labelled with its id at start, and clusters (a
      // test, a bench, `npm run cluster`) may share one Docker engine.
      spawnRole('executor', `executor-${i}`, 'workers/executor.ts', { EXECUTOR_ID: `${path.basename(dir)}-exec-${i}` });
    for (const node of nodes)
      spawnRole('llm', `llm-${node.id}`, 'workers/llm.ts', { OLLAMA_URL: node.url, NODE_ID: node.id });
    spawnRole('api', 'api', 'api/server.ts');
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const api = processes.find((p) => p.role === 'api')!;
    await waitFor(
      'the API',
      async () => {
        if (api.proc.exitCode !== null) throw new Error(`the API exited; see ${api.logFile}`);
        return httpOk(`${apiUrl}/healthz`);
      },
      180_000,
    );
    log(`${processes.length} app processes started; API ${apiUrl}; ready in ${Date.now() - t0} ms`);

    return {
      temporalAddress,
      apiUrl,
      awsEndpoint: moto!.url,
      nodes,
      bucket: config.S3_BUCKET,
      processes,
      shards: n.shards,
      dir,
      async kill(name, signal = 'SIGKILL') {
        const p = processes.find((x) => x.name === name);
        if (!p) throw new Error(`no cluster process ${name}`);
        if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
        const exited = new Promise<void>((r) => p.proc.once('exit', () => r()));
        p.proc.kill(signal);
        await exited;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Waits until every llm worker polls its node's queues and every worker kind has a poller, via the API catalog. */
export async function waitForPollers(
  cluster: Cluster,
  apiKey: string,
  model: string,
  minNodes: number,
  timeoutMs = 180_000,
): Promise<void> {
  await waitFor(
    `${minNodes} llm nodes polling ${model}`,
    async () => {
      const res = await fetch(`${cluster.apiUrl}/models`, {
        headers: { authorization: `Bearer ${apiKey}` },
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) return false;
      const body = (await res.json()) as { models?: { id: string; pollers?: number }[] };
      const m = body.models?.find((x) => x.id === model);
      return (m?.pollers ?? 0) >= minNodes;
    },
    timeoutMs,
  );
}

/** Where `npm run cluster` keeps its state. */
export const CLUSTER_DIR = path.join(STATE_DIR, 'cluster');
