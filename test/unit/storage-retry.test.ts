/**
 * lib/storage/retry.ts on a fake clock: which AWS SDK errors mean "storage unreachable", and how retryStorage waits
 * for it (bounded, abortable) while anything else fails at once.
 */
import { NoSuchKey } from '@aws-sdk/client-s3';
import { isStorageUnavailable, retryStorage } from '../../lib/storage/retry';

/** What the AWS SDK throws when nothing answered: its error with `$metadata` and no status. */
const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4566'), { code: 'ECONNREFUSED', $metadata: { attempts: 3 } });
const answered = (status: number, name = 'Error') =>
  Object.assign(new Error(`status ${status}`), { name, $metadata: { httpStatusCode: status } });

beforeEach(() => jest.useFakeTimers({ now: 0 }));
afterEach(() => jest.useRealTimers());

describe('isStorageUnavailable', () => {
  it('no answer, a 5xx, throttling or a network error in the cause chain: unavailable; a 4xx answer: not', () => {
    expect(isStorageUnavailable(refused())).toBe(true);
    expect(isStorageUnavailable(answered(503, 'SlowDown'))).toBe(true);
    expect(isStorageUnavailable(answered(500))).toBe(true);
    expect(isStorageUnavailable(answered(429))).toBe(true);
    expect(
      isStorageUnavailable(new Error('x', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) })),
    ).toBe(true);
    expect(isStorageUnavailable(answered(404))).toBe(false);
    expect(isStorageUnavailable(answered(403, 'AccessDenied'))).toBe(false);
    expect(isStorageUnavailable(new NoSuchKey({ message: 'no such key', $metadata: { httpStatusCode: 404 } }))).toBe(
      false,
    );
    expect(isStorageUnavailable(new Error('plain'))).toBe(false);
    expect(isStorageUnavailable(undefined)).toBe(false);
  });
});

describe('retryStorage', () => {
  it('waits while storage is down (250 ms doubling to 5 s), telling onRetry each time, and returns once it answers', async () => {
    let calls = 0;
    const retries: number[] = [];
    const done = retryStorage(
      async () => {
        calls++;
        if (Date.now() < 10_000) throw refused();
        return 'stored';
      },
      { onRetry: ({ delayMs }) => retries.push(delayMs) },
    );
    await jest.advanceTimersByTimeAsync(15_000);
    await expect(done).resolves.toBe('stored');
    expect(retries).toEqual([250, 500, 1000, 2000, 4000, 5000]);
    expect(calls).toBe(7);
  });

  it('an answer that is an error (a 4xx) is thrown at once', async () => {
    let calls = 0;
    const err = answered(403, 'AccessDenied');
    await expect(
      retryStorage(async () => {
        calls++;
        throw err;
      }),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('gives up with the last error past maxMs, and at once when the signal aborts', async () => {
    let calls = 0;
    const bounded = retryStorage(
      async () => {
        calls++;
        throw refused();
      },
      { maxMs: 3_000 },
    ).catch((e: unknown) => e);
    await jest.advanceTimersByTimeAsync(10_000);
    expect(await bounded).toMatchObject({ code: 'ECONNREFUSED' });
    // Waits of 250 + 500 + 1000 ms fit in 3 s; the next (2 s) would not.
    expect(calls).toBe(4);

    const ac = new AbortController();
    const cancelled = retryStorage(
      async () => {
        throw refused();
      },
      { signal: ac.signal },
    ).catch((e: unknown) => e);
    await jest.advanceTimersByTimeAsync(100);
    ac.abort();
    await jest.advanceTimersByTimeAsync(0);
    expect(await cancelled).toMatchObject({ code: 'ECONNREFUSED' });
  });
});
