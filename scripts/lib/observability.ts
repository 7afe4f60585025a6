/**
 * The dev stack's observability (docs/operations.md, Observability). Zipkin, the trace viewer: the server jar setup installed (scripts/lib/install-zipkin.sh) run with the
 * machine's Java, in-memory storage, on ZIPKIN_URL (default http://127.0.0.1:9411). A Zipkin already answering there
 * is reused. Processes export to `<url>/api/v2/spans` (OTEL_EXPORTER_ZIPKIN_ENDPOINT).
 */
import path from 'node:path';
import { httpOk, spawnService, stopProcess, waitFor, type Service } from './services';
import type { Toolchain } from './toolchain';

export const DEFAULT_ZIPKIN_URL = 'http://127.0.0.1:9411';
/** Zipkin keeps spans in memory; this bounds the JVM (a 2-core dev box runs everything else too). */
const ZIPKIN_HEAP = '-Xmx384m';
/** A JVM start on a busy machine can take a while. */
const START_TIMEOUT_MS = 120_000;

/** Where processes send spans, given Zipkin's base URL. */
export function zipkinSpansEndpoint(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/api/v2/spans`;
}

export async function startZipkin(
  tc: Pick<Toolchain, 'zipkinJar'>,
  opts: { port: number; logFile: string; echo?: boolean; java?: string },
): Promise<Service> {
  if (!tc.zipkinJar) throw new Error('Zipkin is not installed: run `npm run setup` (scripts/lib/install-zipkin.sh)');
  const proc = spawnService('zipkin', opts.java ?? 'java', [ZIPKIN_HEAP, '-jar', tc.zipkinJar], {
    logFile: opts.logFile,
    echo: opts.echo,
    env: { QUERY_PORT: String(opts.port), STORAGE_TYPE: 'mem', MEM_MAX_SPANS: '200000' },
  });
  const url = `http://127.0.0.1:${opts.port}`;
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`zipkin exited (code ${code}); see ${opts.logFile}`))),
  );
  try {
    await Promise.race([waitFor('zipkin', () => httpOk(`${url}/health`), START_TIMEOUT_MS), exited]);
  } catch (err) {
    await stopProcess(proc);
    throw err;
  }
  exited.catch(() => undefined);
  return { name: 'zipkin', port: opts.port, url, proc, stop: () => stopProcess(proc) };
}

/**
 * For `npm start`: Zipkin's base URL, reusing one that answers, else starting the installed jar. Undefined when
 * tracing is off (OTEL_SDK_DISABLED) or no Zipkin can be had; then processes trace without exporting.
 */
export async function startZipkinOrReuse(
  tc: Pick<Toolchain, 'zipkinJar'>,
  opts: { logDir: string; say(msg: string): void; warn(msg: string): void; addService(svc: Service): void },
): Promise<string | undefined> {
  if (/^(true|1|yes)$/i.test(process.env.OTEL_SDK_DISABLED ?? '')) return undefined;
  const base = (process.env.ZIPKIN_URL || DEFAULT_ZIPKIN_URL).replace(/\/+$/, '');
  if (await httpOk(`${base}/health`).catch(() => false)) {
    opts.say(`Zipkin: reusing ${base}`);
    return base;
  }
  if (!tc.zipkinJar) {
    opts.warn('Zipkin is not installed (setup could not fetch it): traces are not exported');
    return undefined;
  }
  const port = Number(new URL(base).port || 9411);
  const logFile = path.join(opts.logDir, 'zipkin.log');
  const t0 = Date.now();
  try {
    const svc = await startZipkin(tc, { port, logFile });
    opts.addService(svc);
    opts.say(`Zipkin: started on ${svc.url} in ${Date.now() - t0} ms (log: ${path.relative(process.cwd(), logFile)})`);
    return svc.url;
  } catch (err) {
    opts.warn(`Zipkin did not start (${(err as Error).message}): traces are not exported`);
    return undefined;
  }
}

/** First Prometheus port of the dev stack's workers (the API serves GET /metrics on its own port). */
export const DEV_METRICS_BASE_PORT = 9464;
/** First port of the workers' Temporal runtime metrics (appended to each worker's own endpoint). */
export const DEV_TEMPORAL_METRICS_BASE_PORT = 9564;

/** The metrics ports of the dev stack's `i`-th worker process (orchestrator 0, executor 1, llm nodes 2…). */
export function devMetricsEnv(i: number): { METRICS_PORT: string; TEMPORAL_METRICS_PORT: string } {
  return {
    METRICS_PORT: String(DEV_METRICS_BASE_PORT + i),
    TEMPORAL_METRICS_PORT: String(DEV_TEMPORAL_METRICS_BASE_PORT + i),
  };
}
