import { pino, type DestinationStream, type Logger } from 'pino';
import { withoutUrlCredentials } from './config.js';

export type { Logger };

/**
 * An error as the log shows it: pino's own serializer, less what carries a request's secrets. ioredis
 * puts `command: { name, args }` on every reply error, and a script's ARGV holds password hashes
 * (password.lua), card serials and QR codes (authorize.lua): only the command's name and how many
 * arguments it had are kept. Node's URL errors carry the `input`, which may be a URL with a password.
 */
function errorForLog(err: unknown): unknown {
  const shown = pino.stdSerializers.err(err as Error) as unknown;
  if (typeof shown !== 'object' || shown === null) return shown;
  const record = shown as Record<string, unknown>;
  const command = record['command'];
  if (typeof command === 'object' && command !== null) {
    const { name, args } = command as { name?: unknown; args?: unknown };
    record['command'] = { name, args: Array.isArray(args) ? `(${args.length} arguments not logged)` : undefined };
  }
  if (typeof record['input'] === 'string') record['input'] = withoutUrlCredentials(record['input']);
  return record;
}

/** Structured JSON logs on stdout (or `destination`); the hot path logs only at debug level. */
export function createLogger(level: string, name = 'cardswitch', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: errorForLog },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
