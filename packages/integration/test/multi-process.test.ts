/**
 * The production shape: 2 worker processes started through the CLI and 3
 * client processes, 3,000 requests of which about a third repeat earlier
 * inputs. Every caller gets its own correct output exactly once, the workers
 * batch, and the Redis stats agree with what the clients observed.
 */
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStats } from '@inferq/core';
import { spawnNode, startTestRedis, startWorkerProcess, type SpawnedProcess, type TestRedis } from '@inferq/testkit';

const MODEL_MODULE = fileURLToPath(new URL('./fixtures/square-model.mjs', import.meta.url));
const CLIENT_SCRIPT = fileURLToPath(new URL('./fixtures/client-process.ts', import.meta.url));

interface Line {
  i: number;
  x: number;
  y?: number;
  cached?: boolean;
  coalesced?: boolean;
  worker?: string | null;
  batchSize?: number | null;
  error?: string;
}

describe('2 worker processes x 3 client processes', () => {
  let redis: TestRedis;
  const procs: SpawnedProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'inferq-mp-'));
  const modelLog = join(dir, 'model.log');

  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await redis.cleanup();
  });

  it('answers 3,000 requests correctly, exactly once, in batches, with consistent stats', async () => {
    const model = 'square';
    const workers = await Promise.all(
      [1, 2].map((n) =>
        startWorkerProcess({
          redisUrl: redis.url,
          model,
          module: MODEL_MODULE,
          prefix: redis.prefix,
          args: ['--max-batch-size', '32', '--batch-timeout-ms', '10', '--num-workers', '2', '--cache-max-size', '10000', '--worker-id', `w${n}`],
          env: { MODEL_LOG: modelLog },
        }),
      ),
    );
    procs.push(...workers);

    // 3 clients x 1,000 requests. Per client: 667 fresh inputs unique across
    // clients, 333 repeats of inputs seen earlier (by this client or another).
    const perClient = 1000;
    const files: string[] = [];
    let fresh = 0;
    const seen: number[] = [];
    for (let c = 0; c < 3; c++) {
      const inputs: Array<{ x: number }> = [];
      for (let k = 0; k < perClient; k++) {
        if (k % 3 === 2 && seen.length > 0) inputs.push({ x: seen[(k * 7919 + c) % seen.length] as number });
        else {
          const x = ++fresh;
          seen.push(x);
          inputs.push({ x });
        }
      }
      const f = join(dir, `inputs-${c}.json`);
      writeFileSync(f, JSON.stringify(inputs));
      files.push(f);
    }
    const clients = files.map((f) =>
      spawnNode(CLIENT_SCRIPT, [f], { REDIS_URL: redis.url, MODEL: model, PREFIX: redis.prefix, WINDOW: '100' }),
    );
    procs.push(...clients);
    await Promise.all(clients.map((c) => c.waitForLine(/^DONE$/, 120_000)));

    const results = clients.map((c) => c.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line));
    let hits = 0;
    const byWorker = new Map<string, number>();
    const batchSizes: number[] = [];
    results.forEach((lines, c) => {
      const inputs = JSON.parse(readFileSync(files[c] as string, 'utf8')) as Array<{ x: number }>;
      expect(lines).toHaveLength(perClient);
      const indices = new Set(lines.map((l) => l.i));
      expect(indices.size).toBe(perClient); // each caller answered exactly once
      for (const l of lines) {
        expect(l.error).toBeUndefined();
        expect(l.x).toBe(inputs[l.i]?.x);
        expect(l.y).toBe(l.x * l.x); // its own output
        if (l.cached) hits++;
        if (l.worker) byWorker.set(l.worker, (byWorker.get(l.worker) ?? 0) + 1);
        if (!l.cached && !l.coalesced && l.batchSize) batchSizes.push(l.batchSize);
      }
    });

    // Both workers took part, and batching happened.
    expect([...byWorker.keys()].sort()).toEqual(['w1', 'w2']);
    const avgBatchAsSeen = batchSizes.reduce((a, b) => a + b, 0) / batchSizes.length;
    expect(avgBatchAsSeen).toBeGreaterThan(2);

    // The model computed each distinct input at most once (cache + single-flight).
    const computed = readFileSync(modelLog, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { input: { x: number } }).input.x);
    expect(new Set(computed).size).toBe(computed.length);
    expect(computed.length).toBe(fresh);

    const conn = redis.connect();
    const stats = await readStats(conn, model, redis.prefix);
    expect(stats.totalRequests).toBe(3 * perClient);
    expect(stats.cacheHits + stats.cacheMisses).toBe(stats.totalRequests);
    expect(stats.cacheHits).toBe(hits);
    // Every miss was computed once, or shared a computation, or found in cache by a worker.
    expect(stats.batchItems + stats.coalesced + stats.workerCacheHits).toBe(stats.cacheMisses);
    expect(stats.batchItems).toBe(computed.length);
    expect(stats.avgBatchSize).toBeGreaterThan(1.5);
    expect(stats.errors).toBe(0);
    expect(stats.timeouts).toBe(0);
    expect(existsSync(modelLog)).toBe(true);
  });

  it('shares one computation between identical requests of two client processes', async () => {
    const model = 'flight';
    const log = join(dir, 'flight.log');
    const inputs = Array.from({ length: 20 }, (_, i) => ({ x: 1000 + i, sleep: 50 }));
    const f = join(dir, 'flight-inputs.json');
    writeFileSync(f, JSON.stringify(inputs));
    const env = { REDIS_URL: redis.url, MODEL: model, PREFIX: redis.prefix, WINDOW: '20' };
    const clients = [spawnNode(CLIENT_SCRIPT, [f], env), spawnNode(CLIENT_SCRIPT, [f], env)];
    procs.push(...clients);
    // Both clients have claimed or joined every flight before any worker runs.
    await Promise.all(clients.map((c) => c.waitForLine(/^INFLIGHT$/, 60_000)));
    const worker = await startWorkerProcess({ redisUrl: redis.url, model, module: MODEL_MODULE, prefix: redis.prefix, env: { MODEL_LOG: log } });
    procs.push(worker);
    await Promise.all(clients.map((c) => c.waitForLine(/^DONE$/, 60_000)));
    for (const c of clients) {
      const lines = c.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
      expect(lines).toHaveLength(inputs.length);
      for (const l of lines) expect(l.y).toBe(l.x * l.x);
    }
    const computed = readFileSync(log, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { input: { x: number } }).input.x);
    expect(computed.sort((a, b) => a - b)).toEqual(inputs.map((i) => i.x)); // each input computed exactly once
    const stats = await readStats(redis.connect(), model, redis.prefix);
    expect(stats.coalesced).toBe(inputs.length); // one of the two requests of each input joined the other
    expect(stats.batchItems).toBe(inputs.length);
  });
});
