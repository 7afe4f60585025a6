/** pino logger for Node processes (workers, API, scripts). Not for workflow code. */
import pino from 'pino';
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
    },
    destination,
  );
}
