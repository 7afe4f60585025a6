/** Request logs never carry API keys or webhook signatures. */
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger';

it('redacts the Authorization header, cookies and the webhook signature in request logs', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = createLogger('api', { LOG_LEVEL: 'info' }, sink);
  log.info(
    {
      req: {
        method: 'POST',
        headers: { authorization: 'Bearer dev-key', 'x-signature': 'sha256=abc', cookie: 'a=b', host: 'h' },
      },
    },
    'request completed',
  );
  const out = lines.join('');
  expect(out).not.toContain('dev-key');
  expect(out).not.toContain('sha256=abc');
  expect(JSON.parse(out).req.headers).toEqual({
    authorization: '[redacted]',
    'x-signature': '[redacted]',
    cookie: '[redacted]',
    host: 'h',
  });
});

it('redacts keys a client puts in the query string, in the parsed query and in the URL', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = createLogger('api', { LOG_LEVEL: 'info' }, sink);
  log.info(
    {
      req: {
        url: '/jobs?limit=5&api_key=k-123456&token=t-123456',
        query: { limit: '5', api_key: 'k-123456', token: 't-123456' },
        headers: { 'x-operator-key': 'op-123456', 'x-api-key': 'xk-123456' },
      },
      err: { message: 'GET http://node/x?access_token=at-123456 failed' },
    },
    'request completed',
  );
  const out = lines.join('');
  for (const secret of ['k-123456', 't-123456', 'op-123456', 'xk-123456', 'at-123456'])
    expect(out).not.toContain(secret);
  const req = JSON.parse(out).req;
  expect(req.url).toBe('/jobs?limit=5&api_key=[redacted]&token=[redacted]');
  expect(req.query).toEqual({ limit: '5', api_key: '[redacted]', token: '[redacted]' });
});
