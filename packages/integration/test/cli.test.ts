/** The operator CLI `inferq` against a real Redis: stats as a table and as JSON, clear-cache. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { modelKeys } from '@inferq/core';
import { CLIENT_CLI, WORKER_CLI, spawnNode, startTestRedis, type TestRedis } from '@inferq/testkit';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(() => redis.cleanup());

async function cli(args: string[]) {
  const p = spawnNode(CLIENT_CLI, [...args, '--redis', redis.url, '--prefix', redis.prefix]);
  const { code } = await p.exited;
  return { code, out: p.lines.join('\n'), err: p.stderr() };
}

describe('inferq CLI', () => {
  it('prints stats as a table and as JSON, and clears the cache', async () => {
    const model = 'cli';
    const worker = new InferenceWorker<number, number>({ redis: redis.url, model, prefix: redis.prefix, run: async (xs) => xs.map((x) => x + 1) });
    await worker.start();
    const client = new InferenceClient<number, number>({ redis: redis.url, model, prefix: redis.prefix });
    await client.inferBatch([1, 2, 3]);
    await client.infer(1);
    await client.close();
    await worker.stop();

    const table = await cli(['stats', '--model', model]);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/requests\s+4/);
    expect(table.out).toMatch(/cache hit rate\s+25\.0 %/);

    const json = await cli(['stats', '--model', model, '--json']);
    expect(JSON.parse(json.out)).toMatchObject({ model, totalRequests: 4, cacheHits: 1, cacheMisses: 3, batchItems: 3 });

    const conn = redis.connect();
    expect(await conn.zcard(modelKeys(model, redis.prefix).cacheLru)).toBe(3);
    const cleared = await cli(['clear-cache', '--model', model]);
    expect(cleared.code).toBe(0);
    expect(await conn.zcard(modelKeys(model, redis.prefix).cacheLru)).toBe(0);
    expect(await conn.exists(modelKeys(model, redis.prefix).stats)).toBe(1);
  });

  it('exits 2 with usage on a missing model', async () => {
    const r = await cli(['stats']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--model');
  });

  it('inferq-worker rejects bad configuration from flags and env, naming every bad field', async () => {
    const p = spawnNode(WORKER_CLI, ['--model', 'm', '--module', 'builtin:noop', '--redis', redis.url, '--max-batch-size', '0'], {
      INFERQ_NUM_WORKERS: 'many',
    });
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.stderr()).toMatch(/maxBatchSize \(INFERQ_MAX_BATCH_SIZE\)/);
    expect(p.stderr()).toMatch(/numWorkers \(INFERQ_NUM_WORKERS\)/);
  });

  it('inferq-worker rejects a module that exports no model', async () => {
    const p = spawnNode(WORKER_CLI, ['--model', 'm', '--module', 'package.json', '--redis', redis.url]);
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.stderr()).toContain('must default-export');
  });
});
