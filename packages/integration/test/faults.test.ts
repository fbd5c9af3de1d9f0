/**
 * Faults: a removed job, a killed worker process, a restarted Redis. Nothing
 * may wait forever, and a request the system accepted is answered.
 */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { ErrorCode, modelKeys, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { startTestRedis, startWorkerProcess, type SpawnedProcess } from '@inferq/testkit';
import { useTestRedis } from '@inferq/testkit/harness';

const MODEL_MODULE = fileURLToPath(new URL('./fixtures/square-model.mjs', import.meta.url));
type In = { x: number; sleep?: number };
type Out = { y: number };

const h = useTestRedis({ ownServer: true });

function client(prefix: string, model: string) {
  const c = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
  h.defer(() => c.close({ timeoutMs: 100 }));
  return c;
}

function queue(prefix: string, model: string) {
  const keys = modelKeys(model, prefix);
  const q = new Queue(keys.queueName, { connection: { host: '127.0.0.1', port: h.redis.server!.port }, prefix: keys.queuePrefix });
  h.defer(() => q.close());
  return q;
}

describe('faults', () => {
  it('a removed job does not leave a later identical request waiting', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'removed';
    const a = client(prefix, model);
    const first = a.infer({ x: 9 }, { timeoutMs: 300 }).catch((e: unknown) => e as InferqError);
    const q = queue(prefix, model);
    // wait for the job, then remove it as an operator would
    for (let i = 0; i < 100 && (await q.getJobCountByTypes('waiting', 'prioritized')) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await q.obliterate({ force: true });
    expect((await first as InferqError).code).toBe(ErrorCode.TIMEOUT);

    const worker = new InferenceWorker<In, Out>({ redis: h.redis.url, model, prefix, run: async (xs) => xs.map((x) => ({ y: x.x * x.x })) });
    h.defer(() => worker.stop());
    await worker.start();
    const b = client(prefix, model);
    const r = await b.infer({ x: 9 }, { timeoutMs: 5000 });
    expect(r.output.y).toBe(81);
  });

  it('a killed worker process: its job is retried by another worker, the caller is answered', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'killed';
    const dir = mkdtempSync(join(tmpdir(), 'inferq-kill-'));
    const log = join(dir, 'model.log');
    const args = ['--lock-duration-ms', '1000', '--stalled-interval-ms', '300', '--batch-timeout-ms', '5'];
    const first: SpawnedProcess = await startWorkerProcess({ redisUrl: h.redis.url, model, module: MODEL_MODULE, prefix, args, env: { MODEL_LOG: log } });
    h.defer(() => first.stop());
    const c = client(prefix, model);
    const pending = c.infer({ x: 12, sleep: 1500 }, { timeoutMs: 30_000 });
    // the model has the item (it logs after its sleep, so watch the active job instead)
    const q = queue(prefix, model);
    for (let i = 0; i < 200 && (await q.getActiveCount()) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await q.getActiveCount()).toBe(1);
    await first.kill();
    const second = await startWorkerProcess({ redisUrl: h.redis.url, model, module: MODEL_MODULE, prefix, args, env: { MODEL_LOG: log } });
    h.defer(() => second.stop());
    const r = await pending;
    expect(r.output.y).toBe(144);
    expect(r.worker).toBe(second.workerId);
    expect(existsSync(log) && readFileSync(log, 'utf8').includes('"x":12')).toBe(true);
  });

  it('clients and workers carry on after Redis restarts', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'restart';
    const worker = new InferenceWorker<In, Out>({ redis: h.redis.url, model, prefix, run: async (xs) => xs.map((x) => ({ y: x.x * x.x })), config: { batchTimeoutMs: 5 } });
    h.defer(() => worker.stop());
    await worker.start();
    const c = client(prefix, model);
    expect((await c.infer({ x: 2 })).output.y).toBe(4);
    await h.redis.server!.restart();
    // AOF kept the cache: the same input is a hit after the restart
    const again = await c.infer({ x: 2 }, { timeoutMs: 15_000 });
    expect(again).toMatchObject({ output: { y: 4 }, cached: true });
    const fresh = await c.infer({ x: 3 }, { timeoutMs: 15_000 });
    expect(fresh).toMatchObject({ output: { y: 9 }, cached: false });
  });
});

describe('stopping', () => {
  it('stop() settles within its bound right after a Redis restart (BullMQ close can hang then)', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'stopafterrestart';
    // The hang needed a stop within ~200 ms of the restart, and showed in 5 of 7 tries: try 4 times.
    for (let i = 0; i < 4; i++) {
      const worker = new InferenceWorker<In, Out>({ redis: h.redis.url, model, prefix, run: async (xs) => xs.map((x) => ({ y: x.x })), stopTimeoutMs: 500 });
      await worker.start();
      await h.redis.server!.restart();
      const t0 = Date.now();
      await worker.stop();
      // stopTimeoutMs + forced close + stats + each connection, with slack.
      expect(Date.now() - t0).toBeLessThan(6000);
    }
  }, 60_000);

  it('a worker process on SIGTERM exits within its bound while Redis is down', async () => {
    const own = await startTestRedis({ ownServer: true });
    try {
      const p = await startWorkerProcess({ redisUrl: own.url, model: 'sigterm', module: MODEL_MODULE, prefix: own.prefix, args: ['--stop-timeout-ms', '1000'] });
      await own.server!.kill();
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      p.child.kill('SIGTERM');
      const { code, signal } = await p.exited;
      expect(signal).toBeNull();
      expect(code).toBe(0);
      // stopTimeoutMs + forced close + each bounded step, with slack.
      expect(Date.now() - t0).toBeLessThan(10_000);
      // Connection errors: a line every few seconds, not one per retry.
      expect(p.stderr().split('\n').filter((l) => l.includes('Redis connection error')).length).toBeLessThan(10);
    } finally {
      await own.cleanup();
    }
  }, 30_000);
});
