/**
 * The llm worker's circuit breaker (lib/llm/breaker.ts) on a fake clock: which failures count, when it opens,
 * probes and closes, how the wait grows, and the activity guard that fails fast while it is open. The probe of a
 * real HTTP node (a scripted one here) fails on a 500 and on a node that never answers.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ErrorType } from '../../common/errors';
import { createOllamaClient } from '../../lib/llm/client';
import { guardActivities, isNodeFault, NodeCircuit, PROBE_PROMPT, probeNode } from '../../lib/llm/breaker';

const fault = (type: string) => ApplicationFailure.create({ type, message: `${type} happened` });

function circuit(probe: () => Promise<void>, opts: { failures?: number; openMs?: number; maxOpenMs?: number } = {}) {
  const events: string[] = [];
  const c = new NodeCircuit({
    nodeId: 'gpu9',
    failures: opts.failures ?? 3,
    openMs: opts.openMs ?? 1_000,
    maxOpenMs: opts.maxOpenMs ?? 8_000,
    probe: async () => {
      events.push(`probe@${Date.now()}`);
      await probe();
    },
    onOpen: () => events.push(`open@${Date.now()}`),
    onClose: () => events.push(`close@${Date.now()}`),
  });
  return { c, events };
}

beforeEach(() => {
  jest.useFakeTimers({ now: 0 });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('isNodeFault', () => {
  it('counts what says the node is failing, not what says the request or the caller is', () => {
    for (const t of [
      ErrorType.NodeUnavailable,
      ErrorType.OllamaError,
      ErrorType.InferenceTimeout,
      ErrorType.OutOfMemory,
    ])
      expect(isNodeFault(fault(t))).toBe(true);
    for (const t of [
      ErrorType.ModelNotFound,
      ErrorType.InvalidRequest,
      ErrorType.StreamClosed,
      ErrorType.LimitExceeded,
    ])
      expect(isNodeFault(fault(t))).toBe(false);
    expect(isNodeFault(new CancelledFailure('cancelled'))).toBe(false);
    expect(isNodeFault(new Error('plain'))).toBe(false);
    expect(isNodeFault(undefined)).toBe(false);
  });
});

describe('NodeCircuit', () => {
  it('opens after `failures` node faults in a row; a success or a non-node failure in between does not add up', () => {
    const { c, events } = circuit(() => Promise.resolve());
    c.failure(fault(ErrorType.OllamaError));
    c.failure(fault(ErrorType.NodeUnavailable));
    c.success();
    c.failure(fault(ErrorType.OllamaError));
    c.failure(fault(ErrorType.ModelNotFound));
    c.failure(new CancelledFailure('cancelled'));
    c.failure(fault(ErrorType.InferenceTimeout));
    expect(c.state).toBe('closed');
    expect(events).toEqual([]);
    c.failure(fault(ErrorType.OutOfMemory));
    expect(c.state).toBe('open');
    expect(c.isOpen).toBe(true);
    expect(c.trips).toBe(1);
    expect(events).toEqual(['open@0']);
  });

  it('probes after openMs; a failed probe doubles the wait up to maxOpenMs; a good probe closes it', async () => {
    let healthy = false;
    const { c, events } = circuit(() => (healthy ? Promise.resolve() : Promise.reject(new Error('500'))), {
      openMs: 1_000,
      maxOpenMs: 4_000,
    });
    for (let i = 0; i < 3; i++) c.failure(fault(ErrorType.OllamaError));
    await jest.advanceTimersByTimeAsync(999);
    expect(events).toEqual(['open@0']);
    // Probes at 1 s, then 2 s, 4 s and 4 s (capped) later.
    await jest.advanceTimersByTimeAsync(1 + 2_000 + 4_000 + 4_000);
    expect(events).toEqual(['open@0', 'probe@1000', 'probe@3000', 'probe@7000', 'probe@11000']);
    expect(c.state).toBe('open');
    // Failures while open say nothing new (calls already in flight when it opened).
    c.failure(fault(ErrorType.OllamaError));
    expect(c.trips).toBe(1);
    healthy = true;
    await jest.advanceTimersByTimeAsync(4_000);
    expect(events.slice(-2)).toEqual(['probe@15000', 'close@15000']);
    expect(c.state).toBe('closed');
    expect(c.probes).toBe(5);
  });

  it('is probing (still not taking work) while a probe runs', async () => {
    let finish!: () => void;
    const { c } = circuit(() => new Promise<void>((r) => (finish = r)));
    for (let i = 0; i < 3; i++) c.failure(fault(ErrorType.NodeUnavailable));
    await jest.advanceTimersByTimeAsync(1_000);
    expect(c.state).toBe('probing');
    expect(c.isOpen).toBe(true);
    finish();
    await jest.advanceTimersByTimeAsync(0);
    expect(c.state).toBe('closed');
  });

  it('a node that fails again soon after it recovered waits longer each time; after a quiet spell it starts over', async () => {
    const { c, events } = circuit(() => Promise.resolve(), { openMs: 1_000, maxOpenMs: 8_000 });
    const trip = () => {
      for (let i = 0; i < 3; i++) c.failure(fault(ErrorType.OllamaError));
    };
    trip(); // open at 0, probe at 1000
    await jest.advanceTimersByTimeAsync(1_000);
    trip(); // open at 1000, flapping: probe 2000 later
    await jest.advanceTimersByTimeAsync(2_000);
    expect(events).toEqual(['open@0', 'probe@1000', 'close@1000', 'open@1000', 'probe@3000', 'close@3000']);
    await jest.advanceTimersByTimeAsync(8_000); // quiet for maxOpenMs
    trip();
    await jest.advanceTimersByTimeAsync(1_000);
    expect(events.slice(-3)).toEqual(['open@11000', 'probe@12000', 'close@12000']);
  });

  it('failures 0 turns it off; stop() ends the probing', async () => {
    const off = circuit(() => Promise.resolve(), { failures: 0 });
    for (let i = 0; i < 10; i++) off.c.failure(fault(ErrorType.OllamaError));
    expect(off.c.state).toBe('closed');

    const { c, events } = circuit(() => Promise.reject(new Error('down')));
    for (let i = 0; i < 3; i++) c.failure(fault(ErrorType.OllamaError));
    c.stop();
    await jest.advanceTimersByTimeAsync(60_000);
    expect(events).toEqual(['open@0']);
  });
});

describe('guardActivities', () => {
  it('passes calls through while closed, counts their outcomes, and fails fast with a retryable NodeUnavailable while open', async () => {
    let calls = 0;
    let fail = true;
    const acts = {
      async llmGenerate(input: { prompt: string }) {
        calls++;
        if (fail) throw fault(ErrorType.OllamaError);
        return `echo ${input.prompt}`;
      },
    };
    const { c } = circuit(() => Promise.resolve());
    const guarded = guardActivities(acts, c);
    expect(Object.keys(guarded)).toEqual(['llmGenerate']);
    for (let i = 0; i < 3; i++)
      await expect(guarded.llmGenerate({ prompt: 'x' })).rejects.toMatchObject({ type: 'OllamaError' });
    expect(c.state).toBe('open');
    const refused = await guarded.llmGenerate({ prompt: 'x' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect(refused).toMatchObject({ type: ErrorType.NodeUnavailable, nonRetryable: false });
    expect((refused as Error).message).toContain('gpu9');
    expect(calls).toBe(3); // the refused call never reached the node
    fail = false;
    await jest.advanceTimersByTimeAsync(1_000);
    expect(c.state).toBe('closed');
    await expect(guarded.llmGenerate({ prompt: 'y' })).resolves.toBe('echo y');
    expect(calls).toBe(4);
  });
});

describe('probeNode (a scripted node over HTTP)', () => {
  let server: http.Server;
  let url: string;
  let mode: 'ok' | '500' | 'hang' = 'ok';
  const seen: unknown[] = [];

  beforeAll(async () => {
    jest.useRealTimers();
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push(JSON.parse(body || '{}'));
        if (mode === 'hang') return;
        res.writeHead(mode === 'ok' ? 200 : 500, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            mode === 'ok'
              ? { model: 'm', created_at: new Date().toISOString(), response: 'OK', done: true, done_reason: 'length' }
              : { error: 'llama runner process has terminated' },
          ),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  beforeEach(() => jest.useRealTimers());

  it('asks for one token with the worker num_ctx; resolves on an answer, rejects on a 500 or on silence', async () => {
    const ollama = createOllamaClient(url);
    const opts = { model: 'm', numCtx: 2048, keepAlive: '1h', timeoutMs: 300 };
    await expect(probeNode(ollama, opts)).resolves.toBeUndefined();
    expect(seen[0]).toMatchObject({
      model: 'm',
      prompt: PROBE_PROMPT,
      stream: false,
      keep_alive: '1h',
      options: { num_predict: 1, num_ctx: 2048 },
    });
    mode = '500';
    await expect(probeNode(ollama, opts)).rejects.toThrow(/terminated/);
    mode = 'hang';
    await expect(probeNode(ollama, opts)).rejects.toThrow();
  });
});
