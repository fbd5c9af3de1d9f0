/**
 * The client's optional in-process result cache: a repeated input is
 * answered without a round trip, and every client drops it within about a
 * second of any clearCache() or of workers serving another model version.
 */
import { describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

const h = useTestRedis();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scriptCalls(): Promise<number> {
  const info = await h.redis.connect().info('commandstats');
  return [...info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

describe('in-process result cache', () => {
  it('answers a repeat without Redis, and follows clearCache and a model-version change within a tick or two', async () => {
    const prefix = h.redis.newPrefix();
    const seen: number[] = [];
    const worker = (version: string) => {
      const w = new InferenceWorker<{ x: number }, { y: number }>({
        redis: h.redis.url,
        model: 'local',
        prefix,
        modelVersion: version,
        config: { batchTimeoutMs: 2 },
        run: async (xs) => {
          seen.push(...xs.map((x) => x.x));
          return xs.map((x) => ({ y: x.x + 100 }));
        },
      });
      h.defer(() => w.stop());
      return w;
    };
    await worker('1').start();
    const a = new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'local', prefix, localCache: { ttlMs: 60_000 } });
    const b = new InferenceClient<{ x: number }, { y: number }>({ redis: h.redis.url, model: 'local', prefix });
    h.defer(() => a.close({ timeoutMs: 100 }), () => b.close({ timeoutMs: 100 }));
    expect((await a.infer({ x: 1 })).output.y).toBe(101);
    await sleep(1200); // a tick has read the epoch
    const before = await scriptCalls();
    const hit = await a.infer({ x: 1 });
    expect(hit).toMatchObject({ output: { y: 101 }, cached: true });
    hit.output.y = -1; // a caller's mutation does not reach the cache
    expect((await a.infer({ x: 1 })).output.y).toBe(101);
    expect(await scriptCalls()).toBe(before); // no round trip for either
    // Another client clears the cache: within ~2 ticks, a's next request goes to Redis and the model again.
    await b.clearCache();
    await sleep(2200);
    expect((await a.infer({ x: 1 })).cached).toBe(false);
    expect(seen.filter((x) => x === 1)).toHaveLength(2);
    // Workers start serving another model version: a drops its in-process entries.
    expect((await a.infer({ x: 2 })).output.y).toBe(102);
    await worker('2').start();
    await sleep(2200);
    const calls = await scriptCalls();
    await a.infer({ x: 2 }).catch(() => undefined); // answered from Redis (or refused by the v2 worker), not from memory
    expect(await scriptCalls()).toBeGreaterThan(calls);
  }, 30_000);
});
