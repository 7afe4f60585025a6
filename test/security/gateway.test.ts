/**
 * Attacks on the AI gateway (the container's only way out): slow-loris, floods, oversized and unauthenticated
 * bodies, another job's token. Two real gateways on real Unix sockets in this process, as in the executor;
 * the Temporal client is a stand-in whose Update answers after a short delay. Harm is measured where it
 * would land: the other job's latency against a baseline taken in the same test, the memory of this process.
 */
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { startGateway, type Gateway, type GatewayLimits } from '../../lib/executor/gateway';

jest.setTimeout(90_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stand-in Temporal client: every Update answers after `delayMs`, or throws what `fail` says. */
function fakeClient(opts: { delayMs?: number; fail?: () => Error } = {}) {
  const calls: unknown[] = [];
  const client = {
    workflow: {
      getHandle: () => ({
        executeUpdate: async (_u: unknown, o: { args: unknown[] }) => {
          calls.push(o.args[0]);
          await sleep(opts.delayMs ?? 5);
          if (opts.fail) throw opts.fail();
          return { content: 'ok', model: 'm', usage: { prompt: 1, completion: 1, total: 2 }, call: calls.length };
        },
      }),
    },
  } as unknown as Client;
  return { client, calls };
}

interface Reply {
  status: number;
  body: string;
}

function call(socketPath: string, token: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        path: '/v1/generate',
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** Median latency of `n` sequential legitimate calls. */
async function medianLatency(socketPath: string, token: string, n = 15): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await call(socketPath, token, { prompt: 'hi' });
    expect(r.status).toBe(200);
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)]!;
}

