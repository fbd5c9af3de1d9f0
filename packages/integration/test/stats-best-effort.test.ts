/**
 * Stats are best effort: a corrupt stats field (a non-number written by hand
 * or by another program) never changes what callers receive or how often
 * the model runs, is logged once per interval rather than once per flush,
 * and is reported as such by `client.stats()`.
 */
import { describe, expect, it } from 'vitest';
import { collectingLogger } from './fixtures/collecting-logger.js';
import { modelKeys } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

const h = useTestRedis({ ownServer: true });


describe('stats are best effort', () => {
  it('a corrupt stats field changes no answer, no model run, and is reported, not logged per flush', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'corruptstats';
    const conn = h.redis.connect();
    await conn.hset(modelKeys(model, prefix).stats, 'batches', 'abc', 'requests', 'not a number');
    const seen: number[] = [];
    const worker = new InferenceWorker<{ x: number }, { y: number }>({
      redis: h.redis.url,
      model,
      prefix,
      config: { batchTimeoutMs: 5 },
      run: async (xs) => {
        seen.push(...xs.map((x) => x.x));
        return xs.map((x) => ({ y: x.x * 2 }));
      },
    });
    h.defer(() => worker.stop());
    await worker.start();
    const { logger, lines } = collectingLogger('error');
    const client = new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model, prefix, logger, statsFlushIntervalMs: 50 });
    h.defer(() => client.close({ timeoutMs: 100 }));
    const rs = await Promise.all([client.infer({ x: 1 }), client.infer({ x: 2 })]);
    expect(rs.map((r) => r.output.y)).toEqual([2, 4]);
    // Well past the first retry of a job whose delivery "failed" (backoff 200 ms).
    await new Promise((r) => setTimeout(r, 1500));
    expect(seen.sort()).toEqual([1, 2]);
    const stats = await client.stats();
    expect(stats.corruptFields.sort()).toEqual(['batches', 'requests']);
    // ~30 failed flushes in 1.5 s at 50 ms; logged once.
    expect(lines.filter((l) => l.includes('stats write failed')).length).toBeLessThanOrEqual(1);
  });
});
