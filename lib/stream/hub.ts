/**
 * The API side of a streamed generation. The API process that holds a client's connection opens a stream here
 * before it starts the workflow; the llm activity (on whichever node runs it) pushes the tokens to this process
 * over one HTTP request (lib/stream/sink.ts → `POST /internal/streams/:id`), and every reader of the stream —
 * the client, or the same client reconnecting with Last-Event-ID — gets them as they arrive.
 *
 * Offsets are characters of the generated text, so a reader can resume from any point, and a reader whose
 * stream is no longer here (another API process, or after a restart) can resume from the workflow's result.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { LlmUsage } from '../../contracts/llm';

/** How a streamed generation ended, as the activity reports it. */
export interface StreamEnd {
  model: string;
  nodeId: string;
  usage: LlmUsage;
  doneReason?: string;
}

export type StreamEvent =
  | { kind: 'text'; text: string; offset: number }
  | { kind: 'end'; end: StreamEnd; offset: number }
  | { kind: 'error'; message: string; code: string; offset: number };

export interface StreamEntry {
  readonly id: string;
  readonly token: string;
  /** Whose stream it is: only that tenant may resume it. */
  tenant?: string;
  /** Set by the push endpoint: ends the producer's request at once when the stream is abandoned. */
  onAbandon?: () => void;
  /** The text so far. */
  text: string;
  end?: StreamEnd;
  error?: { message: string; code: string };
  /** Set when nobody wants the rest: the activity's push is refused, so the generation stops. */
  abandoned: boolean;
  /** An activity attempt is pushing. */
  producing: boolean;
  readers: number;
  listeners: Set<(e: StreamEvent) => void>;
  expiresAt: number;
}

export interface StreamHubOptions {
  /** How long a finished stream stays for readers that resume. */
  keepMs?: number;
  /** A stream nobody produced into or read for this long is dropped. */
  idleMs?: number;
}

export class StreamHub {
  private readonly streams = new Map<string, StreamEntry>();
  private readonly keepMs: number;
  private readonly idleMs: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(opts: StreamHubOptions = {}) {
    this.keepMs = opts.keepMs ?? 5 * 60_000;
    this.idleMs = opts.idleMs ?? 15 * 60_000;
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref();
  }

  /** A new stream for a generation about to start; its token authenticates the activity's push. */
  open(id: string): StreamEntry {
    const entry: StreamEntry = {
      id,
      token: randomBytes(18).toString('base64url'),
      text: '',
      abandoned: false,
      producing: false,
      readers: 0,
      listeners: new Set(),
      expiresAt: Date.now() + this.idleMs,
    };
    this.streams.set(id, entry);
    return entry;
  }

  get(id: string): StreamEntry | undefined {
    return this.streams.get(id);
  }

  /** The entry when `token` is its token (constant-time); undefined otherwise. */
  authorize(id: string, token: string | undefined): StreamEntry | undefined {
    const entry = this.streams.get(id);
    if (!entry || !token) return undefined;
    const a = Buffer.from(entry.token);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b) ? entry : undefined;
  }

  append(entry: StreamEntry, text: string): void {
    if (!text) return;
    entry.text += text;
    this.emit(entry, { kind: 'text', text, offset: entry.text.length });
  }

  finish(entry: StreamEntry, end: StreamEnd): void {
    if (entry.end || entry.error) return;
    entry.end = end;
    entry.expiresAt = Date.now() + this.keepMs;
    this.emit(entry, { kind: 'end', end, offset: entry.text.length });
  }

  fail(entry: StreamEntry, code: string, message: string): void {
    if (entry.end || entry.error) return;
    entry.error = { code, message };
    entry.expiresAt = Date.now() + this.keepMs;
    this.emit(entry, { kind: 'error', code, message, offset: entry.text.length });
  }

  /**
   * Reads the stream from character `from`: what is already here first, then events as they come. Returns an
   * unsubscribe function. The listener sees exactly one `end` or `error`, last.
   */
  read(entry: StreamEntry, from: number, listener: (e: StreamEvent) => void): () => void {
    entry.readers++;
    const rest = entry.text.slice(Math.min(from, entry.text.length));
    if (rest) listener({ kind: 'text', text: rest, offset: entry.text.length });
    if (entry.end) listener({ kind: 'end', end: entry.end, offset: entry.text.length });
    else if (entry.error) listener({ kind: 'error', ...entry.error, offset: entry.text.length });
    else entry.listeners.add(listener);
    return () => {
      if (entry.listeners.delete(listener) || entry.readers > 0) entry.readers = Math.max(0, entry.readers - 1);
    };
  }

  /** Nobody reads any more: the producer's next push is refused, which stops the generation. */
  abandon(entry: StreamEntry): void {
    entry.abandoned = true;
    entry.onAbandon?.();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.streams.clear();
  }

  private emit(entry: StreamEntry, e: StreamEvent): void {
    for (const l of [...entry.listeners]) l(e);
    if (e.kind !== 'text') entry.listeners.clear();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, e] of this.streams) if (e.expiresAt < now && e.listeners.size === 0) this.streams.delete(id);
  }
}