describe('attacks on the AI gateway', () => {
  let dir: string;
  const gateways: Gateway[] = [];
  const sockets: net.Socket[] = [];
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ainode-sec-gw-'));
  });
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(gateways.splice(0).map((g) => g.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function gateway(name: string, limits: Partial<GatewayLimits> = {}, client = fakeClient()) {
    const g = await startGateway({
      client: client.client,
      workflowId: name,
      socketPath: path.join(dir, `${name}.sock`),
      token: `token-of-${name}-0123456789abcdef`,
      limits,
    });
    gateways.push(g);
    return { ...g, token: `token-of-${name}-0123456789abcdef`, calls: client.calls };
  }

  it('slow-loris: hundreds of connections that never finish their headers neither block nor slow another job', async () => {
    const victim = await gateway('victim');
    const attacker = await gateway('attacker', { headersTimeoutMs: 1000 });
    const baseline = await medianLatency(victim.socketPath, victim.token);
    let closedByServer = 0;
    for (let i = 0; i < 300; i++) {
      const s = net.connect(attacker.socketPath);
      s.on('error', () => undefined);
      s.on('close', () => closedByServer++);
      s.resume();
      s.write('POST /v1/generate HTTP/1.1\r\nHost: x\r\n');
      sockets.push(s);
    }
    // Trickle a header byte now and then, as slow-loris does.
    const trickle = setInterval(() => sockets.forEach((s) => s.writable && s.write('X-A: b\r\n')), 200);
    try {
      await sleep(300);
      const during = await medianLatency(victim.socketPath, victim.token);
      expect(during).toBeLessThan(Math.max(baseline * 20, baseline + 500));
      // Past the connection cap the rest are refused, and the header timeout closes those it accepted.
      for (let i = 0; i < 40 && closedByServer < 300; i++) await sleep(250);
      expect(closedByServer).toBe(300);
    } finally {
      clearInterval(trickle);
    }
    // The attacked gateway still serves its own job once the attack ends.
    expect((await call(attacker.socketPath, attacker.token, { prompt: 'hi' })).status).toBe(200);
  });

  it('slow body: a request that never finishes its body is cut by the request timeout and frees its slot', async () => {
    const g = await gateway('slowbody', { requestTimeoutMs: 1500, maxConcurrentCalls: 1 });
    const s = net.connect(g.socketPath);
    sockets.push(s);
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('error', () => undefined);
    s.resume();
    s.write(
      `POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${g.token}\r\nContent-Length: 1000\r\n\r\n{"prompt":`,
    );
    await closed;
    // Its one slot is free again: a normal call goes through.
    expect((await call(g.socketPath, g.token, { prompt: 'hi' })).status).toBe(200);
  });

  it('flood: a burst of 1 MiB calls is refused before the bodies are read; the other job keeps its latency', async () => {
    const victim = await gateway('victim2');
    const attacker = await gateway('attacker2', {}, fakeClient({ delayMs: 2000 }));
    const baseline = await medianLatency(victim.socketPath, victim.token);
    const big = JSON.stringify({ prompt: 'x'.repeat(1_000_000) });
    const statuses = new Map<number, number>();
    const flood = Promise.all(
      Array.from({ length: 400 }, () =>
        call(attacker.socketPath, attacker.token, big).then(
          (r) => statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1),
          () => statuses.set(-1, (statuses.get(-1) ?? 0) + 1),
        ),
      ),
    );
    await sleep(200);
    const during = await medianLatency(victim.socketPath, victim.token, 9);
    await flood;
    expect(during).toBeLessThan(Math.max(baseline * 20, baseline + 1000));
    // At most the in-flight slots' worth reached the workflow; the rest were refused (in-flight, rate,
    // connection cap) without their bodies being read.
    expect(attacker.calls.length).toBeLessThanOrEqual(64);
    // Every other request was refused: 429/503 by the gateway, 400/408 by Node (the unread rest of a refused
    // body, the request timeout), or its connection was dropped at the connection cap (-1).
    expect([...statuses.keys()].filter((s) => ![200, 400, 408, 429, 503, -1].includes(s))).toEqual([]);
    expect(statuses.get(200) ?? 0).toBe(attacker.calls.length);
    expect(statuses.get(429) ?? 0).toBeGreaterThan(0);
  });

  it('an oversized body is refused by its declared size, before a byte of it is read', async () => {
    const g = await gateway('big');
    const s = net.connect(g.socketPath);
    sockets.push(s);
    let reply = '';
    s.on('data', (c: Buffer) => (reply += c.toString()));
    s.on('error', () => undefined);
    // Declares 100 MB and sends none of it: the answer comes anyway.
    s.write(
      `POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${g.token}\r\nContent-Length: 100000000\r\n\r\n`,
    );
    for (let i = 0; i < 40 && !reply.includes('payload_too_large'); i++) await sleep(50);
    expect(reply).toMatch(/^HTTP\/1\.1 413/);
    expect(g.calls).toHaveLength(0);
  });

  it('in-flight slots are checked before the body: a call over the cap is refused while its body is unsent', async () => {
    const g = await gateway('slots', { maxConcurrentCalls: 2 }, fakeClient({ delayMs: 1500 }));
    const running = [call(g.socketPath, g.token, { prompt: 'a' }), call(g.socketPath, g.token, { prompt: 'b' })];
    await sleep(200);
    const s = net.connect(g.socketPath);
    sockets.push(s);
    let reply = '';
    s.on('data', (c: Buffer) => (reply += c.toString()));
    s.on('error', () => undefined);
    s.write(
      `POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${g.token}\r\nContent-Length: 5000\r\n\r\n`,
    );
    for (let i = 0; i < 40 && !reply.includes('too_many_concurrent_calls'); i++) await sleep(50);
    expect(reply).toMatch(/^HTTP\/1\.1 429/);
    expect((await Promise.all(running)).map((r) => r.status)).toEqual([200, 200]);
    expect(g.calls).toHaveLength(2);
  });

  it("another job's token does not open this job's gateway, and a missing one is refused before the body", async () => {
    const a = await gateway('jobA');
    const b = await gateway('jobB');
    const r = await call(a.socketPath, b.token, { prompt: 'bill job A' });
    expect(r.status).toBe(401);
    const none = await call(a.socketPath, '', 'x'.repeat(500_000));
    expect(none.status).toBe(401);
    expect(a.calls).toHaveLength(0);
  });

  it('error text passed to the script carries no node URLs or addresses', async () => {
    const g = await gateway(
      'errs',
      {},
      fakeClient({
        fail: () =>
          ApplicationFailure.create({
            type: 'OllamaError',
            message: 'fetch failed: connect ECONNREFUSED 10.1.2.3:11434 (http://ollama-gpu1:11434/api/generate)',
          }),
      }),
    );
    const r = await call(g.socketPath, g.token, { prompt: 'x' });
    expect(r.status).toBe(502);
    expect(r.body).toContain('ECONNREFUSED');
    expect(r.body).not.toMatch(/10\.1\.2\.3|ollama-gpu1|11434/);
  });
});
