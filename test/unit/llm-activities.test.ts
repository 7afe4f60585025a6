import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createLlmActivities, createNodeActivities, createOllamaClient } from '../../activities/llm';
import { ErrorType } from '../../common/errors';
import { freePort } from '../../scripts/lib/services';
import { startFakeOllama, type FakeOllama, type FakeScript } from '../helpers/fake-ollama';

const MODEL = 'gemma3:270m';
const REPLY = 'The sky is blue because of Rayleigh scattering.';

const quiet = { logger: new DefaultLogger('ERROR') };
const envWith = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, quiet);

/** Runs one activity in the mock context, typed (MockActivityEnvironment.run cannot infer the result). */
function call<I extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: I) => Promise<R>,
  ...args: I
): Promise<R> {
  return env.run<I, R, (...args: I) => Promise<R>>(fn, ...args);
}

/** The failure an activity call rejected with (fails the test when it resolved). */
async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** A script that holds the reply until released, and says when the request reached the server. */
function heldScript() {
  let release: (text: string) => void = () => undefined;
  let reached: () => void = () => undefined;
  const arrived = new Promise<void>((r) => (reached = r));
  const script: FakeScript = () =>
    new Promise<string>((r) => {
      release = r;
      reached();
    });
  return { script, arrived, release: (text = 'late') => release(text) };
}

