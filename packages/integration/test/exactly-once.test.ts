/**
 * "Exactly once, by construction": the reproductions of a hostile review,
 * each through the public API, each seen failing on the protocol before the
 * flight state machine and the queue ledger (46d2309):
 *
 *  1. a caller that times out while its claim is in Redis blocks its input for everyone;
 *  2. callers that share a flight share one output object;
 *  3. worker.stop() while Redis does not answer ends in an unhandled rejection;
 *  4. a hung model: callers hear INFERQ_JOB_LOST, and room is given back twice;
 *  5. (the ledger property test, queue-ledger.test.ts);
 *  6. after a model timeout the model gets more calls at once than numWorkers;
 *  7. maxQueueLength x queueShards admits ceil(L / shards) per shard;
 *  9. a client killed between reserving room and enqueuing leaks its room for good.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, modelKeys, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { spawnNode } from '@inferq/testkit';
import { useTestRedis } from '@inferq/testkit/harness';

const h = useTestRedis({ ownServer: true });

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function client<I = unknown, O = unknown>(o: { model: string; prefix: string; maxQueueLength?: number; queueShards?: number }): InferenceClient<I, O> {
  const c = new InferenceClient<I, O>({
    redis: h.redis.url,
    model: o.model,
    prefix: o.prefix,
    ...(o.queueShards ? { queueShards: o.queueShards } : {}),
    config: { ...(o.maxQueueLength ? { maxQueueLength: o.maxQueueLength } : {}) },
  });
  h.defer(() => c.close({ timeoutMs: 200 }));
  return c;
}

async function worker<I, O>(o: {
  model: string;
  prefix: string;
  run: (xs: I[]) => Promise<O[]>;
  numWorkers?: number;
  maxBatchSize?: number;
  modelTimeoutMs?: number;
  queueShards?: number;
  stopTimeoutMs?: number;
}): Promise<InferenceWorker<I, O>> {
  const w = new InferenceWorker<I, O>({
    redis: h.redis.url,
    model: o.model,
    prefix: o.prefix,
    run: o.run,
    config: { batchTimeoutMs: 2, numWorkers: o.numWorkers ?? 1, maxBatchSize: o.maxBatchSize ?? 32 },
    ...(o.modelTimeoutMs ? { modelTimeoutMs: o.modelTimeoutMs } : {}),
    ...(o.queueShards ? { queueShards: o.queueShards } : {}),
    ...(o.stopTimeoutMs ? { stopTimeoutMs: o.stopTimeoutMs } : {}),
  });
  h.defer(() => w.stop());
  await w.start();
  return w;
}

describe('exactly once, by construction', () => {
  it('1. a caller that times out while its claim is in Redis never blocks the input for anyone', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'claim-timeout';
    await worker<{ x: number }, { y: number }>({ model, prefix, run: async (xs) => xs.map((x) => ({ y: x.x * 2 })) });
    const a = client<{ x: number }, { y: number }>({ model, prefix });
    await a.infer({ x: -1 }); // connected, clock synced
    // Targets with timeouts of 1-6 ms among 600 other requests of the same tick: their claims take
    // longer than that, so their callers give up while the claim is in Redis.
    const targets = [1, 2, 3, 4, 5, 6].map((t) => ({ x: 1_000_000 + t, t }));
    const calls = [
      ...Array.from({ length: 600 }, (_, i) => a.infer({ x: i }, { timeoutMs: 10_000 })),
      ...targets.map(({ x, t }) => a.infer({ x }, { timeoutMs: t })),
    ];
    const settled = await Promise.allSettled(calls);
    const timedOut = settled.slice(600).filter((s) => s.status === 'rejected' && (s.reason as InferqError).code === ErrorCode.TIMEOUT).length;
    expect(timedOut).toBeGreaterThan(0);
    // Another client, and the same one, ask for the same inputs: answered at once, not after a
    // flight left owned and unsent expires.
    const b = client<{ x: number }, { y: number }>({ model, prefix });
    const t0 = Date.now();
    const again = await Promise.all(targets.flatMap(({ x }) => [b.infer({ x }, { timeoutMs: 2500 }), a.infer({ x }, { timeoutMs: 2500 })]));
    expect(again.map((r) => r.output.y)).toEqual(targets.flatMap(({ x }) => [2 * x, 2 * x]));
    expect(Date.now() - t0).toBeLessThan(2000);
  }, 30_000);

  it('2. callers that share a flight each get their own output value', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'shared-output';
    await worker<{ k: number }, { scores: number[] }>({ model, prefix, run: async (xs) => xs.map(() => ({ scores: [3, 1, 2] })) });
    const c = client<{ k: number }, { scores: number[]; mine?: string }>({ model, prefix });
    const mutate = (r: { output: { scores: number[]; mine?: string } }) => {
      r.output.scores.sort();
      r.output.mine = 'caller1';
    };
    // Computed by a worker: two callers of one in-process flight.
    const [one, two] = [c.infer({ k: 1 }), c.infer({ k: 1 })];
    mutate(await one);
    expect((await two).output).toEqual({ scores: [3, 1, 2] });
    // From the Redis cache: again two callers of one flight.
    const [three, four] = [c.infer({ k: 1 }), c.infer({ k: 1 })];
    const r3 = await three;
    expect(r3.cached).toBe(true);
    mutate(r3);
    expect((await four).output).toEqual({ scores: [3, 1, 2] });
  }, 20_000);

  it('3. worker.stop() while Redis does not answer returns, and leaves no unhandled rejection', async () => {
    const server = h.redis.server;
    if (!server) throw new Error('this test needs its own redis-server');
    const prefix = h.redis.newPrefix();
    const model = 'stop-frozen';
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    let enter!: () => void;
    const entered = new Promise<void>((r) => (enter = r));
    try {
      const w = await worker<{ x: number }, { y: number }>({
        model,
        prefix,
        stopTimeoutMs: 300,
        run: async (xs) => {
          enter();
          // Longer than stop()'s bounds: the batch is still in the model when stop() gives up on it.
          await sleep(2500);
          return xs.map((x) => ({ y: x.x }));
        },
      });
      const c = client<{ x: number }, { y: number }>({ model, prefix });
      const calls = [1, 2, 3, 4].map((x) => c.infer({ x }, { timeoutMs: 3000 }).catch((e: unknown) => e));
      await entered;
      server.pause(); // the batch's results cannot be delivered
      const t0 = Date.now();
      await w.stop();
      expect(Date.now() - t0).toBeLessThan(5000);
      await sleep(3000); // the delivery's failure surfaces after stop() returned
      await Promise.all(calls);
    } finally {
      server.resume();
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled.map(String)).toEqual([]);
  }, 30_000);

  it('4. a model that keeps timing out: callers hear INFERQ_MODEL_TIMEOUT, and each place in the queue goes back once', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'hung';
    const keys = modelKeys(model, prefix);
    const conn = h.redis.connect();
    // Places other requests hold: they must all still be held at the end.
    const others = Array.from({ length: 1000 }, (_, i) => `other-${i}.${i}`);
    await conn.zadd(keys.room, ...others.flatMap((id) => [0, id]));
    await worker<{ x: number }, { y: number }>({
      model,
      prefix,
      numWorkers: 4, // each attempt gets a model slot while earlier ones still hang
      maxBatchSize: 1, // the answered item and the hanging one run in separate batches of one job
      modelTimeoutMs: 150,
      run: async (xs) => {
        if (xs.some((x) => x.x === 13)) await sleep(1500);
        return xs.map((x) => ({ y: x.x }));
      },
    });
    const c = client<{ x: number }, { y: number }>({ model, prefix, maxQueueLength: 100_000 });
    const [ok, hung] = await Promise.allSettled([c.infer({ x: 1 }, { timeoutMs: 15_000 }), c.infer({ x: 13 }, { timeoutMs: 15_000 })]);
    expect(ok.status === 'fulfilled' && ok.value.output.y).toBe(1);
    expect(hung.status === 'rejected' && (hung.reason as InferqError).code).toBe(ErrorCode.MODEL_TIMEOUT);
    await sleep(200);
    expect(await conn.zcard(keys.room)).toBe(others.length);
  }, 30_000);

  it('6. a model call past modelTimeoutMs keeps its slot: never more calls in the model than numWorkers', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'slots';
    let inModel = 0;
    let most = 0;
    await worker<{ x: number }, { y: number }>({
      model,
      prefix,
      numWorkers: 1,
      maxBatchSize: 4,
      modelTimeoutMs: 100,
      run: async (xs) => {
        inModel++;
        most = Math.max(most, inModel);
        await sleep(250);
        inModel--;
        return xs.map((x) => ({ y: x.x }));
      },
    });
    const c = client<{ x: number }, { y: number }>({ model, prefix });
    await Promise.allSettled(Array.from({ length: 24 }, (_, i) => c.infer({ x: i }, { timeoutMs: 2500 })));
    expect(most).toBe(1);
  }, 30_000);

  it('7. maxQueueLength is the model bound across queue shards, not a bound per shard', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'sharded-bound';
    const keys = modelKeys(model, prefix);
    const conn = h.redis.connect();
    // No worker: whatever is admitted stays counted.
    const c = client<{ x: number }, unknown>({ model, prefix, maxQueueLength: 2, queueShards: 4 });
    const settled = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => c.infer({ x: i }, { timeoutMs: 400, useCache: false })));
    const full = settled.filter((s) => s.status === 'rejected' && (s.reason as InferqError).code === ErrorCode.QUEUE_FULL).length;
    expect(full).toBe(10);
    expect(await conn.zcard(keys.room)).toBe(2);
  }, 20_000);

  it('9. a client killed between reserving room and enqueuing gives its room back within seconds, under traffic', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'dead-clients';
    const keys = modelKeys(model, prefix);
    const conn = h.redis.connect();
    // A slow model and 32 callers: some job always waits, as under steady traffic.
    await worker<{ x: number }, { y: number }>({
      model,
      prefix,
      maxBatchSize: 4,
      run: async (xs) => {
        await sleep(20);
        return xs.map((x) => ({ y: x.x }));
      },
    });
    const live = client<{ x: number }, { y: number }>({ model, prefix, maxQueueLength: 10_000 });
    let stop = false;
    const lane = async (lane: number) => {
      for (let i = 0; !stop && i < 100_000; i++) await live.infer({ x: lane * 100_000 + i }, { timeoutMs: 5000, useCache: false }).catch(() => undefined);
    };
    const traffic = Promise.all(Array.from({ length: 32 }, (_, l) => lane(l)));
    try {
      // Three clients each reserve 300 places and are killed before their enqueue can run.
      const children = [0, 1, 2].map(() =>
        spawnNode(new URL('./fixtures/reserve-and-die.ts', import.meta.url).pathname, [], { REDIS_URL: h.redis.url, MODEL: model, PREFIX: prefix, N: '300' }),
      );
      await Promise.all(children.map((child) => child.waitForLine(/^RESERVED 300$/, 20_000)));
      await Promise.all(children.map((child) => child.kill()));
      expect(await conn.zcard(keys.room)).toBeGreaterThanOrEqual(900);
      // Within a lease (3 s) plus the next reserve or reclaim, everything of the dead clients is back.
      let held = Infinity;
      for (let i = 0; i < 80 && held > 50; i++) {
        await sleep(100);
        held = await conn.zcard(keys.room);
      }
      expect(held).toBeLessThanOrEqual(50);
    } finally {
      stop = true;
      await traffic;
    }
  }, 60_000);
});
