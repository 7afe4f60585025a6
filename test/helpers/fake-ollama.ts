/**
 * A scripted Ollama HTTP server for tests that need exact replies. It speaks the real wire format
 * (/api/tags, /api/ps, /api/version, /api/chat, /api/generate with NDJSON streaming, /api/embed) so the real
 * `ollama` client and our activity code run unchanged. Token counts are derived from the text, like Ollama's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  path: '/api/chat' | '/api/generate';
  model: string;
  /** chat messages, or a single user message for generate */
  messages: { role: string; content: string }[];
  format?: unknown;
  options?: Record<string, unknown>;
}

/** Returns the reply text (or a promise of it). Throwing makes the server answer 500. */
export type FakeScript = (req: FakeRequest) => string | Promise<string>;

export interface FakeOllama {
  url: string;
  requests: FakeRequest[];
  setScript(script: FakeScript): void;
  close(): Promise<void>;
}

const words = (s: string) => Math.max(1, s.split(/\s+/).filter(Boolean).length);

export async function startFakeOllama(opts: {
  models: string[];
  script: FakeScript;
  delayMs?: number;
  /** A fixed port (e.g. to bring a "node" up late at an address a client already uses); default: any free one. */
  port?: number;
}): Promise<FakeOllama> {
  let script = opts.script;
  const requests: FakeRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      void (async () => {
        const json = (status: number, obj: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(obj));
        };
        const url = req.url ?? '/';
        if (url === '/api/version') return json(200, { version: '0.0.0-fake' });
        if (url === '/api/tags')
          return json(200, {
            models: opts.models.map((name) => ({ name, model: name, size: 1, digest: name, details: {} })),
          });
        if (url === '/api/ps') return json(200, { models: [] });
        const parsed = body ? (JSON.parse(body) as Record<string, unknown>) : {};
        const model = String(parsed.model ?? '');
        if (url === '/api/embed') {
          const input = Array.isArray(parsed.input) ? parsed.input : [parsed.input];
          return json(200, { model, embeddings: input.map(() => [0.1, 0.2, 0.3]), prompt_eval_count: input.length });
        }
        if (url !== '/api/chat' && url !== '/api/generate') return json(404, { error: 'not found' });
        if (!opts.models.includes(model))
          return json(404, { error: `model "${model}" not found, try pulling it first` });
        const messages =
          url === '/api/chat'
            ? (parsed.messages as { role: string; content: string }[])
            : [
                ...(parsed.system ? [{ role: 'system', content: String(parsed.system) }] : []),
                { role: 'user', content: String(parsed.prompt ?? '') },
              ];
        const fr: FakeRequest = { path: url, model, messages, format: parsed.format, options: parsed.options as never };
        requests.push(fr);
        let reply: string;
        try {
          reply = await script(fr);
        } catch (err) {
          return json(500, { error: String(err) });
        }
        if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        const promptTokens = messages.reduce((n, m) => n + words(m.content), 0);
        const done = {
          model,
          created_at: new Date().toISOString(),
          done: true,
          done_reason: 'stop',
          total_duration: 1_000_000,
          load_duration: 0,
          prompt_eval_count: promptTokens,
          prompt_eval_duration: 500_000,
          eval_count: words(reply),
          eval_duration: 500_000,
        };
        const piece = (content: string) =>
          url === '/api/chat'
            ? { model, created_at: done.created_at, message: { role: 'assistant', content }, done: false }
            : { model, created_at: done.created_at, response: content, done: false };
        if (parsed.stream === false) {
          return json(200, { ...piece(reply), ...done });
        }
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        const mid = Math.ceil(reply.length / 2);
        res.write(JSON.stringify(piece(reply.slice(0, mid))) + '\n');
        res.write(JSON.stringify(piece(reply.slice(mid))) + '\n');
        res.end(JSON.stringify({ ...piece(''), ...done }) + '\n');
      })();
    });
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setScript: (s) => (script = s),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
