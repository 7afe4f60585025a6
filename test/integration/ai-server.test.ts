/**
 * The AI server through the official `openai` client, against real parts: a Temporal dev server, the moto
 * emulator, the real Ollama node with the real small model (invariants only), and a scripted streaming node
 * (exact text, timing of chunks, disconnects, failures). The API listens on a real port, so streamed tokens
 * travel the production path: llm activity → POST /internal/streams/:id → the client's SSE connection.
 */
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createStorage, ensureStorage, type Storage } from '../../lib/storage/clients';
import type { Config } from '../../common/config';
import { readDailyTokens, utcDay } from '../../lib/usage/budget';
import { createTemporalEnv, services, testConfig, uid } from '../helpers/env';
import { startStreamingOllama, type StreamReply, type StreamingOllama } from '../helpers/streaming-ollama';
import { recordHistory } from '../helpers/histories';
import type { RunningWorkers } from '../../scripts/lib/workers';
import { listenApp, testApp, type ListeningApp } from '../helpers/api';
import { startTestWorkers } from '../helpers/workers';

jest.setTimeout(240_000);

const KEY = 'ai-key-a';
const KEY_B = 'ai-key-b';
const FAKE = 'stream-fake:1b';
const SLOW = 'slow-fake:1b';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: TestWorkflowEnvironment;
let storage: Storage;
let workers: RunningWorkers | undefined;
let streaming: StreamingOllama;
let slow: StreamingOllama;
let config: Config;
const servers: ListeningApp[] = [];
let baseUrl: string;
/** What the scripted node answers next, per call (default: "Hello from the fake node."). */
let script: (body: Record<string, unknown>) => StreamReply = () => ({ pieces: words('Hello from the fake node.') });

function words(text: string): string[] {
  return text.split(/(?<= )/);
}

async function listen(cfg: Config): Promise<string> {
  const api = await listenApp(testApp(env, { config: cfg, storage }));
  servers.push(api);
  return api.url;
}

const client = (url = baseUrl, apiKey = KEY) => new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 });

beforeAll(async () => {
  env = await createTemporalEnv();
  streaming = await startStreamingOllama({ models: [FAKE], reply: (r) => script(r.body) });
  slow = await startStreamingOllama({ models: [SLOW], reply: () => ({ pieces: ['x'], delayMs: 10_000 }) });
  config = testConfig({
    API_KEYS: `${KEY}:tenant-a,${KEY_B}:tenant-b`,
    S3_BUCKET: uid('ai'),
    OLLAMA_NODES: `node-1=${services.ollamaUrl},stream-node=${streaming.url},slow-node=${slow.url}`,
    AI_STREAM_RESUME_GRACE_MS: '300',
  });
  storage = createStorage(config);
  await ensureStorage(storage);
  workers = await startTestWorkers(env, {
    config,
    storage,
    workflowsPath: require.resolve('../../workflows/completion-workflow'),
    nodes: [
      { id: 'node-1', url: services.ollamaUrl, waitForNodeMs: 60_000 },
      { id: 'stream-node', url: streaming.url },
      // Calls time out after 1 s: the workflow fails InferenceTimeout after its one retry.
      { id: 'slow-node', url: slow.url, config: { LLM_CALL_TIMEOUT_MS: 1000 } },
    ],
  });
  baseUrl = await listen(config);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await workers?.stop();
  await env?.teardown();
  await streaming?.close();
  await slow?.close();
  storage?.close();
});

