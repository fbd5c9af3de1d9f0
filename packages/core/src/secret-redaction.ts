/**
 * Keeps Redis credentials out of every log line, error message and CLI
 * output. Three places carry them:
 *
 *   - URLs (`redis://user:password@host`), in options, messages and stacks.
 *     The password is masked whole, up to the LAST `@` of the URL: a raw `@`
 *     (or `/`, `?`, `#`) in a password is legal to type and common in
 *     generated passwords, and masking up to the first `@` would print the
 *     rest of it. Any scheme is matched, so a typo (`Redis://`, `redis:/`)
 *     is masked as well as a good URL.
 *   - ioredis errors: a refused AUTH or HELLO carries the command it sent,
 *     `command: { name: 'auth', args: [user, password] }`, and a log line
 *     of the error would print it; so does the error a wrong password and a
 *     disabled ACL user (whose password is RIGHT) cause alike.
 *   - connection option objects: `password`, `sentinelPassword`, TLS `key`,
 *     `pfx` and `passphrase`.
 *
 * Everything here copies; nothing mutates the value it was given (an error
 * may still be in ioredis' hands, an options object in the caller's).
 */

/** What a secret is replaced by. */
export const REDACTED = '***';

/**
 * `scheme://userinfo@` anywhere in a text, the userinfo reaching to the last
 * `@` before whitespace (or before `,scheme:/`, the next URL of a list): a
 * password may hold any other character. The scheme is any word (a typo
 * such as `Redis://` or `redis:/` too).
 */
const URL_WITH_USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/?)((?:(?!,[A-Za-z][A-Za-z0-9+.-]*:\/)\S)*)@/g;

/** The text with the password of every URL in it replaced by `***`; the user name stays (it is no secret). */
export function redactUrlsIn(text: string): string {
  if (!text.includes('@')) return text;
  return text.replace(URL_WITH_USERINFO, (_m, scheme: string, userinfo: string) => `${scheme}${maskUserinfo(userinfo)}@`);
}

/**
 * `user:password` -> `user:***`, `:password` -> `:***`; a user name alone
 * stays. A "user" holding `/` is a path (`file:///x/pkg@1.0/y.js:3`, as in
 * stack traces), not userinfo.
 */
function maskUserinfo(userinfo: string): string {
  const colon = userinfo.indexOf(':');
  if (colon === -1 || userinfo.slice(0, colon).includes('/')) return userinfo;
  return `${userinfo.slice(0, colon)}:${REDACTED}`;
}

/** A Redis URL with its password masked whole (raw `@` and all), for messages and logs. */
export function redactRedisUrl(url: string): string {
  return redactUrlsIn(url);
}

/** Option keys whose value is a secret wherever they appear. */
const SECRET_KEYS = /^(password|sentinelpassword|passphrase|pfx|secret|token|apikey|authorization)$/i;
/** Keys that are secret inside a `tls` object only (elsewhere `key` is a cache or Redis key). */
const TLS_SECRET_KEYS = /^(key|pfx|passphrase)$/i;

/** Redis commands whose arguments carry a password, and which of them. */
function redactCommandArgs(name: string, args: readonly unknown[]): unknown[] {
  const n = name.toLowerCase();
  // AUTH <password> | AUTH <user> <password>
  if (n === 'auth') return args.map((a, i) => (args.length === 1 || i >= 1 ? REDACTED : a));
  // HELLO <protover> [AUTH <user> <password>] [SETNAME <name>]
  if (n === 'hello') {
    const at = args.findIndex((a) => typeof a === 'string' && a.toLowerCase() === 'auth');
    return args.map((a, i) => (at !== -1 && i === at + 2 ? REDACTED : a));
  }
  // MIGRATE ... AUTH <password> | AUTH2 <user> <password>
  if (n === 'migrate') {
    const out = [...args];
    out.forEach((a, i) => {
      const word = typeof a === 'string' ? a.toLowerCase() : '';
      if (word === 'auth' && i + 1 < out.length) out[i + 1] = REDACTED;
      if (word === 'auth2' && i + 2 < out.length) out[i + 2] = REDACTED;
    });
    return out;
  }
  // ACL SETUSER <user> >password #hash ..., CONFIG SET requirepass|masterauth <value>
  if (n === 'acl' || n === 'config') return args.map((a, i) => (i >= 2 ? REDACTED : a));
  return [...args];
}

