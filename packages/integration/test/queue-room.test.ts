/**
 * The queue count that maxQueueLength bounds counts exactly the requests
 * enqueued and not yet answered: a request admitted (counted) whose callers
 * all gave up before it was enqueued gives its place back at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { modelKeys } from '@inferq/core';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(() => redis.cleanup());

describe('queue room', () => {
  it('a request whose callers gave up between admission and enqueue is not left counted', async () => {
    const prefix = redis.newPrefix();
    const model = 'room';
    const keys = modelKeys(model, prefix);
    const conn = redis.connect();
    // No worker: whatever is enqueued stays waiting, so the count must equal the items in the queue.
    const client = new InferenceClient<{ x: number }, unknown>({ redis: redis.url, model, prefix, config: { maxQueueLength: 100_000 } });
    try {
      await client.stats();
      // Timeouts of 0.2-2 ms: many callers give up while their request is between the stages.
      const outcomes = await Promise.allSettled(Array.from({ length: 400 }, (_, i) => client.infer({ x: i }, { useCache: false, timeoutMs: 0.2 + (i % 10) * 0.2 })));
      expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      let enqueued = 0;
      // Jobs wait in BullMQ's prioritized set (every job carries its class and fair rank).
      const queued = [...(await conn.lrange(keys.queue('wait'), 0, -1)), ...(await conn.zrange(keys.queue('prioritized'), 0, -1))];
      for (const id of queued) {
        const data = await conn.hget(keys.job(id), 'data');
        enqueued += (JSON.parse(data ?? '{"items":[]}') as { items: unknown[] }).items.length;
      }
      const counted = await conn.zcard(keys.room);
      expect({ counted, enqueued }).toEqual({ counted: enqueued, enqueued });
    } finally {
      await client.close({ timeoutMs: 100 });
    }
  }, 30_000);
});
