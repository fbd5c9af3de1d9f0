/**
 * The start-up check of a client or worker: is Redis reachable, do the
 * credentials work, and does this Redis user have every command and key
 * inferq and BullMQ need? Each failure is one typed error that names its
 * cause, within a bounded time, instead of a hang, a retry loop that logs
 * thousands of lines a second, or a request that silently waits out its
 * timeout:
 *
 *   - not reachable within `timeoutMs`: INFERQ_REDIS_UNAVAILABLE, with
 *     `details.reason` refused / not-found / tls / timeout and the URL
 *     (password hidden);
 *   - credentials refused: INFERQ_REDIS_AUTH_FAILED;
 *   - a command or key pattern denied by ACL: INFERQ_REDIS_PERMISSION_DENIED,
 *     `details.missing` listing each one.
 *
 * Permissions are probed by running each needed command once, harmlessly,
 * on a probe key under the model's hash tag (so ACL key patterns are tested
 * too), in one pipeline. Blocking commands go inside MULTI/EXEC, where they
 * do not block: Redis checks a blocked client's timeout on its cron tick, so
 * a 1 ms block lasts up to 100 ms (hz 10), on every start. ACL rejects a
 * command when it is queued, with the same NOPERM error as outside a
 * transaction; a user denied MULTI runs the command unwrapped (and blocks
 * 1 ms), and the replies of MULTI and EXEC themselves are not looked at.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-connection.js';
import { ErrorCode, InferqError, RedisUnavailableError } from './errors.js';
import type { Logger } from './logger.js';
import { redactError, redactRedisUrl } from './secret-redaction.js';

export type RedisRole = 'client' | 'worker';

export interface RedisCheckOptions {
  /** Component, for messages: `InferenceClient`, `InferenceWorker`. */
  what: string;
  role: RedisRole;
  /** Where Redis is, for messages (any password is hidden). */
  target: string;
  /** Longest wait for a usable connection, in ms. */
  timeoutMs: number;
  /** A key under the model's hash tag; the probe writes it briefly and deletes it. */
  probeKey: string;
  logger?: Logger;
}

const PROBE_SCRIPT = 'return 1';
const PROBE_SHA = createHash('sha1').update(PROBE_SCRIPT).digest('hex');

type Probe = [command: string, ...args: Array<string | number>];

/** Probes sent inside MULTI/EXEC (see the header). */
const BLOCKING = new Set(['blmove', 'bzpopmin']);

/** What each role runs (BullMQ's queue and worker: scripts, INFO, BZPOPMIN; ours: the rest). */
function probes(role: RedisRole, key: string): Probe[] {
  const other = `${key}:2`;
  const list: Probe[] = [
    ['info', 'server'],
    ['time'],
    ['eval', PROBE_SCRIPT, 0],
    ['evalsha', PROBE_SHA, 0],
    ['set', key, '1', 'PX', 1000],
    ['pexpire', key, 1000],
    ['del', key],
    ['hincrby', key, 'probe', 0],
    ['hincrbyfloat', key, 'probe', 0],
    ['hgetall', key],
    ['hstrlen', key, 'probe'],
    ['del', key],
    ['incrby', key, 0],
    ['del', key],
    ['lrange', key, 0, 0],
  ];
  if (role === 'client') list.push(['blmove', key, other, 'LEFT', 'RIGHT', 0.001]);
  if (role === 'worker') list.push(['bzpopmin', key, 0.001], ['getbit', key, 0]);
  return list;
}


