/**
 * pino logger factory. Every component takes an optional `logger` (any pino
 * logger) and otherwise makes one here, named after the component. Level from
 * `INFERQ_LOG_LEVEL` (or `LOG_LEVEL`), default `info`.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(name: string, parent?: Logger): Logger {
  if (parent) return parent.child({ component: name });
  const level = process.env.INFERQ_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info';
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
