import { afterEach, describe, expect, it } from 'vitest';
import type { OptimizationConfigInput } from '../src/config.js';
import { ClosedError, InputNotSerializableError, ModelError, ModelOutputMismatchError, TimeoutError } from '../src/errors.js';
import { InferenceOptimizer } from '../src/inference-optimizer.js';
import type { BatchProcessor } from '../src/request-batcher.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A model that doubles `x` and records every call; `gate` (when set) holds each call until released. */
function countingModel(gate?: Promise<void>): { calls: unknown[][]; model: BatchProcessor<{ x: number }, number> } {
  const calls: unknown[][] = [];
  return {
    calls,
    model: async (inputs) => {
      calls.push(inputs);
      if (gate) await gate;
      return inputs.map((i) => i.x * 2);
    },
  };
}

const opened: InferenceOptimizer<unknown, unknown>[] = [];

function optimizer<I, O>(model: BatchProcessor<I, O>, config: OptimizationConfigInput = {}): InferenceOptimizer<I, O> {
  const o = new InferenceOptimizer<I, O>({ model, modelName: 'test-model', config: { batchTimeoutMs: 0, ...config } });
  opened.push(o as InferenceOptimizer<unknown, unknown>);
  return o;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.close()));
});

describe('InferenceOptimizer caching', () => {
  it('computes a miss once and answers the same input from the cache', async () => {
    const { calls, model } = countingModel();
    const o = optimizer(model);
    const first = await o.infer({ x: 21 });
    expect(first).toMatchObject({ output: 42, cached: false });
    expect(first.latencyMs).toBeGreaterThanOrEqual(0);
    const second = await o.infer({ x: 21 });
    expect(second).toMatchObject({ output: 42, cached: true });
    expect(calls).toHaveLength(1);
    expect(o.stats).toMatchObject({ totalRequests: 2, cacheHits: 1, cacheMisses: 1, cacheHitRate: 0.5 });
  });

  it('keys by canonical JSON, so key order does not matter', async () => {
    const calls: unknown[] = [];
    const o = optimizer<Record<string, number>, number>((inputs) => {
      calls.push(...inputs);
      return inputs.map(() => 1);
    });
    await o.infer({ a: 1, b: 2 });
    expect(await o.infer({ b: 2, a: 1 })).toMatchObject({ cached: true });
    expect(calls).toHaveLength(1);
  });

  it('with caching disabled every request reaches the model', async () => {
    const { calls, model } = countingModel();
    const o = optimizer(model, { enableCaching: false });
    expect(await o.infer({ x: 1 })).toMatchObject({ output: 2, cached: false });
    expect(await o.infer({ x: 1 })).toMatchObject({ output: 2, cached: false });
    expect(calls).toHaveLength(2);
    expect(o.stats).toMatchObject({ totalRequests: 2, cacheHits: 0, cacheMisses: 0, cacheHitRate: 0 });
  });

  it('useCache: false skips the cache for that call only', async () => {
    const { calls, model } = countingModel();
    const o = optimizer(model);
    await o.infer({ x: 1 });
    expect(await o.infer({ x: 1 }, { useCache: false })).toMatchObject({ output: 2, cached: false });
    expect(calls).toHaveLength(2);
    expect(await o.infer({ x: 1 })).toMatchObject({ cached: true });
  });

  it('identical concurrent requests share one computation', async () => {
    const gate = deferred();
    const { calls, model } = countingModel(gate.promise);
    const o = optimizer(model);
    const same = Array.from({ length: 5 }, () => o.infer({ x: 7 }));
    const other = o.infer({ x: 8 });
    gate.resolve();
    const results = await Promise.all(same);
    expect(results.map((r) => r.output)).toEqual([14, 14, 14, 14, 14]);
    expect((await other).output).toBe(16);
    expect(calls.flat()).toEqual([{ x: 7 }, { x: 8 }]); // the model saw each input once
    expect(o.stats).toMatchObject({ totalRequests: 6, cacheMisses: 6, cacheHits: 0 });
  });

  it('clearCache() empties the cache', async () => {
    const { calls, model } = countingModel();
    const o = optimizer(model);
    await o.infer({ x: 1 });
    o.clearCache();
    expect(await o.infer({ x: 1 })).toMatchObject({ cached: false });
    expect(calls).toHaveLength(2);
  });
});

