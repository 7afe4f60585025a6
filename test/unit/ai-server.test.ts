/**
 * The AI server's pieces without services: the stream hub and the activity's push to it over real HTTP, the
 * per-key limits, and the OpenAI request and error mappings.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { StreamHub, type StreamEvent } from '../../lib/stream/hub';
import { openStreamSink } from '../../lib/stream/sink';
import { streamsRouter } from '../../api/routes/streams';
import { KeyLimits } from '../../api/v1/limits';
import { finishReason, openAiError } from '../../api/v1/router';
import { fromOpenAi, parseEventId } from '../../api/v1/completions';
import { ChatCompletionBodySchema } from '../../api/v1/schemas';
import { HttpError } from '../../common/errors';
import { groundingOf } from '../../lib/vector/grounding';
import type { Storage } from '../../lib/storage/clients';

const usage = {
  promptTokens: 3,
  completionTokens: 2,
  totalTokens: 5,
  totalDurationMs: 1,
  loadDurationMs: 0,
  promptEvalDurationMs: 0,
  evalDurationMs: 1,
};
const end = { model: 'm', nodeId: 'n', usage, doneReason: 'stop' };

describe('StreamHub', () => {
  it('gives a late reader what it missed, then the rest, then exactly one end', () => {
    const hub = new StreamHub();
    const s = hub.open('chatcmpl-1');
    hub.append(s, 'Hello');
    const seen: StreamEvent[] = [];
    hub.read(s, 2, (e) => seen.push(e));
    hub.append(s, ' world');
    hub.finish(s, end);
    hub.finish(s, end);
    hub.fail(s, 'x', 'too late');
    expect(seen).toEqual([
      { kind: 'text', text: 'llo', offset: 5 },
      { kind: 'text', text: ' world', offset: 11 },
      { kind: 'end', end, offset: 11 },
    ]);
    hub.close();
  });

  it('a reader of a finished stream gets the rest and the end at once', () => {
    const hub = new StreamHub();
    const s = hub.open('chatcmpl-2');
    hub.append(s, 'abcdef');
    hub.finish(s, end);
    const seen: StreamEvent[] = [];
    hub.read(s, 4, (e) => seen.push(e));
    expect(seen.map((e) => e.kind)).toEqual(['text', 'end']);
    expect(seen[0]).toMatchObject({ text: 'ef' });
    hub.close();
  });

  it('authorizes only the stream’s own token', () => {
    const hub = new StreamHub();
    const s = hub.open('chatcmpl-3');
    expect(hub.authorize('chatcmpl-3', s.token)).toBe(s);
    expect(hub.authorize('chatcmpl-3', s.token.slice(1))).toBeUndefined();
    expect(hub.authorize('chatcmpl-3', undefined)).toBeUndefined();
    expect(hub.authorize('chatcmpl-x', s.token)).toBeUndefined();
    hub.close();
  });
});

describe('the activity’s push (lib/stream/sink.ts) into the API’s hub over HTTP', () => {
  let hub: StreamHub;
  let url: string;
  let server: ReturnType<express.Express['listen']>;
  beforeAll(async () => {
    hub = new StreamHub();
    const app = express();
    app.use(streamsRouter(hub));
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((r) => server.once('listening', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    hub.close();
  });

  it('delivers every piece to readers as it is written, then the end', async () => {
    const s = hub.open('chatcmpl-push-1');
    const texts: string[] = [];
    const ended = new Promise<void>((resolve) =>
      hub.read(s, 0, (e) => {
        if (e.kind === 'text') texts.push(e.text);
        if (e.kind === 'end') resolve();
      }),
    );
    const sink = openStreamSink({ url: `${url}/internal/streams/${s.id}`, token: s.token });
    sink.write('one ');
    await until(() => texts.length === 1);
    expect(s.end).toBeUndefined();
    sink.write('two');
    await sink.end(end);
    await ended;
    expect(texts.join('')).toBe('one two');
    expect(s.end).toEqual(end);
    expect(sink.closed.aborted).toBe(false);
  });

  it('closes the producer at once when the stream is abandoned', async () => {
    const s = hub.open('chatcmpl-push-2');
    const sink = openStreamSink({ url: `${url}/internal/streams/${s.id}`, token: s.token });
    sink.write('a');
    await until(() => s.text === 'a');
    hub.abandon(s);
    await until(() => sink.closed.aborted);
    expect(String(sink.closed.reason)).toMatch(/410/);
  });

  it('refuses a wrong token, and a second producer once text was delivered', async () => {
    const s = hub.open('chatcmpl-push-3');
    const wrong = openStreamSink({ url: `${url}/internal/streams/${s.id}`, token: 'nope' });
    wrong.write('x');
    await until(() => wrong.closed.aborted);
    expect(String(wrong.closed.reason)).toMatch(/404/);
    const first = openStreamSink({ url: `${url}/internal/streams/${s.id}`, token: s.token });
    first.write('partial');
    await until(() => s.text === 'partial');
    const second = openStreamSink({ url: `${url}/internal/streams/${s.id}`, token: s.token });
    second.write('again');
    await until(() => second.closed.aborted);
    expect(String(second.closed.reason)).toMatch(/409/);
    expect(s.text).toBe('partial');
    await first.end(end);
  });
});

describe('KeyLimits', () => {
  const storage = {} as Storage;

  it('admits up to the requests a minute, then 429 with Retry-After; a new minute starts over', async () => {
    const limits = new KeyLimits({ requestsPerMinute: 2, tokensPerMinute: 0, dailyTokenBudget: 0, storage });
    const t = 60_000 * 1000 + 10_000;
    await limits.admit('k', t);
    await limits.admit('k', t);
    const err = (await limits.admit('k', t).catch((e: unknown) => e)) as HttpError;
    expect(err).toMatchObject({ status: 429, code: 'rate_limit_exceeded' });
    expect(err.headers?.['Retry-After']).toBe('50');
    await limits.admit('other', t);
    await limits.admit('k', t + 60_000);
  });

  it('refuses once the minute’s tokens are used', async () => {
    const limits = new KeyLimits({ requestsPerMinute: 100, tokensPerMinute: 50, dailyTokenBudget: 0, storage });
    await limits.admit('k', 0);
    limits.charge('k', 60, 0);
    await expect(limits.admit('k', 1)).rejects.toMatchObject({ status: 429, details: { limit: 'tokens_per_minute' } });
  });

  it('counts the day from the stored count and persists what it charges', async () => {
    const stored = new Map<string, number>([['budget#k|day#1970-01-01', 90]]);
    const fake = {
      table: (n: string) => n,
      doc: {
        send: (cmd: { input: { Key: { pk: string; sk: string }; ExpressionAttributeValues?: { ':n': number } } }) => {
          const key = `${cmd.input.Key.pk}|${cmd.input.Key.sk}`;
          const add = cmd.input.ExpressionAttributeValues?.[':n'];
          if (add !== undefined) {
            stored.set(key, (stored.get(key) ?? 0) + add);
            return Promise.resolve({ Attributes: { tokens: stored.get(key) } });
          }
          return Promise.resolve({ Item: stored.has(key) ? { tokens: stored.get(key) } : undefined });
        },
      },
    } as unknown as Storage;
    const limits = new KeyLimits({ requestsPerMinute: 100, tokensPerMinute: 0, dailyTokenBudget: 100, storage: fake });
    await limits.admit('k', 1000);
    limits.charge('k', 15, 1000);
    await expect(limits.admit('k', 2000)).rejects.toMatchObject({ status: 429, code: 'insufficient_quota' });
    await until(() => stored.get('budget#k|day#1970-01-01') === 105);
  });
});

describe('OpenAI mappings', () => {
  it('maps a body onto our request', () => {
    const body = ChatCompletionBodySchema.parse({
      model: 'smollm2:135m',
      messages: [
        { role: 'developer', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
        },
      ],
      max_tokens: 100_000,
      stop: 'END',
      seed: 7,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } },
      user: 'ignored-unknown-field',
    });
    const r = fromOpenAi(body, 1000, 'v1:chat.completions');
    expect(r.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'a\nb' },
    ]);
    expect(r.options).toEqual({ num_predict: 32_768, stop: ['END'], seed: 7 });
    expect(r.format).toEqual({ type: 'object' });
  });

  it('refuses a message over the size limit with 413 naming it', () => {
    const body = ChatCompletionBodySchema.parse({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(11) }] });
    expect(() => fromOpenAi(body, 10, 's')).toThrow(
      expect.objectContaining({ status: 413, code: 'message_too_large' }),
    );
  });

  it('refuses n > 1 and tools, naming the field', () => {
    for (const extra of [{ n: 2 }, { tools: [{ type: 'function' }] }]) {
      const r = ChatCompletionBodySchema.safeParse({
        model: 'm',
        messages: [{ role: 'user', content: 'x' }],
        ...extra,
      });
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.path[0]).toBe(Object.keys(extra)[0]);
    }
  });

  it('puts our errors in OpenAI’s shape and statuses', () => {
    expect(openAiError(new HttpError(400, 'model_not_found', 'no such model'))).toMatchObject({
      status: 404,
      body: { error: { code: 'model_not_found', type: 'invalid_request_error', param: null } },
    });
    expect(
      openAiError(
        new HttpError(400, 'invalid_request', 'body.temperature: too big', { issues: [{ field: 'body.temperature' }] }),
      ),
    ).toMatchObject({ status: 400, body: { error: { param: 'temperature', message: 'temperature: too big' } } });
    expect(openAiError(new HttpError(429, 'insufficient_quota', 'used up')).body).toMatchObject({
      error: { type: 'insufficient_quota' },
    });
    expect(openAiError(new Error('boom'))).toMatchObject({ status: 500, body: { error: { type: 'server_error' } } });
  });

  it('reads our event ids and finish reasons', () => {
    const id = 'chatcmpl-0b9f6c7e-1d2a-4c3b-9e8f-1234567890ab';
    expect(parseEventId(`${id}:42`)).toEqual({ id, offset: 42 });
    expect(parseEventId('42')).toBeUndefined();
    expect(parseEventId(undefined)).toBeUndefined();
    expect(finishReason('stop')).toBe('stop');
    expect(finishReason('length')).toBe('length');
    expect(finishReason('repetition')).toBe('length');
  });
});

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('grounding of answers from sources', () => {
  const sources =
    '- Express delivery (next business day) costs 9.90 EUR.\n- Standard delivery takes 2–4 days, 4,95 EUR.';

  it('passes numbers the sources state, in either decimal notation', () => {
    expect(groundingOf('Express costs 9,90 EUR; standard 4.95 EUR, in 2–4 days [1].', sources)).toEqual({
      unsupported_numbers: [],
      grounded: true,
    });
  });

  it('names the numbers no source states, once each, skipping list markers', () => {
    const answer = '1. Express costs 12 euros.\n2) Or 12 euros for 30 items, 9.90 EUR otherwise.';
    expect(groundingOf(answer, sources)).toEqual({ unsupported_numbers: ['12', '30'], grounded: false });
  });
});
