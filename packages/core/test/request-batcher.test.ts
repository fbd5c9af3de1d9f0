import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClosedError, ConfigError, DeadlineExceededError, ModelError, ModelOutputMismatchError, NotStartedError, TimeoutError } from '../src/errors.js';
import { RequestBatcher, type BatchProcessor, type RequestBatcherOptions } from '../src/request-batcher.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A processor that doubles its inputs and remembers every batch it saw. */
function doubling(): { batches: number[][]; process: BatchProcessor<number, number> } {
  const batches: number[][] = [];
  return {
    batches,
    process: (xs) => {
      batches.push([...xs]);
      return xs.map((x) => x * 2);
    },
  };
}

const started: RequestBatcher<unknown, unknown>[] = [];

function batcher<I, O>(options: RequestBatcherOptions<I, O>): RequestBatcher<I, O> {
  const b = new RequestBatcher<I, O>(options).start();
  started.push(b as RequestBatcher<unknown, unknown>);
  return b;
}

/** Lets queued macrotasks (setImmediate) and their microtasks run. */
const ticks = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
};

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(started.splice(0).map((b) => b.stop({ timeoutMs: 1000 })));
});

describe('RequestBatcher dispatch', () => {
  it('dispatches as soon as maxBatchSize items are pending, without waiting for the timeout', async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 4, batchTimeoutMs: 60_000 });
    const results = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((x) => b.submit(x)));
    expect(results).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
    expect(batches).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
  });

  it('with batchTimeoutMs 50, three items submitted together form one batch', async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 10, batchTimeoutMs: 50 });
    expect(await Promise.all([b.submit(1), b.submit(2), b.submit(3)])).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('bounds the age of the OLDEST pending item, not the time since the last dispatch', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'] });
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 10, batchTimeoutMs: 50 });

    const a = b.submit(1); // t = 0
    await vi.advanceTimersByTimeAsync(30);
    const c = b.submit(2); // t = 30: joins, does not restart the clock
    await vi.advanceTimersByTimeAsync(19); // t = 49
    expect(batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1); // t = 50: the first item is 50 ms old
    expect(batches).toEqual([[1, 2]]);
    expect(await Promise.all([a, c])).toEqual([2, 4]);

    await vi.advanceTimersByTimeAsync(10); // t = 60
    const d = b.submit(3);
    await vi.advanceTimersByTimeAsync(40); // t = 100
    const e = b.submit(4);
    await vi.advanceTimersByTimeAsync(9); // t = 109
    expect(batches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // t = 110: item 3 is 50 ms old
    expect(batches).toEqual([[1, 2], [3, 4]]);
    expect(await Promise.all([d, e])).toEqual([6, 8]);
  });

  it("batchPolicy 'eager': an idle model gets a lone item at once; while it is busy, batches form", async () => {
    const gate = deferred();
    const batches: number[][] = [];
    const b = batcher<number, number>({
      maxBatchSize: 8,
      batchTimeoutMs: 60_000,
      numWorkers: 1,
      batchPolicy: 'eager',
      process: async (xs) => {
        batches.push([...xs]);
        if (batches.length === 1) await gate.promise;
        return xs.map((x) => x * 2);
      },
    });
    // Idle model: the lone item (and whatever arrived in the same tick) goes out on the next macrotask.
    const first = [b.submit(1), b.submit(2)];
    await ticks();
    expect(batches).toEqual([[1, 2]]);
    // Busy model: new items wait and form one batch, dispatched when the model is free again.
    const more = [3, 4, 5].map((x) => b.submit(x));
    await ticks();
    expect(batches).toHaveLength(1);
    gate.resolve();
    expect(await Promise.all([...first, ...more])).toEqual([2, 4, 6, 8, 10]);
    expect(batches).toEqual([[1, 2], [3, 4, 5]]);
  });

  it("batchPolicy 'timeout' (default) keeps the seed's rule: a lone item waits for batchTimeoutMs", async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 8, batchTimeoutMs: 60_000 });
    void b.submit(1);
    await ticks();
    expect(batches).toEqual([]);
    expect(b.options.batchPolicy).toBe('timeout');
  });

  it('batchTimeoutMs 0 batches the items of one tick together and dispatches on the next macrotask', async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 10, batchTimeoutMs: 0 });
    const first = [1, 2, 3, 4, 5].map((x) => b.submit(x));
    expect(batches).toEqual([]); // not dispatched inside submit()
    await Promise.all(first);
    const second = [6, 7].map((x) => b.submit(x));
    await Promise.all(second);
    expect(batches).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7],
    ]);
  });

  it('never runs more than numWorkers batches; items accumulate and go out when a batch finishes', async () => {
    const gates: Deferred<void>[] = [];
    const batches: number[][] = [];
    let running = 0;
    let maxRunning = 0;
    const b = batcher<number, number>({
      maxBatchSize: 4,
      batchTimeoutMs: 0,
      numWorkers: 2,
      process: async (xs) => {
        batches.push([...xs]);
        running++;
        maxRunning = Math.max(maxRunning, running);
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
        running--;
        return xs.map((x) => x * 2);
      },
    });

    const all: Promise<number>[] = [];
    all.push(...[1, 2, 3].map((x) => b.submit(x)));
    await ticks();
    all.push(...[4, 5, 6].map((x) => b.submit(x)));
    await ticks();
    all.push(...[7, 8, 9, 10, 11].map((x) => b.submit(x)));
    await ticks();
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(b.stats).toMatchObject({ inFlight: 2, pending: 5 });

    gates[0]!.resolve(); // a worker frees: a full batch is waiting, it goes at once
    await vi.waitFor(() => expect(batches).toHaveLength(3));
    expect(batches[2]).toEqual([7, 8, 9, 10]);
    await ticks();
    expect(batches).toHaveLength(3); // [11] waits: both workers busy

    gates[1]!.resolve();
    await vi.waitFor(() => expect(batches).toHaveLength(4));
    expect(batches[3]).toEqual([11]);
    gates[2]!.resolve();
    gates[3]!.resolve();
    expect(await Promise.all(all)).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]);
    expect(maxRunning).toBe(2);
  });

  it('submitMany schedules several items in one call and keeps their order', async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 3, batchTimeoutMs: 0 });
    expect(await Promise.all(b.submitMany([1, 2, 3, 4, 5]))).toEqual([2, 4, 6, 8, 10]);
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('calls onBatch with size, duration and failures after each batch', async () => {
    const infos: { size: number; failed: number }[] = [];
    const b = batcher<number, number>({
      maxBatchSize: 2,
      batchTimeoutMs: 0,
      process: (xs) => xs.map((x) => (x < 0 ? new Error('negative') : x)),
      onBatch: ({ size, failed, durationMs }) => {
        expect(durationMs).toBeGreaterThanOrEqual(0);
        infos.push({ size, failed });
      },
    });
    await Promise.allSettled(b.submitMany([1, -1, 2]));
    await ticks();
    expect(infos).toEqual([
      { size: 2, failed: 1 },
      { size: 1, failed: 0 },
    ]);
  });
});

