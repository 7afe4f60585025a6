/**
 * Riding out a storage outage inside one activity. Why: the executor's container run is one activity; when S3 is
 * unreachable while it collects a finished job's outputs, failing the activity makes Temporal run the user's script
 * again (its LLM calls again, billed again), and CONTAINER_RUN's three attempts are used up within seconds. So the
 * executor retries its own S3 reads and writes while S3 is unreachable (heartbeating, cancellable), for a bounded
 * time, and fails the activity only past it.
 */

/** Network errors that say the service did not answer (Node, undici and the AWS SDK's own). */
const DOWN_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Whether `err` (from the AWS SDK) means S3/DynamoDB is unreachable or failing for now: no response at all (the SDK's
 * error carries `$metadata` without a status), a 5xx or throttling answer, or a network error in its cause chain.
 * A 4xx (no such key, access denied, validation) is an answer: not retried.
 */
export function isStorageUnavailable(err: unknown): boolean {
  const meta = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  if (meta && typeof meta === 'object') {
    const status = meta.httpStatusCode;
    if (status === undefined || status >= 500 || status === 429) return true;
  }
  let cur: unknown = err;
  for (let depth = 0; cur && typeof cur === 'object' && depth < 5; depth++) {
    const e = cur as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === 'string' && DOWN_CODES.has(e.code)) return true;
    if (e.name === 'TimeoutError' || e.name === 'ThrottlingException' || e.name === 'SlowDown') return true;
    cur = e.cause;
  }
  return false;
}

export interface StorageRetryOptions {
  /** Give up (rethrow the last error) once this long has passed since the first failure. Default 2 minutes. */
  maxMs?: number;
  /** First wait; doubled after each failure up to `maxDelayMs`. Defaults 250 ms and 5 s. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Stops waiting (rethrows the last error) when aborted, e.g. the activity's cancellation signal. */
  signal?: AbortSignal;
  /** Called before each wait, e.g. to heartbeat. */
  onRetry?: (info: { retry: number; delayMs: number; error: unknown }) => void;
}

/** Runs `op`; while it fails because storage is unreachable, waits and runs it again, for at most `maxMs`. */
export async function retryStorage<T>(op: () => Promise<T>, opts: StorageRetryOptions = {}): Promise<T> {
  const maxMs = opts.maxMs ?? 120_000;
  const maxDelayMs = opts.maxDelayMs ?? 5_000;
  let delayMs = opts.initialDelayMs ?? 250;
  let since: number | undefined;
  for (let retry = 1; ; retry++) {
    try {
      return await op();
    } catch (err) {
      if (!isStorageUnavailable(err) || opts.signal?.aborted) throw err;
      since ??= Date.now();
      if (Date.now() - since + delayMs > maxMs) throw err;
      opts.onRetry?.({ retry, delayMs, error: err });
      const aborted = await wait(delayMs, opts.signal);
      if (aborted) throw err;
      delayMs = Math.min(delayMs * 2, maxDelayMs);
    }
  }
}

/** Waits `ms`; resolves true when `signal` aborted first. */
function wait(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(true);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
