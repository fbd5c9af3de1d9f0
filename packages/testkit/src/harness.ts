/**
 * The preamble every Redis-backed test file shared: one Redis for the file
 * (started before its first test, cleaned up after its last), and what a
 * test starts (clients, workers, processes) stopped after that test, last
 * started first, whatever the test did. Vitest hooks; import it from test
 * files only (`@inferq/testkit/harness`).
 *
 *   const h = useTestRedis({ ownServer: true });
 *   it('...', async () => {
 *     const worker = h.after(new InferenceWorker({ redis: h.redis.url, ... }), (w) => w.stop());
 *     ...
 *   });
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startTestRedis, type TestRedis, type TestRedisOptions } from './test-redis.js';

export interface RedisHarness {
  /** The file's Redis (available from the first test on). */
  readonly redis: TestRedis;
  /** Stops `thing` after the current test (`stop`, or its own `stop()`/`close()`), last registered first; returns it. */
  after<T>(thing: T, stop?: (t: T) => Promise<unknown> | unknown): T;
  /** Runs each `fn` after the current test, last registered first; a failure is ignored (the test has its own verdict). */
  defer(...fns: Array<() => Promise<unknown> | unknown>): void;
}

export function useTestRedis(options: TestRedisOptions = {}): RedisHarness {
  let redis: TestRedis | undefined;
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  beforeAll(async () => {
    redis = await startTestRedis(options);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve().then(c).catch(() => undefined);
  });
  afterAll(async () => {
    await redis?.cleanup();
  });
  const harness: RedisHarness = {
    get redis(): TestRedis {
      if (!redis) throw new Error('useTestRedis: the Redis is started in beforeAll; use it inside a test or hook');
      return redis;
    },
    after<T>(thing: T, stop?: (t: T) => Promise<unknown> | unknown): T {
      const own = thing as { stop?: () => unknown; close?: () => unknown };
      cleanups.push(stop ? () => stop(thing) : typeof own.stop === 'function' ? () => own.stop?.() : () => own.close?.());
      return thing;
    },
    defer(...fns) {
      cleanups.push(...fns);
    },
  };
  return harness;
}
