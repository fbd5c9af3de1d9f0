/**
 * `inferq set-shards` refuses while any worker of the model is alive: a
 * worker keeps consuming the shards it started with, so clients started
 * with the new count would wait in shards nobody reads while the worker
 * reports `running`. Real worker processes (the `inferq-worker` CLI); the
 * refusal names the live worker; a stopped worker leaves the registry at
 * once, a killed one when its heartbeat expires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { liveWorkers } from '@inferq/core';
import { readShardCount } from '@inferq/core/protocol';
import { CLIENT_CLI, spawnNode, startTestRedis, startWorkerProcess, type TestRedis } from '@inferq/testkit';

let redis: TestRedis;
let conn: Redis;
beforeAll(async () => {
  redis = await startTestRedis();
  conn = redis.connect();
});
afterAll(() => redis.cleanup());

const model = 'reshard';

async function setShards(prefix: string, n: number) {
  const p = spawnNode(CLIENT_CLI, ['set-shards', '--model', model, '--shards', String(n), '--redis', redis.url, '--prefix', prefix]);
  const { code } = await p.exited;
  return { code, out: p.lines.join('\n'), err: p.stderr() };
}

describe('inferq set-shards and live workers', () => {
  it('refuses while a worker process runs, naming it; succeeds once it stopped', async () => {
    const prefix = redis.newPrefix();
    const worker = await startWorkerProcess({ redisUrl: redis.url, model, module: 'builtin:noop', prefix });
    try {
      const refused = await setShards(prefix, 2);
      expect(refused.code, refused.err || refused.out).toBe(1);
      expect(refused.err).toContain(worker.workerId);
      expect(refused.err).toMatch(/1 live worker/);
      expect(await readShardCount(conn, model, prefix)).toBe(1);
      expect(await liveWorkers(conn, model, prefix)).toEqual([worker.workerId]);
    } finally {
      expect((await worker.stop()).code).toBe(0);
    }
    // A graceful stop leaves the registry at once: no wait for a TTL.
    expect(await liveWorkers(conn, model, prefix)).toEqual([]);
    const done = await setShards(prefix, 2);
    expect(done.code, done.err).toBe(0);
    expect(await readShardCount(conn, model, prefix)).toBe(2);
  }, 90_000);

  it("a killed worker is listed until its heartbeat expires, then set-shards succeeds", async () => {
    const prefix = redis.newPrefix();
    const worker = await startWorkerProcess({ redisUrl: redis.url, model, module: 'builtin:noop', prefix });
    await worker.kill();
    expect(await liveWorkers(conn, model, prefix)).toEqual([worker.workerId]);
    expect((await setShards(prefix, 3)).code).toBe(1);
    const deadline = Date.now() + 15_000;
    while ((await liveWorkers(conn, model, prefix)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(await liveWorkers(conn, model, prefix)).toEqual([]);
    expect((await setShards(prefix, 3)).code).toBe(0);
    expect(await readShardCount(conn, model, prefix)).toBe(3);
  }, 90_000);
});