describe('chat completions with the real model (invariants)', () => {
  it('answers in OpenAI’s shape with Ollama’s token counts, bounded by max_tokens', async () => {
    const r = await client().chat.completions.create({
      model: services.model,
      messages: [{ role: 'user', content: 'Name one colour.' }],
      max_tokens: 16,
      temperature: 0,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.model).toBe(services.model);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(typeof r.choices[0]!.message.content).toBe('string');
    expect(['stop', 'length']).toContain(r.choices[0]!.finish_reason);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(16);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
    await recordHistory('completion-real', env.client.workflow.getHandle(r.id));
  });

  it('streams chunks whose deltas make the answer, usage in the last chunk', async () => {
    const stream = await client().chat.completions.create({
      model: services.model,
      messages: [{ role: 'user', content: 'Count from one to five.' }],
      max_tokens: 24,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(['stop', 'length']).toContain(finish!.choices[0]!.finish_reason);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage!.completion_tokens).toBeGreaterThan(0);
    expect(last.usage!.completion_tokens).toBeLessThanOrEqual(24);
    // The stream and the workflow's result are the same answer.
    const result = await env.client.workflow.getHandle(last.id).result();
    expect(text).toBe(result.content);
    expect(last.usage!.completion_tokens).toBe(result.usage.completionTokens);
  });

  it('returns JSON that parses and follows the schema for response_format json_schema', async () => {
    const r = await client().chat.completions.create({
      model: services.model,
      messages: [{ role: 'user', content: 'Pick a colour for the sky.' }],
      max_tokens: 60,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'colour',
          schema: {
            type: 'object',
            properties: { colour: { type: 'string', enum: ['red', 'green', 'blue'] } },
            required: ['colour'],
          },
        },
      },
    });
    // Ollama's grammar makes the output valid JSON of the schema; only a cut-off (length) could break it.
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const parsed = JSON.parse(r.choices[0]!.message.content ?? '') as { colour: string };
    expect(['red', 'green', 'blue']).toContain(parsed.colour);
  });
});

