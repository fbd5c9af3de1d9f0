/**
 * The request protocol under broken parts: a flight owner that died before
 * enqueueing, result lines and envelope items that cannot be decoded, and a
 * job that runs a second time. Each test builds the broken state with the
 * protocol's own functions (what a dead or buggy process leaves behind) and
 * checks that only the broken request is affected.
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { ErrorCode, cacheKey, modelKeys, readStats, type InferqError } from '@inferq/core';
import { ENVELOPE_JOB_NAME, ENVELOPE_VERSION, claimFlights, type RequestEnvelope } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

type In = { x: number };
type Out = { y: number };

const h = useTestRedis({ ownServer: true });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function client(prefix: string, model: string) {
  const c = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
  h.defer(() => c.close({ timeoutMs: 100 }));
  return c;
}

async function worker(prefix: string, model: string, seen: number[] = []) {
  const w = new InferenceWorker<In, Out>({
    redis: h.redis.url,
    model,
    prefix,
    config: { batchTimeoutMs: 5 },
    run: async (xs) => {
      seen.push(...xs.map((x) => x.x));
      return xs.map((x) => ({ y: x.x * x.x }));
    },
  });
  h.defer(() => w.stop());
  await w.start();
  return w;
}

function queue(prefix: string, model: string) {
  const keys = modelKeys(model, prefix);
  const q = new Queue(keys.queueName, { connection: { host: '127.0.0.1', port: h.redis.server!.port }, prefix: keys.queuePrefix });
  h.defer(() => q.close());
  return q;
}

describe('request protocol: recovery', () => {
  it('5. dead owner: a flight whose owner died before enqueueing is taken over by a waiter', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'deadowner';
    const conn = h.redis.connect();
    const keys = modelKeys(model, prefix);
    // A client that claimed X's flight and died before its addBulk: no job, no heartbeat, a far deadline.
    const key = cacheKey({ model, modelVersion: '1', quantization: 'FP32' }, { x: 5 });
    const [claim] = await claimFlights(conn, keys, 'ghost-1-0', [{ id: 'ghost-1-0.0', key, deadline: Date.now() + 600_000 }]);
    expect(claim?.kind).toBe('owner');
    await worker(prefix, model);
    const c = client(prefix, model);
    const t0 = Date.now();
    const r = await c.infer({ x: 5 }, { timeoutMs: 15_000 });
    expect(r.output.y).toBe(25);
    // Bound: heartbeat TTL (3 s) + check age (2 s) + a tick (1 s), with slack for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(9000);
  }, 20_000);

  it('7a. a malformed result line fails its own request only; the rest of the element is delivered', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'badline';
    const c = client(prefix, model);
    const p1 = c.infer({ x: 1 }, { useCache: false }).catch((e: unknown) => e as InferqError);
    const p2 = c.infer({ x: 2 }, { useCache: false });
    const q = queue(prefix, model);
    let env: RequestEnvelope | undefined;
    for (let i = 0; i < 100 && !env; i++) {
      env = (await q.getJobs(['wait', 'prioritized']))[0]?.data as RequestEnvelope | undefined;
      if (!env) await sleep(20);
    }
    const [a, b] = env!.items;
    // No worker runs: we answer both, the first with a payload that is valid JSON but not a result.
    await h.redis.connect().rpush(modelKeys(model, prefix).inbox(env!.client), `${a!.id} {"ok":0,"worker":"w"}\n${b!.id} {"ok":1,"worker":"w","batchSize":2,"output":{"y":4}}`);
    expect((await p2).output).toEqual({ y: 4 });
    expect(((await p1) as InferqError).code).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  it('7b. a worker checks envelope items: a malformed item fails alone, the others are answered', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'baditem';
    const keys = modelKeys(model, prefix);
    const seen: number[] = [];
    await worker(prefix, model, seen);
    const conn = h.redis.connect();
    const deadline = Number((await conn.time())[0]) * 1000 + 10_000;
    const items = [
      { id: 'fake-1-0.0', input: '{"x":3}', deadline },
      { id: 'fake-1-0.1', input: '{"x":4}', deadline: 'soon' },
      { id: 'fake-1-0.2', input: '{"x":', deadline },
    ];
    await queue(prefix, model).add(ENVELOPE_JOB_NAME, { v: ENVELOPE_VERSION, client: 'fake-1-0', modelVersion: '1', quantization: 'FP32', items });
    let lines: string[] = [];
    for (let i = 0; i < 100 && lines.length < 3; i++) {
      lines = (await conn.lrange(keys.inbox('fake-1-0'), 0, -1)).flatMap((e) => e.split('\n'));
      await sleep(20);
    }
    const byId = new Map(lines.map((l) => [l.slice(0, l.indexOf(' ')), JSON.parse(l.slice(l.indexOf(' ') + 1)) as { ok: number; output?: unknown; error?: { code: string } }]));
    expect(byId.get('fake-1-0.0')).toMatchObject({ ok: 1, output: { y: 9 } });
    expect(byId.get('fake-1-0.1')?.error?.code).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(byId.get('fake-1-0.2')?.error?.code).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(seen).toEqual([3]);
  });

  it('7c. cache keys of the wrong type: requests are computed without the cache instead of failing raw', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'wrongtype';
    const conn = h.redis.connect();
    await conn.set(modelKeys(model, prefix).cacheVal, 'not a hash');
    await worker(prefix, model);
    const c = client(prefix, model);
    const rs = await Promise.all([c.infer({ x: 3 }), c.infer({ x: 4 })]);
    expect(rs.map((r) => r.output.y)).toEqual([9, 16]);
  });

  it('10. a job run a second time neither recomputes, re-answers nor recounts what it already settled', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'rerun';
    const keys = modelKeys(model, prefix);
    const seen: number[] = [];
    await worker(prefix, model, seen);
    const conn = h.redis.connect();
    const deadline = Number((await conn.time())[0]) * 1000 + 30_000;
    const items = [1, 2, 3].map((x, i) => ({ id: `fake-2-0.${i}`, input: JSON.stringify({ x }), deadline }));
    const q = queue(prefix, model);
    const job = await q.add(ENVELOPE_JOB_NAME, { v: ENVELOPE_VERSION, client: 'fake-2-0', modelVersion: '1', quantization: 'FP32', items }, { removeOnComplete: false });
    for (let i = 0; i < 200 && !(await job.isCompleted()); i++) await sleep(20);
    expect(await job.isCompleted()).toBe(true);
    // Run it again, as after a worker died between its settle and the job's completion.
    await job.retry('completed');
    for (let i = 0; i < 200 && !(await job.isCompleted()); i++) await sleep(20);
    await sleep(200);
    expect(await job.isCompleted()).toBe(true);
    expect((await q.getJob(job.id as string))?.attemptsStarted).toBe(2); // it did run again
    expect(seen.sort()).toEqual([1, 2, 3]);
    const lines = (await conn.lrange(keys.inbox('fake-2-0'), 0, -1)).flatMap((e) => e.split('\n'));
    expect(lines).toHaveLength(3);
    const stats = await readStats(conn, model, prefix);
    expect(stats.batchItems).toBe(3);
  });
});
