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

  it('stats, clear-cache and reset-stats of a model with no keys say so and exit 1; once a worker has started, its zeros are real', async () => {
    const model = 'never-used';
    for (const args of [['stats', '--model', model], ['stats', '--model', model, '--json'], ['clear-cache', '--model', model], ['reset-stats', '--model', model]]) {
      const r = await cli(args);
      expect(r.code, r.err).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toContain(`model '${model}' has no keys under prefix '${redis.prefix}'`);
      expect(r.err).toContain('--prefix');
    }
    // A worker records the model's shard count at start: the model exists, with nothing served yet.
    const worker = new InferenceWorker<number, number>({ redis: redis.url, model, prefix: redis.prefix, run: async (xs) => xs });
    await worker.start();
    await worker.stop();
    const json = await cli(['stats', '--model', model, '--json']);
    expect(json.code, json.err).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ model, totalRequests: 0 });
  });

  it('exits 2 with usage on a missing model', async () => {
    const r = await cli(['stats']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--model');
  });

  it('inferq-worker rejects bad configuration from flags and env, naming every bad field', async () => {
    const p = spawnNode(WORKER_CLI, ['--model', 'm', '--module', 'builtin:noop', '--redis', redis.url], {
      INFERQ_NUM_WORKERS: 'many',
    });
    const { code } = await p.exited;
    expect(code).toBe(1);
    // Each named as the user wrote it: the flag as a flag, the env variable as itself.
    expect(p.stderr()).toMatch(/INFERQ_NUM_WORKERS: must be an integer, got 'many'/);
    expect(p.stderr()).not.toMatch(/\n\s+at /);
  });

  it('inferq-worker: flags and env by one schema, errors named as written, no stack traces', async () => {
    const run = async (args: string[], env: Record<string, string> = {}) => {
      const p = spawnNode(WORKER_CLI, ['--model', 'm', '--module', 'builtin:noop', '--redis', redis.url, ...args], env);
      const { code } = await p.exited;
      return { code, err: p.stderr() };
    };
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--max-batch-size', '0'], {}, /--max-batch-size: /],
      [['--enable-caching', 'maybe'], {}, /--enable-caching: must be true or false/],
      [[], { INFERQ_ENABLE_CACHING: 'maybe' }, /INFERQ_ENABLE_CACHING: must be true or false/],
      [[], { INFERQ_LOG_LEVEL: 'bogus' }, /INFERQ_LOG_LEVEL: must be one of/],
      [['--cache-ttl-ms', '-5'], {}, /--cache-ttl-ms/],
      [['--cache-ttl-ms=-5'], {}, /--cache-ttl-ms: /],
      [['--batch-policy', 'sometimes'], {}, /--batch-policy: must be one of eager, timeout/],
    ];
    for (const [args, env, expected] of cases) {
      const r = await run(args, env);
      expect(r.code, args.join(' ') + JSON.stringify(env)).toBe(1);
      expect(r.err).toMatch(expected);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  }, 60_000);

  it('inferq-worker rejects a module that exports no model', async () => {
    const p = spawnNode(WORKER_CLI, ['--model', 'm', '--module', 'package.json', '--redis', redis.url]);
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.stderr()).toContain('must default-export');
  });
});
