/**
 * Prometheus metrics, scraped over HTTP on 127.0.0.1 and parsed:
 * - `inferq-worker --metrics-port`: what that one worker process did
 *   (requests, items, batch size and model time histograms, errors by code,
 *   cache hits at batch time, single-flight joins); not the queue's depth,
 *   which N workers would each serve;
 * - `inferq metrics`: the model's shared stats in Redis (every process),
 *   counters and a histogram (no precomputed ratios or quantiles), and the
 *   queue's depth;
 * - both pass `promtool check metrics` (Debian's prometheus package; skipped
 *   when promtool is absent).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { RedisLruCache, cacheKey, type InferqError } from '@inferq/core';
import {
  CLIENT_CLI,
  HOW_TO_GET_PROMTOOL,
  WORKER_CLI,
  findPromtool,
  freePort,
  parsePrometheusText,
  promtoolCheckMetrics,
  spawnNode,
  startTestRedis,
  startWorkerProcess,
  type PromText,
  type SpawnedProcess,
  type TestRedis,
} from '@inferq/testkit';

const SQUARE = 'packages/integration/test/fixtures/square-model.mjs';
type In = { x: number; fail?: boolean; sleep?: number };
type Out = { y: number };

const promtool = findPromtool();
if (!promtool) console.warn(`metrics.test.ts: the promtool lint is skipped, ${HOW_TO_GET_PROMTOOL}`);

let redis: TestRedis;
const processes: SpawnedProcess[] = [];
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const p of processes) await p.stop(5000);
  await redis.cleanup();
});

async function scrapeText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

async function scrape(url: string): Promise<PromText> {
  return parsePrometheusText(await scrapeText(url));
}

/** Scrapes until `ok` holds (bounded): stats reach Redis a little after the answers. */
async function scrapeUntil(url: string, ok: (m: PromText) => boolean, timeoutMs = 5000): Promise<PromText> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape(url);
    if (ok(m) || Date.now() > deadline) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A histogram's buckets are cumulative, end at +Inf, and +Inf equals _count. */
function expectHistogram(m: PromText, name: string, labels: Record<string, string> = {}): number {
  expect(m.types.get(name)).toBe('histogram');
  const buckets = m.find(`${name}_bucket`, labels);
  expect(buckets.length).toBeGreaterThan(2);
  for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
  expect(buckets[buckets.length - 1]!.labels.le).toBe('+Inf');
  const count = m.value(`${name}_count`, labels);
  expect(buckets[buckets.length - 1]!.value).toBe(count);
  expect(m.value(`${name}_sum`, labels)).toBeGreaterThanOrEqual(0);
  return count ?? 0;
}

function client(model: string, prefix = redis.prefix): InferenceClient<In, Out> {
  const c = new InferenceClient<In, Out>({ redis: redis.url, model, prefix });
  closers.push(() => c.close());
  return c;
}

