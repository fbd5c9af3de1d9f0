/**
 * Two roles, two ACL rules (docs/acl/*.acl, docs/security.md): clients and
 * workers running under them do everything they do under one shared user,
 * and the client role cannot write what decides anyone's answer: cache
 * values and their order, the convicted inputs, the shard count, the served
 * model marker, the cache epoch (each NOPERM), nor load scripts or functions.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ErrorCode, modelKeys, type InferqError } from '@inferq/core';
import { shardCountKey } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { CLIENT_CLI, REPO_ROOT, spawnNode, startTestRedis, type TestRedis } from '@inferq/testkit';
import { collectingLogger } from './fixtures/collecting-logger.js';

let redis: TestRedis;
let port = 0;
const cleanups: Array<() => Promise<unknown>> = [];
const PREFIX = 'inferq'; // the published rules name the default prefix

/** The rule of one docs/acl file as ACL SETUSER arguments, with its password set. */
function rule(file: string, password: string): { user: string; args: string[] } {
  const line = readFileSync(new URL(`docs/acl/${file}`, `file://${REPO_ROOT}/`), 'utf8').trim();
  expect(line.split('\n')).toHaveLength(1);
  const [keyword, user = '', ...args] = line.split(/\s+/);
  expect(keyword).toBe('user');
  return { user, args: args.map((a) => (a === '>PASSWORD' ? `>${password}` : a)) };
}

