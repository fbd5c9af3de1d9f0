/**
 * Bad models: an input that makes the model throw fails alone (the batch is
 * split until it is found), and a hung model call makes its requests
 * retryable on another worker while the stuck worker takes no new job.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, readStats, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker, type InferenceWorkerOptions } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

type In = { x: number; poison?: boolean; hang?: boolean };
type Out = { y: number };

const h = useTestRedis();

async function worker(prefix: string, model: string, o: Partial<InferenceWorkerOptions<In, Out>>) {
  const w = new InferenceWorker<In, Out>({ redis: h.redis.url, model, prefix, run: async (xs) => xs.map((x) => ({ y: x.x })), ...o });
  h.defer(() => w.stop());
  await w.start();
  return w;
}

function client(prefix: string, model: string) {
  const c = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
  h.defer(() => c.close({ timeoutMs: 100 }));
  return c;
}

describe('bad models', () => {
  it('an input that makes the model throw fails alone; the rest of its batch is answered', async () => {
    const prefix = h.redis.newPrefix();
    const calls: number[] = [];
    await worker(prefix, 'poison', {
      config: { maxBatchSize: 16, batchTimeoutMs: 100, numWorkers: 1 },
      run: async (xs) => {
        calls.push(xs.length);
        if (xs.some((x) => x.poison)) throw new Error('poisoned');
        return xs.map((x) => ({ y: x.x }));
      },
    });
    const c = client(prefix, 'poison');
    const outcomes = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => c.infer({ x: i, poison: i === 11 }, { useCache: false })));
    outcomes.forEach((o, i) => {
      if (i === 11) expect(o.status === 'rejected' && (o.reason as InferqError).code).toBe(ErrorCode.MODEL_FAILED);
      else expect(o.status === 'fulfilled' && o.value.output.y).toBe(i);
    });
    expect(calls[0]).toBe(16); // one batch first
    const stats = await c.stats();
    expect(stats.poisonSplits).toBe(calls.length - 1);
    expect(stats.poisonSplits).toBeLessThanOrEqual(8); // 2 * log2(16)
  });

  it('a hung model call: its requests are answered by another worker; the stuck one takes no jobs until it returns', async () => {
    const prefix = h.redis.newPrefix();
    let release!: () => void;
    const hung = new Promise<void>((r) => (release = r));
    const stuck = await worker(prefix, 'hung', {
      workerId: 'stuck',
      modelTimeoutMs: 300,
      config: { maxBatchSize: 4, batchTimeoutMs: 5, numWorkers: 1 },
      run: async (xs) => {
        if (xs.some((x) => x.hang)) await hung;
        return xs.map((x) => ({ y: x.x }));
      },
    });
    const c = client(prefix, 'hung');
    const t0 = Date.now();
    const pending = c.infer({ x: 7, hang: true }, { useCache: false, timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 500)); // the stuck worker took it and timed out
    await worker(prefix, 'hung', { workerId: 'healthy', config: { batchTimeoutMs: 5 } });
    const r = await pending;
    expect(r.output.y).toBe(7);
    expect(r.worker).toBe('healthy');
    expect(Date.now() - t0).toBeLessThan(5000);
    // While stuck, the stuck worker takes nothing: every further request is answered by the other.
    const more = await Promise.all(Array.from({ length: 20 }, (_, i) => c.infer({ x: i }, { useCache: false })));
    expect(more.every((m) => m.worker === 'healthy')).toBe(true);
    release();
    expect((await readStats(h.redis.connect(), 'hung', prefix)).modelTimeouts).toBeGreaterThanOrEqual(1);
    expect(stuck.running).toBe(true);
  }, 30_000);
});
