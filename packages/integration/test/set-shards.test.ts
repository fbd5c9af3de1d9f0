/**
 * `inferq set-shards` refuses while any worker of the model is alive: a
 * worker keeps consuming the shards it started with, so clients started
 * with the new count would wait in shards nobody reads while the worker
 * reports `running`. Real worker processes (the `inferq-worker` CLI); the
 * refusal names the live worker; a stopped worker leaves the registry at
 * once, a killed one when its heartbeat expires.
 *
 * The killed worker stays listed for WORKER_BEAT_TTL_MS (5 s) only, and the
 * CLI can take longer than that to start when every core is busy. So the
 * refusing `set-shards` is started before the kill, through a TcpProxy that
 * holds its connection: it loads and connects, then waits; the worker is
 * killed and the proxy released, and its commands reach Redis at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { liveWorkers } from '@inferq/core';
import { readShardCount } from '@inferq/core/protocol';
import { CLIENT_CLI, TcpProxy, spawnNode, startTestRedis, startWorkerProcess, type TestRedis } from '@inferq/testkit';

let redis: TestRedis;
let conn: Redis;
beforeAll(async () => {
  redis = await startTestRedis();
  conn = redis.connect();
});
afterAll(() => redis.cleanup());

const model = 'reshard';

function startSetShards(prefix: string, n: number, redisUrl = redis.url) {
  const p = spawnNode(CLIENT_CLI, ['set-shards', '--model', model, '--shards', String(n), '--redis', redisUrl, '--prefix', prefix]);
  return {
    stop: () => p.stop(2000),
    result: p.exited.then(({ code }) => ({ code, out: p.lines.join('\n'), err: p.stderr() })),
  };
}

const setShards = (prefix: string, n: number) => startSetShards(prefix, n).result;

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

  it('a killed worker is listed until its heartbeat expires, then set-shards succeeds', async () => {
    const prefix = redis.newPrefix();
    const target = new URL(redis.url);
    const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
    const worker = await startWorkerProcess({ redisUrl: redis.url, model, module: 'builtin:noop', prefix });
    // The refusing run goes through the proxy, held: it starts (seconds under load) while the worker still beats.
    proxy.hold();
    const proxied = new URL(redis.url);
    proxied.port = String(proxy.port);
    const early = startSetShards(prefix, 3, proxied.toString());
    try {
      const connectedBy = Date.now() + 60_000;
      while (proxy.connections === 0 && Date.now() < connectedBy) await new Promise((r) => setTimeout(r, 20));
      expect(proxy.connections, 'set-shards connected to Redis through the proxy').toBeGreaterThan(0);

      await worker.kill();
      expect(await liveWorkers(conn, model, prefix)).toEqual([worker.workerId]);
      proxy.release();
      // Its first command reaches Redis now, well within the TTL of the killed worker's last beat.
      const refused = await early.result;
      expect(refused.code, refused.err || refused.out).toBe(1);
      expect(refused.err).toContain(worker.workerId);
      expect(refused.err).toMatch(/1 live worker/);
      expect(await readShardCount(conn, model, prefix)).toBe(1);
    } finally {
      proxy.release();
      await early.stop();
      await worker.kill();
      await proxy.close();
    }

    const deadline = Date.now() + 15_000;
    while ((await liveWorkers(conn, model, prefix)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(await liveWorkers(conn, model, prefix)).toEqual([]);
    const done = await setShards(prefix, 3);
    expect(done.code, done.err).toBe(0);
    expect(await readShardCount(conn, model, prefix)).toBe(3);
  }, 120_000);
});
