/**
 * The API as tests build it: the production app (api/app.ts) over the test's Temporal env and storage, with a
 * catalog that asks the nodes on every call (no cache, so a test sees a node change at once), and optionally
 * listening on a free port (for clients that need a real socket: streams, gRPC, the openai client).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import request from 'supertest';
import type { Express } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import { createCatalog } from '../../lib/llm/catalog';
import { buildZip } from '../fixtures/jobs/zips';

export function testApp(
  env: TestWorkflowEnvironment,
  deps: Pick<ApiDeps, 'config' | 'storage'> & Partial<Omit<ApiDeps, 'config' | 'storage'>>,
): Express {
  const catalog =
    deps.catalog ??
    createCatalog({
      nodes: deps.config.OLLAMA_NODES,
      nodeTimeoutMs: deps.config.CATALOG_NODE_TIMEOUT_MS,
      temporal: env.client,
      namespace: 'default',
      cacheMs: 0,
    });
  return createApp({ temporal: env.client, logger: pino({ level: 'silent' }), ...deps, catalog });
}

export interface ListeningApp {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Listens on a free loopback port; `close` cuts open connections (streams) and waits. */
export async function listenApp(app: Express): Promise<ListeningApp> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Uploads a one-file function (`main.py`) with `key` through `POST /functions?name=`; expects 201, returns its id. */
export async function uploadFunction(app: Express, key: string, name: string, script: string): Promise<string> {
  const res = await request(app)
    .post(`/functions?name=${encodeURIComponent(name)}`)
    .set({ Authorization: `Bearer ${key}` })
    .set('content-type', 'application/zip')
    .send(await buildZip([{ name: 'main.py', data: script }]));
  expect(res.status).toBe(201);
  return res.body.functionId as string;
}
