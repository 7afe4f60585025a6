/**
 * A scripted Ollama HTTP server that streams a reply piece by piece, slowly, and records whether the client
 * closed the stream before its end: for tests of what must abort a generation (a loop that is cut, a cancel).
 * Speaks the real wire format (/api/tags, /api/ps, /api/version, NDJSON /api/chat and /api/generate), so the
 * real `ollama` client and the activity code run unchanged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StreamReply {
  /** The pieces streamed, one NDJSON chunk each (one "token"); may be long, the client may stop reading. */
  pieces: Iterable<string>;
  /** Pause before each piece (default 5 ms). */
  delayMs?: number;
  /** Ollama's `done_reason` on the final chunk (default 'stop'). */
  doneReason?: string;
  /** Answer with this HTTP error instead of a stream (e.g. 500 "model requires more system memory"). */
  fail?: { status: number; error: string };
}

export interface StreamedRequest {
  path: string;
  model: string;
  options?: Record<string, unknown>;
  format?: unknown;
  /** The request body as sent (prompt, messages, ...). */
  body: Record<string, unknown>;
  /** Pieces written before the stream ended or was closed. */
  sent: number;
  /** True once the final chunk was written. */
  finished: boolean;
  /** True when the client closed the connection before the final chunk. */
  aborted: boolean;
  /** Resolves when the response ended either way. */
  ended: Promise<void>;
}

export interface StreamingOllama {
  url: string;
  requests: StreamedRequest[];
  setReply(reply: (req: StreamedRequest) => StreamReply): void;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `text` repeated forever: a model stuck in a loop. */
export function* forever(...pieces: string[]): Generator<string> {
  for (;;) yield* pieces;
}

export async function startStreamingOllama(opts: {
  models: string[];
  reply: (req: StreamedRequest) => StreamReply;
}): Promise<StreamingOllama> {
  let reply = opts.reply;
  const requests: StreamedRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const json = (status: number, obj: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const url = req.url ?? '/';
      if (url === '/api/version') return json(200, { version: '0.0.0-streaming-fake' });
      if (url === '/api/tags') {
        return json(200, {
          models: opts.models.map((name) => ({ name, model: name, size: 1, digest: name, details: {} })),
        });
      }
      if (url === '/api/ps') return json(200, { models: [] });
      if (url !== '/api/chat' && url !== '/api/generate') return json(404, { error: 'not found' });
      const parsed = body ? (JSON.parse(body) as Record<string, unknown>) : {};
      const model = String(parsed.model ?? '');
      if (!opts.models.includes(model)) return json(404, { error: `model "${model}" not found` });
      let end: () => void = () => undefined;
      const record: StreamedRequest = {
        path: url,
        model,
        options: parsed.options as Record<string, unknown> | undefined,
        format: parsed.format,
        body: parsed,
        sent: 0,
        finished: false,
        aborted: false,
        ended: new Promise<void>((r) => (end = r)),
      };
      requests.push(record);
      res.on('close', () => {
        if (!record.finished) record.aborted = true;
        end();
      });
      const script = reply(record);
      if (script.fail) {
        record.finished = true;
        return json(script.fail.status, { error: script.fail.error });
      }
      const created_at = new Date().toISOString();
      const piece = (content: string, done: boolean) =>
        JSON.stringify(
          url === '/api/chat'
            ? { model, created_at, message: { role: 'assistant', content }, done }
            : { model, created_at, response: content, done },
        ) + '\n';
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      void (async () => {
        for (const text of script.pieces) {
          await sleep(script.delayMs ?? 5);
          if (record.aborted || res.destroyed) return;
          res.write(piece(text, false));
          record.sent++;
        }
        const final = JSON.parse(piece('', true)) as Record<string, unknown>;
        record.finished = true;
        res.end(
          JSON.stringify({
            ...final,
            done_reason: script.doneReason ?? 'stop',
            total_duration: 2_000_000,
            load_duration: 0,
            prompt_eval_count: 5,
            prompt_eval_duration: 1_000_000,
            eval_count: record.sent,
            eval_duration: 1_000_000,
          }) + '\n',
        );
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setReply: (r) => (reply = r),
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
