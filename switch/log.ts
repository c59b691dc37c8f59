import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; the hot path logs only at debug level. */
export function createLogger(level: string, name = 'cardswitch'): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