/** Nesting followed at most: log objects are shallow; an error's cause chain is a few levels. */
const MAX_DEPTH = 10;

/**
 * A copy of `value` with every secret replaced: URLs in strings, AUTH/HELLO
 * arguments of an ioredis `command`, password-like option keys. Errors are
 * copied as errors (same prototype, so loggers still see their type),
 * their `cause` chain included. Cycles and depth are bounded.
 */
export function redactSecrets<T>(value: T): T {
  return copy(value, 0, new WeakMap(), false) as T;
}

/** `redactSecrets` for one error; what a CLI or a thrown wrapper should hold instead of a raw connection error. */
export function redactError<E>(err: E): E {
  return redactSecrets(err);
}

function copy(value: unknown, depth: number, seen: WeakMap<object, unknown>, inTls: boolean): unknown {
  if (typeof value === 'string') return redactUrlsIn(value);
  if (typeof value !== 'object' || value === null) return value;
  if (depth > MAX_DEPTH) return '[depth]';
  const known = seen.get(value);
  if (known !== undefined) return known;
  // Bytes and other binary holders: never secrets we can recognise, and never worth walking.
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return inTls ? REDACTED : value;
  if (value instanceof Date || value instanceof RegExp) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const v of value) out.push(copy(v, depth + 1, seen, false));
    return out;
  }
  if (value instanceof Error) return copyError(value, depth, seen);
  // Plain objects and class instances alike become plain objects: a log line only shows own enumerable fields.
  const out: Record<string, unknown> = {};
  seen.set(value, out);
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) out[key] = copyField(record, key, depth, seen, inTls);
  return out;
}

function copyField(record: Record<string, unknown>, key: string, depth: number, seen: WeakMap<object, unknown>, inTls: boolean): unknown {
  const v = record[key];
  if (v === undefined || v === null || v === '') return v;
  if (SECRET_KEYS.test(key) || (inTls && TLS_SECRET_KEYS.test(key))) return REDACTED;
  if (key === 'command' && isCommand(v)) return { ...(copy(v, depth + 1, seen, false) as object), args: redactCommandArgs(v.name, v.args).map((a) => copy(a, depth + 2, seen, false)) };
  return copy(v, depth + 1, seen, key.toLowerCase() === 'tls');
}

function isCommand(v: unknown): v is { name: string; args: unknown[] } {
  return typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string' && Array.isArray((v as { args?: unknown }).args);
}

function copyError(err: Error, depth: number, seen: WeakMap<object, unknown>): Error {
  const out = Object.create(Object.getPrototypeOf(err) as object) as Error & Record<string, unknown>;
  seen.set(err, out);
  // message, stack and name are own but not enumerable on most errors; copy them by name.
  const define = (key: string, v: unknown) => Object.defineProperty(out, key, { value: v, writable: true, configurable: true, enumerable: false });
  define('message', redactUrlsIn(err.message));
  if (typeof err.stack === 'string') define('stack', redactUrlsIn(err.stack));
  if (Object.prototype.hasOwnProperty.call(err, 'name')) define('name', err.name);
  if ('cause' in err && err.cause !== undefined) define('cause', copy(err.cause, depth + 1, seen, false));
  // AggregateError (and ioredis' cluster errors built on it) keeps its errors in a non-enumerable field.
  const errors = (err as { errors?: unknown }).errors;
  if (Array.isArray(errors) && !Object.prototype.propertyIsEnumerable.call(err, 'errors')) define('errors', copy(errors, depth + 1, seen, false));
  const record = err as unknown as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key === 'cause') continue;
    out[key] = copyField(record, key, depth, seen, false);
  }
  return out;
}