describe('llm activities against a scripted Ollama', () => {
  let fake: FakeOllama;
  beforeAll(async () => {
    fake = await startFakeOllama({ models: [MODEL, 'nomic:latest'], script: () => REPLY });
  });
  afterAll(() => fake.close());
  beforeEach(() => {
    fake.requests.length = 0;
    fake.setScript(() => REPLY);
  });

  const activities = (overrides: Partial<Parameters<typeof createLlmActivities>[0]> = {}) =>
    createLlmActivities({
      ollama: createOllamaClient(fake.url),
      nodeId: 'node-a',
      numCtx: 2048,
      callTimeoutMs: 10_000,
      ...overrides,
    });

  it('llmChat concatenates the streamed content and maps usage from Ollama’s final chunk', async () => {
    const env = envWith();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Why is the sky blue?' },
    ];
    const res = await call(env, activities().llmChat, {
      model: MODEL,
      messages,
      options: { temperature: 0, num_predict: 16 },
    });

    // The fake streams the reply in two halves plus an empty final chunk.
    expect(res.content).toBe(REPLY);
    expect(res).toMatchObject({ model: MODEL, nodeId: 'node-a', doneReason: 'stop' });
    // The fake counts words like Ollama counts tokens: 2 + 5 prompt words, 8 reply words; 1 ms total.
    expect(res.usage).toEqual({
      promptTokens: 7,
      completionTokens: 8,
      totalTokens: 15,
      totalDurationMs: 1,
      loadDurationMs: 0,
      promptEvalDurationMs: 0.5,
      evalDurationMs: 0.5,
    });
    expect(beats.length).toBeGreaterThan(0);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({ path: '/api/chat', model: MODEL, messages });
    expect(fake.requests[0]!.options).toEqual({ temperature: 0, num_predict: 16, num_ctx: 2048 });
  });

  it('llmGenerate passes system, format and num_ctx through', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
    fake.setScript(() => '{"answer": "blue"}');
    const res = await call(envWith(), activities({ numCtx: 1024 }).llmGenerate, {
      model: MODEL,
      prompt: 'Colour of the sky?',
      system: 'Answer in JSON.',
      format: schema,
    });
    expect(JSON.parse(res.content)).toEqual({ answer: 'blue' });
    expect(fake.requests[0]).toMatchObject({
      path: '/api/generate',
      format: schema,
      options: { num_ctx: 1024 },
      messages: [
        { role: 'system', content: 'Answer in JSON.' },
        { role: 'user', content: 'Colour of the sky?' },
      ],
    });

    await call(envWith(), activities().llmGenerate, { model: MODEL, prompt: 'x', format: 'json' });
    expect(fake.requests[1]).toMatchObject({ format: 'json', options: { num_ctx: 2048 } });
  });

  it('llmEmbed returns the embeddings and Ollama’s prompt count', async () => {
    const res = await call(envWith(), activities().llmEmbed, { model: 'nomic:latest', input: ['a', 'b'] });
    expect(res.embeddings).toHaveLength(2);
    expect(res).toMatchObject({ model: 'nomic:latest', nodeId: 'node-a', usage: { promptTokens: 2 } });
  });

  it('an unknown model fails ModelNotFound, not retryable', async () => {
    const failure = await failureOf(
      call(envWith(), activities().llmChat, { model: 'nope:1b', messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect(failure.type).toBe(ErrorType.ModelNotFound);
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('nope:1b');
    expect(failure.message).toContain('node-a');
  });

  it('a dead node fails NodeUnavailable, retryable', async () => {
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    const llm = createLlmActivities({
      ollama: createOllamaClient(deadUrl),
      nodeId: 'node-x',
      numCtx: 2048,
      callTimeoutMs: 5000,
    });
    const failure = await failureOf(call(envWith(), llm.llmGenerate, { model: MODEL, prompt: 'hi' }));
    expect(failure.type).toBe(ErrorType.NodeUnavailable);
    expect(failure.nonRetryable).toBe(false);
  });

  it('a call past callTimeoutMs is aborted and fails InferenceTimeout, before Ollama answered', async () => {
    const held = heldScript();
    fake.setScript(held.script);
    try {
      const failure = await failureOf(
        call(envWith(), activities({ callTimeoutMs: 300 }).llmGenerate, { model: MODEL, prompt: 'slow' }),
      );
      expect(failure.type).toBe(ErrorType.InferenceTimeout);
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toContain('300 ms');
    } finally {
      held.release();
    }
  });

  it('a cancelled activity aborts the request and is reported as cancelled', async () => {
    const held = heldScript();
    fake.setScript(held.script);
    const env = envWith();
    try {
      const run = call(env, activities().llmChat, { model: MODEL, messages: [{ role: 'user', content: 'long' }] });
      await held.arrived;
      env.cancel();
      await expect(run).rejects.toBeInstanceOf(CancelledFailure);
    } finally {
      held.release();
    }
  });
});

describe('node activities against a scripted Ollama', () => {
  let fake: FakeOllama;
  beforeAll(async () => {
    // `gemma3` and `gemma3:latest` are one model to Ollama; health must list it once.
    fake = await startFakeOllama({ models: ['gemma3', 'gemma3:latest', MODEL], script: () => '' });
  });
  afterAll(() => fake.close());

  const node = () => createNodeActivities({ ollama: createOllamaClient(fake.url), nodeId: 'node-a', numCtx: 4096 });

  it('nodeHealth reports version, deduplicated models and loaded models', async () => {
    const health = await call(envWith(), node().nodeHealth);
    expect(health).toEqual({
      nodeId: 'node-a',
      version: '0.0.0-fake',
      models: ['gemma3:270m', 'gemma3:latest'],
      loaded: [],
    });
  });

  it('nodeWarmup loads the model with an empty prompt and the workers’ num_ctx', async () => {
    const res = await call(envWith(), node().nodeWarmup, MODEL);
    expect(res).toMatchObject({ nodeId: 'node-a', model: MODEL });
    expect(fake.requests.at(-1)).toMatchObject({
      path: '/api/generate',
      model: MODEL,
      messages: [{ role: 'user', content: '' }],
      options: { num_ctx: 4096 },
    });
  });

  it('nodeWarmup of a model the node lacks fails ModelNotFound', async () => {
    const failure = await failureOf(call(envWith(), node().nodeWarmup, 'absent:1b'));
    expect(failure.type).toBe(ErrorType.ModelNotFound);
  });
});
