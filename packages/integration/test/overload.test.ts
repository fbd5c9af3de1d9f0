/**
 * Overload: a worker holds only what it can compute soon, so a backlog stays
 * in Redis where a worker started later takes its share.
 */
import { describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

const h = useTestRedis();

function worker(prefix: string, id: string) {
  const w = new InferenceWorker<{ x: number }, { y: number }>({
    redis: h.redis.url,
    model: 'backlog',
    prefix,
    workerId: id,
    config: { maxBatchSize: 32, numWorkers: 2, batchTimeoutMs: 2 },
    // 15 ms per batch of up to 32: 5,000 requests take one worker ~1.2 s.
    run: async (xs) => {
      await new Promise((r) => setTimeout(r, 15));
      return xs.map((x) => ({ y: x.x }));
    },
  });
  h.defer(() => w.stop());
  return w;
}

describe('overload', () => {
  it('a worker started during a backlog takes its share', async () => {
    const prefix = h.redis.newPrefix();
    const w1 = worker(prefix, 'w1');
    await w1.start();
    const client = new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'backlog', prefix });
    h.defer(() => client.close({ timeoutMs: 100 }));
    const pending = Promise.all(Array.from({ length: 5000 }, (_, i) => client.infer({ x: i }, { useCache: false, timeoutMs: 30_000 })));
    await new Promise((r) => setTimeout(r, 300));
    await worker(prefix, 'w2').start();
    const results = await pending;
    expect(results.every((r, i) => r.output.y === i)).toBe(true);
    const byW2 = results.filter((r) => r.worker === 'w2').length;
    // Before: w1 had pulled all 5,000 (jobConcurrency 64 envelopes of up to 256) and w2 answered none.
    expect(byW2).toBeGreaterThan(500);
  }, 60_000);
});

describe('bounded sizes', () => {
  it('envelopes are capped in bytes, and an output past maxOutputBytes fails its own request only', async () => {
    const prefix = h.redis.newPrefix();
    const w = new InferenceWorker<{ x: number; pad: string }, { y: string }>({
      redis: h.redis.url,
      model: 'sizes',
      prefix,
      maxOutputBytes: 1000,
      config: { batchTimeoutMs: 5 },
      run: async (xs) => xs.map((x) => ({ y: x.x === 3 ? 'z'.repeat(2000) : String(x.x) })),
    });
    h.defer(() => w.stop());
    const jobSizes: number[] = [];
    const { Queue } = await import('bullmq');
    const { modelKeys } = await import('@inferq/core');
    const keys = modelKeys('sizes', prefix);
    const q = new Queue(keys.queueName, { connection: { host: '127.0.0.1', port: Number(new URL(h.redis.url).port) }, prefix: keys.queuePrefix });
    h.defer(() => q.close());
    const client = new InferenceClient<{ x: number; pad: string }, { y: string }>({ redis: h.redis.url, model: 'sizes', prefix, maxEnvelopeBytes: 256 * 1024 });
    h.defer(() => client.close({ timeoutMs: 100 }));
    const pad = 'p'.repeat(100_000);
    const pending = Promise.allSettled(Array.from({ length: 10 }, (_, x) => client.infer({ x, pad }, { useCache: false })));
    // Look at the jobs before any worker takes them.
    for (let i = 0; i < 100 && jobSizes.length === 0; i++) {
      // Every job carries a priority (its class and fair rank), so it waits in BullMQ's prioritized set.
      const jobs = await q.getJobs(['wait', 'prioritized']);
      if (jobs.reduce((n, j) => n + (j.data as { items: unknown[] }).items.length, 0) === 10) for (const j of jobs) jobSizes.push(JSON.stringify(j.data).length);
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(jobSizes.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...jobSizes)).toBeLessThan(256 * 1024 + 110_000);
    await w.start();
    const outcomes = await pending;
    outcomes.forEach((o, x) => {
      if (x === 3) expect(o.status === 'rejected' && (o.reason as { code: string }).code).toBe('INFERQ_OUTPUT_TOO_LARGE');
      else expect(o.status === 'fulfilled' && o.value.output.y).toBe(String(x));
    });
  });
});

