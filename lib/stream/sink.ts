/**
 * The llm activity's side of a streamed generation: one HTTP request to the API process that holds the client's
 * connection (`POST <target.url>`, NDJSON lines, chunked), written as Ollama produces tokens. One request per
 * generation, not one per token, so a token costs a write on an open socket. When the API refuses the push or
 * the connection breaks (the client went away), `closed` aborts, and the activity stops the generation.
 */
import http from 'node:http';
import https from 'node:https';
import type { StreamTarget } from '../../contracts/llm';
import type { StreamEnd } from './hub';

export interface StreamSink {
  write(text: string): void;
  /** Sends the end and waits for the API to acknowledge it. */
  end(end: StreamEnd): Promise<void>;
  /** Reports a failure to readers (best effort) and closes. */
  fail(code: string, message: string): Promise<void>;
  /** Aborts when the API refused the stream or the connection broke; `reason` says why. */
  readonly closed: AbortSignal;
}

export function openStreamSink(target: StreamTarget): StreamSink {
  const url = new URL(target.url);
  const closer = new AbortController();
  const lib = url.protocol === 'https:' ? https : http;
  let settled = false;
  let ack: (() => void) | undefined;
  let nack: ((err: Error) => void) | undefined;
  const acked = new Promise<void>((resolve, reject) => {
    ack = resolve;
    nack = reject;
  });
  acked.catch(() => undefined);
  const close = (reason: string) => {
    if (!closer.signal.aborted) closer.abort(new Error(reason));
    nack?.(new Error(reason));
  };
  const req = lib.request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${target.token}` },
    // A stream lives as long as its generation; the activity's own timeout bounds it.
    timeout: 0,
  });
  req.setNoDelay(true);
  req.on('response', (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (body += c.length < 2000 ? c : ''));
    res.on('end', () => {
      if (res.statusCode === 200 && settled) ack?.();
      else close(`stream refused by the API (${res.statusCode}): ${body.slice(0, 200) || 'no reason given'}`);
    });
  });
  req.on('error', (err) => close(`stream connection failed: ${err.message}`));
  req.flushHeaders();

  const line = (obj: unknown) => {
    if (!closer.signal.aborted) req.write(JSON.stringify(obj) + '\n');
  };
  return {
    closed: closer.signal,
    write(text) {
      if (text) line({ t: text });
    },
    async end(end) {
      settled = true;
      line({ end });
      req.end();
      await acked;
    },
    async fail(code, message) {
      settled = true;
      line({ error: { code, message } });
      req.end();
      await acked.catch(() => undefined);
    },
  };
}
