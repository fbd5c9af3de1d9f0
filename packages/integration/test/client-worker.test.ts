/**
 * InferenceClient + InferenceWorker in one process against a real Redis:
 * the semantics of one request path, each test in its own key prefix.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Queue } from 'bullmq';
import { ErrorCode, InferqError, modelKeys, readStats } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker, type InferenceWorkerOptions } from '@inferq/worker';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

type In = { x: number; fail?: boolean; sleep?: number };
type Out = { y: number };

let redis: TestRedis;
const open: Array<{ close?: () => Promise<void>; stop?: () => Promise<void> }> = [];

beforeAll(async () => {
  redis = await startTestRedis();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => (o.stop ? o.stop() : o.close?.())));
});
afterAll(() => redis.cleanup());

function setup(opts: {
  run?: (inputs: In[]) => Promise<ReadonlyArray<Out | Error>>;
  worker?: Partial<InferenceWorkerOptions<In, Out>>;
  client?: Partial<ConstructorParameters<typeof InferenceClient<In, Out>>[0]>;
  startWorker?: boolean;
}) {
  const prefix = redis.newPrefix();
  const model = 'sq';
  const seen: In[][] = [];
  const run =
    opts.run ??
    (async (inputs: In[]) => {
      const sleep = Math.max(0, ...inputs.map((i) => i.sleep ?? 0));
      if (sleep) await new Promise((r) => setTimeout(r, sleep));
      return inputs.map((i) => (i.fail ? new Error(`cannot square ${i.x}`) : { y: i.x * i.x }));
    });
  const worker = new InferenceWorker<In, Out>({
    redis: redis.url,
    model,
    prefix,
    run: async (inputs) => {
      seen.push(inputs);
      return run(inputs);
    },
    config: { maxBatchSize: 8, batchTimeoutMs: 20, numWorkers: 2 },
    ...opts.worker,
  } as InferenceWorkerOptions<In, Out>);
  const client = new InferenceClient<In, Out>({ redis: redis.url, model, prefix, ...opts.client });
  open.push(client, worker);
  return { worker, client, seen, prefix, model, start: () => worker.start() };
}

async function queueCounts(prefix: string, model: string) {
  const keys = modelKeys(model, prefix);
  const q = new Queue(keys.queueName, { connection: { host: '127.0.0.1', port: Number(new URL(redis.url).port) }, prefix: keys.queuePrefix });
  try {
    return await q.getJobCounts('wait', 'active', 'completed', 'failed', 'delayed', 'prioritized');
  } finally {
    await q.close();
  }
}

describe('request path', () => {
  it('returns each caller its own output, batched', async () => {
    const { client, start, seen } = setup({});
    await start();
    const rs = await client.inferBatch(Array.from({ length: 20 }, (_, i) => ({ x: i })));
    expect(rs.map((r) => r.output.y)).toEqual(Array.from({ length: 20 }, (_, i) => i * i));
    expect(rs.every((r) => !r.cached && r.latencyMs >= 0)).toBe(true);
    expect(Math.max(...seen.map((b) => b.length))).toBeGreaterThan(1);
    expect(Math.max(...seen.map((b) => b.length))).toBeLessThanOrEqual(8);
  });

  it('a cache hit never touches the queue', async () => {
    const { client, start, prefix, model, seen } = setup({});
    await start();
    await client.infer({ x: 3 });
    const before = await queueCounts(prefix, model);
    const calls = seen.length;
    const r = await client.infer({ x: 3 });
    expect(r).toMatchObject({ output: { y: 9 }, cached: true });
    expect(seen.length).toBe(calls);
    expect(await queueCounts(prefix, model)).toEqual(before);
  });

  it('useCache: false always computes and writes no cache entry', async () => {
    const { client, start, seen, prefix, model } = setup({});
    await start();
    await client.infer({ x: 4 }, { useCache: false });
    const r = await client.infer({ x: 4 }, { useCache: false });
    expect(r.cached).toBe(false);
    expect(seen.flat().filter((i) => i.x === 4)).toHaveLength(2);
    expect(await redis.connect().zcard(modelKeys(model, prefix).cacheLru)).toBe(0);
  });

  it('clearCache removes cached results so the model runs again', async () => {
    const { client, start, seen } = setup({});
    await start();
    await client.infer({ x: 5 });
    expect((await client.infer({ x: 5 })).cached).toBe(true);
    await client.clearCache();
    const r = await client.infer({ x: 5 });
    expect(r.cached).toBe(false);
    expect(seen.flat().filter((i) => i.x === 5)).toHaveLength(2);
  });

  it('identical requests in flight share one computation', async () => {
    const { client, start, seen } = setup({});
    await start();
    const rs = await Promise.all(Array.from({ length: 10 }, () => client.infer({ x: 7, sleep: 30 })));
    expect(rs.every((r) => r.output.y === 49)).toBe(true);
    expect(rs.filter((r) => r.coalesced)).toHaveLength(9);
    expect(seen.flat().filter((i) => i.x === 7)).toHaveLength(1);
  });
});

describe('errors', () => {
  it('an Error in one output slot fails only that request', async () => {
    const { client, start } = setup({});
    await start();
    const rs = await client.inferBatchSettled([{ x: 1 }, { x: 2, fail: true }, { x: 3 }]);
    expect(rs[0]).toMatchObject({ status: 'fulfilled', value: { output: { y: 1 } } });
    expect(rs[2]).toMatchObject({ status: 'fulfilled', value: { output: { y: 9 } } });
    const r1 = rs[1] as PromiseRejectedResult;
    expect(r1.status).toBe('rejected');
    expect(r1.reason).toBeInstanceOf(InferqError);
    expect(r1.reason.code).toBe(ErrorCode.MODEL_FAILED);
    expect(r1.reason.message).toContain('cannot square 2');
  });

  it('a throwing model fails every request of the batch with its message', async () => {
    const { client, start, prefix, model } = setup({ run: async () => { throw new Error('GPU on fire'); } });
    await start();
    const rs = await client.inferBatchSettled([{ x: 1 }, { x: 2 }, { x: 3 }]);
    for (const r of rs) {
      expect(r.status).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason as InferqError;
      expect(e.code).toBe(ErrorCode.MODEL_FAILED);
      expect(e.message).toContain('GPU on fire');
    }
    // Failures are not cached: the next identical request runs the model again.
    expect(await redis.connect().zcard(modelKeys(model, prefix).cacheLru)).toBe(0);
    const stats = await client.stats();
    expect(stats.errors).toBe(3);
  });

  it('a model returning the wrong number of outputs fails the batch, naming both lengths', async () => {
    const { client, start } = setup({ run: async (inputs) => inputs.slice(1).map((i) => ({ y: i.x })) });
    await start();
    const rs = await client.inferBatchSettled([{ x: 1 }, { x: 2 }]);
    for (const r of rs) {
      const e = (r as PromiseRejectedResult).reason as InferqError;
      expect(e.code).toBe(ErrorCode.MODEL_OUTPUT_MISMATCH);
      expect(e.message).toMatch(/given 2 inputs and returned 1 outputs/);
    }
  });

  it('a request past timeoutMs rejects with a typed timeout error and leaves nothing behind', async () => {
    const { client } = setup({}); // no worker started
    const t0 = Date.now();
    const err = (await client.infer({ x: 1 }, { timeoutMs: 150 }).catch((e: unknown) => e)) as InferqError;
    expect(err.code).toBe(ErrorCode.TIMEOUT);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    // No per-request listener or timer. The request owned its flight, so the client tracks it
    // until the flight closes in Redis (waiters elsewhere may depend on its job): then nothing is left.
    const table = (client as unknown as { table: { byId: Map<string, unknown>; byKey: Map<string, unknown> } }).table;
    for (let i = 0; i < 100 && table.byId.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(table.byId.size).toBe(0);
    expect(table.byKey.size).toBe(0);
  });

  it('bad input is rejected before anything is written to Redis', async () => {
    const { client, prefix } = setup({
      client: { inputSchema: z.object({ x: z.number(), pad: z.string().optional() }), maxInputBytes: 100 },
    });
    const conn = redis.connect();
    const cyclic: Record<string, unknown> = { x: 1 };
    cyclic.self = cyclic;
    const cases: Array<[unknown, string]> = [
      [{ x: 1n }, ErrorCode.INPUT_INVALID],
      [{ x: 'one' }, ErrorCode.INPUT_INVALID],
      [{ x: 1, pad: 'y'.repeat(200) }, ErrorCode.INPUT_TOO_LARGE],
    ];
    for (const [input, code] of cases) {
      const e = (await client.infer(input as In).catch((x: unknown) => x)) as InferqError;
      expect(e.code).toBe(code);
    }
    const noSchema = setup({}).client;
    for (const input of [{ x: () => 1 }, { x: NaN }, cyclic, { x: 2n }]) {
      const e = (await noSchema.infer(input as unknown as In).catch((x: unknown) => x)) as InferqError;
      expect(e.code).toBe(ErrorCode.INPUT_NOT_SERIALIZABLE);
    }
    await new Promise((r) => setTimeout(r, 50));
    // Only BullMQ's own queue metadata (written when the client's Queue connects), the model's
    // shard count (recorded by a worker or proposed by a client at start) and the clients' heartbeats may exist.
    expect((await conn.keys(`${prefix}:*`)).filter((k) => !k.endsWith(':meta') && !k.endsWith(':shards') && !k.endsWith(':shards:proposed') && !k.includes(':client:'))).toEqual([]);
  });
});

describe('lifecycle', () => {
  it('graceful stop finishes the jobs in hand: none lost', async () => {
    const { client, worker, start, seen } = setup({ worker: { config: { maxBatchSize: 4, batchTimeoutMs: 50, numWorkers: 1 } } });
    await start();
    const pending = client.inferBatch(Array.from({ length: 12 }, (_, i) => ({ x: i, sleep: 40 })));
    // wait until the worker holds jobs, then stop it
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await worker.stop();
    const rs = await pending;
    expect(rs.map((r) => r.output.y)).toEqual(Array.from({ length: 12 }, (_, i) => i * i));
  });

  it('a request enqueued while no worker runs is served by a worker started later', async () => {
    const { client, start } = setup({});
    const p = client.infer({ x: 11 });
    await new Promise((r) => setTimeout(r, 100));
    await start();
    expect((await p).output.y).toBe(121);
  });

  it('stats are shared and add up', async () => {
    const { client, start, model, prefix } = setup({});
    await start();
    await client.inferBatch([{ x: 1 }, { x: 2 }, { x: 1 }]);
    await client.infer({ x: 2 });
    const s = await client.stats();
    expect(s.totalRequests).toBe(4);
    expect(s.cacheHits).toBe(1);
    expect(s.cacheMisses).toBe(3);
    expect(s.coalesced).toBe(1);
    expect(s.batchItems).toBe(2);
    expect(s.cacheHitRate).toBeCloseTo(0.25);
    expect(await readStats(redis.connect(), model, prefix)).toEqual(s);
  });
});