describe('embeddings with the real model', () => {
  it('returns one vector per input, all the same size, in order (the client’s default base64 decoded)', async () => {
    const r = await client().embeddings.create({ model: services.model, input: ['alpha', 'beta', 'gamma'] });
    expect(r.object).toBe('list');
    expect(r.data.map((d) => d.index)).toEqual([0, 1, 2]);
    const dims = r.data[0]!.embedding.length;
    expect(dims).toBeGreaterThan(10);
    for (const d of r.data) {
      expect(d.embedding).toHaveLength(dims);
      expect(d.embedding.every((x) => Number.isFinite(x))).toBe(true);
    }
    // Different texts, different vectors.
    expect(r.data[0]!.embedding).not.toEqual(r.data[1]!.embedding);
    expect(r.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('takes a single string and encoding_format float', async () => {
    const raw = await fetch(`${baseUrl}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: services.model, input: 'one text', encoding_format: 'float' }),
    });
    expect(raw.status).toBe(200);
    const body = (await raw.json()) as { data: { embedding: number[] }[] };
    expect(body.data).toHaveLength(1);
    expect(Array.isArray(body.data[0]!.embedding)).toBe(true);
    // Visibility is eventually consistent: wait until the run is listed, then record it.
    let workflowId: string | undefined;
    for (let i = 0; i < 100 && !workflowId; i++) {
      for await (const w of env.client.workflow.list({ query: `WorkflowType = 'embeddingsWorkflow'` })) {
        workflowId = w.workflowId;
        break;
      }
      if (!workflowId) await sleep(100);
    }
    expect(workflowId).toMatch(/^embed-/);
    await recordHistory('embeddings-real', env.client.workflow.getHandle(workflowId!));
  });
});

describe('streaming through the scripted node (exact text)', () => {
  it('delivers chunks while the node is still generating', async () => {
    const text = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen';
    script = () => ({ pieces: words(text), delayMs: 150 });
    const stream = await client().chat.completions.create({
      model: FAKE,
      messages: [{ role: 'user', content: 'count' }],
      stream: true,
    });
    const seen: { text: string; nodeFinished: boolean }[] = [];
    for await (const c of stream) {
      const text = c.choices[0]?.delta.content;
      if (text) seen.push({ text, nodeFinished: streaming.requests[streaming.requests.length - 1]!.finished });
    }
    expect(seen.map((s) => s.text).join('')).toBe(text);
    // The first token reached the client long before the node sent its last one.
    expect(seen[0]!.nodeFinished).toBe(false);
    expect(seen.length).toBeGreaterThan(3);
  });

  it('a client that disconnects cancels the generation and frees the node', async () => {
    script = () => ({ pieces: endless(), delayMs: 20 });
    const before = streaming.requests.length;
    const ac = new AbortController();
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: FAKE, messages: [{ role: 'user', content: 'go' }], stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    let got = '';
    while (!got.includes('word3')) got += new TextDecoder().decode((await reader.read()).value);
    const id = /"id":"(chatcmpl-[^"]+)"/.exec(got)![1]!;
    ac.abort();
    const node = streaming.requests[before]!;
    await node.ended;
    expect(node.aborted).toBe(true);
    expect(node.finished).toBe(false);
    const handle = env.client.workflow.getHandle(id);
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('CANCELLED');
  });

  it('a client that reconnects with Last-Event-ID gets the rest of the same stream', async () => {
    const text = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu';
    script = () => ({ pieces: words(text), delayMs: 60 });
    const ac = new AbortController();
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: FAKE, messages: [{ role: 'user', content: 'greek' }], stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    let raw = '';
    while ((raw.match(/"content":"[^"]+"/g) ?? []).length < 4)
      raw += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    // Only whole events: the read may have stopped in the middle of one.
    const events = parseSse(raw.slice(0, raw.lastIndexOf('\n\n') + 2));
    const lastId = events.filter((e) => e.id).pop()!.id!;
    const firstPart = events.map((e) => contentOf(e.data)).join('');

    const resumed = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'last-event-id': lastId },
      body: JSON.stringify({ model: FAKE, messages: [{ role: 'user', content: 'greek' }], stream: true }),
    });
    expect(resumed.status).toBe(200);
    const rest = parseSse(await resumed.text());
    expect(rest[rest.length - 1]!.data).toBe('[DONE]');
    expect(firstPart + rest.map((e) => contentOf(e.data)).join('')).toBe(text);

    // Another tenant cannot resume it.
    const other = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY_B}`, 'content-type': 'application/json', 'last-event-id': lastId },
      body: '{}',
    });
    expect(other.status).toBe(404);
  });

  it('serves the template routes on the same handlers', async () => {
    script = () => ({ pieces: words('Fine, thank you.') });
    const auth = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
    const chat = await fetch(`${baseUrl}/chat`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ message: 'How are you?', model: FAKE }),
    });
    expect(chat.status).toBe(200);
    expect(await chat.json()).toMatchObject({ response: 'Fine, thank you.', model: FAKE });

    script = () => ({ pieces: ['line one\n', 'line two'] });
    const sse = await fetch(`${baseUrl}/chat/stream`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ message: 'two lines', model: FAKE }),
    });
    expect(sse.headers.get('content-type')).toMatch(/text\/event-stream/);
    const events = parseSse(await sse.text());
    expect(events.map((e) => e.data)).toEqual(['line one\n', 'line two', '[DONE]']);

    const bad = await fetch(`${baseUrl}/chat`, { method: 'POST', headers: auth, body: JSON.stringify({}) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/message/);
  });
});

