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
