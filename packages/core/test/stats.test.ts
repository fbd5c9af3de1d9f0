import { Writable } from 'node:stream';
import { startTestRedis, type TestRedis } from '../../testkit/src/index.js';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, RedisUnavailableError } from '../src/errors.js';
import { LatencyHistogram, bucketFor, bucketRange } from '../src/latency-histogram.js';
import { modelKeys } from '../src/protocol/keys.js';
import { readStats, resetStats } from '../src/stats-reader.js';
import { StatsRecorder } from '../src/stats-recorder.js';

let redis: TestRedis;
let conn: Redis;
let modelSeq = 0;
/** A fresh model name per test, so tests share one Redis without sharing keys. */
const newModel = () => `m${++modelSeq}`;

beforeAll(async () => {
  redis = await startTestRedis();
  conn = redis.connect();
});
afterAll(() => redis.cleanup());

/** A pino logger whose lines a test can read. */
function capturingLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function withinBucketOf(estimate: number, exact: number): void {
  const [lower, upper] = bucketRange(bucketFor(exact));
  expect(estimate).toBeGreaterThanOrEqual(lower);
  expect(estimate).toBeLessThanOrEqual(upper);
}

describe('StatsRecorder + readStats', () => {
  it('reads zeros for a model with no stats', async () => {
    const model = newModel();
    expect(await readStats(conn, model, redis.prefix)).toEqual({
      model,
      totalRequests: 0,
      totalBatches: 0,
      cacheHits: 0,
      cacheMisses: 0,
      cacheHitRate: 0,
      coalesced: 0,
      avgLatencyMs: 0,
      avgBatchSize: 0,
      p50LatencyMs: 0,
      p95LatencyMs: 0,
      p99LatencyMs: 0,
      errors: 0,
      timeouts: 0,
      batchItems: 0,
      workerCacheHits: 0,
      deadlineDrops: 0,
      poisonSplits: 0,
      modelTimeouts: 0,
      isolatedCalls: 0,
      crashedItems: 0,
      refused: 0,
      avgModelTimeMs: 0,
      corruptFields: [],
    });
  });

  it('writes snake_case hash fields in one pipeline and derives rates, averages and percentiles', async () => {
    const model = newModel();
    const recorder = new StatsRecorder({ redis: conn, model, prefix: redis.prefix });
    const latencies = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100 ms
    const pipelines = vi.spyOn(conn, 'pipeline');
    await recorder.record({
      requests: 10,
      cache_hits: 4,
      cache_misses: 6,
      coalesced: 2,
      batches: 2,
      batch_items: 5,
      worker_cache_hits: 1,
      errors: 1,
      timeouts: 1,
      deadline_drops: 0,
      model_time_sum_ms: 30,
      latencies,
    });
    expect(pipelines).toHaveBeenCalledTimes(1);
    pipelines.mockRestore();

    const keys = modelKeys(model, redis.prefix);
    const raw = await conn.hgetall(keys.stats);
    expect(raw).toEqual({
      requests: '10',
      cache_hits: '4',
      cache_misses: '6',
      coalesced: '2',
      batches: '2',
      batch_items: '5',
      worker_cache_hits: '1',
      errors: '1',
      timeouts: '1',
      model_time_sum_ms: '30',
      latency_sum_ms: '5050',
      latency_count: '100',
    }); // zero counters write nothing
    const histogram = await conn.hgetall(keys.statsLatency);
    expect(histogram['le_1']).toBe('1');
    expect(histogram['le_100']).toBe('25'); // 76..100

    const s = await readStats(conn, model, redis.prefix);
    expect(s).toMatchObject({
      model,
      totalRequests: 10,
      totalBatches: 2,
      cacheHits: 4,
      cacheMisses: 6,
      cacheHitRate: 0.4,
      coalesced: 2,
      avgLatencyMs: 50.5,
      avgBatchSize: 2.5,
      errors: 1,
      timeouts: 1,
      batchItems: 5,
      workerCacheHits: 1,
      deadlineDrops: 0,
      avgModelTimeMs: 15,
    });
    withinBucketOf(s.p50LatencyMs, 50);
    withinBucketOf(s.p95LatencyMs, 95);
    withinBucketOf(s.p99LatencyMs, 99);
  });

  it('adds up over several records and reads the histogram like a LatencyHistogram', async () => {
    const model = newModel();
    const recorder = new StatsRecorder({ redis: conn, model, prefix: redis.prefix });
    const expected = new LatencyHistogram();
    for (const batch of [[0.1, 0.2], [3, 4, 5], [2500], [70_000]]) {
      await recorder.record({ requests: batch.length, latencies: batch });
      for (const ms of batch) expected.record(ms);
    }
    const s = await readStats(conn, model, redis.prefix);
    expect(s.totalRequests).toBe(7);
    expect(s.p50LatencyMs).toBe(expected.percentile(50));
    expect(s.p99LatencyMs).toBe(expected.percentile(99));
    expect(s.avgLatencyMs).toBeCloseTo((0.1 + 0.2 + 3 + 4 + 5 + 2500 + 70_000) / 7, 6);
  });

  it('an empty delta makes no round trip; bad counts throw at once', async () => {
    const recorder = new StatsRecorder({ redis: conn, model: newModel(), prefix: redis.prefix });
    const pipelines = vi.spyOn(conn, 'pipeline');
    await recorder.record({});
    await recorder.record({ requests: 0, latencies: [] });
    expect(pipelines).not.toHaveBeenCalled();
    pipelines.mockRestore();
    expect(() => recorder.record({ requests: 1.5 })).toThrow(RangeError);
    expect(() => recorder.record({ errors: -1 })).toThrow(RangeError);
    expect(() => recorder.record({ latencies: [Number.NaN] })).toThrow(RangeError);
  });

  it('appendTo() adds the same commands to a caller\'s pipeline', async () => {
    const model = newModel();
    const recorder = new StatsRecorder({ redis: conn, model, prefix: redis.prefix, flushIntervalMs: 60_000 });
    const pipeline = conn.pipeline().set(`${redis.prefix}:other`, 'x');
    recorder.appendTo(pipeline, { batches: 1, batch_items: 3, model_time_sum_ms: 12, latencies: [4] });
    await pipeline.exec();
    expect(await readStats(conn, model, redis.prefix)).toMatchObject({ totalBatches: 1, avgBatchSize: 3, avgModelTimeMs: 12, avgLatencyMs: 4 });
    expect(() => recorder.appendTo(conn.pipeline(), { batches: -1 })).toThrow(RangeError);
    await recorder.close();
  });

  it('resetStats deletes both hashes', async () => {
    const model = newModel();
    await new StatsRecorder({ redis: conn, model, prefix: redis.prefix }).record({ requests: 3, latencies: [5] });
    await resetStats(conn, model, redis.prefix);
    const keys = modelKeys(model, redis.prefix);
    expect(await conn.exists(keys.stats, keys.statsLatency)).toBe(0);
    expect((await readStats(conn, model, redis.prefix)).totalRequests).toBe(0);
  });

  it('validates its options', () => {
    expect(() => new StatsRecorder({ redis: conn, model: 'bad name with spaces', prefix: redis.prefix })).toThrow(ConfigError);
    expect(() => new StatsRecorder({ redis: conn, model: 'ok', flushIntervalMs: -1 })).toThrow(ConfigError);
  });
});

