/**
 * The streams of `inferq-worker`: stdout carries its protocol lines only
 * (`METRICS <url>`, then `READY <worker id>`), which supervisors, tests and
 * the bench parse line by line; everything else goes to stderr as pino JSON,
 * one record per line.
 *
 * The CLI's own logs already go to stderr (createLogger). What did not: a
 * model module (or a library it loads) printing with `console.log` wrote
 * plain lines onto stdout between the protocol lines, and `console.warn` from
 * BullMQ or a model wrote plain lines into the JSON on stderr. So, once the
 * CLI has parsed its flags, `console.*` becomes the logger's: each call one
 * record at the matching level with `source: "console"`, its text formatted
 * as console would (util.format). Not covered: code writing to
 * `process.stdout` directly.
 */
import { format } from 'node:util';
import type { Logger } from '@inferq/core';

type Level = 'debug' | 'info' | 'warn' | 'error';

const ROUTES: ReadonlyArray<[keyof Console, Level]> = [
  ['log', 'info'],
  ['info', 'info'],
  ['debug', 'debug'],
  ['trace', 'debug'],
  ['warn', 'warn'],
  ['error', 'error'],
];

/** Sends console output of this process to `logger` (stderr) instead of stdout. */
export function routeConsoleToLogger(logger: Logger): void {
  const log = logger.child({ source: 'console' });
  for (const [method, level] of ROUTES) {
    (console as unknown as Record<string, (...args: unknown[]) => void>)[method] = (...args: unknown[]) => log[level](format(...args));
  }
}
