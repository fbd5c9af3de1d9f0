/**
 * Containment of a model that hangs or is down (docs/failure-modes.md), with
 * real Redis and in-process workers:
 *
 * - a model that never returns for 3 inputs among 300 sent together: every
 *   clean request is answered with its output, each hanging one with
 *   INFERQ_MODEL_TIMEOUT (never INFERQ_JOB_LOST); before hang isolation 45 of
 *   the clean ones failed with the hung ones;
 * - a model that throws on every call: a batch of 64 costs at most 7 calls
 *   (bisection made 127), the requests are answered at once
 *   (INFERQ_MODEL_UNAVAILABLE once the worker's circuit breaker opens), an
 *   open breaker calls nothing, and it closes again by itself after its
 *   back-off once the model is back.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker, type InferenceWorkerOptions } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

type In = { x: number; hang?: boolean };
type Out = { y: number };

const h = useTestRedis({ ownServer: true });

async function worker(prefix: string, model: string, o: Partial<InferenceWorkerOptions<In, Out>>) {
  const w = new InferenceWorker<In, Out>({ redis: h.redis.url, model, prefix, stopTimeoutMs: 500, run: async (xs) => xs.map((x) => ({ y: x.x })), ...o });
  h.defer(() => w.stop());
  await w.start();
  return w;
}

function client(prefix: string, model: string) {
  const c = new InferenceClient<In, Out>({ redis: h.redis.url, model, prefix });
  h.defer(() => c.close({ timeoutMs: 100 }));
  return c;
}

const code = (o: PromiseSettledResult<unknown>) => (o.status === 'fulfilled' ? 'ok' : (o.reason as InferqError).code);

describe('model containment', () => {
  it('3 hanging inputs among 300: every clean request is answered, each hanging one INFERQ_MODEL_TIMEOUT', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'hangs';
    const hanging = new Set([50, 150, 250]);
    const run = async (xs: In[]) => {
      if (xs.some((x) => x.hang)) await new Promise(() => {}); // never returns
      return xs.map((x) => ({ y: x.x }));
    };
    for (const id of ['w1', 'w2']) await worker(prefix, model, { workerId: id, modelTimeoutMs: 1500, config: { maxBatchSize: 32, numWorkers: 4, batchTimeoutMs: 10 }, run });
    const c = client(prefix, model);
    const t0 = Date.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) => c.infer({ x: i, ...(hanging.has(i) ? { hang: true } : {}) }, { useCache: false, timeoutMs: 25_000 })),
    );
    const ms = Date.now() - t0;
    const clean = outcomes.filter((_, i) => !hanging.has(i));
    const failedClean = clean.map(code).filter((c) => c !== 'ok');
    console.log('hang isolation:', JSON.stringify({ ms, failedClean: failedClean.length, codes: failedClean.slice(0, 5), hanging: [...hanging].map((i) => code(outcomes[i]!)) }));
    expect(failedClean).toEqual([]);
    outcomes.forEach((o, i) => {
      if (!hanging.has(i)) expect(o.status === 'fulfilled' && o.value.output.y).toBe(i);
    });
    for (const i of hanging) expect(code(outcomes[i]!), `input ${i}`).toBe(ErrorCode.MODEL_TIMEOUT);
  }, 60_000);

  it('a model that is down: a batch of 64 costs at most 7 calls, answered at once; the breaker calls nothing while open and closes once the model is back', async () => {
    const prefix = h.redis.newPrefix();
    const model = 'down';
    let down = true;
    const calls: number[] = [];
    await worker(prefix, model, {
      config: { maxBatchSize: 64, numWorkers: 1, batchTimeoutMs: 50 },
      batchPolicy: 'timeout',
      run: async (xs) => {
        calls.push(xs.length);
        if (down) throw new Error('model server unreachable');
        return xs.map((x) => ({ y: x.x }));
      },
    });
    const c = client(prefix, model);
    const t0 = Date.now();
    const first = await c.inferBatchSettled(Array.from({ length: 64 }, (_, i) => ({ x: i })), { useCache: false, timeoutMs: 20_000 });
    const firstMs = Date.now() - t0;
    const firstCalls = calls.length;
    console.log('model down:', JSON.stringify({ firstMs, firstCalls, sizes: calls, codes: [...new Set(first.map(code))] }));
    expect(calls[0]).toBe(64); // one batch
    expect(firstCalls).toBeLessThanOrEqual(7);
    expect(first.every((o) => o.status === 'rejected')).toBe(true);
    expect(first.filter((o) => code(o) === ErrorCode.MODEL_UNAVAILABLE).length).toBeGreaterThanOrEqual(32);
    expect(firstMs).toBeLessThan(2000);

    // Open: the next batch is answered without a call.
    const second = await c.inferBatchSettled(Array.from({ length: 16 }, (_, i) => ({ x: 100 + i })), { useCache: false, timeoutMs: 20_000 });
    expect(second.map(code)).toEqual(second.map(() => ErrorCode.MODEL_UNAVAILABLE));
    expect(calls.length).toBe(firstCalls);

    // The model is back: within the back-off (1 s, then doubling) a probe call closes the breaker.
    down = false;
    let answered = false;
    const t1 = Date.now();
    for (let i = 0; i < 50 && !answered; i++) {
      const r = await c.infer({ x: 7 }, { useCache: false, timeoutMs: 5_000 }).then(
        (v) => v.output.y === 7,
        () => false,
      );
      answered = r;
      if (!answered) await new Promise((r) => setTimeout(r, 200));
    }
    expect(answered).toBe(true);
    console.log('model back: answered after', Date.now() - t1, 'ms');
  }, 60_000);
});
