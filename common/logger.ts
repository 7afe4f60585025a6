/** pino logger for Node processes (workers, API, scripts). Not for workflow code. */
import pino from 'pino';
import { trace, isSpanContextValid } from '@opentelemetry/api';
import type { Config } from './config';

export type Logger = pino.Logger;

/** Secrets that request logs (pino-http logs every request's headers) must never carry. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-signature"]',
  'req.headers["x-api-key"]',
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
      mixin: traceIds,
    },
    destination,
  );
}
