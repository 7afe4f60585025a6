/**
 * The API under abuse and with its storage down, on its own stack: a Temporal dev server for this file, the
 * production app (api/app.ts) on the production HTTP server (api/http-server.ts, with short limits so the test
 * is quick), and the shared moto emulator behind a TCP proxy this file can take down (the emulator itself and
 * its data are untouched). Asserted: 200 slow-loris connections do not stop /healthz from answering and are each
 * cut off with a 408; a trickled body is cut off with a 408; bad JSON, oversized bodies, unknown ids, another
 * tenant's ids, unknown routes and wrong methods get their documented 4xx; with storage down the routes that
 * need it answer 503 (never 500) and /readyz names storage; once it is back they answer 200.
 */
import net from 'node:net';
import type { Server } from 'node:http';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import { createHttpServer, listenOn } from '../../api/http-server';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { testApp } from '../helpers/api';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';

jest.setTimeout(180_000);

const KEY = 'key-abuse-tenant';
const OTHER = 'key-abuse-other';
const LIMITS = { headersTimeoutMs: 8_000, requestTimeoutMs: 10_000, checkIntervalMs: 250 };
const BODY_LIMIT = 64 * 1024;

let env: TestWorkflowEnvironment;
let storage: Storage;
let proxy: TcpProxy;
let server: Server;
let base: string;
/** Every status the API answered in this file: none may be a 500. */
const statuses: number[] = [];

beforeAll(async () => {
  env = await createTemporalEnv();
  const moto = new URL(services.awsEndpoint);
  proxy = await startTcpProxy({ host: moto.hostname, port: Number(moto.port) });
  const config = testConfig({
    API_KEYS: `${KEY}:tenant-a,${OTHER}:tenant-b`,
    S3_BUCKET: uid('faults-abuse'),
    AWS_ENDPOINT_URL: proxy.url,
    API_BODY_LIMIT_BYTES: String(BODY_LIMIT),
    OLLAMA_NODES: 'node-1=http://127.0.0.1:9',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  server = createHttpServer(testApp(env, { config, storage }), LIMITS);
  const addr = await listenOn(server, 0, '127.0.0.1');
  base = `http://127.0.0.1:${addr.port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await proxy?.close();
  storage?.close();
  await env?.teardown();
});

async function call(
  method: string,
  path: string,
  opts: { key?: string | null; body?: string; type?: string } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (opts.key !== null) headers.authorization = `Bearer ${opts.key ?? KEY}`;
  if (opts.body !== undefined) headers['content-type'] = opts.type ?? 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body: opts.body });
  const text = await res.text();
  statuses.push(res.status);
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (a 408 from the HTTP server has no body)
  }
  return { status: res.status, body, headers: res.headers };
}

/** A raw connection that records what the server sent and when it closed. */
function rawClient(): Promise<{ sock: net.Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const sock = net.connect(Number(new URL(base).port), '127.0.0.1');
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('data', (c: Buffer) => (data += c.toString()));
    sock.on('error', () => {});
    sock.once('connect', () => resolve({ sock, received: () => data, closed }));
    sock.once('error', reject);
  });
}

describe('slow clients', () => {
  it('200 slow-loris connections: /healthz still answers while they hang, then each is cut off with a 408', async () => {
    const clients = await Promise.all(Array.from({ length: 200 }, () => rawClient()));
    let open = clients.length;
    for (const c of clients) void c.closed.then(() => open--);
    // Each sends a request line and one header, then one more header every half second, never the blank line.
    for (const c of clients) c.sock.write('GET /healthz HTTP/1.1\r\nHost: ainode\r\n');
    const drip = setInterval(() => {
      for (const c of clients) if (!c.sock.destroyed) c.sock.write('X-Slow: 1\r\n');
    }, 500);
    try {
      const health = await call('GET', '/healthz', { key: null });
      expect(health.status).toBe(200);
      expect(health.body.status).toBe('ok');
      expect(open).toBe(200); // answered while every slow connection was still held open
      await Promise.all(clients.map((c) => c.closed));
    } finally {
      clearInterval(drip);
    }
    expect(clients.map((c) => c.received().split('\r\n')[0])).toEqual(
      clients.map(() => 'HTTP/1.1 408 Request Timeout'),
    );
    // The server is still fine afterwards.
    expect((await call('GET', '/healthz', { key: null })).status).toBe(200);
  });

  it('a body trickled slower than the request timeout is cut off with a 408', async () => {
    const c = await rawClient();
    c.sock.write(
      `POST /prompts HTTP/1.1\r\nHost: ainode\r\nAuthorization: Bearer ${KEY}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"prompt":"',
    );
    const drip = setInterval(() => !c.sock.destroyed && c.sock.write('a'), 500);
    await c.closed.finally(() => clearInterval(drip));
    expect(c.received().split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
  });
});

