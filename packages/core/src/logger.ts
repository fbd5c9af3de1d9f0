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
