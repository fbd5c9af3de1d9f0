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
import { OPTIMIZATION_DEFAULTS } from '../src/config.js';
import { LruReferenceModel, applyOp, entryBytes, lruOpArb, type TestValue } from './lru-reference-model.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * lru-get and lru-put as loops over the single-entry fragment functions
 * (lru_get, lru_put), which scripts of other components use. Swapped in on
 * one connection, they must pass the same property test as the package's
 * scripts, which use the bulk functions (lru_get_many, lru_put_many).
 */
const PER_ENTRY_SCRIPTS = {
  'lru-get-4.lua': `-- Per-entry variant for tests. KEYS[1..4] lru, val, exp, bytes; ARGV cache keys. Returns values.
-- @include lru-get.lua
local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 0, 0, 0)
local out = {}
for i = 1, #ARGV do
  out[i] = lru_get(c, ARGV[i])
end
return out
`,
  'lru-put-4.lua': `-- Per-entry variant for tests. KEYS[1..4] lru, val, exp, bytes; ARGV maxSize, maxBytes, ttlMs, pairs.
-- Returns {evicted, tooLarge}.
-- @include lru-put.lua
-- @include lru-expire.lua
local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
lru_purge_expired(c, (#ARGV - 3) / 2 + 16)
local evicted = 0
for i = 4, #ARGV, 2 do
  evicted = evicted + lru_put(c, ARGV[i], ARGV[i + 1])
end
return { evicted, c.tooLarge }
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

  /** The bytes the value hash really holds: UTF-8 bytes of each field and value. */
  const storedBytes = async (val: string): Promise<number> =>
    Object.entries(await redis.hgetallBuffer(val)).reduce((sum, [k, v]) => sum + Buffer.byteLength(k) + v.length, 0);

  // A TTL far beyond the test's length changes no result, but runs the scripts' expiry paths.
  // Byte bounds of 1-2 KiB against values up to ~5 KB: byte evictions, shrinking overwrites
  // and values too large to store are frequent; the default bound checks count eviction alone.
  it.each(['bulk', 'per-entry'])('behaves like the reference LRU for random operation sequences, recency order and bytes included (%s scripts)', async (variant) => {
    const connection = variant === 'bulk' ? redis : perEntryRedis;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(undefined, 1024, 2048),
        fc.constantFrom(0, 600_000),
        fc.array(lruOpArb(6, { bigValues: true }), { maxLength: 25 }),
        async (maxSize, maxBytes, ttlMs, ops) => {
          const cache = newCache({ maxSize, ttlMs, redis: connection, ...(maxBytes === undefined ? {} : { maxBytes }) });
          if (variant === 'per-entry') usePerEntryScripts();
          const model = new LruReferenceModel<TestValue>(maxSize, maxBytes ?? OPTIMIZATION_DEFAULTS.cacheMaxBytes);
          for (const op of ops) {
            expect(await applyOp(cache, op)).toEqual(await applyOp(model, op));
            const { val, exp } = cache.redisKeys;
            const [size, order, hlen, expiring, bytes, stored] = await Promise.all([
              cache.size(),
              cache.keys(),
              redis.hlen(val),
              redis.zcard(exp),
              cache.bytes(),
              storedBytes(val),
            ]);
            expect(size).toBe(model.size);
            expect(hlen).toBe(model.size);
            expect(expiring).toBe(ttlMs > 0 ? model.size : 0);
            expect(order).toEqual(model.keys()); // ZRANGE, least to most recently used
            expect(bytes).toBe(model.bytes);
            expect(bytes).toBe(stored); // the running total is the sum of what is stored
            expect(bytes).toBeLessThanOrEqual(cache.maxBytes);
          }
        },
      ),
      { numRuns: 100 },
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

  describe('maxBytes', () => {
    const text = (n: number) => 'x'.repeat(n); // JSON adds 2 bytes of quotes

    it('does not store a value larger than maxBytes, removes the key\'s older value, and reports it', async () => {
      const cache = newCache<string>({ maxSize: 10, maxBytes: 1024 });
      await cache.put('a', 'small');
      await cache.put('big', text(2000)); // not an error
      expect(await cache.get('big')).toBeUndefined();
      expect(await cache.bytes()).toBe(entryBytes('a', 'small'));
      // An exact fit is stored: 1 + (1021 + 2) = 1024 bytes, evicting everything else.
      await cache.put('b', text(1021));
      expect(await cache.keys()).toEqual(['b']);
      expect(await cache.bytes()).toBe(1024);
      // One byte more is too large: the put is skipped and b's older value goes.
      await cache.put('b', text(1022));
      expect(await cache.get('b')).toBeUndefined();
      expect(await cache.bytes()).toBe(0);
      expect(await redis.exists(cache.redisKeys.bytes)).toBe(0); // an empty cache leaves no total behind
      // The script's reply counts both: evicted entries and values refused.
      const { lru, val, exp, bytes } = cache.redisKeys;
      const reply = await redis.eval(
        (await import('../src/lua-scripts.js')).loadLuaScript('lru-put').lua,
        4, lru, val, exp, bytes, '10', '1024', '0', 'c', JSON.stringify(text(600)), 'd', JSON.stringify(text(600)), 'e', JSON.stringify(text(5000)),
      );
      expect(reply).toEqual([1, 1]);
      expect(await cache.keys()).toEqual(['d']);
    });

    it('counts UTF-8 bytes, not characters', async () => {
      const cache = newCache<string>({ maxSize: 10, maxBytes: 1024 });
      await cache.put('k', 'é€😀'); // 2 + 3 + 4 bytes, plus 2 quotes and the key
      expect(await cache.bytes()).toBe(1 + 2 + 9);
      await cache.put('k', '€'.repeat(400)); // 1202 bytes: too large although 402 characters
      expect(await cache.contains('k')).toBe(false);
    });

    it('keeps the total exact through overwrites, deletes, expiry and clear', async () => {
      const cache = newCache<string>({ maxSize: 10, maxBytes: 4096, ttlMs: 100 });
      await cache.putMany([['a', text(100)], ['b', text(200)], ['a', text(10)]]);
      expect(await cache.bytes()).toBe(entryBytes('a', text(10)) + entryBytes('b', text(200)));
      await cache.delete('b');
      expect(await cache.bytes()).toBe(entryBytes('a', text(10)));
      await sleep(300);
      expect(await cache.get('a')).toBeUndefined(); // expired: removed, its bytes too
      expect(await cache.bytes()).toBe(0);
      await cache.put('c', text(50));
      await cache.clear();
      expect(await redis.exists(cache.redisKeys.bytes)).toBe(0);
      expect(await cache.bytes()).toBe(0);
    });

    it('never holds more than maxBytes under concurrent writers on several connections', async () => {
      const maxBytes = 4096;
      const model = `concurrentBytes${++models}`;
      const writers = Array.from({ length: 4 }, () => new RedisLruCache<string>({ redis: t.connect(), model, prefix: t.prefix, maxSize: 1000, maxBytes }));
      const { val, bytes } = writers[0]!.redisKeys;
      const observer = t.connect();
      const samples: number[] = [];
      let writing = true;
      const sampling = (async () => {
        while (writing) samples.push(Number((await observer.get(bytes)) ?? 0));
      })();
      let seed = 7;
      const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
      await Promise.all(
        writers.map((cache) =>
          Promise.all(
            Array.from({ length: 200 }, () => cache.putMany(Array.from({ length: 4 }, () => [`k${rand(200)}`, text(rand(900))] as [string, string]))),
          ),
        ),
      );
      writing = false;
      await sampling;
      expect(samples.length).toBeGreaterThan(0);
      expect(Math.max(...samples)).toBeLessThanOrEqual(maxBytes);
      expect(await writers[0]!.bytes()).toBe(await storedBytes(val));
      expect(await writers[0]!.bytes()).toBeGreaterThan(maxBytes / 2);
    });
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
    expect(await redis.exists(cache.redisKeys.lru, cache.redisKeys.val, cache.redisKeys.exp, cache.redisKeys.bytes)).toBe(4);

    await cache.clear();

    expect(await redis.exists(cache.redisKeys.lru, cache.redisKeys.val, cache.redisKeys.exp, cache.redisKeys.bytes)).toBe(0);
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
        maxBytes: 1023,
        ttlMs: -5,
        extra: true,
      } as RedisLruCacheOptions);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const fields = (error as ConfigError).issues.map((i) => i.field).sort();
    expect(fields).toEqual(['(root)', 'maxBytes (cacheMaxBytes)', 'maxSize (cacheMaxSize)', 'model', 'prefix', 'redis', 'ttlMs']);
    expect((error as ConfigError).message).toContain("'extra'");
  });

  it('defaults the prefix to inferq', () => {
    const cache = new RedisLruCache({ redis, model: 'somemodel', maxSize: 1 });
    expect(cache.redisKeys).toEqual({
      lru: 'inferq:{somemodel}:cache:lru',
      val: 'inferq:{somemodel}:cache:val',
      exp: 'inferq:{somemodel}:cache:exp',
      bytes: 'inferq:{somemodel}:cache:bytes',
    });
    expect(cache.maxBytes).toBe(268_435_456);
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
