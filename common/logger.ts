/** pino logger for Node processes (workers, API, scripts). Not for workflow code. */
import pino from 'pino';
import { trace, isSpanContextValid } from '@opentelemetry/api';
import type { Config } from './config';

export type Logger = pino.Logger;

/** Query parameters that carry a secret when a client puts its key in the URL (`?api_key=…`, `&token=…`). */
const SECRET_PARAMS = [
  'api_key',
  'apikey',
  'api-key',
  'key',
  'access_token',
  'token',
  'secret',
  'password',
  'signature',
  'sig',
];

/** Secrets that request logs (pino-http logs every request's headers and query) must never carry. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-signature"]',
  'req.headers["x-api-key"]',
  'req.headers["x-operator-key"]',
  'req.headers["proxy-authorization"]',
  ...SECRET_PARAMS.map((k) => `req.query["${k}"]`),
  'res.headers["set-cookie"]',
];

/**
 * The active span's ids on every line logged inside a traced request or activity, so a log line leads to its trace
 * (lib/telemetry/tracing.ts). Without tracing (or outside a span) nothing is added.
 */
export function traceIds(): { trace_id?: string; span_id?: string } {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

/** Secret query values anywhere in a logged line (req.url, an error's URL). */
const SECRET_QUERY = new RegExp(`([?&](?:${SECRET_PARAMS.join('|')})=)[^&#"\\s\\\\]*`, 'gi');

/** A log line with secret query values replaced (a client that puts its key in the URL must not leak it to logs). */
export function redactQuerySecrets(line: string): string {
  return line.replace(SECRET_QUERY, '$1[redacted]');
}

export function createLogger(
  name: string,
  config?: Pick<Config, 'LOG_LEVEL'>,
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      name,
      level: config?.LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info',
      base: { name },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      // URLs are logged whole (req.url, errors): secrets in their query are cut from the written line.
      hooks: { streamWrite: redactQuerySecrets },
      mixin: traceIds,
    },
    destination,
  );
}