describe('maxQueueLength', () => {
  it('past maxQueueLength requests are refused at once, typed, with a retry hint, and nothing is written for them', async () => {
    const prefix = h.redis.newPrefix();
    const { modelKeys } = await import('@inferq/core');
    const keys = modelKeys('bounded', prefix);
    const conn = h.redis.connect();
    const a = new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'bounded', prefix, config: { maxQueueLength: 100 } });
    const b = new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'bounded', prefix, config: { maxQueueLength: 100 } });
    h.defer(() => a.close({ timeoutMs: 100 }), () => b.close({ timeoutMs: 100 }));
    // No worker yet: two clients together fill the queue.
    const first = Array.from({ length: 80 }, (_, x) => a.infer({ x }, { useCache: false, timeoutMs: 20_000 }));
    await new Promise((r) => setTimeout(r, 200));
    const refused: Array<{ code: string; retryAfterMs: number }> = [];
    const second = Array.from({ length: 50 }, (_, x) => b.infer({ x: 100 + x }, { timeoutMs: 20_000 }).catch((e: { code: string; retryAfterMs: number }) => void refused.push(e)));
    // The refused are answered at once, while the accepted wait for a worker.
    for (let i = 0; i < 100 && refused.length < 30; i++) await new Promise((r) => setTimeout(r, 20));
    expect(refused).toHaveLength(30);
    for (const err of refused) {
      expect(err.code).toBe('INFERQ_QUEUE_FULL');
      expect(err.retryAfterMs).toBeGreaterThan(0);
    }
    expect(await conn.zcard(keys.room)).toBe(100);
    // Nothing written for the refused: no flight of theirs.
    expect((await conn.keys(`${keys.root}:flight:*`)).length).toBe(20);
    const w = new InferenceWorker<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'bounded', prefix, config: { batchTimeoutMs: 2 }, run: async (xs) => xs.map((x) => ({ y: x.x })) });
    h.defer(() => w.stop());
    await w.start();
    const answered = await Promise.all(first);
    expect(answered.map((r) => r.output.y)).toEqual(Array.from({ length: 80 }, (_, x) => x));
    await Promise.all(second);
    expect(refused).toHaveLength(30);
    for (let i = 0; i < 50 && (await conn.zcard(keys.room)) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await conn.zcard(keys.room)).toBe(0); // every counted request gave its room back
    const again = await Promise.all(Array.from({ length: 50 }, (_, x) => b.infer({ x: 200 + x }, { useCache: false })));
    expect(again).toHaveLength(50);
  }, 30_000);

  it('a queue just found full refuses the next requests without a round trip, and asks Redis again once results free room', async () => {
    const prefix = h.redis.newPrefix();
    const { modelKeys } = await import('@inferq/core');
    const keys = modelKeys('fast', prefix);
    const conn = h.redis.connect();
    const c = new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'fast', prefix, config: { maxQueueLength: 4 } });
    h.defer(() => c.close({ timeoutMs: 100 }));
    const accepted = Array.from({ length: 4 }, (_, x) => c.infer({ x }, { useCache: false, timeoutMs: 20_000 }));
    await new Promise((r) => setTimeout(r, 200));
    // The round trip that finds the queue full...
    const first = (await c.infer({ x: 10 }, { useCache: false }).catch((e: unknown) => e)) as { code: string; details: Record<string, unknown> };
    expect(first.code).toBe('INFERQ_QUEUE_FULL');
    expect(first.details.cached).toBeUndefined();
    // ...then refusals from what it learned: settled before any Redis reply could arrive.
    const calls = Array.from({ length: 20 }, (_, x) => c.infer({ x: 20 + x }, { useCache: false }).catch((e: unknown) => e));
    const settledAt: number[] = [];
    calls.forEach((p) => void p.then(() => settledAt.push(1)));
    await Promise.resolve();
    await Promise.resolve();
    expect(settledAt).toHaveLength(20);
    for (const e of (await Promise.all(calls)) as Array<{ code: string; details: Record<string, unknown>; retryAfterMs: number }>) {
      expect(e.code).toBe('INFERQ_QUEUE_FULL');
      expect(e.details.cached).toBe(true);
      expect(e.retryAfterMs).toBeGreaterThan(0);
    }
    expect(await conn.zcard(keys.room)).toBe(4);
    // Results free room: the next request asks Redis again and is accepted.
    const w = new InferenceWorker<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'fast', prefix, config: { batchTimeoutMs: 2 }, run: async (xs) => xs.map((x) => ({ y: x.x })) });
    h.defer(() => w.stop());
    await w.start();
    expect((await Promise.all(accepted)).map((r) => r.output.y)).toEqual([0, 1, 2, 3]);
    expect((await c.infer({ x: 99 }, { useCache: false })).output.y).toBe(99);
  }, 30_000);
});
