/**
 * `RedisLruCache`: the result cache shared by every process of one model.
 *
 * Layout (see protocol/keys.ts), all under the model's hash tag so the scripts
 * are valid on Redis Cluster:
 * - `<root>:cache:lru` ZSET  cache key -> recency score, Redis `TIME` in us;
 * - `<root>:cache:val` HASH  cache key -> serialised value;
 * - `<root>:cache:exp` ZSET  cache key -> expiry (ms), only for entries written with a TTL;
 * - `<root>:cache:bytes` STRING  the bytes held: the sum over entries of the
 *   stored value's length plus the key's (UTF-8 bytes), kept exact by every script.
 *
 * Every operation is one round trip, and every one that writes is one Lua
 * script (lua/lru-*.lua), so `maxSize` and `maxBytes` hold under any number
 * of concurrent writers: a script runs alone, puts and evicts in the same
 * step. Eviction pops the lowest recency scores (ZPOPMIN, O(log n) per
 * entry), never scans.
 * Scores come from the Redis clock rather than each process' clock, so
 * recency is comparable across machines; ties are broken by the scripts.
 */
import { z } from 'zod';
import type { RedisClient } from './redis-connection.js';
import { OptimizationConfigSchema, parseConfig } from './config.js';
import { ErrorCode, InferqError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { defineLuaCommands, type LuaCommands } from './lua-scripts.js';
import { DEFAULT_PREFIX, MODEL_NAME_PATTERN, modelKeys } from './protocol/keys.js';
import { KeyPrefixSchema } from './option-schemas.js';

export interface RedisLruCacheOptions<V = unknown> {
  /** The ioredis connection (or cluster). Owned by the caller: the cache never closes it. */
  redis: RedisClient;
  /** Model name; the cache lives under its keys. Letters, digits, `.`, `_`, `-`; 1..128 chars. */
  model: string;
  /** First segment of every key. Default `'inferq'`. */
  prefix?: string;
  /** Most entries held (the `cacheMaxSize` setting). Integer, 1..10,000,000. */
  maxSize: number;
  /**
   * Most bytes held (the `cacheMaxBytes` setting): each entry counts its
   * serialised value plus its key, in UTF-8 bytes. A value larger than this
   * by itself is not stored. Integer, 1024..2^40; default 256 MiB.
   */
  maxBytes?: number;
  /**
   * Lifetime of each entry from when it was written, in ms; reads do not
   * extend it. 0 or absent: entries live until evicted. Integer, 0..2^31-1.
   */
  ttlMs?: number;
  /** Where Redis errors are logged before they propagate. Default: a logger named `redis-lru-cache`. */
  logger?: Logger;
  /** Turns a value into the stored string. Default `JSON.stringify`. */
  serialize?: (value: V) => string;
  /** Turns a stored string back into a value. Default `JSON.parse`. */
  deserialize?: (text: string) => V;
}

const isFunction = (v: unknown): boolean => typeof v === 'function';
const hasMethods =
  (...names: string[]) =>
  (v: unknown): boolean =>
    typeof v === 'object' && v !== null && names.every((n) => typeof (v as Record<string, unknown>)[n] === 'function');

const RedisLruCacheOptionsSchema = z
  .object({
    // Duck-typed rather than `instanceof`: an application may bring its own copy of ioredis.
    redis: z.custom<RedisClient>(hasMethods('defineCommand', 'pipeline', 'unlink'), 'must be an ioredis Redis or Cluster instance'),
    model: z.string().regex(MODEL_NAME_PATTERN, `must match ${String(MODEL_NAME_PATTERN)}`),
    prefix: KeyPrefixSchema.default(DEFAULT_PREFIX),
    maxSize: OptimizationConfigSchema.shape.cacheMaxSize.unwrap(),
    maxBytes: OptimizationConfigSchema.shape.cacheMaxBytes,
    ttlMs: z.number().int().min(0).max(2 ** 31 - 1).default(0),
    logger: z.custom<Logger>(hasMethods('error', 'child'), 'must be a pino logger').optional(),
    serialize: z.custom<(value: unknown) => string>(isFunction, 'must be a function').optional(),
    deserialize: z.custom<(text: string) => unknown>(isFunction, 'must be a function').optional(),
  })
  .strict();

const SCRIPTS = ['lru-get', 'lru-put', 'lru-contains', 'lru-delete', 'lru-size'] as const;

export class RedisLruCache<V = unknown> {
  readonly model: string;
  readonly maxSize: number;
  readonly maxBytes: number;
  /** 0 when entries do not expire. */
  readonly ttlMs: number;
  /** The Redis keys of this cache (for scripts of other components that read or fill it). */
  readonly redisKeys: Readonly<{ lru: string; val: string; exp: string; bytes: string }>;
  private readonly redis: RedisClient;
  private readonly scripts: LuaCommands<(typeof SCRIPTS)[number]>;
  /** `redisKeys` in the order every lru-* script takes them as KEYS. */
  private readonly scriptKeys: readonly string[];
  private readonly parentLogger: Logger | undefined;
  private ownLogger: Logger | undefined;
  private readonly serialize: (value: V) => string;
  private readonly deserialize: (text: string) => V;

  /** @throws ConfigError listing every bad option. */
  constructor(options: RedisLruCacheOptions<V>) {
    const o = parseConfig('RedisLruCache', RedisLruCacheOptionsSchema, options, { maxSize: 'cacheMaxSize', maxBytes: 'cacheMaxBytes' });
    const keys = modelKeys(o.model, o.prefix);
    this.model = o.model;
    this.maxSize = o.maxSize;
    this.maxBytes = o.maxBytes;
    this.ttlMs = o.ttlMs;
    this.redisKeys = Object.freeze({ lru: keys.cacheLru, val: keys.cacheVal, exp: keys.cacheExp, bytes: keys.cacheBytes });
    this.scriptKeys = Object.freeze([this.redisKeys.lru, this.redisKeys.val, this.redisKeys.exp, this.redisKeys.bytes]);
    this.redis = o.redis;
    this.scripts = defineLuaCommands(o.redis, SCRIPTS);
    this.parentLogger = o.logger;
    this.serialize = options.serialize ?? (JSON.stringify as (value: V) => string);
    this.deserialize = options.deserialize ?? (JSON.parse as (text: string) => V);
  }

  /** The value of `key`, which becomes the most recently used; `undefined` on a miss or when expired. */
  async get(key: string): Promise<V | undefined> {
    const [value] = await this.read('get', [key]);
    return value;
  }

  /**
   * Values of `keys` in order, in one round trip. Each hit becomes the most
   * recently used, in argument order; an expired entry is a miss and is removed.
   */
  getMany(keys: readonly string[]): Promise<(V | undefined)[]> {
    return this.read('getMany', keys);
  }

  /**
   * Stores `value` as the most recently used entry, evicting least recently
   * used ones past `maxSize` entries or `maxBytes` bytes. A value larger than
   * `maxBytes` (with its key) is not stored, and any older value of `key` is
   * removed; that is not an error.
   */
  put(key: string, value: V): Promise<void> {
    return this.write('put', [[key, value]]);
  }

  /**
   * Stores every entry in one round trip, each becoming the most recently
   * used in order (a key listed twice keeps its last value), with the result
   * `put` in a loop would leave. Expired entries are removed before live ones
   * are evicted.
   *
   * @throws InferqError `INFERQ_OUTPUT_NOT_SERIALIZABLE` when a value cannot
   *   be serialised; nothing is written then.
   */
  putMany(entries: ReadonlyArray<readonly [string, V]>): Promise<void> {
    return this.write('putMany', entries);
  }

  /** Whether `key` holds a live entry. Does not change recency. */
  async contains(key: string): Promise<boolean> {
    return (await this.run('contains', 1, () => this.scripts.call('lru-contains', this.scriptKeys, [key]))) === 1;
  }

  /** Removes `key`; true when a live entry was removed. */
  async delete(key: string): Promise<boolean> {
    return (await this.run('delete', 1, () => this.scripts.call('lru-delete', this.scriptKeys, [key]))) === 1;
  }

  /**
   * Removes every entry of this model's cache: its four cache keys only
   * (the byte total too), never the model's stats or queue. UNLINK frees a
   * large cache off Redis' main thread.
   */
  async clear(): Promise<void> {
    await this.run('clear', 0, () => this.redis.unlink(...this.scriptKeys));
  }

  /** Number of live entries (ZCARD minus entries whose TTL has passed but are not yet removed). */
  async size(): Promise<number> {
    return (await this.run('size', 0, () => this.scripts.call('lru-size', this.scriptKeys, []))) as number;
  }

  /**
   * Bytes held: the sum over stored entries of value and key lengths (UTF-8
   * bytes), at most `maxBytes` after any write of this cache. Entries whose
   * TTL has passed count until they are removed (they still take memory).
   */
  async bytes(): Promise<number> {
    return Number((await this.run('bytes', 0, () => this.redis.get(this.redisKeys.bytes))) ?? 0);
  }

  /** Keys from least to most recently used, expired ones included until removed (for tests and debugging; O(n)). */
  async keys(): Promise<string[]> {
    return this.run('keys', 0, () => this.redis.zrange(this.redisKeys.lru, 0, -1));
  }

  private async read(op: string, keys: readonly string[]): Promise<(V | undefined)[]> {
    if (keys.length === 0) return [];
    const reply = (await this.run(op, keys.length, () => this.scripts.call('lru-get', this.scriptKeys, keys))) as Array<string | null>;
    return reply.map((text) => (text === null ? undefined : this.decode(text, op)));
  }

  private async write(op: string, entries: ReadonlyArray<readonly [string, V]>): Promise<void> {
    if (entries.length === 0) return;
    const args: string[] = [String(this.maxSize), String(this.maxBytes), String(this.ttlMs)];
    for (const [key, value] of entries) args.push(key, this.encode(key, value, op));
    await this.run(op, entries.length, () => this.scripts.call('lru-put', this.scriptKeys, args));
  }

  /** Made on first use: the logger only serves errors, and a cache per model should not open a stream each. */
  private get logger(): Logger {
    this.ownLogger ??= createLogger('redis-lru-cache', this.parentLogger);
    return this.ownLogger;
  }

  private async run<T>(op: string, keyCount: number, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.logger.error({ err, model: this.model, op, keyCount }, `Redis cache ${op} failed`);
      throw err;
    }
  }

  private encode(key: string, value: V, op: string): string {
    let text: unknown;
    let cause: unknown;
    try {
      text = this.serialize(value);
    } catch (err) {
      cause = err;
    }
    if (typeof text === 'string') return text;
    // JSON.stringify returns undefined (no throw) for undefined, functions and symbols.
    const error = new InferqError(
      ErrorCode.OUTPUT_NOT_SERIALIZABLE,
      `Cache value for key '${key}' cannot be serialised` +
        (cause instanceof Error ? `: ${cause.message}` : ` (serialize returned ${typeof text})`) +
        `. Store JSON-serialisable values or pass a 'serialize' option.`,
      { cause, details: { model: this.model, key } },
    );
    this.logger.error({ err: error, model: this.model, op, keyCount: 1 }, error.message);
    throw error;
  }

  private decode(text: string, op: string): V {
    try {
      return this.deserialize(text);
    } catch (err) {
      this.logger.error({ err, model: this.model, op, keyCount: 1 }, 'Cache value could not be deserialised');
      throw err;
    }
  }
}
