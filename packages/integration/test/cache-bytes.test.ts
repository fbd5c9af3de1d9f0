/**
 * `cacheMaxBytes` end to end: a worker whose model returns large outputs,
 * clients asking for many of them, and a byte bound far below their sum.
 * The cache's bytes (its running total and what its value hash really holds)
 * stay under the bound at every sample, and every caller still gets its own
 * complete output, whether it was cached, evicted, or too large to cache.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { modelKeys } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

type In = { i: number; size: number };
type Out = { i: number; blob: string };

const MAX_BYTES = 64 * 1024;

let redis: TestRedis;
const open: Array<{ close?: () => Promise<void>; stop?: () => Promise<void> }> = [];

beforeAll(async () => {
  redis = await startTestRedis();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => (o.stop ? o.stop() : o.close?.())));
});
afterAll(() => redis.cleanup());

describe('cacheMaxBytes', () => {
  it('keeps the cache under the byte bound while every caller gets its large output', async () => {
    const prefix = redis.newPrefix();
    const model = 'big';
    const keys = modelKeys(model, prefix);
    const config = { cacheMaxBytes: MAX_BYTES, maxBatchSize: 8, batchTimeoutMs: 10 };
    const computed: number[] = [];
    const worker = new InferenceWorker<In, Out>({
      redis: redis.url,
      model,
      prefix,
      run: async (inputs) => {
        computed.push(...inputs.map((x) => x.i));
        return inputs.map((x) => ({ i: x.i, blob: String.fromCharCode(97 + (x.i % 26)).repeat(x.size) }));
      },
      config: { ...config, numWorkers: 2 },
    });
    const clients = [0, 1].map(() => new InferenceClient<In, Out>({ redis: redis.url, model, prefix, config }));
    open.push(...clients, worker);
    await worker.start();

    const conn = redis.connect();
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [total, stored] = await Promise.all([conn.get(keys.cacheBytes), storedBytes()]);
        samples.push(Number(total ?? 0), stored);
      }
    })();
    /** What the value hash holds: UTF-8 bytes of each cache key and output JSON. */
    async function storedBytes(): Promise<number> {
      const all = await conn.hgetallBuffer(keys.cacheVal);
      return Object.entries(all).reduce((sum, [k, v]) => sum + Buffer.byteLength(k) + v.length, 0);
    }

    // 80 distinct outputs of 4..12 KB (~640 KB in all, ten times the bound), from two clients,
    // each input asked twice; plus outputs larger than the bound by themselves.
    const inputs: In[] = Array.from({ length: 80 }, (_, i) => ({ i, size: 4000 + ((i * 997) % 8000) }));
    const tooLarge: In[] = [{ i: 1000, size: MAX_BYTES }, { i: 1001, size: 3 * MAX_BYTES }];
    const asked = [...inputs, ...tooLarge];
    const results = await Promise.all(
      [...asked, ...asked].map((input, n) => clients[n % 2]!.infer(input, { timeoutMs: 20_000 }).then((r) => ({ input, r }))),
    );
    // Afterwards: a fresh output that fits is cached (the bound did not stop caching), the
    // too-large ones never are.
    const fresh: In = { i: 2000, size: 5000 };
    await clients[0]!.infer(fresh);
    const repeats = await Promise.all([fresh, ...tooLarge].map((input) => clients[1]!.infer(input).then((r) => ({ input, r }))));
    sampling = false;
    await sampler;

    for (const { input, r } of [...results, ...repeats]) {
      expect(r.output.i).toBe(input.i);
      expect(r.output.blob).toHaveLength(input.size);
    }
    expect(repeats[0]!.r.cached).toBe(true);
    expect(repeats.slice(1).every(({ r }) => !r.cached)).toBe(true);
    expect(computed.filter((i) => i >= 1000).length).toBeGreaterThanOrEqual(4); // too large: computed each time

    expect(samples.length).toBeGreaterThan(0);
    expect(Math.max(...samples)).toBeLessThanOrEqual(MAX_BYTES);
    const [total, stored, entries] = [Number(await conn.get(keys.cacheBytes)), await storedBytes(), await conn.hlen(keys.cacheVal)];
    expect(total).toBe(stored);
    expect(total).toBeLessThanOrEqual(MAX_BYTES);
    expect(entries).toBeGreaterThan(2); // the bound evicts, it does not empty the cache
    expect(await conn.zcard(keys.cacheLru)).toBe(entries);
    for (const i of tooLarge) expect(computed.filter((c) => c === i.i).length).toBeGreaterThanOrEqual(2);

    // clearCache removes the total with the entries.
    await clients[0]!.clearCache();
    expect(await conn.exists(keys.cacheBytes, keys.cacheVal, keys.cacheLru)).toBe(0);
  });
});