describe('bad requests get their documented 4xx', () => {
  it('bad JSON → 400 invalid_json; an oversized body → 413; a wrong content type → 400 naming the body', async () => {
    const bad = await call('POST', '/prompts', { body: '{"prompt": "hi",' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_json');
    const big = await call('POST', '/prompts', { body: JSON.stringify({ prompt: 'x'.repeat(BODY_LIMIT + 1) }) });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('payload_too_large');
    const text = await call('POST', '/designs', { body: 'request=a bucket', type: 'text/plain' });
    expect(text.status).toBe(400);
    expect(text.body.error.message).toContain('body');
  });

  it('no key → 401; an unknown route → 404; a wrong method → 405 with Allow', async () => {
    expect((await call('GET', '/jobs', { key: null })).status).toBe(401);
    const unknown = await call('GET', '/no-such-route');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    const wrong = await call('DELETE', '/designs/design-abc');
    expect(wrong.status).toBe(405);
    expect(wrong.body.error.code).toBe('method_not_allowed');
    expect(wrong.headers.get('allow')).toBe('GET, HEAD');
    const put = await call('PUT', '/prompts');
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('POST');
  });

  it('unknown ids → 404, malformed ids → 400, another tenant’s design → 404 on every route', async () => {
    expect((await call('GET', '/designs/design-does-not-exist')).status).toBe(404);
    expect((await call('GET', '/prompts/prompt-does-not-exist')).status).toBe(404);
    expect((await call('GET', '/designs/not-a-design')).status).toBe(400);
    // A design of tenant-b (started directly: nothing needs to run it for the tenant check).
    const id = `design-${uid('other')}`;
    await env.client.workflow.start('infraDesignWorkflow', {
      taskQueue: uid('no-worker'),
      workflowId: id,
      args: [{ designId: id, request: 'a bucket', model: 'm', tenant: 'tenant-b' }],
      memo: { tenant: 'tenant-b', graph: 'v2' },
    });
    const answers = JSON.stringify({ answers: { q1: 'eu-west-1' } });
    expect((await call('GET', `/designs/${id}`)).status).toBe(404);
    expect((await call('POST', `/designs/${id}/answers`, { body: answers })).status).toBe(404);
    expect((await call('POST', `/designs/${id}/cancel`)).status).toBe(404);
    expect((await call('GET', `/designs/${id}/files/main.tf`)).status).toBe(404);
    // Its owner is answered (202: recorded as a signal although no worker runs it).
    const own = await call('POST', `/designs/${id}/answers`, { key: OTHER, body: answers });
    expect(own.status).toBe(202);
    expect(own.body).toMatchObject({ id, status: 'accepted' });
  });
});

describe('storage (S3/DynamoDB) down', () => {
  it('routes that need it answer 503 (never 500), /readyz names storage; both recover when it is back', async () => {
    expect((await call('GET', '/jobs')).status).toBe(200);
    await proxy.down();
    try {
      for (const path of ['/jobs', '/usage']) {
        const res = await call('GET', path);
        expect({ path, status: res.status, code: res.body.error?.code }).toEqual({
          path,
          status: 503,
          code: 'storage_unavailable',
        });
        expect(res.headers.get('retry-after')).toBe('5');
      }
      const ready = await call('GET', '/readyz', { key: null });
      expect(ready.status).toBe(503);
      expect(ready.body.checks.storage.ok).toBe(false);
      expect(ready.body.checks.temporal.ok).toBe(true);
      // Routes that need no storage still answer.
      expect((await call('GET', '/healthz', { key: null })).status).toBe(200);
    } finally {
      await proxy.up();
    }
    expect((await call('GET', '/jobs')).status).toBe(200);
    expect((await call('GET', '/usage')).status).toBe(200);
    const ready = await call('GET', '/readyz', { key: null });
    expect(ready.body.checks.storage.ok).toBe(true);
  });
});

describe('never a 500', () => {
  it('no request in this file was answered with a 5xx other than the documented 503', () => {
    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((s) => s >= 500 && s !== 503)).toEqual([]);
  });
});
