/**
 * An Ollama node that fails the way real nodes do, for fault tests. It always answers what an llm worker reads
 * to keep polling (/api/version, /api/tags, /api/ps), and answers generations per `mode`:
 * - `hang`: accepts the request and never answers (a wedged runner);
 * - `error500`: 500 `{"error": ...}` (a runner that crashed on load);
 * - `die`: starts streaming, then the connection is cut (the process died mid-stream).
 * Or, with `mode: 'hang-all'`, it accepts TCP and never answers anything (not even /api/tags).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

export type FaultMode = 'hang' | 'error500' | 'die' | 'hang-all';

export interface FaultyOllama {
  url: string;
  /** Generation requests received (each one failed as `mode` says). */
  generations: number;
  close(): Promise<void>;
}

export async function startFaultyOllama(opts: { models: string[]; mode: FaultMode }): Promise<FaultyOllama> {
  const sockets = new Set<Socket>();
  const state = { generations: 0 };
  const server = http.createServer((req, res) => {
    if (opts.mode === 'hang-all') return; // never answered
    const url = req.url ?? '/';
    const json = (status: number, obj: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (url === '/api/version') return json(200, { version: '0.0.0-faulty' });
    if (url === '/api/tags') {
      return json(200, {
        models: opts.models.map((name) => ({ name, model: name, size: 1, digest: name, details: {} })),
      });
    }
    if (url === '/api/ps') return json(200, { models: [] });
    req.resume();
    req.on('end', () => {
      state.generations++;
      if (opts.mode === 'hang') return;
      if (opts.mode === 'error500') return json(500, { error: 'llama runner process has terminated: exit status 2' });
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const piece = { model: opts.models[0], created_at: new Date().toISOString(), response: 'Once ', done: false };
      res.write(JSON.stringify(piece) + '\n');
      setTimeout(() => req.socket.destroy(), 50);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get generations() {
      return state.generations;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