describe('inferq-worker --metrics-port', () => {
  it('serves what this worker process observed, and the numbers move with requests', async () => {
    const model = 'wmetrics';
    const port = await freePort();
    const worker = await startWorkerProcess({
      redisUrl: redis.url,
      model,
      module: SQUARE,
      prefix: redis.prefix,
      // One batch at a time, so a slow batch holds the next one back (the cache-hit case below).
      args: ['--metrics-port', String(port), '--num-workers', '1', '--batch-timeout-ms', '5'],
    });
    processes.push(worker);
    const url = `http://127.0.0.1:${port}/metrics`;
    expect(worker.lines).toContain(`METRICS ${url}`);

    const before = await scrape(url);
    const labels = { model, worker: worker.workerId };
    expect(before.value('inferq_worker_requests_total', labels)).toBe(0);
    expect(before.value('inferq_worker_items_total', labels)).toBe(0);
    expect(before.types.get('inferq_worker_errors_total')).toBe('counter');
    // The queue's depth is the shared exporter's alone: N workers serving it made sum() count it N times.
    expect(before.find('inferq_queue_jobs')).toEqual([]);
    expect(expectHistogram(before, 'inferq_worker_batch_size', labels)).toBe(0);
    // prom-client's process metrics come along.
    expect(before.find('process_cpu_user_seconds_total').length).toBe(1);
    // ... but not its gauges named _total, which promtool rejects (nodejs_active_handles remains).
    expect(before.find('nodejs_active_handles_total')).toEqual([]);
    expect(before.types.get('nodejs_active_handles')).toBe('gauge');

    const a = client(model);
    const b = client(model);
    // 6 distinct inputs, computed.
    await a.inferBatch([1, 2, 3, 4, 5, 6].map((x) => ({ x })));
    // One the model fails.
    const err = (await a.infer({ x: 100, fail: true }).catch((e: unknown) => e)) as InferqError;
    expect(err.code).toBe('INFERQ_MODEL_FAILED');
    // Two clients ask for the same slow input at once: one computes, the other joins its flight.
    const [ra, rb] = await Promise.all([a.infer({ x: 7, sleep: 300 }), b.infer({ x: 7, sleep: 300 })]);
    expect([ra.coalesced, rb.coalesced].sort()).toEqual([false, true]);
    // A worker cache hit: while a slow batch holds the model, x=9 waits in the worker; its cache
    // entry appears meanwhile (as if another worker had computed it), so the worker answers from it.
    const slow = a.infer({ x: 8, sleep: 1000 });
    await new Promise((r) => setTimeout(r, 200));
    const late = b.infer({ x: 9 });
    await new Promise((r) => setTimeout(r, 300));
    const cache = new RedisLruCache({ redis: redis.connect(), model, prefix: redis.prefix, maxSize: 1000 });
    await cache.put(cacheKey({ model, modelVersion: '1', quantization: 'FP32' }, { x: 9 }), { y: 81 });
    const [rs, rl] = await Promise.all([slow, late]);
    expect(rs.output.y).toBe(64);
    expect(rl.output).toEqual({ y: 81 });
    expect(rl.cached).toBe(true);

    // Reports reach the observer once the results are delivered: poll briefly.
    const after = await scrapeUntil(url, (m) => (m.value('inferq_worker_requests_total', labels) ?? 0) >= 10 && (m.value('inferq_worker_single_flight_joins_total', labels) ?? 0) >= 1);
    // Items the worker took: 6 + 1 failing + 1 (x=7, the joiner never reaches the queue) + x=8 + x=9.
    expect(after.value('inferq_worker_requests_total', labels)).toBe(10);
    // Inputs computed: 6 + the failing one + 7 + 8 (9 came from the cache).
    expect(after.value('inferq_worker_items_total', labels)).toBe(9);
    expect(after.value('inferq_worker_errors_total', { ...labels, code: 'INFERQ_MODEL_FAILED' })).toBe(1);
    expect(after.value('inferq_worker_cache_hits_total', labels)).toBe(1);
    expect(after.value('inferq_worker_single_flight_joins_total', labels)).toBe(1);
    const calls = expectHistogram(after, 'inferq_worker_batch_size', labels);
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(after.value('inferq_worker_batch_size_sum', labels)).toBe(9);
    expect(expectHistogram(after, 'inferq_worker_model_duration_seconds', labels)).toBe(calls);
    // The slow batches alone took 1.3 s of model time.
    expect(after.value('inferq_worker_model_duration_seconds_sum', labels)).toBeGreaterThanOrEqual(1.2);
  });

  it('takes its port from INFERQ_METRICS_PORT too, and a port in use stops the worker with a message naming it', async () => {
    const port = await freePort();
    const first = await startWorkerProcess({ redisUrl: redis.url, model: 'wport', module: 'builtin:noop', prefix: redis.prefix, env: { INFERQ_METRICS_PORT: String(port) } });
    processes.push(first);
    expect((await scrape(`http://127.0.0.1:${port}/metrics`)).value('inferq_worker_requests_total')).toBe(0);
    const second = spawnNode(WORKER_CLI, ['--model', 'wport', '--module', 'builtin:noop', '--redis', redis.url, '--prefix', redis.prefix], { INFERQ_METRICS_PORT: String(port) });
    processes.push(second);
    const { code } = await second.exited;
    expect(code).toBe(1);
    expect(second.stderr()).toMatch(/INFERQ_METRICS_PORT: cannot serve metrics on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    expect(second.lines.some((l) => l.startsWith('READY'))).toBe(false);
    const bad = spawnNode(WORKER_CLI, ['--model', 'wport', '--module', 'builtin:noop', '--redis', redis.url, '--metrics-port', '70000']);
    processes.push(bad);
    expect((await bad.exited).code).toBe(1);
    expect(bad.stderr()).toMatch(/--metrics-port: must be a TCP port 0\.\.65535/);
  });
});

describe('inferq metrics', () => {
  it("exposes the model's shared stats and queue depth, moving with requests", async () => {
    const model = 'smetrics';
    const port = await freePort();
    const cli = spawnNode(CLIENT_CLI, ['metrics', '--model', model, '--port', String(port), '--redis', redis.url, '--prefix', redis.prefix]);
    processes.push(cli);
    const url = `http://127.0.0.1:${port}/metrics`;
    expect(await cli.waitForLine(/^METRICS /, 30_000)).toBe(`METRICS ${url}`);

    const empty = await scrape(url);
    expect(empty.value('inferq_requests_total', { model })).toBe(0);
    expect(empty.value('inferq_queue_jobs', { model, state: 'wait' })).toBe(0);
    expect(expectHistogram(empty, 'inferq_latency_seconds', { model })).toBe(0);

    // No worker yet: the requests wait in the queue, and the queue depth shows them.
    const c = client(model);
    const first = c.inferBatch([1, 2, 3, 4, 5].map((x) => ({ x })), { timeoutMs: 20_000 });
    // Every job carries a priority (its class and fair rank), so it waits in BullMQ's prioritized set.
    const waiting = (m: Awaited<ReturnType<typeof scrape>>) => (m.value('inferq_queue_jobs', { model, state: 'wait' }) ?? 0) + (m.value('inferq_queue_jobs', { model, state: 'prioritized' }) ?? 0);
    const queued = await scrapeUntil(url, (m) => waiting(m) >= 1);
    expect(queued.value('inferq_queue_jobs', { model, state: 'prioritized' })).toBeGreaterThanOrEqual(1);

    const worker = new InferenceWorker<In, Out>({ redis: redis.url, model, prefix: redis.prefix, run: async (xs) => xs.map((i) => ({ y: i.x * i.x })) });
    closers.push(() => worker.stop());
    await worker.start();
    await first;
    await c.inferBatch([1, 2, 3].map((x) => ({ x }))); // cache hits

    const after = await scrapeUntil(url, (m) => m.value('inferq_requests_total', { model }) === 8 && m.value('inferq_latency_seconds_count', { model }) === 8);
    expect(after.value('inferq_requests_total', { model })).toBe(8);
    expect(after.value('inferq_cache_hits_total', { model })).toBe(3);
    expect(after.value('inferq_cache_misses_total', { model })).toBe(5);
    expect(after.value('inferq_items_total', { model })).toBe(5);
    expect(after.value('inferq_batches_total', { model })).toBeGreaterThanOrEqual(1);
    expect(after.value('inferq_cache_lookups_total', { model })).toBe(8);
    expect(after.value('inferq_cache_entries', { model })).toBe(5);
    expect(after.value('inferq_queue_jobs', { model, state: 'wait' })).toBe(0);
    expect(expectHistogram(after, 'inferq_latency_seconds', { model })).toBe(8);
    expect(after.types.get('inferq_requests_total')).toBe('counter');
    // Ratios, averages and quantiles are PromQL's to compute over a window: none served precomputed.
    for (const gone of ['inferq_latency_quantile_seconds', 'inferq_cache_hit_ratio', 'inferq_batch_size_avg']) expect(after.find(gone)).toEqual([]);
    expect(after.samples.filter((s) => 'quantile' in s.labels)).toEqual([]);
  });
});

describe('promtool check metrics', () => {
  const title = 'both endpoints pass the Prometheus linter, before and after traffic';
  (promtool ? it : it.skip)(promtool ? title : `${title} [skipped: ${HOW_TO_GET_PROMTOOL}]`, async () => {
    const model = 'lint';
    const [workerPort, sharedPort] = [await freePort(), await freePort()];
    const worker = await startWorkerProcess({ redisUrl: redis.url, model, module: SQUARE, prefix: redis.prefix, args: ['--metrics-port', String(workerPort)] });
    processes.push(worker);
    const cli = spawnNode(CLIENT_CLI, ['metrics', '--model', model, '--port', String(sharedPort), '--redis', redis.url, '--prefix', redis.prefix]);
    processes.push(cli);
    await cli.waitForLine(/^METRICS /, 30_000);
    const urls = [`http://127.0.0.1:${workerPort}/metrics`, `http://127.0.0.1:${sharedPort}/metrics`];
    const lint = async () => {
      for (const url of urls) {
        const r = promtoolCheckMetrics(promtool as string, await scrapeText(url));
        expect(r.output, url).toBe('');
        expect(r.ok, url).toBe(true);
      }
    };
    await lint(); // no data yet
    const c = client(model);
    await c.inferBatch([1, 2, 3].map((x) => ({ x })));
    await c.inferBatch([1, 2].map((x) => ({ x }))); // cache hits
    await c.infer({ x: 5, fail: true }).catch(() => undefined);
    await scrapeUntil(urls[1]!, (m) => m.value('inferq_requests_total', { model }) === 6);
    await lint();
  });
});