describe('InferenceOptimizer errors', () => {
  it('a model that throws rejects with ModelError, and nothing is cached', async () => {
    let fail = true;
    const o = optimizer<{ x: number }, number>((inputs) => {
      if (fail) throw new Error('weights not loaded');
      return inputs.map((i) => i.x);
    });
    const err = await o.infer({ x: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toBe('weights not loaded');
    fail = false;
    expect(await o.infer({ x: 1 })).toMatchObject({ output: 1, cached: false });
  });

  it('an Error in one output slot fails only that request', async () => {
    const o = optimizer<{ x: number }, number>((inputs) => inputs.map((i) => (i.x < 0 ? new Error('negative') : i.x)), {
      maxBatchSize: 2,
    });
    const [good, bad] = await Promise.allSettled([o.infer({ x: 3 }), o.infer({ x: -3 })]);
    expect(good).toMatchObject({ status: 'fulfilled', value: { output: 3 } });
    expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(ModelError);
  });

  it.each([
    ['a function', () => 1],
    ['a BigInt', { n: 10n }],
    ['a cycle', (() => { const a: Record<string, unknown> = {}; a['self'] = a; return a; })()],
    ['NaN', { x: Number.NaN }],
  ])('rejects %s with InputNotSerializableError without calling the model', async (_what, input) => {
    const { calls, model } = countingModel();
    const o = optimizer(model as BatchProcessor<unknown, number>);
    await expect(o.infer(input)).rejects.toBeInstanceOf(InputNotSerializableError);
    await expect(o.infer(input, { useCache: false })).rejects.toBeInstanceOf(InputNotSerializableError);
    await expect(o.inferBatch([{ x: 1 }, input])).rejects.toBeInstanceOf(InputNotSerializableError);
    expect(calls).toHaveLength(0);
    expect(o.stats.totalRequests).toBe(0);
  });

  it('a request that outlives timeoutMs rejects with TimeoutError; with caching its result still fills the cache', async () => {
    const gate = deferred();
    const { calls, model } = countingModel(gate.promise);
    const o = optimizer(model);
    await expect(o.infer({ x: 5 }, { timeoutMs: 20 })).rejects.toBeInstanceOf(TimeoutError);
    gate.resolve();
    expect((await o.infer({ x: 5 })).output).toBe(10); // joins the computation, or hits the cache it filled
    expect(await o.infer({ x: 5 })).toMatchObject({ output: 10, cached: true });
    expect(calls).toHaveLength(1);
  });

  it('without caching, a request that times out before dispatch never reaches the model', async () => {
    const { calls, model } = countingModel();
    const o = optimizer(model, { enableCaching: false, batchTimeoutMs: 60_000 });
    await expect(o.infer({ x: 5 }, { timeoutMs: 20 })).rejects.toBeInstanceOf(TimeoutError);
    await o.close();
    expect(calls).toHaveLength(0);
  });

  it('close() finishes pending requests, then rejects new ones with ClosedError', async () => {
    const { model } = countingModel();
    const o = optimizer(model, { batchTimeoutMs: 60_000 });
    const pending = o.infer({ x: 2 });
    await o.close();
    expect((await pending).output).toBe(4);
    await expect(o.infer({ x: 3 })).rejects.toBeInstanceOf(ClosedError);
    await expect(o.inferBatch([{ x: 3 }])).rejects.toBeInstanceOf(ClosedError);
  });
});

describe('InferenceOptimizer.inferBatch', () => {
  it('is one direct model call, whatever maxBatchSize says, and bypasses the cache', async () => {
    const { calls, model } = countingModel();
    const o = optimizer(model, { maxBatchSize: 4 });
    const inputs = Array.from({ length: 10 }, (_, x) => ({ x }));
    expect(await o.inferBatch(inputs)).toEqual(inputs.map((i) => i.x * 2));
    expect(calls).toEqual([inputs]);
    expect(await o.infer({ x: 1 })).toMatchObject({ cached: false }); // inferBatch did not fill the cache
    expect(await o.inferBatch([])).toEqual([]);
    expect(calls).toHaveLength(2);
  });

  it('rejects on a wrong output count, a throwing model, or an Error in any slot', async () => {
    const wrong = optimizer<number, number>(() => [1]);
    await expect(wrong.inferBatch([1, 2])).rejects.toBeInstanceOf(ModelOutputMismatchError);
    const throwing = optimizer<number, number>(() => {
      throw new Error('boom');
    });
    await expect(throwing.inferBatch([1])).rejects.toThrow(ModelError);
    const slot = optimizer<number, number>((xs) => xs.map((x) => (x === 2 ? new Error('bad slot') : x)));
    const err = await slot.inferBatch([1, 2, 3]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).details).toMatchObject({ index: 1 });
  });
});

describe('InferenceOptimizer stats', () => {
  it('counts requests, batches, average batch size and latency percentiles', async () => {
    const { model } = countingModel();
    const o = optimizer(model, { maxBatchSize: 4 });
    expect(o.stats).toEqual({
      totalRequests: 0,
      totalBatches: 0,
      cacheHits: 0,
      cacheMisses: 0,
      cacheHitRate: 0,
      avgLatencyMs: 0,
      avgBatchSize: 0,
      p50LatencyMs: 0,
      p95LatencyMs: 0,
      p99LatencyMs: 0,
    });
    // Six distinct inputs in one tick: a full batch of 4 at once, then 2 on the next macrotask.
    await Promise.all(Array.from({ length: 6 }, (_, x) => o.infer({ x })));
    await o.infer({ x: 0 }); // a hit
    await o.inferBatch([{ x: 10 }, { x: 11 }]); // one more model call of 2
    const s = o.stats;
    expect(s).toMatchObject({ totalRequests: 7, totalBatches: 3, cacheHits: 1, cacheMisses: 6, avgBatchSize: 8 / 3 });
    expect(s.cacheHitRate).toBeCloseTo(1 / 7, 12);
    expect(s.avgLatencyMs).toBeGreaterThanOrEqual(0);
    expect(s.p50LatencyMs).toBeLessThanOrEqual(s.p95LatencyMs);
    expect(s.p95LatencyMs).toBeLessThanOrEqual(s.p99LatencyMs);
  });
});