describe('buffered StatsRecorder', () => {
  it('holds counts until flush(), then writes them in one pipeline', async () => {
    const model = newModel();
    const recorder = new StatsRecorder({ redis: conn, model, prefix: redis.prefix, flushIntervalMs: 60_000 });
    for (let i = 0; i < 50; i++) await recorder.record({ requests: 1, cache_misses: 1, latencies: [i] });
    expect((await readStats(conn, model, redis.prefix)).totalRequests).toBe(0);
    const pipelines = vi.spyOn(conn, 'pipeline');
    await recorder.flush();
    expect(pipelines).toHaveBeenCalledTimes(1);
    pipelines.mockRestore();
    const s = await readStats(conn, model, redis.prefix);
    expect(s.totalRequests).toBe(50);
    expect(s.cacheMisses).toBe(50);
    expect(s.avgLatencyMs).toBeCloseTo(24.5, 9);
    await recorder.close();
  });

  it('writes on its own every flushIntervalMs', async () => {
    const model = newModel();
    const recorder = new StatsRecorder({ redis: conn, model, prefix: redis.prefix, flushIntervalMs: 10 });
    void recorder.record({ requests: 2, batches: 1, batch_items: 2 });
    await vi.waitFor(async () => expect((await readStats(conn, model, redis.prefix)).totalRequests).toBe(2), { timeout: 10_000 });
    await recorder.close();
  });

  it('close() loses nothing: counts recorded during a flush and after close are written', async () => {
    const model = newModel();
    const recorder = new StatsRecorder({ redis: conn, model, prefix: redis.prefix, flushIntervalMs: 60_000 });
    void recorder.record({ requests: 1 });
    const flushing = recorder.flush(); // in flight while more arrives
    void recorder.record({ requests: 2 });
    const closing = recorder.close();
    void recorder.record({ requests: 4 }); // after close: written directly
    await Promise.all([flushing, closing]);
    await vi.waitFor(async () => expect((await readStats(conn, model, redis.prefix)).totalRequests).toBe(7));
  });

  it('keeps the counts a failed write did not apply, logs from the timer without throwing, and retries', async () => {
    const model = newModel();
    const keys = modelKeys(model, redis.prefix);
    const { logger, lines } = capturingLogger();
    const recorder = new StatsRecorder({ redis: conn, model, prefix: redis.prefix, flushIntervalMs: 5, logger });
    await conn.set(keys.stats, 'not a hash'); // every HINCRBY on the stats hash now fails (WRONGTYPE)

    void recorder.record({ requests: 3, latencies: [1, 2, 3] });
    await vi.waitFor(() => expect(lines().some((l) => l['msg'] === 'stats write failed')).toBe(true), { timeout: 10_000 });
    await expect(recorder.flush()).rejects.toBeInstanceOf(RedisUnavailableError);
    // The histogram hash is fine, so its buckets were applied once and must not be applied again.
    expect(LatencyHistogram.fromFields(await conn.hgetall(keys.statsLatency)).count).toBe(3);

    await conn.del(keys.stats);
    await recorder.close();
    const s = await readStats(conn, model, redis.prefix);
    expect(s.totalRequests).toBe(3);
    expect(s.avgLatencyMs).toBe(2);
    expect(LatencyHistogram.fromFields(await conn.hgetall(keys.statsLatency)).count).toBe(3);
  });

  it('recorders on several connections add up', async () => {
    const model = newModel();
    const recorders = Array.from({ length: 4 }, (_, i) =>
      new StatsRecorder({ redis: redis.connect(), model, prefix: redis.prefix, flushIntervalMs: i % 2 === 0 ? 0 : 3 }),
    );
    await Promise.all(
      recorders.map(async (r) => {
        for (let i = 0; i < 50; i++) {
          await r.record({ requests: 1, cache_hits: i % 2, cache_misses: 1 - (i % 2), latencies: [i % 10] });
          if (i % 7 === 0) await new Promise<void>((res) => setImmediate(res));
        }
      }),
    );
    await Promise.all(recorders.map((r) => r.close()));
    const s = await readStats(conn, model, redis.prefix);
    expect(s.totalRequests).toBe(200);
    expect(s.cacheHits + s.cacheMisses).toBe(200);
    expect(s.cacheHitRate).toBe(0.5);
    expect(s.avgLatencyMs).toBeCloseTo(4.5, 9);
    expect(LatencyHistogram.fromFields(await conn.hgetall(modelKeys(model, redis.prefix).statsLatency)).count).toBe(200);
  });
});
