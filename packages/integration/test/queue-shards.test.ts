/**
 * Queue shards on one Redis (the same code paths as on a cluster, which
 * redis-cluster.test.ts covers): requests spread over the shards by cache
 * key, every one answered; the cache is split; stats and the operator's
 * snapshot merge the shards; a process with another shard count is refused
 * with a typed error; `set-shards` refuses while work is in flight. And the
 * settle script's rule that every key it writes is declared: a waiter whose
 * inbox was not declared makes it write nothing and name the client, and
 * `execSettle` sends it again with that client.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ErrorCode, type InferqError } from '@inferq/core';
import {
  WaiterClients,
  appendSettle,
  claimFlights,
  execSettle,
  parseSettleReply,
  readShardCount,
  setShardCount,
  shardKeys,
  shardOf,
  successPayload,
  takeInbox,
} from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { ModelReader } from '../../client/src/model-snapshot.js';
import { InferenceWorker } from '@inferq/worker';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

type In = { x: number };
type Out = { y: number };

let redis: TestRedis;
let conn: Redis;
const cleanups: Array<() => Promise<unknown>> = [];
let n = 0;
const fresh = () => `shards${process.pid}-${n++}`;

beforeAll(async () => {
  redis = await startTestRedis({ ownServer: true });
  conn = new Redis(redis.url);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(async () => {
  conn?.disconnect();
  await redis?.cleanup();
});

function client(prefix: string, model: string, queueShards: number, extra: Record<string, unknown> = {}) {
  const c = new InferenceClient<In, Out>({ redis: redis.url, model, prefix, queueShards, ...extra });
  cleanups.push(() => c.close({ timeoutMs: 200 }));
  return c;
}

function worker(prefix: string, model: string, queueShards: number, config: Record<string, unknown> = {}) {
  const w = new InferenceWorker<In, Out>({
    redis: redis.url,
    model,
    prefix,
    queueShards,
    run: async (xs) => xs.map((i) => ({ y: i.x * i.x })),
    config: { batchTimeoutMs: 2, ...config },
    stopTimeoutMs: 2000,
  });
  cleanups.push(() => w.stop());
  return w;
}

describe('queueShards on one Redis', () => {
  it('answers every request, each shard holding its part of the cache, stats merged', async () => {
    const prefix = fresh();
    const model = 'sq';
    const w = worker(prefix, model, 3, { cacheMaxSize: 30 });
    await w.start();
    const c = client(prefix, model, 3);
    // 90 distinct inputs, then all of them again (hits), and 20 uncached requests.
    const xs = Array.from({ length: 90 }, (_, i) => i);
    const first = await Promise.all(xs.map((x) => c.infer({ x })));
    expect(first.map((r) => r.output.y)).toEqual(xs.map((x) => x * x));
    const again = await Promise.all(xs.map((x) => c.infer({ x })));
    expect(again.map((r) => r.output.y)).toEqual(xs.map((x) => x * x));
    const uncached = await Promise.all(xs.slice(0, 20).map((x) => c.infer({ x }, { useCache: false })));
    expect(uncached.map((r) => r.output.y)).toEqual(xs.slice(0, 20).map((x) => x * x));

    const shards = shardKeys(model, prefix, 3);
    expect(new Set(shards.map((k) => k.root)).size).toBe(3);
    // Each shard got work and holds at most its part of cacheMaxSize (30 / 3).
    for (const k of shards) {
      const entries = await conn.zcard(k.cacheLru);
      expect(entries).toBeGreaterThan(0);
      expect(entries).toBeLessThanOrEqual(10);
    }
    const stats = await c.stats();
    expect(stats.totalRequests).toBe(200);
    expect(stats.cacheHits).toBeGreaterThan(0);
    // The operator's snapshot (inferq stats / metrics / dashboard) sums the shards.
    const reader = new ModelReader(conn, model, prefix);
    cleanups.push(() => reader.close());
    const snap = await reader.snapshot();
    let cached = 0;
    for (const k of shards) cached += await conn.zcard(k.cacheLru);
    expect(snap.cacheEntries).toBe(cached);
    expect(await reader.clientCount()).toBe(1);
    expect(await readShardCount(conn, model, prefix)).toBe(3);
  });

  it('routes a request by its cache key: identical inputs meet in one shard and share one computation', async () => {
    const prefix = fresh();
    const model = 'sq';
    const a = client(prefix, model, 4);
    const b = client(prefix, model, 4);
    // Both clients' requests are in flight before any worker runs: one computes, the other joins.
    const pa = a.infer({ x: 7 });
    const pb = b.infer({ x: 7 });
    await new Promise((r) => setTimeout(r, 200));
    const w = worker(prefix, model, 4);
    await w.start();
    const [ra, rb] = await Promise.all([pa, pb]);
    expect(ra.output.y).toBe(49);
    expect(rb.output.y).toBe(49);
    expect([ra.coalesced, rb.coalesced].filter(Boolean)).toHaveLength(1);
    expect((await a.stats()).totalBatches).toBe(1);
  });

  it('refuses a client or worker with another shard count, typed, before it takes or sends work', async () => {
    const prefix = fresh();
    const model = 'sq';
    const c3 = client(prefix, model, 3);
    const w = worker(prefix, model, 3);
    await w.start();
    expect((await c3.infer({ x: 2 })).output.y).toBe(4);

    const c2 = client(prefix, model, 2, { connectTimeoutMs: 2000 });
    const e = (await c2.infer({ x: 3 }).catch((x: unknown) => x)) as InferqError;
    expect(e.code).toBe(ErrorCode.QUEUE_SHARDS_MISMATCH);
    expect(e.message).toMatch(/queueShards 3/);
    const w1 = worker(prefix, model, 1);
    const we = (await w1.start().catch((x: unknown) => x)) as InferqError;
    expect(we.code).toBe(ErrorCode.QUEUE_SHARDS_MISMATCH);
  });

  it('set-shards refuses while a client is alive or a job waits, and changes the count once drained', async () => {
    const prefix = fresh();
    const model = 'sq';
    const c = client(prefix, model, 2);
    const p = c.infer({ x: 5 }, { timeoutMs: 20_000 }); // no worker yet: its job waits
    await new Promise((r) => setTimeout(r, 300));
    const e = (await setShardCount(conn, model, prefix, 4).catch((x: unknown) => x)) as InferqError;
    expect(e.code).toBe(ErrorCode.QUEUE_SHARDS_MISMATCH);
    expect(e.message).toMatch(/1 job\(s\) and 1 live client/);
    const w = worker(prefix, model, 2);
    await w.start();
    expect((await p).output.y).toBe(25);
    await w.stop();
    await c.close();
    // The heartbeat (TTL 3 s) is deleted by close; the queue is empty.
    await setShardCount(conn, model, prefix, 4);
    expect(await readShardCount(conn, model, prefix)).toBe(4);
    const w4 = worker(prefix, model, 4);
    await w4.start();
    const c4 = client(prefix, model, 4);
    expect((await c4.infer({ x: 6 })).output.y).toBe(36);
  });

  it('spreads requests evenly: shardOf on uniform cache keys', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[shardOf(i.toString(16).padStart(8, '0').repeat(8).split('').reverse().join(''), 3, i)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(700);
  });
});

describe('the settle script declares every key it writes', () => {
  const settleOptions = { maxSize: 100, maxBytes: 1 << 20, cacheTtlMs: 0, inboxTtlMs: 60_000, doneTtlMs: 60_000 };

  async function flightWithWaiter(prefix: string) {
    const [keys] = shardKeys('sq', prefix, 1);
    const k = keys!;
    const key = 'a'.repeat(64);
    const deadline = Date.now() + 60_000;
    // Client A owns the flight of `key`; client B joins it.
    const [own] = await claimFlights(conn, k, 'clientA', [{ id: 'clientA.1', key, deadline }]);
    expect(own?.kind).toBe('owner');
    const [join] = await claimFlights(conn, k, 'clientB', [{ id: 'clientB.1', key, deadline }]);
    expect(join?.kind).toBe('joined');
    return { keys: k, key };
  }

  it('writes nothing and names the client when a waiter inbox was not declared', async () => {
    const prefix = fresh();
    const { keys, key } = await flightWithWaiter(prefix);
    const pipeline = conn.pipeline();
    appendSettle(pipeline, keys, [{ requestId: 'clientA.1', client: 'clientA', cacheKey: key, payload: successPayload('{"y":1}', 'w', 1, false), cacheValue: '{"y":1}' }], settleOptions);
    const [[err, reply] = [null, null]] = (await pipeline.exec()) ?? [];
    expect(err).toBeNull();
    expect(parseSettleReply(reply)).toEqual({ missing: ['clientB'] });
    // Nothing was written: no inbox, no cache entry, the flight still open.
    expect(await conn.exists(keys.inbox('clientA'), keys.inbox('clientB'), keys.cacheVal)).toBe(0);
    expect(await conn.exists(keys.flight(key))).toBe(1);
  });

  it('execSettle sends the call again with the missing client: both callers answered, the client remembered', async () => {
    const prefix = fresh();
    const { keys, key } = await flightWithWaiter(prefix);
    const known = new WaiterClients();
    await execSettle(conn, keys, [{ requestId: 'clientA.1', client: 'clientA', cacheKey: key, payload: successPayload('{"y":1}', 'w', 1, false), cacheValue: '{"y":1}' }], settleOptions, known);
    expect(await takeInbox(conn, keys, 'clientA', 10, 60_000)).toHaveLength(1);
    const b = await takeInbox(conn, keys, 'clientB', 10, 60_000);
    expect(b).toHaveLength(1);
    expect(b[0]).toMatch(/^clientB\.1 /);
    expect(await conn.exists(keys.flight(key))).toBe(0);
    expect(known.list()).toEqual(['clientB']);
  });
});
