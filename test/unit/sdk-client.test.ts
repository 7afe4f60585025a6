/**
 * sdk/python/ai_client.py run by the real python3 against a scripted gateway on a Unix socket (the same
 * wire contract as activities/executor/gateway.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const SDK_DIR = path.resolve(__dirname, '../../sdk/python');

// Each test starts a python3 process: on a busy machine that alone can take seconds, so no 5 s default here.
jest.setTimeout(60_000);

interface Seen {
  url: string;
  auth?: string;
  callId?: string;
  body: Record<string, unknown>;
}

function startGateway(
  socketPath: string,
  handler: (s: Seen, res: http.ServerResponse, req: http.IncomingMessage) => void,
) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const s: Seen = {
        url: req.url ?? '',
        auth: req.headers.authorization,
        callId: req.headers['x-ainode-call-id'] as string | undefined,
        body: JSON.parse(raw || '{}') as Record<string, unknown>,
      };
      seen.push(s);
      handler(s, res, req);
    });
  });
  return new Promise<{ seen: Seen[]; close: () => Promise<void> }>((resolve) =>
    server.listen(socketPath, () =>
      resolve({ seen, close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))) }),
    ),
  );
}

function reply(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const ok = (s: Seen, res: http.ServerResponse, n: number) =>
  reply(res, 200, {
    content: `echo:${String(s.body.prompt ?? (s.body.messages as { content: string }[] | undefined)?.at(-1)?.content)}`,
    model: String(s.body.model ?? 'gemma3:270m'),
    usage: { prompt: 3, completion: 4, total: 7 },
    call: n,
  });

function python(
  code: string,
  env: Record<string, string>,
  onStderr?: (text: string) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('python3', ['-c', code], {
      // No __pycache__ left in sdk/python by a test run.
      env: { ...process.env, PYTHONPATH: SDK_DIR, PYTHONDONTWRITEBYTECODE: '1', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      onStderr?.(stderr);
    });
    child.on('close', (c) => resolve({ code: c, stdout, stderr }));
  });
}

describe('ai_client (python SDK)', () => {
  let dir: string;
  let sock: string;
  let env: Record<string, string>;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ainode-sdk-'));
    sock = path.join(dir, 'gw.sock');
    env = { AINODE_GATEWAY_SOCKET: sock, AINODE_JOB_TOKEN: 'tok-123', AINODE_WORK_DIR: dir, AINODE_BACKOFF_S: '0.05' };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('generate and chat: options pass through, the token and a call id are sent, text comes back', async () => {
    let n = 0;
    const gw = await startGateway(sock, (s, res) => ok(s, res, ++n));
    try {
      const r = await python(
        `import ai_client
print(ai_client.generate("hi there", temperature=0.2, num_predict=8, system="be brief"))
print(ai_client.chat([{"role": "user", "content": "what?"}], model="other:1b", seed=7))
print(ai_client.usage()["total_tokens"])`,
        env,
      );
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('echo:hi there\necho:what?\n14\n');
      expect(gw.seen.map((s) => s.url)).toEqual(['/v1/generate', '/v1/chat']);
      expect(gw.seen[0]!.body).toEqual({
        prompt: 'hi there',
        system: 'be brief',
        options: { temperature: 0.2, num_predict: 8 },
      });
      expect(gw.seen[1]!.body).toEqual({
        messages: [{ role: 'user', content: 'what?' }],
        model: 'other:1b',
        options: { seed: 7 },
      });
      expect(gw.seen.every((s) => s.auth === 'Bearer tok-123')).toBe(true);
      expect(gw.seen[0]!.callId).toMatch(/^[0-9a-f]{32}$/);
      expect(gw.seen[0]!.callId).not.toBe(gw.seen[1]!.callId);
    } finally {
      await gw.close();
    }
  });

  it('retries a dropped connection with the same call id', async () => {
    let drops = 0;
    const gw = await startGateway(sock, (s, res, req) => {
      if (drops++ < 2) req.socket.destroy();
      else ok(s, res, 1);
    });
    try {
      const r = await python('import ai_client\nprint(ai_client.generate("again"))', env);
      expect(r.stdout).toBe('echo:again\n');
      expect(gw.seen).toHaveLength(3);
      expect(new Set(gw.seen.map((s) => s.callId)).size).toBe(1);
    } finally {
      await gw.close();
    }
  });

  it('waits with backoff until the gateway socket exists', async () => {
    // The client's backoff sleep announces itself, so the gateway starts only after a real failed attempt.
    let backingOff!: () => void;
    const firstBackoff = new Promise<void>((r) => (backingOff = r));
    const pending = python(
      `import sys, time, ai_client
_sleep = time.sleep
def sleep(s):
    print("backoff", file=sys.stderr, flush=True)
    _sleep(s)
time.sleep = sleep
print(ai_client.generate("late"))`,
      env,
      (stderr) => stderr.includes('backoff') && backingOff(),
    );
    await firstBackoff;
    const gw = await startGateway(sock, (s, res) => ok(s, res, 1));
    try {
      const r = await pending;
      expect(r.stdout).toBe('echo:late\n');
    } finally {
      await gw.close();
    }
  });

  it('raises typed errors for limits and unknown models', async () => {
    const gw = await startGateway(sock, (s, res) =>
      s.body.model === 'nope'
        ? reply(res, 400, { error: { code: 'model_not_found', message: 'model "nope:latest" is not in the catalog' } })
        : reply(res, 429, { error: { code: 'limit_exceeded', message: 'LLM call limit reached: 1 calls per job' } }),
    );
    try {
      const r = await python(
        `import ai_client
for kw in ({}, {"model": "nope"}):
    try:
        ai_client.generate("x", **kw)
    except ai_client.AiClientError as e:
        print(type(e).__name__, e.code, e.status, e)`,
        env,
      );
      expect(r.stdout).toBe(
        'LimitExceededError limit_exceeded 429 LLM call limit reached: 1 calls per job\n' +
          'ModelNotFoundError model_not_found 400 model "nope:latest" is not in the catalog\n',
      );
      expect(gw.seen).toHaveLength(2); // refusals are not retried
    } finally {
      await gw.close();
    }
  });

  it('appends one whole usage.jsonl line per call from 16 threads', async () => {
    let n = 0;
    const gw = await startGateway(sock, (s, res) => setTimeout(() => ok(s, res, ++n), 5));
    try {
      const r = await python(
        `import ai_client, threading
def work(i):
    for j in range(2):
        ai_client.generate(f"t{i}-{j}")
ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
print(ai_client.usage()["calls"])`,
        env,
      );
      expect(r.stdout).toBe('32\n');
      const lines = readFileSync(path.join(dir, 'usage.jsonl'), 'utf8').trim().split('\n');
      expect(lines).toHaveLength(32);
      const parsed = lines.map((l) => JSON.parse(l) as { total_tokens: number; kind: string });
      expect(parsed.reduce((a, l) => a + l.total_tokens, 0)).toBe(32 * 7);
      expect(new Set(gw.seen.map((s) => s.callId)).size).toBe(32);
    } finally {
      await gw.close();
    }
  });
});
