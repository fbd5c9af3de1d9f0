/**
 * Redis connection factory: a `redis://` / `rediss://` URL (TLS for rediss)
 * or ioredis options. BullMQ workers and blocking readers need
 * `maxRetriesPerRequest: null` (a blocking command must not be retried into an
 * error); plain command connections keep ioredis' default so a dead Redis
 * fails calls instead of queueing them forever.
 */
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';

// ioredis is CommonJS; require() loads it with ~40 % less CPU than an ES
// `import`, which makes Node's ES module loader translate each of its files
// (README, "Install": cold start). The same module instance either way.
const ioredis = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');

export type RedisConnectionInput = string | RedisOptions;

export interface CreateRedisOptions {
  /** For BullMQ Worker/QueueEvents and other blocking readers. */
  blocking?: boolean;
  /** Connection name shown by CLIENT LIST, e.g. `inferq:client`. */
  connectionName?: string;
}

export function createRedis(input: RedisConnectionInput, options: CreateRedisOptions = {}): Redis {
  const extra: RedisOptions = {};
  if (options.blocking) extra.maxRetriesPerRequest = null;
  if (options.connectionName) extra.connectionName = options.connectionName;
  if (typeof input === 'string') {
    if (!/^rediss?:\/\//.test(input)) {
      throw new TypeError(`Redis URL must start with redis:// or rediss://, got '${input}'.`);
    }
    return new ioredis.Redis(input, extra);
  }
  return new ioredis.Redis({ ...input, ...extra });
}

/** Plain options for libraries (BullMQ) that create their own connections. */
export function redisOptionsFrom(input: RedisConnectionInput): RedisOptions {
  if (typeof input !== 'string') return { ...input };
  const url = new URL(input);
  const opts: RedisOptions = {
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : 6379,
  };
  if (url.username) opts.username = decodeURIComponent(url.username);
  if (url.password) opts.password = decodeURIComponent(url.password);
  const db = url.pathname.replace(/^\//, '');
  if (db) opts.db = Number(db);
  if (url.protocol === 'rediss:') opts.tls = {};
  return opts;
}

/** Where a connection input points, for messages: the URL, or host:port of the options. */
export function describeRedis(input: RedisConnectionInput): string {
  if (typeof input === 'string') return input;
  return `${input.tls ? 'rediss' : 'redis'}://${input.host ?? '127.0.0.1'}:${input.port ?? 6379}`;
}
