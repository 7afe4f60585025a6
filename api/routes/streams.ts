/**
 * `POST /internal/streams/:id`: where an llm activity pushes a streamed completion's tokens (lib/stream/sink.ts),
 * NDJSON lines `{"t": text}` … then `{"end": {...}}` or `{"error": {...}}`. Authenticated by the stream's own
 * token (not an API key), mounted before the JSON parser. A stream whose client is gone answers 410, which
 * makes the activity stop the generation; a second attempt after text was already delivered answers 409
 * (the client cannot take back what it was sent).
 */
import { Router } from 'express';
import type { StreamEnd, StreamHub } from '../../lib/stream/hub';
import { registerRoute } from '../openapi';

registerRoute({
  method: 'post',
  path: '/internal/streams/:id',
  summary: 'Where llm workers push a streamed completion’s tokens (NDJSON; the stream’s own Bearer token)',
  tag: 'internal',
  public: true,
  responses: {
    200: 'The stream ended',
    404: 'No such stream, or a wrong token',
    409: 'The stream already delivered text (a retry cannot continue it)',
    410: 'Nobody reads the stream any more: stop generating',
  },
});

const MAX_LINE = 1_048_576;

export function streamsRouter(hub: StreamHub): Router {
  const router = Router();
  router.post('/internal/streams/:id', (req, res) => {
    const token = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    const entry = hub.authorize(String(req.params.id), token);
    if (!entry) {
      res.status(404).json({ error: { code: 'not_found', message: 'No such stream, or a wrong token' } });
      return;
    }
    if (entry.abandoned || entry.end || entry.error) {
      res.status(410).json({ error: { code: 'gone', message: 'Nobody reads this stream any more' } });
      return;
    }
    if (entry.producing || entry.text.length > 0) {
      res.status(409).json({ error: { code: 'conflict', message: 'This stream already delivered text' } });
      return;
    }
    entry.producing = true;
    let buf = '';
    let ended = false;
    const stop = (status: number, code: string, message: string) => {
      if (res.headersSent) return;
      res.status(status).json({ error: { code, message } });
      req.destroy();
    };
    entry.onAbandon = () => stop(410, 'gone', 'The client went away');
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) return stop(413, 'too_large', 'A stream line is too long');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        let msg: { t?: unknown; end?: StreamEnd; error?: { code?: string; message?: string } };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return stop(400, 'invalid_json', 'A stream line is not JSON');
        }
        if (typeof msg.t === 'string') hub.append(entry, msg.t);
        else if (msg.end) {
          ended = true;
          hub.finish(entry, msg.end);
        } else if (msg.error) {
          ended = true;
          hub.fail(entry, msg.error.code ?? 'error', msg.error.message ?? 'The generation failed');
        }
      }
    });
    req.on('end', () => {
      entry.producing = false;
      entry.onAbandon = undefined;
      if (!res.headersSent) res.status(200).json({ ok: true, ended });
    });
    req.on('close', () => {
      entry.producing = false;
      entry.onAbandon = undefined;
    });
  });
  return router;
}
