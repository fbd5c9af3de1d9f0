/**
 * Micro-benchmark of RedisLruCache against raw Redis GET/SET, measured in
 * the same run on the same connection (the baseline moves with the machine,
 * so only the ratio means much).
 *
 *   npx tsx --conditions=source packages/core/bench/redis-lru-cache.bench.ts     (or: pnpm bench:cache)
 *
 * Uses REDIS_URL when set (keys under a unique prefix, deleted at the end),
 * otherwise starts a redis-server child process without AOF. Every figure is
 * BENCH_WINDOW_MS (default 1000 ms) of calls after a short warm-up, taken in
 * slices interleaved with its baselines; the whole run stays under 30 s.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisServerProcess } from '../../testkit/src/index.js';
import { RedisLruCache } from '../src/redis-lru-cache.js';

const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 1000);
/**
 * Each figure is the sum of SLICES time slices taken in turn with the
 * figures it is compared to, so a load change on the machine during the run
 * hits a cache figure and its raw baseline alike.
 */
const SLICES = 5;
const WARMUP_MS = 100;
const CONCURRENCY = [1, 32] as const;
const BATCH = 32;
const MAX_SIZE = 10_000;
/** Keys are drawn from twice the capacity, so puts evict and gets hit about half the time. */
const KEY_SPACE = 2 * MAX_SIZE;
/** A model output of typical size: ~100 bytes of JSON. */
const VALUE = { label: 'positive', scores: [0.91, 0.06, 0.03], model: 'bench', version: 1, note: 'x'.repeat(30) };

interface Workload {
  what: string;
  itemsPerCall: number;
  call: () => Promise<unknown>;
}

interface Row {
  what: string;
  concurrency: number;
  /** Calls completed per second. */
  callsPerSec: number;
  /** Items per second (calls x items per call). */
  itemsPerSec: number;
  p50Ms: number;
}

/** `concurrency` loops, each awaiting `call` back to back, for `ms`. */
async function runFor(ms: number, concurrency: number, call: () => Promise<unknown>, latencies: number[]): Promise<number> {
  const end = performance.now() + ms;
  let calls = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await call();
        latencies.push(performance.now() - t0);
        calls++;
      }
    }),
  );
  return calls;
}

