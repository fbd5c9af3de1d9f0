/**
 * pino logger factory. Every component takes an optional `logger` (any pino
 * logger) and otherwise makes one here, named after the component. Level from
 * `INFERQ_LOG_LEVEL` (or `LOG_LEVEL`), default `info`.
 *
 * Every logger made here redacts secrets (secret-redaction.ts): Redis
 * passwords in URLs, in the AUTH/HELLO arguments ioredis attaches to its
 * errors, in option objects. It does so with a `formatters.log` hook, which
 * sees the whole log object at every depth (serializers see top-level keys
 * by name only, and an error's `cause` or `details` nest), plus a `msg`
 * serializer for the message pino takes from a logged error. A user's own
 * logger gets the same hooks through a child: a child keeps the user's
 * destination, level, bindings and redact paths, and the hook calls the
 * user's own `formatters.log`, if any, after ours.
 */
import { pino, type Logger } from 'pino';
import { ConfigError } from './errors.js';
import { redactSecrets, redactUrlsIn } from './secret-redaction.js';

export type { Logger } from 'pino';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Marks our log hook, so that a child of a redacting logger is not wrapped twice. */
const REDACTING = Symbol.for('inferq.redactingLogHook');

type LogHook = ((obj: Record<string, unknown>) => Record<string, unknown>) & { [REDACTING]?: true };

function redactingHook(after?: LogHook): LogHook {
  const hook: LogHook = after ? (obj) => after(redactSecrets(obj)) : (obj) => redactSecrets(obj);
  hook[REDACTING] = true;
  return hook;
}

/** The `msg` pino takes from a logged error (`logger.error(err)`) skips `formatters.log`. */
const redactingSerializers = { msg: (m: unknown) => (typeof m === 'string' ? redactUrlsIn(m) : m) };

/** The `formatters.log` of a pino logger, read through pino's public symbols. */
function logHookOf(logger: Logger): LogHook | undefined {
  const formatters = (logger as unknown as Record<symbol, { log?: LogHook } | undefined>)[pino.symbols.formattersSym];
  return formatters?.log;
}

export function createLogger(name: string, parent?: Logger): Logger {
  if (parent) {
    const own = logHookOf(parent);
    if (own?.[REDACTING]) return parent.child({ component: name });
    return parent.child({ component: name }, { formatters: { log: redactingHook(own) as (obj: object) => object }, serializers: redactingSerializers });
  }
  const variable = process.env.INFERQ_LOG_LEVEL !== undefined ? 'INFERQ_LOG_LEVEL' : 'LOG_LEVEL';
  const level = (process.env.INFERQ_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info').trim().toLowerCase();
  // pino throws a bare Error on an unknown level; say which variable and what it accepts.
  if (!LEVELS.includes(level)) throw new ConfigError('logger', [{ field: variable, message: `must be one of ${LEVELS.join(', ')}, got '${level}'` }]);
  return pino({ name: `inferq:${name}`, level, formatters: { log: redactingHook() }, serializers: redactingSerializers }, pino.destination(2));
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
