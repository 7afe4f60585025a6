/**
 * `/healthz`: the process is up (for restarts). `/readyz`: every dependency answers (for load balancers):
 * Temporal, the S3 bucket, each Ollama node and the Docker engine, each with its own timeout, so a hung
 * dependency makes the answer 503 with details instead of hanging the probe.
 */
import http from 'node:http';
import { Router } from 'express';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { z } from 'zod';
import type { ApiDeps } from '../deps';
import { registerRoute } from '../openapi';

/** Per-check limit: long enough for a busy local service, short enough for a probe. */
const CHECK_TIMEOUT_MS = 2000;

export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
  detail?: unknown;
}

const CheckSchema = z.object({
  ok: z.boolean(),
  latencyMs: z.number(),
  error: z.string().optional(),
  detail: z.unknown().optional(),
});
const ReadySchema = z.object({ status: z.enum(['ready', 'not_ready']), checks: z.record(z.string(), CheckSchema) });

registerRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: the API process is up',
  tag: 'health',
  public: true,
  responses: { 200: { description: 'Up', body: z.object({ status: z.literal('ok'), uptimeS: z.number() }) } },
});
registerRoute({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: Temporal, storage, every Ollama node and Docker answer',
  tag: 'health',
  public: true,
  responses: {
    200: { description: 'Every check passed', body: ReadySchema },
    503: { description: 'At least one check failed; see checks', body: ReadySchema },
  },
});

async function timed(
  fn: (signal: AbortSignal) => Promise<unknown>,
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<CheckResult> {
  const t0 = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const detail = await Promise.race([
      fn(signal),
      new Promise<never>((_, reject) =>
        signal.addEventListener('abort', () => reject(new Error(`timed out after ${timeoutMs} ms`)), { once: true }),
      ),
    ]);
    return { ok: true, latencyMs: Math.round(performance.now() - t0), ...(detail !== undefined ? { detail } : {}) };
  } catch (err) {
    return { ok: false, latencyMs: Math.round(performance.now() - t0), error: errorText(err) };
  }
}

function errorText(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { message?: string; code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  return e?.cause?.message ?? e?.message ?? String(err);
}

/** Docker's `GET /_ping` over the engine's Unix socket; resolves to the API version header. */
export function pingDocker(socketPath: string, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/_ping', signal }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve(String(res.headers['api-version'] ?? 'ok'));
      else reject(new Error(`docker /_ping answered ${res.statusCode}`));
    });
    req.on('error', reject);
  });
}

export function healthRouter(deps: ApiDeps): Router {
  const router = Router();
  const started = Date.now();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', uptimeS: Math.round((Date.now() - started) / 1000) });
  });

  router.get('/readyz', async (_req, res) => {
    const { temporal, storage, catalog, config } = deps;
    const [temporalCheck, storageCheck, dockerCheck, catalogResult] = await Promise.all([
      timed(async () => {
        const info = await temporal.connection.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () =>
          temporal.workflowService.getSystemInfo({}),
        );
        return { serverVersion: info.serverVersion };
      }),
      timed(async (signal) => {
        await storage.s3.send(new HeadBucketCommand({ Bucket: storage.bucket }), { abortSignal: signal });
        return { bucket: storage.bucket };
      }),
      timed((signal) => pingDocker(config.DOCKER_SOCKET, signal).then((apiVersion) => ({ apiVersion }))),
      // The catalog asks every node with its own timeout and never throws for a dead node.
      catalog.get().then(
        (c) => ({ nodes: c.nodes, error: undefined }),
        (err: unknown) => ({ nodes: [], error: errorText(err) }),
      ),
    ]);
    const checks: Record<string, CheckResult> = { temporal: temporalCheck, storage: storageCheck, docker: dockerCheck };
    for (const n of catalogResult.nodes) {
      checks[`ollama:${n.id}`] = {
        ok: n.available,
        latencyMs: n.latencyMs ?? 0,
        ...(n.error ? { error: n.error } : {}),
        detail: { url: n.url, models: n.models },
      };
    }
    if (catalogResult.error || catalogResult.nodes.length === 0) {
      checks.ollama = { ok: false, latencyMs: 0, error: catalogResult.error ?? 'no Ollama nodes configured' };
    }
    const ready = Object.values(checks).every((c) => c.ok);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  });

  return router;
}