/** The reason behind a connection error, from its code or message. */
function classify(err: Error | undefined): { code: ErrorCode; reason: string } {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const message = err?.message ?? '';
  if (/WRONGPASS|NOAUTH|invalid username-password|AUTH failed/i.test(message)) return { code: ErrorCode.REDIS_AUTH_FAILED, reason: 'auth' };
  if (code === 'ECONNREFUSED') return { code: ErrorCode.REDIS_UNAVAILABLE, reason: 'refused' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { code: ErrorCode.REDIS_UNAVAILABLE, reason: 'not-found' };
  if (/CERT|SSL|TLS|self[- ]signed|certificate/i.test(code + ' ' + message)) return { code: ErrorCode.REDIS_UNAVAILABLE, reason: 'tls' };
  return { code: ErrorCode.REDIS_UNAVAILABLE, reason: 'timeout' };
}

/** Waits for the connection to be ready, at most `timeoutMs`; the last connection error says why not. */
function whenReady(redis: RedisClient, timeoutMs: number): Promise<Error | undefined> {
  if (redis.status === 'ready') return Promise.resolve(undefined);
  return new Promise((resolve) => {
    let last: Error | undefined;
    const onError = (err: Error) => {
      last = err;
      // Credentials and certificates do not fix themselves: no point waiting out the bound.
      const { reason } = classify(err);
      if (reason === 'auth' || reason === 'tls') finish(err);
    };
    const onReady = () => finish(undefined);
    const timer = setTimeout(() => finish(last ?? new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    function finish(result: Error | undefined) {
      clearTimeout(timer);
      redis.off('error', onError);
      redis.off('ready', onReady);
      resolve(result);
    }
    redis.on('error', onError);
    redis.once('ready', onReady);
  });
}

export async function checkRedis(redis: RedisClient, o: RedisCheckOptions): Promise<{ maxmemoryPolicy: string | undefined }> {
  const target = redactRedisUrl(o.target);
  const failure = await whenReady(redis, o.timeoutMs);
  if (failure) {
    const { code, reason } = classify(failure);
    const message =
      code === ErrorCode.REDIS_AUTH_FAILED
        ? `${o.what}: Redis at ${target} refused the credentials (${failure.message}). Check the password or ACL user in the URL or the 'redis' options.`
        : `${o.what}: Redis at ${target} is not usable (${reason}: ${failure.message}) after ${o.timeoutMs} ms.`;
    throw code === ErrorCode.REDIS_AUTH_FAILED
      ? new InferqError(code, message, { cause: redactError(failure), details: { target, reason } })
      : new RedisUnavailableError(message, { cause: redactError(failure), details: { target, reason } });
  }
  const list = probes(o.role, o.probeKey);
  const pipeline = redis.pipeline();
  /** Where the reply of each probe of `list` is among the pipeline's replies. */
  const at: number[] = [];
  for (const [command, ...args] of list) {
    const wrap = BLOCKING.has(command);
    if (wrap) pipeline.call('multi');
    at.push(pipeline.length);
    pipeline.call(command, ...args);
    if (wrap) pipeline.call('exec');
  }
  const memoryAt = pipeline.length;
  pipeline.call('info', 'memory');
  let replies: Array<[Error | null, unknown]>;
  try {
    replies = ((await pipeline.exec()) ?? []) as Array<[Error | null, unknown]>;
  } catch (err) {
    throw new RedisUnavailableError(`${o.what}: probing Redis at ${target} failed: ${(err as Error).message}`, { cause: redactError(err), details: { target } });
  }
  const missing = new Set<string>();
  let other: Error | undefined;
  list.forEach(([command], i) => {
    const err = replies[at[i] ?? -1]?.[0];
    if (!err) return;
    if (/NOPERM/.test(err.message)) missing.add(/key/i.test(err.message) ? `${command.toUpperCase()} on keys ${o.probeKey.replace(/:probe$/, ':*')}` : command.toUpperCase());
    else if (/NOAUTH|WRONGPASS/.test(err.message)) other = err;
    else if (!/NOSCRIPT/.test(err.message)) other ??= err;
  });
  if (missing.size > 0) {
    const list = [...missing];
    throw new InferqError(
      ErrorCode.REDIS_PERMISSION_DENIED,
      `${o.what}: the Redis user at ${target} lacks what inferq needs: ${list.join(', ')}. Grant it (see the README's Security section for a least-privilege ACL rule).`,
      { details: { target, missing: list } },
    );
  }
  if (other) {
    const { code } = classify(other);
    throw code === ErrorCode.REDIS_AUTH_FAILED
      ? new InferqError(code, `${o.what}: Redis at ${target} refused the credentials (${other.message}).`, { cause: redactError(other), details: { target } })
      : new RedisUnavailableError(`${o.what}: Redis at ${target} failed a start-up probe: ${other.message}`, { cause: redactError(other), details: { target } });
  }
  const memory = String(replies[memoryAt]?.[1] ?? '');
  const maxmemoryPolicy = /maxmemory_policy:(\S+)/.exec(memory)?.[1];
  if (maxmemoryPolicy !== undefined && maxmemoryPolicy !== 'noeviction') {
    o.logger?.warn(
      { target, maxmemoryPolicy },
      `Redis maxmemory-policy is '${maxmemoryPolicy}': under memory pressure Redis may evict queue jobs, flights and results. BullMQ and inferq need 'noeviction'.`,
    );
  }
  return { maxmemoryPolicy };
}
