/**
 * pino logger factory. Every component takes an optional `logger` (any pino
 * logger) and otherwise makes one here, named after the component. Level from
 * `INFERQ_LOG_LEVEL` (or `LOG_LEVEL`), default `info`.
 */
import { pino, type Logger } from 'pino';
import { ConfigError } from './errors.js';

export type { Logger } from 'pino';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function createLogger(name: string, parent?: Logger): Logger {
  if (parent) return parent.child({ component: name });
  const variable = process.env.INFERQ_LOG_LEVEL !== undefined ? 'INFERQ_LOG_LEVEL' : 'LOG_LEVEL';
  const level = (process.env.INFERQ_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info').trim().toLowerCase();
  // pino throws a bare Error on an unknown level; say which variable and what it accepts.
  if (!LEVELS.includes(level)) throw new ConfigError('logger', [{ field: variable, message: `must be one of ${LEVELS.join(', ')}, got '${level}'` }]);
  return pino({ name: `inferq:${name}`, level }, pino.destination(2));
}

/**
 * A log call that writes at most once per `intervalMs` for each message, with
 * the number of calls it skipped: for errors that repeat on every retry (a
 * connection that keeps failing), so that a broken dependency costs a line
 * every few seconds, not thousands.
 */
export function throttledLog(logger: Logger, level: 'error' | 'warn', intervalMs = 5000): (obj: Record<string, unknown>, msg: string) => void {
  const last = new Map<string, { at: number; skipped: number }>();
  return (obj, msg) => {
    const now = Date.now();
    const seen = last.get(msg);
    if (seen && now - seen.at < intervalMs) {
      seen.skipped++;
      return;
    }
    logger[level]({ ...obj, ...(seen?.skipped ? { skippedSinceLast: seen.skipped } : {}) }, msg);
    last.set(msg, { at: now, skipped: 0 });
  };
}
