import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../testkit/src/index.js';
import { ConfigError, ErrorCode, InferqError } from '../src/errors.js';
import { LUA_DIR, LuaScriptLoader, defineLuaCommands } from '../src/lua-scripts.js';
import { modelKeys } from '../src/protocol/keys.js';
import { RedisLruCache, type RedisLruCacheOptions } from '../src/redis-lru-cache.js';
import { LruReferenceModel, applyOp, lruOpArb, type TestValue } from './lru-reference-model.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * lru-get and lru-put as loops over the single-entry fragment functions
 * (lru_get, lru_put), which scripts of other components use. Swapped in on
 * one connection, they must pass the same property test as the package's
 * scripts, which use the bulk functions (lru_get_many, lru_put_many).
 */
const PER_ENTRY_SCRIPTS = {
  'lru-get-3.lua': `-- Per-entry variant for tests. KEYS[1..3] lru, val, exp; ARGV cache keys. Returns values.
-- @include lru-get.lua
local c = lru_open(KEYS[1], KEYS[2], KEYS[3], 0, 0)
local out = {}
for i = 1, #ARGV do
  out[i] = lru_get(c, ARGV[i])
end
return out
`,
  'lru-put-3.lua': `-- Per-entry variant for tests. KEYS[1..3] lru, val, exp; ARGV maxSize, ttlMs, pairs. Returns evicted.
-- @include lru-put.lua
-- @include lru-expire.lua
local c = lru_open(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]))
lru_purge_expired(c, (#ARGV - 2) / 2 + 16)
local evicted = 0
for i = 3, #ARGV, 2 do
  evicted = evicted + lru_put(c, ARGV[i], ARGV[i + 1])
end
return evicted
`,
};

