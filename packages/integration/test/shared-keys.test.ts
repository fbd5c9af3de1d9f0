/**
 * Model-wide keys that every client and worker reads, written by something
 * other than inferq: the shard count key (`inferq:{m}:shards`) holding a
 * value that is not an integer 1..64 is reported as what it is — the key,
 * its value and how to fix it — by the client, the worker and `inferq`
 * alike, typed (INFERQ_QUEUE_SHARDS_MISMATCH). Before: "runs with
 * queueShards NaN ... Use NaN".
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, type InferqError } from '@inferq/core';
import { readShardCount, setShardCount, shardCountKey } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { CLIENT_CLI, spawnNode, startTestRedis, type TestRedis } from '@inferq/testkit';

let redis: TestRedis;
let conn: Redis;
beforeAll(async () => {
  redis = await startTestRedis();
  conn = redis.connect();
});
afterAll(() => redis.cleanup());

const model = 'badkey';

function expectBadKey(err: InferqError, key: string, value: string): void {
  expect(err.code).toBe(ErrorCode.QUEUE_SHARDS_MISMATCH);
  expect(err.message).toContain(key);
  expect(err.message).toContain(JSON.stringify(value));
  expect(err.message).toMatch(/inferq set-shards --model badkey --shards <n>/);
  expect(err.message).toContain(`DEL ${key}`);
  expect(err.message).not.toMatch(/NaN/);
  expect(err.details).toMatchObject({ model, key, value });
}

describe('the shard count key holding garbage', () => {
  it('stops a client and a worker with the key, its value and the fix; set-shards repairs it', async () => {
    const prefix = redis.newPrefix();
    const key = shardCountKey(model, prefix);
    for (const value of ['garbage', '0', '65', '2.5', '', ' 3']) {
      await conn.set(key, value);
      const worker = new InferenceWorker<number, number>({ redis: redis.url, model, prefix, run: async (xs) => xs, connectTimeoutMs: 2000 });
      expectBadKey((await worker.start().then(() => undefined, (e: unknown) => e)) as InferqError, key, value);
      const client = new InferenceClient<number, number>({ redis: redis.url, model, prefix, connectTimeoutMs: 2000 });
      expectBadKey((await client.infer(1, { timeoutMs: 5000 }).then(() => undefined, (e: unknown) => e)) as InferqError, key, value);
      await client.close({ timeoutMs: 500 });
      expectBadKey((await readShardCount(conn, model, prefix).then(() => undefined, (e: unknown) => e)) as InferqError, key, value);
    }
    // The operator's fix named in the message works, and the model runs again.
    await setShardCount(conn, model, prefix, 1);
    expect(await readShardCount(conn, model, prefix)).toBe(1);
    const worker = new InferenceWorker<number, number>({ redis: redis.url, model, prefix, run: async (xs) => xs.map((x) => x * 2) });
    await worker.start();
    const client = new InferenceClient<number, number>({ redis: redis.url, model, prefix });
    expect((await client.infer(21)).output).toBe(42);
    await client.close();
    await worker.stop();
  }, 60_000);

  it('inferq clear-cache says the same and exits 1 (stats, model-wide, still answers)', async () => {
    const prefix = redis.newPrefix();
    await conn.set(shardCountKey(model, prefix), 'garbage');
    const stats = spawnNode(CLIENT_CLI, ['stats', '--model', model, '--redis', redis.url, '--prefix', prefix]);
    expect((await stats.exited).code).toBe(0);
    const p = spawnNode(CLIENT_CLI, ['clear-cache', '--model', model, '--redis', redis.url, '--prefix', prefix]);
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.stderr()).toContain(`${shardCountKey(model, prefix)} holds "garbage"`);
    expect(p.stderr()).not.toMatch(/\n\s+at /);
  }, 30_000);
});
