/**
 * Bounded generation in the llm activity: the num_predict every call runs with (by call kind), loops cut off
 * mid-stream with the Ollama stream aborted, cut-off answers returned as results, and timeouts retried once.
 * Scripted fake Ollama servers, the real `ollama` client, MockActivityEnvironment.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createLlmActivities, createOllamaClient, type LlmActivityDeps } from '../../activities/llm';
import { ErrorType } from '../../common/errors';
import { DEFAULT_NUM_PREDICT, type NumPredictTable } from '../../common/llm-bounds';
import { startFakeOllama, type FakeOllama } from '../helpers/fake-ollama';
import { forever, startStreamingOllama, type StreamingOllama } from '../helpers/streaming-ollama';

const MODEL = 'smollm2:135m';
const quiet = { logger: new DefaultLogger('ERROR') };
const envWith = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, quiet);

function call<I extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: I) => Promise<R>,
  ...args: I
): Promise<R> {
  return env.run<I, R, (...args: I) => Promise<R>>(fn, ...args);
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

const user = (content: string) => [{ role: 'user' as const, content }];

describe('num_predict bounds in the llm activity', () => {
  let fake: FakeOllama;
  beforeAll(async () => {
    fake = await startFakeOllama({ models: [MODEL], script: () => 'ok' });
  });
  afterAll(() => fake.close());
  beforeEach(() => (fake.requests.length = 0));

  const activities = (deps: Partial<LlmActivityDeps> = {}) =>
    createLlmActivities({
      ollama: createOllamaClient(fake.url),
      nodeId: 'n',
      numCtx: 2048,
      callTimeoutMs: 10_000,
      ...deps,
    });
  const sent = () => fake.requests.map((r) => r.options?.num_predict);

  it('runs every call with the kind’s default, its max, or the caller’s smaller value', async () => {
    const llm = activities();
    const { prompt } = DEFAULT_NUM_PREDICT;
    await call(envWith(), llm.llmGenerate, { model: MODEL, prompt: 'none given' });
    await call(envWith(), llm.llmGenerate, { model: MODEL, prompt: 'too many', options: { num_predict: 30_000 } });
    await call(envWith(), llm.llmGenerate, { model: MODEL, prompt: 'unbounded', options: { num_predict: -1 } });
    await call(envWith(), llm.llmGenerate, { model: MODEL, prompt: 'unbounded', options: { num_predict: -2 } });
    await call(envWith(), llm.llmChat, { model: MODEL, messages: user('small'), options: { num_predict: 16 } });
    expect(sent()).toEqual([prompt.default, prompt.max, prompt.default, prompt.default, 16]);
    // The caller's other options and the node's num_ctx are kept.
    expect(fake.requests[4]!.options).toEqual({ num_predict: 16, num_ctx: 2048 });
  });

  it('uses the call’s kind and the worker’s table (LLM_NUM_PREDICT)', async () => {
    const table: NumPredictTable = { ...DEFAULT_NUM_PREDICT, job: { default: 50, max: 100 } };
    const llm = activities({ numPredict: table });
    await call(envWith(), llm.llmChat, { model: MODEL, messages: user('a'), kind: 'job' });
    await call(envWith(), llm.llmChat, {
      model: MODEL,
      messages: user('b'),
      kind: 'job',
      options: { num_predict: 500 },
    });
    await call(envWith(), llm.llmGenerate, { model: MODEL, prompt: 'c', kind: 'chat.route' });
    await call(envWith(), llm.llmGenerate, {
      model: MODEL,
      prompt: 'd',
      kind: 'prompt',
      options: { num_predict: 9999 },
    });
    expect(sent()).toEqual([50, 100, DEFAULT_NUM_PREDICT['chat.route'].default, DEFAULT_NUM_PREDICT.prompt.max]);
  });

  it('shows the kind and the bound in its heartbeats', async () => {
    const slow = await startFakeOllama({ models: [MODEL], script: () => 'slow', delayMs: 700 });
    try {
      const env = envWith({ heartbeatTimeoutMs: 600 });
      const beats: unknown[] = [];
      env.on('heartbeat', (d: unknown) => beats.push(d));
      const llm = createLlmActivities({
        ollama: createOllamaClient(slow.url),
        nodeId: 'n',
        numCtx: 2048,
        callTimeoutMs: 10_000,
      });
      await call(env, llm.llmChat, { model: MODEL, messages: user('x'), kind: 'chat.agent' });
      expect(beats).toContainEqual(
        expect.objectContaining({ kind: 'chat.agent', numPredict: DEFAULT_NUM_PREDICT['chat.agent'].default }),
      );
    } finally {
      await slow.close();
    }
  });
});

describe('cut-off answers and loops', () => {
  let fake: StreamingOllama;
  beforeAll(async () => {
    fake = await startStreamingOllama({ models: [MODEL], reply: () => ({ pieces: ['ok'] }) });
  });
  afterAll(() => fake.close());
  beforeEach(() => (fake.requests.length = 0));

  const activities = (deps: Partial<LlmActivityDeps> = {}) =>
    createLlmActivities({
      ollama: createOllamaClient(fake.url),
      nodeId: 'n',
      numCtx: 2048,
      callTimeoutMs: 20_000,
      ...deps,
    });

  it('returns an answer cut at num_predict as a result with doneReason length', async () => {
    fake.setReply(() => ({ pieces: ['The', ' sky', ' is'], doneReason: 'length' }));
    const res = await call(envWith(), activities().llmGenerate, {
      model: MODEL,
      prompt: 'sky',
      options: { num_predict: 3 },
    });
    expect(res).toMatchObject({ content: 'The sky is', doneReason: 'length', usage: { completionTokens: 3 } });
  });

  it('cuts a repeated line early, aborts the stream and keeps one copy', async () => {
    // A model stuck in a loop would stream until num_predict (here: until the test's timeout).
    fake.setReply(() => ({
      pieces: (function* () {
        yield 'Sure!';
        yield '\n';
        yield* forever('I can', ' help', ' you', ' with', ' that.', '\n');
      })(),
      delayMs: 2,
    }));
    const res = await call(envWith(), activities().llmChat, { model: MODEL, messages: user('help me') });
    expect(res.doneReason).toBe('repetition');
    expect(res.content).toBe('Sure!\nI can help you with that.');
    const req = fake.requests[0]!;
    await req.ended;
    expect(req.aborted).toBe(true);
    // Three copies of 6 pieces, plus at most one 32-char check interval: far fewer than an unbounded loop.
    expect(req.sent).toBeLessThan(40);
    // No final chunk from Ollama: completion tokens are the chunks received (the fake may have sent one more).
    expect(res.usage.completionTokens).toBeGreaterThanOrEqual(2 + 3 * 6);
    expect(res.usage.completionTokens).toBeLessThanOrEqual(req.sent);
  });

  it('cuts a repeated sentence without newlines', async () => {
    fake.setReply(() => ({ pieces: forever('The answer', ' is in', ' the data.', ' ') }));
    const res = await call(envWith(), activities().llmGenerate, { model: MODEL, prompt: 'answer' });
    expect(res).toMatchObject({ doneReason: 'repetition', content: 'The answer is in the data.' });
    await fake.requests[0]!.ended;
    expect(fake.requests[0]!.aborted).toBe(true);
  });

  it('does not cut structured output that repeats items', async () => {
    const item = '{"type":"aws_s3_bucket"}';
    const pieces = ['[', ...Array<string>(30).fill(`${item},`), `${item}]`];
    fake.setReply(() => ({ pieces, delayMs: 1 }));
    const expected = pieces.join('');
    const withFormat = await call(envWith(), activities().llmGenerate, {
      model: MODEL,
      prompt: 'list',
      format: 'json',
    });
    expect(withFormat).toMatchObject({ content: expected, doneReason: 'stop' });
    // Without `format` too: output that starts as JSON is judged as structured.
    const free = await call(envWith(), activities().llmGenerate, { model: MODEL, prompt: 'list' });
    expect(free).toMatchObject({ content: expected, doneReason: 'stop' });
    expect(fake.requests.map((r) => r.finished)).toEqual([true, true]);
  });

  it('a cancel aborts the stream', async () => {
    fake.setReply(() => ({
      pieces: (function* () {
        for (let i = 0; ; i++) yield ` word${i}`;
      })(),
      delayMs: 10,
    }));
    const env = envWith();
    const run = call(env, activities().llmChat, { model: MODEL, messages: user('long') });
    while ((fake.requests[0]?.sent ?? 0) < 3) await new Promise((r) => setTimeout(r, 10));
    env.cancel();
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
    await fake.requests[0]!.ended;
    expect(fake.requests[0]!.aborted).toBe(true);
  });
});

describe('InferenceTimeout is retried at most once', () => {
  let fake: StreamingOllama;
  beforeAll(async () => {
    // Distinct words, never a loop: only the call timeout stops it.
    fake = await startStreamingOllama({
      models: [MODEL],
      reply: () => ({
        pieces: (function* () {
          for (let i = 0; ; i++) yield ` w${i}`;
        })(),
        delayMs: 20,
      }),
    });
  });
  afterAll(() => fake.close());

  const timedOut = (attempt: number) =>
    failureOf(
      call(
        envWith({ attempt }),
        createLlmActivities({ ollama: createOllamaClient(fake.url), nodeId: 'n', numCtx: 2048, callTimeoutMs: 300 })
          .llmGenerate,
        { model: MODEL, prompt: 'ramble' },
      ),
    );

  it('the first attempt’s timeout is retryable', async () => {
    const failure = await timedOut(1);
    expect(failure.type).toBe(ErrorType.InferenceTimeout);
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('num_predict 256');
  });

  it('a timeout on the second attempt (or later) is final', async () => {
    for (const attempt of [2, 3]) {
      const failure = await timedOut(attempt);
      expect(failure.type).toBe(ErrorType.InferenceTimeout);
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain(`attempt ${attempt}, not retried again`);
    }
  });

  it('other failures keep their retry policy on later attempts', async () => {
    const dead = createLlmActivities({
      ollama: createOllamaClient('http://127.0.0.1:9'),
      nodeId: 'n',
      numCtx: 2048,
      callTimeoutMs: 5000,
    });
    const failure = await failureOf(call(envWith({ attempt: 3 }), dead.llmGenerate, { model: MODEL, prompt: 'x' }));
    expect(failure.type).toBe(ErrorType.NodeUnavailable);
    expect(failure.nonRetryable).toBe(false);
  });
});