describe('RedisLruCache', () => {
  let t: TestRedis;
  let redis: Redis;
  let models = 0;
  /** A cache on a model no other test uses. */
  const newCache = <V = TestValue>(options: Partial<RedisLruCacheOptions<V>> = {}) =>
    new RedisLruCache<V>({ redis, model: `m${++models}`, prefix: t.prefix, maxSize: 3, ...options });

  /** A connection on which lru-get and lru-put are the per-entry variants (after `usePerEntryScripts`). */
  let perEntryRedis: Redis;
  let fixtureDir: string;
  let perEntryLoader: LuaScriptLoader;
  /** Every cache (re)defines the package's scripts on its connection, so swap after creating one. */
  const usePerEntryScripts = () => defineLuaCommands(perEntryRedis, ['lru-get', 'lru-put'], perEntryLoader);

  beforeAll(async () => {
    t = await startTestRedis();
    redis = t.connect();
    fixtureDir = mkdtempSync(join(tmpdir(), 'inferq-lua-'));
    cpSync(new URL('includes/', LUA_DIR), join(fixtureDir, 'includes'), { recursive: true });
    for (const [file, text] of Object.entries(PER_ENTRY_SCRIPTS)) writeFileSync(join(fixtureDir, file), text);
    perEntryRedis = t.connect();
    perEntryLoader = new LuaScriptLoader(pathToFileURL(`${fixtureDir}/`));
  });
  afterAll(async () => {
    rmSync(fixtureDir, { recursive: true, force: true });
    await t.cleanup();
  });

  // A TTL far beyond the test's length changes no result, but runs the scripts' expiry paths.
  it.each(['bulk', 'per-entry'])('behaves like the reference LRU for random operation sequences, recency order included (%s scripts)', async (variant) => {
    const connection = variant === 'bulk' ? redis : perEntryRedis;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(0, 600_000),
        fc.array(lruOpArb(), { maxLength: 25 }),
        async (maxSize, ttlMs, ops) => {
          const cache = newCache({ maxSize, ttlMs, redis: connection });
          if (variant === 'per-entry') usePerEntryScripts();
          const model = new LruReferenceModel<TestValue>(maxSize);
          for (const op of ops) {
            expect(await applyOp(cache, op)).toEqual(await applyOp(model, op));
            const { val, exp } = cache.redisKeys;
            const [size, order, hlen, expiring] = await Promise.all([cache.size(), cache.keys(), redis.hlen(val), redis.zcard(exp)]);
            expect(size).toBe(model.size);
            expect(hlen).toBe(model.size);
            expect(expiring).toBe(ttlMs > 0 ? model.size : 0);
            expect(order).toEqual(model.keys()); // ZRANGE, least to most recently used
          }
        },
      ),
      { numRuns: 80 },
    );
    if (variant === 'per-entry') {
      // The variant really ran: Redis has seen its script bodies.
      const shas = ['lru-get', 'lru-put'].map((n) => createHash('sha1').update(perEntryLoader.load(n).lua).digest('hex'));
      expect(await redis.script('EXISTS', ...shas)).toEqual([1, 1]);
    }
  });

  it('handles batches larger than one Lua unpack (1000 arguments)', async () => {
    const cache = newCache<number>({ maxSize: 1200, ttlMs: 600_000 });
    const entries = Array.from({ length: 1500 }, (_, i) => [`k${i}`, i] as [string, number]);
    await cache.putMany(entries);
    expect(await cache.size()).toBe(1200);
    expect(await redis.zcard(cache.redisKeys.exp)).toBe(1200);
    const keys = entries.map(([k]) => k);
    const values = await cache.getMany(keys);
    expect(values).toEqual(keys.map((_, i) => (i < 300 ? undefined : i)));
    expect(await cache.keys()).toEqual(keys.slice(300));
  });

  it('orders entries touched in one call strictly, in argument order', async () => {
    const cache = newCache({ maxSize: 100 });
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    await cache.putMany(keys.map((k, i) => [k, i]));
    expect(await cache.keys()).toEqual(keys);
    const reversed = [...keys].reverse();
    await cache.getMany(reversed);
    expect(await cache.keys()).toEqual(reversed);
    const scores = (await redis.zrange(cache.redisKeys.lru, 0, -1, 'WITHSCORES')).filter((_, i) => i % 2 === 1).map(Number);
    expect(new Set(scores).size).toBe(50);
  });

  it('never holds more than maxSize under concurrent writers on several connections', async () => {
    const maxSize = 100;
    const model = `concurrent${++models}`;
    const writers = Array.from({ length: 4 }, () => new RedisLruCache<number>({ redis: t.connect(), model, prefix: t.prefix, maxSize }));
    const { lru, val } = writers[0]!.redisKeys;
    const observer = t.connect();
    const samples: Array<[number, number]> = [];
    let writing = true;
    const sampling = (async () => {
      while (writing) {
        // MULTI: both counts from the same instant.
        const replies = await observer.multi().zcard(lru).hlen(val).exec();
        samples.push([replies![0]![1] as number, replies![1]![1] as number]);
      }
    })();
    let seed = 1;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 1000;
    await Promise.all(
      writers.map((cache) =>
        Promise.all(
          Array.from({ length: 500 }, (_, i) =>
            i % 5 === 4
              ? cache.getMany(Array.from({ length: 8 }, () => `k${rand()}`)).then(() => undefined)
              : cache.putMany(Array.from({ length: 8 }, () => [`k${rand()}`, i] as [string, number])),
          ),
        ),
      ),
    );
    writing = false;
    await sampling;
    expect(samples.length).toBeGreaterThan(0);
    for (const [zcard, hlen] of samples) {
      expect(zcard).toBe(hlen);
      expect(zcard).toBeLessThanOrEqual(maxSize);
    }
    expect(await redis.zcard(lru)).toBe(maxSize);
    expect((await redis.zrange(lru, 0, -1)).sort()).toEqual((await redis.hkeys(val)).sort());
  });

  describe('TTL', () => {
    it('expired entries are misses, are removed by get, and do not count in size', async () => {
      const cache = newCache({ ttlMs: 100 });
      await cache.putMany([['a', 1], ['b', 2]]);
      expect(await redis.zcard(cache.redisKeys.exp)).toBe(2);
      await sleep(400);
      expect(await cache.contains('a')).toBe(false);
      expect(await cache.size()).toBe(0);
      expect(await cache.get('a')).toBeUndefined();
      // get removed a from all three structures; b is still stored until touched.
      expect(await redis.zscore(cache.redisKeys.lru, 'a')).toBeNull();
      expect(await redis.hexists(cache.redisKeys.val, 'a')).toBe(0);
      expect(await redis.zscore(cache.redisKeys.exp, 'a')).toBeNull();
      expect(await cache.keys()).toEqual(['b']);
      expect(await cache.delete('b')).toBe(false);
      expect(await redis.exists(cache.redisKeys.lru, cache.redisKeys.val, cache.redisKeys.exp)).toBe(0);
    });

    it('stores the expiry as Redis time + ttlMs and serves hits before it', async () => {
      const cache = newCache({ ttlMs: 60_000 });
      const [seconds] = await redis.time();
      await cache.put('a', 1);
      const expiresAt = Number(await redis.zscore(cache.redisKeys.exp, 'a'));
      expect(expiresAt).toBeGreaterThanOrEqual(Number(seconds) * 1000 + 60_000);
      expect(expiresAt).toBeLessThan(Number(seconds) * 1000 + 60_000 + 30_000);
      expect(await cache.get('a')).toBe(1);
      expect(await cache.contains('a')).toBe(true);
      expect(await cache.size()).toBe(1);
    });

    it('a put removes expired entries before it evicts live ones', async () => {
      const model = `ttl${++models}`;
      const plain = new RedisLruCache<number>({ redis, model, prefix: t.prefix, maxSize: 3 });
      const shortLived = new RedisLruCache<number>({ redis, model, prefix: t.prefix, maxSize: 3, ttlMs: 100 });
      await plain.put('c', 3);
      await shortLived.putMany([['a', 1], ['b', 2]]); // the most recently used, but they will expire
      await sleep(400);
      await plain.putMany([['d', 4], ['e', 5]]);
      expect(await plain.keys()).toEqual(['c', 'd', 'e']);
      expect(await redis.zcard(plain.redisKeys.exp)).toBe(0);
    });

    it('a put without TTL clears the expiry an earlier put set', async () => {
      const model = `ttl${++models}`;
      const shortLived = new RedisLruCache<number>({ redis, model, prefix: t.prefix, maxSize: 3, ttlMs: 100 });
      const plain = new RedisLruCache<number>({ redis, model, prefix: t.prefix, maxSize: 3 });
      await shortLived.put('a', 1);
      await plain.put('a', 2);
      await sleep(300);
      expect(await plain.get('a')).toBe(2);
    });
  });

  it('clear() removes only this model cache keys, not its stats nor other models', async () => {
    const cache = newCache({ ttlMs: 60_000 });
    const other = newCache();
    const root = modelKeys(cache.model, t.prefix).root;
    await cache.putMany([['a', 1], ['b', 2]]);
    await other.put('a', 10);
    await redis.hset(`${root}:stats`, 'requests', '5');
    await redis.hset(`${root}:stats:latency`, 'le_1', '2');
    expect(await redis.exists(cache.redisKeys.lru, cache.redisKeys.val, cache.redisKeys.exp)).toBe(3);

    await cache.clear();

    expect(await redis.exists(cache.redisKeys.lru, cache.redisKeys.val, cache.redisKeys.exp)).toBe(0);
    expect(await cache.size()).toBe(0);
    expect(await redis.hget(`${root}:stats`, 'requests')).toBe('5');
    expect(await redis.hget(`${root}:stats:latency`, 'le_1')).toBe('2');
    expect(await other.get('a')).toBe(10);
  });

  it('keeps the keys of two models apart', async () => {
    const a = newCache({ maxSize: 2 });
    const b = newCache({ maxSize: 2 });
    await b.putMany([['x', 1], ['y', 2]]);
    await a.putMany([['x', 10], ['y', 20], ['z', 30], ['w', 40]]);
    expect(await b.getMany(['x', 'y'])).toEqual([1, 2]);
    expect(await a.getMany(['x', 'y', 'z', 'w'])).toEqual([undefined, undefined, 30, 40]);
    expect(await b.size()).toBe(2);
    expect(a.redisKeys.lru).toBe(modelKeys(a.model, t.prefix).cacheLru);
    expect(a.redisKeys.exp).toBe(modelKeys(a.model, t.prefix).cacheExp);
    expect(a.redisKeys.lru).not.toBe(b.redisKeys.lru);
  });

  it('throws one ConfigError listing every bad option', () => {
    let error: unknown;
    try {
      new RedisLruCache({
        redis: {} as Redis,
        model: 'bad model!',
        prefix: 'a{b}',
        maxSize: 0,
        ttlMs: -5,
        extra: true,
      } as RedisLruCacheOptions);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const fields = (error as ConfigError).issues.map((i) => i.field).sort();
    expect(fields).toEqual(['(root)', 'maxSize (cacheMaxSize)', 'model', 'prefix', 'redis', 'ttlMs']);
    expect((error as ConfigError).message).toContain("'extra'");
  });

  it('defaults the prefix to inferq', () => {
    const cache = new RedisLruCache({ redis, model: 'somemodel', maxSize: 1 });
    expect(cache.redisKeys).toEqual({
      lru: 'inferq:{somemodel}:cache:lru',
      val: 'inferq:{somemodel}:cache:val',
      exp: 'inferq:{somemodel}:cache:exp',
    });
  });

  it('rejects a value that cannot be serialised, writing nothing', async () => {
    const cache = newCache<unknown>();
    for (const bad of [undefined, 10n, () => 1]) {
      const error = await cache.putMany([['ok', 1], ['bad', bad]]).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(InferqError);
      expect((error as InferqError).code).toBe(ErrorCode.OUTPUT_NOT_SERIALIZABLE);
    }
    expect(await cache.size()).toBe(0);
  });

  it('uses serialize/deserialize when given', async () => {
    const cache = newCache<string>({ serialize: (s) => s, deserialize: (s) => s });
    await cache.put('raw', '{"not":"re-encoded"}');
    expect(await redis.hget(cache.redisKeys.val, 'raw')).toBe('{"not":"re-encoded"}');
    expect(await cache.get('raw')).toBe('{"not":"re-encoded"}');
  });

  it('logs a Redis error with model, op and key count before it propagates', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const cache = newCache({ logger: pino({ level: 'error' }, sink) });
    await redis.set(cache.redisKeys.val, 'not a hash'); // every script on this cache now fails with WRONGTYPE
    await expect(cache.getMany(['a', 'b'])).rejects.toThrow(/WRONGTYPE/);
    await expect(cache.put('a', 1)).rejects.toThrow(/WRONGTYPE/);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toMatchObject([
      { level: 50, model: cache.model, op: 'getMany', keyCount: 2, err: { message: expect.stringMatching(/WRONGTYPE/) } },
      { level: 50, model: cache.model, op: 'put', keyCount: 1 },
    ]);
  });
});
