/**
 * The error middleware's answers for a dependency that is down (503, never 500) and for a wrong method on a known
 * path (405 with the methods the route documents).
 */
import { methodsOf, toHttpError } from '../../api/middleware/errors';
import '../../api/app'; // registers every route's documentation

describe('a dependency that does not answer → 503', () => {
  it('an AWS SDK error without an HTTP status (no response from S3/DynamoDB) → 503 storage_unavailable', () => {
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4566'), {
      code: 'ECONNREFUSED',
      $metadata: { attempts: 4, totalRetryDelay: 120 },
    });
    const http = toHttpError(err);
    expect([http.status, http.code, http.headers]).toEqual([503, 'storage_unavailable', { 'Retry-After': '5' }]);
  });

  it('an AWS SDK error with an HTTP status is the service answering: not a 503', () => {
    const err = Object.assign(new Error('ValidationException'), { $metadata: { httpStatusCode: 400 } });
    expect(toHttpError(err).status).toBe(500);
  });

  it('another network error, also in a cause → 503 dependency_unavailable', () => {
    const cause = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const http = toHttpError(new Error('fetch failed', { cause }));
    expect([http.status, http.code]).toEqual([503, 'dependency_unavailable']);
  });
});

describe('methodsOf', () => {
  it('the documented methods of the route a path matches; none for an unknown path', () => {
    expect(methodsOf('/designs/design-1')).toEqual(['GET', 'HEAD']);
    expect(methodsOf('/designs/design-1/answers')).toEqual(['POST']);
    expect(methodsOf('/designs/design-1/files/main.tf')).toEqual(['GET', 'HEAD']);
    expect(methodsOf('/no/such/route')).toEqual([]);
  });
});
