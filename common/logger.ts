/** pino logger for Node processes (workers, API, scripts). Not for workflow code. */
import pino from 'pino';
import type { Config } from './config';

export type Logger = pino.Logger;

export function createLogger(name: string, config?: Pick<Config, 'LOG_LEVEL'>): Logger {
  return pino({ name, level: config?.LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info', base: { name } });
}
