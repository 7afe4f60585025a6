/**
 * `npm run cluster`: the production-like mode on one machine (docs/operations.md, "Cluster mode"). The real
 * Temporal server on PostgreSQL (not the dev server on SQLite), two orchestrator workers, two executors, two
 * Ollama nodes each with its llm worker, and the API, every one a separate process (scripts/lib/cluster.ts).
 * Installs what it needs on first use (scripts/lib/install-cluster.sh). Ctrl-C stops everything it started.
 *
 *   npm run cluster [-- --orchestrators N --executors N --nodes N --shards N --api-port P --temporal-port P]
 */
import { loadConfig } from '../common/config';
import { CLUSTER_DIR, installClusterTools, startCluster } from './lib/cluster';
import { readToolchain } from './lib/toolchain';

const say = (msg: string) => process.stdout.write(`[cluster] ${msg}\n`);

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} needs a positive integer, got ${args[i + 1]}`);
  return v;
}

async function run(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    process.stdout.write(
      'Usage: npm run cluster [-- --orchestrators 2 --executors 2 --nodes 2 --shards 4 --api-port 8080 --temporal-port 7233]\n',
    );
    return;
  }
  const tc = readToolchain();
  const tools = await installClusterTools(say);
  const defaults = loadConfig({});
  const cluster = await startCluster(tc, tools, {
    dir: CLUSTER_DIR,
    orchestrators: flag(args, 'orchestrators', 2),
    executors: flag(args, 'executors', 2),
    llmNodes: flag(args, 'nodes', 2),
    shards: flag(args, 'shards', 4),
    apiPort: flag(args, 'api-port', defaults.API_PORT),
    temporalPort: flag(args, 'temporal-port', 7233),
    echo: true,
    log: say,
  });
  let stopping = false;
  const onSignal = () => {
    if (stopping) process.exit(1);
    stopping = true;
    say('stopping');
    void cluster.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  for (const p of cluster.processes) {
    p.proc.once('exit', (code, signal) => {
      if (!stopping) say(`${p.name} exited (${signal ?? `code ${code}`}); its log: ${p.logFile}`);
    });
  }
  const key = [...defaults.API_KEYS.keys()][0] ?? 'dev-key';
  process.stdout.write(
    [
      '',
      'ainode cluster is up',
      `  API        ${cluster.apiUrl}   (curl -H 'Authorization: Bearer ${key}' ${cluster.apiUrl}/models)`,
      `  Temporal   ${cluster.temporalAddress} (temporal-server ${tools.temporalServerVersion} on PostgreSQL, ${cluster.shards} shards; no Web UI: \`temporal workflow list --address ${cluster.temporalAddress}\`)`,
      ...cluster.nodes.map((x) => `  Ollama     ${x.id} ${x.url}`),
      `  Processes  ${cluster.processes.map((p) => `${p.name}(${p.proc.pid})`).join(' ')}`,
      `  Logs       ${cluster.dir}/logs/`,
      '',
      'kill -9 any one worker: the others carry its work on. Ctrl-C stops the cluster.',
      '',
    ].join('\n'),
  );
}

run().catch((err) => {
  console.error(`[cluster] ${(err as Error).message ?? err}`);
  process.exit(1);
});