describe('errors raise the client’s usual exceptions', () => {
  const ask = (model: string, extra: Record<string, unknown> = {}, c = client()) =>
    c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

  it('unknown model → 404 NotFoundError, code model_not_found', async () => {
    const err = await ask('no-such-model:1b').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('a wrong key → 401 AuthenticationError', async () => {
    await expect(ask(FAKE, {}, client(baseUrl, 'wrong-key'))).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('a bad field → 400 BadRequestError naming it', async () => {
    const err = (await ask(FAKE, { temperature: 7 }).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.BadRequestError
    >;
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe('temperature');
  });

  it('messages longer than the context → 400 context_length_exceeded', async () => {
    const long = 'word '.repeat(Math.ceil((config.LLM_NUM_CTX * 4) / 5) + 100);
    const err = (await client()
      .chat.completions.create({ model: FAKE, messages: [{ role: 'user', content: long.slice(0, 30_000) }] })
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe('context_length_exceeded');
  });

  it('a message over AI_MAX_MESSAGE_CHARS → 413', async () => {
    const err = (await client()
      .chat.completions.create({ model: FAKE, messages: [{ role: 'user', content: 'x'.repeat(40_000) }] })
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(413);
  });

  it('a node out of memory → 503 InternalServerError (after one retry)', async () => {
    script = () => ({ pieces: [], fail: { status: 500, error: 'model requires more system memory (9 GiB)' } });
    const err = (await ask(FAKE).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.InternalServerError>;
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err.status).toBe(503);
    expect(err.code).toBe('out_of_memory');
  });

  it('an inference timeout → 504', async () => {
    const err = (await ask(SLOW).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err.status).toBe(504);
    expect(err.code).toBe('inference_timeout');
  });

  it('requests over the per-key minute → 429 RateLimitError with Retry-After', async () => {
    script = () => ({ pieces: words('ok') });
    const url = await listen({ ...config, AI_REQUESTS_PER_MINUTE: 2 });
    await ask(FAKE, {}, client(url));
    await ask(FAKE, {}, client(url));
    const err = (await ask(FAKE, {}, client(url)).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.RateLimitError
    >;
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('rate_limit_exceeded');
    expect(Number(err.headers?.get('retry-after'))).toBeGreaterThan(0);
  });

  it('a used-up daily budget → 429 insufficient_quota, remembered across API restarts', async () => {
    script = () => ({ pieces: words('a b c d e f g h') });
    const key = `budget-key-${Date.now()}`;
    const cfg = { ...config, API_KEYS: new Map([[key, 'tenant-a']]), AI_DAILY_TOKEN_BUDGET: 10 };
    const url = await listen(cfg);
    await ask(FAKE, {}, client(url, key)); // 5 prompt + 8 completion tokens: over 10
    const err = (await ask(FAKE, {}, client(url, key)).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.RateLimitError
    >;
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('insufficient_quota');
    // A fresh API process reads the day's count from the usage table (written just after the answer).
    const keyId = createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
    for (let i = 0; i < 200 && (await readDailyTokens(storage, keyId, utcDay())) < 13; i++) await sleep(50);
    expect(await readDailyTokens(storage, keyId, utcDay())).toBe(13);
    const again = (await ask(FAKE, {}, client(await listen(cfg), key)).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.RateLimitError
    >;
    expect(again.code).toBe('insufficient_quota');
  });
});

describe('metering', () => {
  it('sums every call per API key and model in GET /usage, from Ollama’s counts', async () => {
    script = () => ({ pieces: words('one two three') });
    const key = `meter-key-${Date.now()}`;
    const url = await listen({ ...config, API_KEYS: new Map([[key, 'tenant-meter']]) });
    const rs = await Promise.all(
      [1, 2, 3].map(() =>
        client(url, key).chat.completions.create({
          model: FAKE,
          messages: [{ role: 'user', content: 'x' }],
        }),
      ),
    );
    const expected = rs.reduce((n, r) => n + r.usage!.total_tokens, 0);
    const usage = await fetch(`${url}/usage`, { headers: { authorization: `Bearer ${key}` } });
    const body = (await usage.json()) as { rows: { keyId?: string; model: string; total: number; calls: number }[] };
    const rows = body.rows.filter((r) => r.model === FAKE);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(rows[0]!.calls).toBe(3);
    expect(rows[0]!.total).toBe(expected);
  });
});

function* endless(): Generator<string> {
  for (let i = 0; ; i++) yield ` word${i}`;
}

function parseSse(raw: string): { id?: string; data: string }[] {
  return raw
    .split('\n\n')
    .filter((b) => b.trim())
    .map((block) => {
      const lines = block.split('\n');
      const id = lines.find((l) => l.startsWith('id: '))?.slice(4);
      const data = lines
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      return { ...(id ? { id } : {}), data };
    })
    .filter((e) => e.data);
}

function contentOf(data: string): string {
  if (data === '[DONE]') return '';
  const c = JSON.parse(data) as { choices?: { delta?: { content?: string } }[] };
  return c.choices?.[0]?.delta?.content ?? '';
}
