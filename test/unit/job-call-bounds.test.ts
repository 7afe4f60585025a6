/** The pure parts of a job's call bounds (workflows/job-call-bounds.ts): sizes, prompt estimates, produced tokens. */
import { ActivityFailure, ApplicationFailure, CancelledFailure, TimeoutFailure } from '@temporalio/common';
import {
  producedTokens,
  promptTokenEstimate,
  requestBytes,
  utf8Bytes,
  MAX_CALL_REQUEST_BYTES,
} from '../../workflows/job-call-bounds';

const activityFailure = (cause: Error) =>
  new ActivityFailure('activity failed', 'llmGenerate', '1', 'MAXIMUM_ATTEMPTS_REACHED', 'worker', cause);

it('counts UTF-8 bytes like Buffer does, surrogate pairs included', () => {
  for (const s of ['', 'abc', 'é', '€', '😀 ok', 'a'.repeat(1000) + '日本語']) {
    expect(utf8Bytes(s)).toBe(Buffer.byteLength(s, 'utf8'));
  }
});

it('sizes a request by its JSON and estimates its prompt at ~4 bytes a token', () => {
  const req = { kind: 'chat' as const, messages: [{ role: 'user' as const, content: 'x'.repeat(4000) }] };
  expect(requestBytes(req)).toBe(Buffer.byteLength(JSON.stringify(req)));
  expect(promptTokenEstimate(req)).toBe(1000);
  expect(promptTokenEstimate({ kind: 'generate', prompt: 'abcd', system: 'ef' })).toBe(2);
  expect(requestBytes({ kind: 'generate', prompt: 'y'.repeat(MAX_CALL_REQUEST_BYTES) })).toBeGreaterThan(
    MAX_CALL_REQUEST_BYTES,
  );
});

it('reads the tokens a failed, timed-out or cancelled call produced from what the activity reported', () => {
  const progress = { chunks: 42, chars: 200 };
  expect(
    producedTokens(activityFailure(ApplicationFailure.create({ type: 'InferenceTimeout', details: [progress] }))),
  ).toBe(42);
  expect(producedTokens(activityFailure(new CancelledFailure('cancelled', [progress])))).toBe(42);
  expect(producedTokens(activityFailure(new TimeoutFailure('heartbeat', progress, 'HEARTBEAT')))).toBe(42);
  // Nothing reported (or nonsense): nothing billed.
  expect(producedTokens(activityFailure(ApplicationFailure.create({ type: 'OllamaError' })))).toBe(0);
  expect(producedTokens(activityFailure(ApplicationFailure.create({ details: [{ chunks: -1 }] })))).toBe(0);
  expect(producedTokens(new Error('plain'))).toBe(0);
});
