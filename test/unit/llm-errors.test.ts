import { ApplicationFailure } from '@temporalio/common';
import { toLlmFailure } from '../../activities/llm';
import { ErrorType } from '../../common/errors';

/** What the `ollama` client throws for a non-2xx answer. */
const responseError = (status: number, error: string) =>
  Object.assign(new Error(error), { name: 'ResponseError', status_code: status });
/** What Node's fetch throws when the socket fails. */
const fetchFailed = (code: string) =>
  new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) });

describe('toLlmFailure', () => {
  it.each([
    [
      '404 from Ollama',
      responseError(404, 'model "x:1b" not found, try pulling it first'),
      ErrorType.ModelNotFound,
      true,
    ],
    ['not-found text mid-stream', new Error("model 'x' not found"), ErrorType.ModelNotFound, true],
    ['connection refused', fetchFailed('ECONNREFUSED'), ErrorType.NodeUnavailable, false],
    ['connection reset', fetchFailed('ECONNRESET'), ErrorType.NodeUnavailable, false],
    ['undici socket error', fetchFailed('UND_ERR_SOCKET'), ErrorType.NodeUnavailable, false],
    ['stream cut by the node', new TypeError('terminated'), ErrorType.NodeUnavailable, false],
    [
      'server busy (503)',
      responseError(503, 'server busy, please try again.  maximum pending requests exceeded'),
      ErrorType.NodeUnavailable,
      false,
    ],
    [
      'AbortSignal.timeout',
      new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
      ErrorType.InferenceTimeout,
      false,
    ],
    ['undici headers timeout', fetchFailed('UND_ERR_HEADERS_TIMEOUT'), ErrorType.InferenceTimeout, false],
    [
      'model too large for RAM',
      responseError(500, 'model requires more system memory (5.6 GiB) than is available (1.2 GiB)'),
      ErrorType.OutOfMemory,
      false,
    ],
    [
      'CUDA out of memory',
      new Error('llama runner process has terminated: CUDA error: out of memory'),
      ErrorType.OutOfMemory,
      false,
    ],
    ['bad request', responseError(400, 'invalid JSON schema in format'), ErrorType.InvalidRequest, true],
  ])('%s → %s', (_label, err, type, nonRetryable) => {
    const failure = toLlmFailure(err, { model: 'x:1b', nodeId: 'node-7' });
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe(type);
    expect(failure.nonRetryable).toBe(nonRetryable);
    expect(failure.message).toContain('node-7');
    expect(failure.cause).toBe(err);
  });

  it('keeps anything else retryable under its own type', () => {
    const failure = toLlmFailure(responseError(500, 'llama runner crashed'));
    expect(failure.type).toBe('OllamaError');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('llama runner crashed');
  });

  it('passes an ApplicationFailure through unchanged', () => {
    const original = ApplicationFailure.create({
      type: ErrorType.LimitExceeded,
      nonRetryable: true,
      message: 'too many',
    });
    expect(toLlmFailure(original)).toBe(original);
  });

  it('handles non-Error throwables', () => {
    expect(toLlmFailure('connection refused').type).toBe(ErrorType.NodeUnavailable);
  });
});