beforeAll(async () => {
  redis = await startTestRedis({ ownServer: true });
  port = redis.server!.port;
  const admin = redis.connect();
  for (const file of ['inferq-client.acl', 'inferq-worker.acl']) {
    const { user, args } = rule(file, 'pw');
    await admin.call('ACL', 'SETUSER', user, ...args);
  }
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(() => redis.cleanup());

const clientUrl = () => `redis://inferq-client:pw@127.0.0.1:${port}`;
const workerUrl = () => `redis://inferq-worker:pw@127.0.0.1:${port}`;

function startWorker(model: string, o: { delayMs?: number; cacheMaxSize?: number } = {}) {
  let calls = 0;
  const worker = new InferenceWorker<{ x: number }, { y: number }>({
    redis: workerUrl(),
    model,
    prefix: PREFIX,
    config: { batchTimeoutMs: 5, ...(o.cacheMaxSize ? { cacheMaxSize: o.cacheMaxSize } : {}) },
    run: async (xs) => {
      calls += xs.length;
      if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      return xs.map((x) => ({ y: x.x * 10 }));
    },
  });
  cleanups.push(() => worker.stop());
  return { worker, computed: () => calls };
}

function startClient(model: string, config: Record<string, number> = {}) {
  const client = new InferenceClient<{ x: number }, { y: number }>({ redis: clientUrl(), model, prefix: PREFIX, config, logger: collectingLogger().logger });
  cleanups.push(() => client.close({ timeoutMs: 200 }));
  return client;
}

describe('the client and worker roles of docs/acl', () => {
  it('run the whole flow: cache hits, single-flight across two clients, uncached requests, stats, CLI stats', async () => {
    const model = 'roles';
    const { worker, computed } = startWorker(model, { delayMs: 150 });
    await worker.start();
    const a = startClient(model);
    const b = startClient(model);
    // Single-flight across two clients: one computation, one of the two coalesced.
    const [ra, rb] = await Promise.all([a.infer({ x: 1 }), b.infer({ x: 1 })]);
    expect([ra.output.y, rb.output.y]).toEqual([10, 10]);
    expect([ra.coalesced, rb.coalesced].filter(Boolean)).toHaveLength(1);
    expect(computed()).toBe(1);
    // A cache hit read by the client's claim (no worker involved).
    const hit = await b.infer({ x: 1 });
    expect(hit.cached).toBe(true);
    expect(computed()).toBe(1);
    // Uncached requests and a batch.
    expect((await a.infer({ x: 2 }, { useCache: false })).output.y).toBe(20);
    expect((await a.inferBatch([{ x: 3 }, { x: 4 }])).map((r) => r.output.y)).toEqual([30, 40]);
    const stats = await a.stats();
    expect(stats.totalRequests).toBeGreaterThanOrEqual(6);
    expect(stats.cacheHits).toBeGreaterThanOrEqual(1);
    // The client CLI reads stats with the client role's credentials.
    const p = spawnNode(CLIENT_CLI, ['stats', '--model', model, '--prefix', PREFIX, '--json'], { REDIS_URL: clientUrl(), INFERQ_LOG_LEVEL: 'silent' });
    const { code } = await p.exited;
    expect(code, p.stderr()).toBe(0);
    expect(p.lines.join('\n')).toMatch(/totalRequests/);
  }, 60_000);

  it('maxQueueLength admission works under the client role', async () => {
    const model = 'roles-room';
    const { worker } = startWorker(model, { delayMs: 300 });
    await worker.start();
    const c = startClient(model, { maxQueueLength: 3 });
    const outcomes = await Promise.all(Array.from({ length: 12 }, (_, i) => c.infer({ x: 100 + i }, { useCache: false, timeoutMs: 20_000 }).then(() => 'ok', (e: InferqError) => e.code)));
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(3);
    expect(outcomes.filter((o) => o === ErrorCode.QUEUE_FULL).length).toBeGreaterThan(0);
    expect(outcomes.every((o) => o === 'ok' || o === ErrorCode.QUEUE_FULL)).toBe(true);
  }, 60_000);

  it('the cache stays least recently used: a hit a client records keeps its entry over an older one', async () => {
    const model = 'roles-lru';
    const { worker, computed } = startWorker(model, { cacheMaxSize: 2 });
    await worker.start();
    const c = startClient(model);
    await c.infer({ x: 1 });
    await c.infer({ x: 2 });
    // Hit 1 (recorded by the client's claim in cache:hits), then a third entry evicts one.
    expect((await c.infer({ x: 1 })).cached).toBe(true);
    await c.infer({ x: 3 });
    const before = computed();
    expect((await c.infer({ x: 1 })).cached).toBe(true); // kept: used most recently
    expect((await c.infer({ x: 2 })).cached).toBe(false); // evicted: least recently used
    expect(computed()).toBe(before + 1);
  });

  it('a client user gets NOPERM for every write that decides answers; the worker role may clear the cache', async () => {
    const model = 'roles-deny';
    const { worker } = startWorker(model);
    await worker.start();
    const c = startClient(model);
    await c.infer({ x: 1 });
    const keys = modelKeys(model, PREFIX);
    const key = (await redis.connect().hkeys(keys.cacheVal))[0] as string;
    const raw = new Redis(clientUrl(), { lazyConnect: true, maxRetriesPerRequest: 0 });
    cleanups.push(async () => raw.disconnect());
    await raw.connect();
    const denied = async (what: string, p: Promise<unknown>) => {
      const err = (await p.then(() => undefined, (e: unknown) => e)) as Error | undefined;
      expect(err?.message, `${what} was allowed`).toMatch(/NOPERM|no permissions|can't access/);
    };
    // It may read what it needs...
    expect(await raw.hget(keys.cacheVal, key)).not.toBeNull();
    expect(await raw.get(keys.served)).toBe('1/FP32');
    // ...and write none of it.
    await denied('HSET cache value', raw.hset(keys.cacheVal, key, '{"y":666}'));
    await denied('HDEL cache value', raw.hdel(keys.cacheVal, key));
    await denied('ZADD cache recency', raw.zadd(keys.cacheLru, 1, key));
    await denied('SET cache bytes', raw.set(keys.cacheBytes, '0'));
    await denied('HSET convicted', raw.hset(keys.convicted, key, '9'));
    await denied('SET shard count', raw.set(shardCountKey(model, PREFIX), '7'));
    await denied('SET served marker', raw.set(keys.served, '2/FP32'));
    await denied('SET cache epoch', raw.set(keys.cacheEpoch, '0'));
    await denied('INCR cache epoch', raw.incr(keys.cacheEpoch));
    // Not through a script either: a script's commands run under the caller's ACL.
    await denied('EVAL writing the cache', raw.eval(`return redis.call('HSET', '${keys.cacheVal}', '${key}', 'x')`, 0));
    await denied('EVAL declaring the cache', raw.eval(`return 1`, 1, keys.cacheVal));
    // No scripts or functions of its own that outlive the call.
    await denied('SCRIPT LOAD', raw.script('LOAD', 'return 1') as Promise<unknown>);
    await denied('FUNCTION LOAD', raw.call('FUNCTION', 'LOAD', "#!lua name=x\nredis.register_function('f', function() return 1 end)"));
    await denied('FLUSHALL', raw.flushall());
    expect(await redis.connect().hget(keys.cacheVal, key)).toBe('{"y":10}');

    // Clearing the cache is an operator action: typed refusal for a client, done by the worker role.
    const e = (await c.clearCache().catch((x: unknown) => x)) as InferqError;
    expect(e.code).toBe(ErrorCode.REDIS_PERMISSION_DENIED);
    expect(e.message).toMatch(/inferq clear-cache/);
    const p = spawnNode(CLIENT_CLI, ['clear-cache', '--model', model, '--prefix', PREFIX], { REDIS_URL: workerUrl(), INFERQ_LOG_LEVEL: 'silent' });
    expect((await p.exited).code, p.stderr()).toBe(0);
    expect(await redis.connect().hlen(keys.cacheVal)).toBe(0);
  }, 60_000);
});