describe('RequestBatcher results and errors', () => {
  it('a processor that throws rejects every item of the batch with ModelError carrying the cause', async () => {
    const boom = new Error('CUDA out of memory');
    const b = batcher<number, number>({
      maxBatchSize: 3,
      batchTimeoutMs: 0,
      process: () => {
        throw boom;
      },
    });
    const results = await Promise.allSettled(b.submitMany([1, 2, 3]));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as ModelError;
      expect(err).toBeInstanceOf(ModelError);
      expect(err.message).toBe('CUDA out of memory');
      expect(err.cause).toBe(boom);
    }
  });

  it('a rejecting async processor does the same, and a thrown InferqError passes through unchanged', async () => {
    const typed = new DeadlineExceededError('too late');
    let calls = 0;
    const b = batcher<number, number>({
      maxBatchSize: 2,
      batchTimeoutMs: 0,
      process: async () => {
        calls++;
        if (calls === 1) throw 'a string, not an Error';
        throw typed;
      },
    });
    const [r1, r2] = await Promise.allSettled(b.submitMany([1, 2]));
    expect((r1 as PromiseRejectedResult).reason).toBeInstanceOf(ModelError);
    expect(((r1 as PromiseRejectedResult).reason as Error).message).toBe('a string, not an Error');
    expect((r2 as PromiseRejectedResult).reason).toBe((r1 as PromiseRejectedResult).reason);
    await expect(b.submit(3)).rejects.toBe(typed);
  });

  it('an Error in one output slot rejects only that item', async () => {
    const bad = new Error('cannot classify item 2');
    const b = batcher<number, number>({
      maxBatchSize: 3,
      batchTimeoutMs: 0,
      process: (xs) => xs.map((x) => (x === 2 ? bad : x * 10)),
    });
    const [a, c, d] = await Promise.allSettled(b.submitMany([1, 2, 3]));
    expect(a).toEqual({ status: 'fulfilled', value: 10 });
    expect(d).toEqual({ status: 'fulfilled', value: 30 });
    const err = (c as PromiseRejectedResult).reason as ModelError;
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toBe('cannot classify item 2');
    expect(err.cause).toBe(bad);
  });

  it('a result of the wrong length rejects the whole batch, naming both lengths', async () => {
    const b = batcher<number, number>({ maxBatchSize: 3, batchTimeoutMs: 0, process: () => [1, 2] });
    const results = await Promise.allSettled(b.submitMany([1, 2, 3]));
    for (const r of results) {
      const err = (r as PromiseRejectedResult).reason as Error;
      expect(err).toBeInstanceOf(ModelOutputMismatchError);
      expect(err.message).toContain('3 inputs');
      expect(err.message).toContain('2 outputs');
    }
  });

  it('a result that is not an array rejects the whole batch', async () => {
    const b = batcher<number, number>({
      maxBatchSize: 2,
      batchTimeoutMs: 0,
      process: () => ({ length: 2 }) as unknown as number[],
    });
    const results = await Promise.allSettled(b.submitMany([1, 2]));
    for (const r of results) {
      const err = (r as PromiseRejectedResult).reason as Error;
      expect(err).toBeInstanceOf(ModelOutputMismatchError);
      expect(err.message).toContain('not an array');
    }
  });
});