/** Measures the workloads of one group in interleaved slices, WINDOW_MS each in total. */
async function measureGroup(workloads: Workload[], concurrency: number): Promise<Row[]> {
  for (const w of workloads) await runFor(WARMUP_MS, concurrency, w.call, []);
  const totals = workloads.map(() => ({ calls: 0, seconds: 0, latencies: [] as number[] }));
  for (let slice = 0; slice < SLICES; slice++) {
    for (const [i, w] of workloads.entries()) {
      const total = totals[i]!;
      const t0 = performance.now();
      total.calls += await runFor(WINDOW_MS / SLICES, concurrency, w.call, total.latencies);
      total.seconds += (performance.now() - t0) / 1000;
    }
  }
  return workloads.map((w, i) => {
    const { calls, seconds, latencies } = totals[i]!;
    latencies.sort((a, b) => a - b);
    const callsPerSec = calls / seconds;
    return { what: w.what, concurrency, callsPerSec, itemsPerSec: callsPerSec * w.itemsPerCall, p50Ms: latencies[latencies.length >> 1] ?? 0 };
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const server = process.env.REDIS_URL ? undefined : await RedisServerProcess.start({ appendOnly: false });
  const url = process.env.REDIS_URL ?? server!.url;
  const prefix = `inferqbench-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(url);
  try {
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    console.log(`Redis ${version} at ${url} (${server ? 'child process, no AOF' : 'REDIS_URL'}), Node ${process.version}`);
    console.log(`${WINDOW_MS} ms per figure in ${SLICES} interleaved slices, cache maxSize ${MAX_SIZE}, keys drawn from ${KEY_SPACE}, value ${JSON.stringify(VALUE).length} B JSON\n`);

    const cache = new RedisLruCache<typeof VALUE>({ redis, model: 'bench', prefix, maxSize: MAX_SIZE });
    const rawKey = (i: number) => `${prefix}:raw:${i}`;
    const text = JSON.stringify(VALUE);
    let n = 0;
    // A cheap spread over the key space (a fixed stride, coprime with it).
    const nextIndex = () => (n = (n + 7919) % KEY_SPACE);

    // Fill both to steady state: the cache at capacity, raw keys for every index.
    for (let i = 0; i < KEY_SPACE; i += 500) {
      const chunk = Array.from({ length: 500 }, (_, j) => i + j);
      await cache.putMany(chunk.map((k) => [`k${k}`, VALUE] as [string, typeof VALUE]));
      await redis.mset(...chunk.flatMap((k) => [rawKey(k), text]));
    }

    const batchOf = () => Array.from({ length: BATCH }, () => nextIndex());
    const reads: Workload[] = [
      { what: 'raw GET', itemsPerCall: 1, call: () => redis.get(rawKey(nextIndex())) },
      { what: 'cache get', itemsPerCall: 1, call: () => cache.get(`k${nextIndex()}`) },
      { what: `raw MGET x${BATCH}`, itemsPerCall: BATCH, call: () => redis.mget(batchOf().map(rawKey)) },
      { what: `cache getMany x${BATCH}`, itemsPerCall: BATCH, call: () => cache.getMany(batchOf().map((i) => `k${i}`)) },
    ];
    const writes: Workload[] = [
      { what: 'raw SET', itemsPerCall: 1, call: () => redis.set(rawKey(nextIndex()), text) },
      { what: 'cache put', itemsPerCall: 1, call: () => cache.put(`k${nextIndex()}`, VALUE) },
      { what: `raw MSET x${BATCH}`, itemsPerCall: BATCH, call: () => redis.mset(...batchOf().flatMap((i) => [rawKey(i), text])) },
      {
        what: `cache putMany x${BATCH}`,
        itemsPerCall: BATCH,
        call: () => cache.putMany(batchOf().map((i) => [`k${i}`, VALUE] as [string, typeof VALUE])),
      },
    ];
    const rows: Row[] = [];
    for (const c of CONCURRENCY) {
      rows.push(...(await measureGroup(reads, c)), ...(await measureGroup(writes, c)));
    }

    const base = (what: string, c: number) => rows.find((r) => r.what === what && r.concurrency === c)!.itemsPerSec;
    // Batches are compared with single raw commands (what a caller would do without getMany/putMany)
    // and with the raw multi-key command (the floor for one round trip of 32 keys).
    const ratioTo: Record<string, string[]> = {
      'cache get': ['raw GET'],
      'cache put': ['raw SET'],
      [`cache getMany x${BATCH}`]: ['raw GET', `raw MGET x${BATCH}`],
      [`cache putMany x${BATCH}`]: ['raw SET', `raw MSET x${BATCH}`],
    };
    console.log(
      `${'operation'.padEnd(22)}${'in flight'.padStart(10)}${'calls/s'.padStart(12)}${'items/s'.padStart(12)}${'p50 ms'.padStart(9)}   items/s vs raw`,
    );
    for (const r of rows) {
      const ratios = (ratioTo[r.what] ?? []).map((ref) => `${(r.itemsPerSec / base(ref, r.concurrency)).toFixed(2)}x ${ref}`);
      console.log(
        `${r.what.padEnd(22)}${String(r.concurrency).padStart(10)}${Math.round(r.callsPerSec).toLocaleString('en').padStart(12)}` +
          `${Math.round(r.itemsPerSec).toLocaleString('en').padStart(12)}${r.p50Ms.toFixed(3).padStart(9)}   ${ratios.join(', ')}`,
      );
    }
    console.log(`\nfinal cache size ${await cache.size()} (max ${MAX_SIZE}); total ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await cache.clear();
    if (!server) await deleteRawKeys(redis, prefix);
  } finally {
    redis.disconnect();
    await server?.destroy();
  }
}

async function deleteRawKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

await main();