describe('RequestBatcher timeouts', () => {
  it('an undispatched item that times out leaves the queue, so the model never sees it', async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 10, batchTimeoutMs: 60_000 });
    await expect(b.submit(1, { timeoutMs: 20 })).rejects.toBeInstanceOf(TimeoutError);
    expect(b.stats.pending).toBe(0);
    const rest = [b.submit(2), b.submit(3)];
    await b.stop();
    expect(await Promise.all(rest)).toEqual([4, 6]);
    expect(batches).toEqual([[2, 3]]);
  });

  it('a dispatched item that outlives its timeout rejects; its late output is ignored', async () => {
    const gate = deferred();
    const b = batcher<number, number>({
      maxBatchSize: 1,
      batchTimeoutMs: 0,
      process: async (xs) => {
        await gate.promise;
        return xs;
      },
    });
    await expect(b.submit(1, { timeoutMs: 20 })).rejects.toBeInstanceOf(TimeoutError);
    gate.resolve();
    await b.stop();
  });

  it('leaves no timer behind once an item is settled', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'] });
    const { process } = doubling();
    const b = batcher({ process, maxBatchSize: 2, batchTimeoutMs: 1000 });
    const results = b.submitMany([1, 2], { timeoutMs: 5000 }); // full batch: dispatched at once
    await vi.advanceTimersByTimeAsync(0);
    expect(await Promise.all(results)).toEqual([2, 4]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('validates a per-call timeout', async () => {
    const b = batcher({ process: doubling().process });
    await expect(b.submit(1, { timeoutMs: -5 })).rejects.toBeInstanceOf(ConfigError);
    await expect(b.submit(1, { timeoutMs: Number.NaN })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('RequestBatcher lifecycle', () => {
  it('rejects submits before start() with NotStartedError', async () => {
    const b = new RequestBatcher<number, number>({ process: doubling().process });
    await expect(b.submit(1)).rejects.toBeInstanceOf(NotStartedError);
    await expect(b.submitAsync(1)).rejects.toBeInstanceOf(NotStartedError);
  });

  it('stop() dispatches pending items at once and waits for them', async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 10, batchTimeoutMs: 60_000 });
    const results = [b.submit(1), b.submitAsync(2), b.submit(3)];
    await b.stop();
    expect(await Promise.all(results)).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  }, 10_000);

  it('stop() respects numWorkers while flushing, and waits for every batch', async () => {
    const { batches, process } = doubling();
    const b = batcher({ process, maxBatchSize: 2, batchTimeoutMs: 60_000, numWorkers: 1 });
    const results = b.submitMany([1, 2, 3, 4, 5]); // [1,2] goes at once (full); the rest wait for the one worker
    await b.stop();
    expect(await Promise.all(results)).toEqual([2, 4, 6, 8, 10]);
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
  }, 10_000);

  it('stop() is bounded: stuck items are rejected with ClosedError after timeoutMs', async () => {
    let calls = 0;
    const b = batcher<number, number>({
      maxBatchSize: 1,
      batchTimeoutMs: 0,
      numWorkers: 1,
      process: () => {
        calls++;
        return new Promise<number[]>(() => undefined); // never settles
      },
    });
    const stuck = b.submitAsync(1);
    const waiting = b.submitAsync(2); // never dispatched: the only worker is stuck
    await ticks();
    await b.stop({ timeoutMs: 30 });
    await expect(stuck).rejects.toBeInstanceOf(ClosedError);
    await expect(waiting).rejects.toBeInstanceOf(ClosedError);
    expect(calls).toBe(1);
    expect(b.running).toBe(false);
  });

  it('rejects submits after stop() with ClosedError', async () => {
    const b = batcher({ process: doubling().process });
    await b.stop();
    await expect(b.submit(1)).rejects.toBeInstanceOf(ClosedError);
    const many = b.submitMany([1, 2]);
    expect(many).toHaveLength(2);
    for (const p of many) await expect(p).rejects.toBeInstanceOf(ClosedError);
  });

  it('concurrent stop() calls share one shutdown', async () => {
    const b = batcher({ process: doubling().process, batchTimeoutMs: 60_000 });
    const r = b.submit(1);
    const [s1, s2] = [b.stop(), b.stop()];
    expect(s1).toBe(s2);
    await s1;
    expect(await r).toBe(2);
  });

  it('validates its options once, listing every bad field', () => {
    const make = () =>
      new RequestBatcher<number, number>({
        process: 'not a function' as unknown as BatchProcessor<number, number>,
        maxBatchSize: 0,
        numWorkers: 1.5,
      });
    expect(make).toThrow(ConfigError);
    try {
      make();
    } catch (err) {
      expect((err as ConfigError).issues.map((i) => i.field).sort()).toEqual(['maxBatchSize', 'numWorkers', 'process']);
    }
  });
});

describe('RequestBatcher stats', () => {
  it('counts requests, batches and the average batch size', async () => {
    const { process } = doubling();
    const b = batcher({ process, maxBatchSize: 3, batchTimeoutMs: 0 });
    expect(b.stats).toEqual({ totalRequests: 0, totalBatches: 0, batchedItems: 0, avgBatchSize: 0, pending: 0, inFlight: 0 });
    await Promise.all(b.submitMany([1, 2, 3, 4, 5, 6, 7]));
    await ticks();
    expect(b.stats).toEqual({ totalRequests: 7, totalBatches: 3, batchedItems: 7, avgBatchSize: 7 / 3, pending: 0, inFlight: 0 });
  });
});

describe('RequestBatcher property', () => {
  type Gap = 'sync' | 'microtask' | 'immediate' | 'timer';
  const gapArb = fc.constantFrom<Gap>('sync', 'microtask', 'immediate', 'timer');
  const wait = async (gap: Gap) => {
    if (gap === 'microtask') await Promise.resolve();
    else if (gap === 'immediate') await new Promise<void>((r) => setImmediate(r));
    else if (gap === 'timer') await new Promise<void>((r) => setTimeout(r, 1));
  };

  it('every item is computed exactly once, in order, in batches of at most maxBatchSize, and stats add up', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          maxBatchSize: fc.integer({ min: 1, max: 8 }),
          numWorkers: fc.integer({ min: 1, max: 3 }),
          batchTimeoutMs: fc.constantFrom(0, 1, 3),
          groups: fc.array(fc.record({ size: fc.integer({ min: 0, max: 12 }), gap: gapArb, many: fc.boolean() }), {
            minLength: 1,
            maxLength: 8,
          }),
          slowModel: fc.boolean(),
        }),
        async ({ maxBatchSize, numWorkers, batchTimeoutMs, groups, slowModel }) => {
          const batches: number[][] = [];
          let running = 0;
          let maxRunning = 0;
          const b = new RequestBatcher<number, number>({
            maxBatchSize,
            numWorkers,
            batchTimeoutMs,
            process: async (xs) => {
              batches.push([...xs]);
              running++;
              maxRunning = Math.max(maxRunning, running);
              if (slowModel) await new Promise<void>((r) => setImmediate(r));
              running--;
              return xs.map((x) => x * 2);
            },
          }).start();
          const inputs: number[] = [];
          const results: Promise<number>[] = [];
          let next = 0;
          for (const { size, gap, many } of groups) {
            const group = Array.from({ length: size }, () => next++);
            inputs.push(...group);
            if (many) results.push(...b.submitMany(group));
            else for (const x of group) results.push(b.submitAsync(x));
            await wait(gap);
          }
          const outputs = await Promise.all(results);
          await b.stop();

          expect(outputs).toEqual(inputs.map((x) => x * 2));
          expect(batches.flat()).toEqual(inputs); // each item once, FIFO
          for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(maxBatchSize);
          expect(maxRunning).toBeLessThanOrEqual(numWorkers);
          const s = b.stats;
          expect(s.totalRequests).toBe(inputs.length);
          expect(s.totalBatches).toBe(batches.length);
          expect(s.totalBatches * s.avgBatchSize).toBeCloseTo(s.totalRequests, 9);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('priorities and group limits', () => {
  it('batches the lowest priority first, arrival order among equals, while the model is busy', async () => {
    const gate = deferred();
    const batches: number[][] = [];
    const b = batcher<number, number>({
      maxBatchSize: 2,
      batchTimeoutMs: 0,
      numWorkers: 1,
      process: async (xs) => {
        batches.push([...xs]);
        if (batches.length === 1) await gate.promise;
        return xs;
      },
    });
    const first = b.submit(0);
    await new Promise((r) => setImmediate(r)); // the first batch runs and holds the model
    const rest = [...b.submitMany([10, 11], { priority: 3 }), ...b.submitMany([20, 21], { priority: 1 }), b.submit(30, { priority: 2 })];
    gate.resolve();
    await Promise.all([first, ...rest]);
    expect(batches).toEqual([[0], [20, 21], [30, 10], [11]]);
  });

  it('with agingMs, a stream of high-priority items does not starve a low one', async () => {
    const run = async (agingMs?: number): Promise<number> => {
      const batches: number[][] = [];
      const highs: Promise<number>[] = [];
      const b = batcher<number, number>({
        maxBatchSize: 2,
        batchTimeoutMs: 0,
        numWorkers: 1,
        ...(agingMs === undefined ? {} : { agingMs }),
        process: async (xs) => {
          batches.push([...xs]);
          // Each batch brings two more high items than it serves, for 30 batches.
          if (batches.length <= 30) highs.push(...b.submitMany([batches.length * 10, batches.length * 10 + 1], { priority: 0 }));
          await new Promise((r) => setTimeout(r, 2));
          return xs;
        },
      });
      highs.push(...b.submitMany([1, 2], { priority: 0 }));
      const low = b.submit(-1, { priority: 9 });
      await low;
      // The stream ends after 30 batches: wait for all of it (nothing may be submitted after the test).
      for (let seen = -1; seen !== highs.length; ) {
        seen = highs.length;
        await Promise.all(highs);
      }
      return batches.findIndex((batch) => batch.includes(-1));
    };
    // Strict priority: the low item waits for the stream to end.
    expect(await run()).toBeGreaterThanOrEqual(30);
    // Aging: it goes once it has waited 10 ms, a few batches in.
    expect(await run(10)).toBeLessThan(25);
  });

  it('keeps the age bound on the oldest item whatever its priority', async () => {
    const batches: number[][] = [];
    const b = batcher<number, number>({ maxBatchSize: 10, batchTimeoutMs: 30, numWorkers: 1, process: (xs) => (batches.push([...xs]), xs) });
    const t0 = performance.now();
    const low = b.submit(1, { priority: 9 });
    await new Promise((r) => setTimeout(r, 15));
    const high = b.submit(2, { priority: 0 });
    await Promise.all([low, high]);
    // One batch, sent when the low item (the oldest) aged, not 30 ms after the high one came.
    expect(batches).toEqual([[2, 1]]);
    expect(performance.now() - t0).toBeLessThan(45 + 200); // generous: a busy machine; the point is the batch shape
  });

  it('holds a group to its limit of items in running batches, others going meanwhile', async () => {
    const gates: Deferred<void>[] = [];
    const batches: string[][] = [];
    const b = batcher<string, string>({
      maxBatchSize: 4,
      batchTimeoutMs: 0,
      numWorkers: 2,
      groupLimit: (g) => (g === 'a' ? 2 : 0),
      process: async (xs) => {
        batches.push([...xs]);
        const g = deferred();
        gates.push(g);
        await g.promise;
        return xs;
      },
    });
    const a = b.submitMany(['a1', 'a2', 'a3', 'a4', 'a5'], { group: 'a' });
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([['a1', 'a2']]); // capped at 2: the second model slot stays free of 'a'
    const other = b.submitMany(['b1', 'b2'], { group: 'b' });
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([['a1', 'a2'], ['b1', 'b2']]); // b goes while a waits
    gates[0]?.resolve();
    await a[1];
    await new Promise((r) => setImmediate(r));
    expect(batches[2]).toEqual(['a3', 'a4']);
    // Let every batch finish as it comes.
    const release = setInterval(() => gates.forEach((g) => g.resolve()), 1);
    const outputs = await Promise.all([...a, ...other]).finally(() => clearInterval(release));
    expect(outputs).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2']);
    expect(batches.flat()).toHaveLength(7);
    for (const batch of batches) expect(batch.filter((x) => x.startsWith('a')).length).toBeLessThanOrEqual(2);
  });
});
