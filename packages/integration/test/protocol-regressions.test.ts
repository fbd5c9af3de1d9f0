/**
 * Regression tests for the request protocol (single-flight, deadlines, job
 * loss, cache values, model identity, clocks). Each test states the intended
 * behaviour; they use only the public API, a real Redis, and the Redis keys
 * whose names are part of the contract: the cache value hash
 * (`modelKeys(model, prefix).cacheVal`, field = cache key, value = output
 * JSON), its recency zset (`cacheLru`), and the BullMQ queue
 * (`queuePrefix` / `queueName`). Error codes that do not exist yet are
 * compared as string literals.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Queue, type Job } from 'bullmq';
import { ErrorCode, cacheKey, modelKeys } from '@inferq/core';
import { InferenceClient, type ClientInferenceResult } from '@inferq/client';
import { InferenceWorker, type InferenceWorkerOptions } from '@inferq/worker';
import { startTestRedis, startWorkerProcess, type SpawnedProcess, type TestRedis } from '@inferq/testkit';

const MODEL_MODULE = fileURLToPath(new URL('./fixtures/square-model.mjs', import.meta.url));
const CLOCK_SKEW = fileURLToPath(new URL('./fixtures/clock-skew.mjs', import.meta.url));

type In = { x: number; sleep?: number };
type Out = { y: number };
type Outcome =
  | { ok: true; value: ClientInferenceResult<Out>; ms: number; at: number }
  | { ok: false; error: Error & { code?: string }; ms: number; at: number };

let redis: TestRedis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis({ ownServer: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(() => redis?.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Settles `p` into an outcome with the time it took from `t0` (default: now). */
function track(p: Promise<ClientInferenceResult<Out>>, t0 = Date.now()): Promise<Outcome> {
  return p.then(
    (value) => ({ ok: true as const, value, ms: Date.now() - t0, at: Date.now() }),
    (error: Error) => ({ ok: false as const, error, ms: Date.now() - t0, at: Date.now() }),
  );
}

/** A readable form of an outcome for assertion messages. */
function show(o: Outcome | undefined): string {
  if (!o) return 'still pending';
  return o.ok
    ? `resolved ${JSON.stringify(o.value.output)} after ${o.ms} ms`
    : `rejected ${o.error.name} ${o.error.code ?? '(no code)'}: ${o.error.message} after ${o.ms} ms`;
}

function client(prefix: string, model: string, extra: Partial<ConstructorParameters<typeof InferenceClient<In, Out>>[0]> = {}) {
  const c = new InferenceClient<In, Out>({ redis: redis.url, model, prefix, ...extra });
  cleanups.push(() => c.close({ timeoutMs: 100 }));
  return c;
}

const square = async (xs: In[]): Promise<Out[]> => xs.map((i) => ({ y: i.x * i.x }));

function worker(prefix: string, model: string, extra: Record<string, unknown> = {}) {
  const w = new InferenceWorker<In, Out>({
    redis: redis.url,
    model,
    prefix,
    run: square,
    config: { batchTimeoutMs: 5 },
    stopTimeoutMs: 2000,
    ...extra,
  } as InferenceWorkerOptions<In, Out>);
  cleanups.push(() => w.stop());
  return w;
}

function queue(prefix: string, model: string) {
  const keys = modelKeys(model, prefix);
  const q = new Queue(keys.queueName, { connection: { host: '127.0.0.1', port: redis.server!.port }, prefix: keys.queuePrefix });
  cleanups.push(() => q.close());
  return q;
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 20): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Whichever comes first: the outcome, or undefined after `ms`. */
function within(p: Promise<Outcome>, ms: number): Promise<Outcome | undefined> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(t));
}

function workerProcess(prefix: string, model: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return startWorkerProcess({ redisUrl: redis.url, model, module: MODEL_MODULE, prefix, args, env }).then((p) => {
    cleanups.push(() => p.stop(3000));
    return p;
  });
}

describe('protocol regressions', () => {
  it('1. orphaned waiters: a waiter of another client gets the result even after the owner timed out', async () => {
    const prefix = redis.newPrefix();
    const model = 'orphan';
    const w = worker(prefix, model, {
      run: async (xs: In[]) => {
        await sleep(700);
        return square(xs);
      },
    });
    await w.start();
    const a = client(prefix, model);
    const b = client(prefix, model);
    const input = { x: 7 };
    const q = queue(prefix, model);
    const pa = track(a.infer(input, { timeoutMs: 400 }));
    // B arrives a few ms later, once A's request is on its way (best effort: at most ~150 ms).
    for (let i = 0; i < 30; i++) {
      const n = await q.getJobCounts('waiting', 'active', 'prioritized', 'completed');
      if (Object.values(n).some((v) => v > 0)) break;
      await sleep(5);
    }
    const pb = track(b.infer(input, { timeoutMs: 4000 }));

    const ra = await pa;
    expect(ra.ok, show(ra)).toBe(false);
    expect(!ra.ok && ra.error.code, show(ra)).toBe(ErrorCode.TIMEOUT);

    const rb = await pb;
    // Intended: B is served by the computation A started (it finishes at ~700 ms), not left to time out.
    expect(rb.ok, show(rb)).toBe(true);
    expect(rb.ok && rb.value.output, show(rb)).toEqual({ y: 49 });
    expect(rb.ms, show(rb)).toBeLessThan(2500);
  });

  it("2. another flight's error: a request is never answered with the error of an earlier, expired flight", async () => {
    const prefix = redis.newPrefix();
    const model = 'foreign-error';
    const input = { x: 5 };
    const a = client(prefix, model);
    const ra = await track(a.infer(input, { timeoutMs: 200 }));
    expect(!ra.ok && ra.error.code, show(ra)).toBe(ErrorCode.TIMEOUT);
    // A's job stays queued with its (past) deadline; let A's single-flight claim expire too.
    await sleep(150);

    const b = client(prefix, model);
    const c = client(prefix, model);
    const pb = track(b.infer(input, { timeoutMs: 5000 }));
    await sleep(100); // C arrives while B's request is in flight (in either order, today one of them gets A's error)
    const pc = track(c.infer(input, { timeoutMs: 5000 }));
    await sleep(100); // B's job is queued and C waits on B's flight
    await worker(prefix, model).start();

    const [rb, rc] = await Promise.all([pb, pc]);
    // Intended: both resolve with the output; neither gets A's DEADLINE_EXCEEDED (or any error).
    expect.soft(rb.ok && rb.value.output, show(rb)).toEqual({ y: 25 });
    expect.soft(rc.ok && rc.value.output, show(rc)).toEqual({ y: 25 });
  });

  it('3. borrowed deadlines: a caller sharing a flight in its own process keeps its own deadline', async () => {
    const prefix = redis.newPrefix();
    const model = 'borrowed';
    const c = client(prefix, model);
    const input = { x: 3 };
    const p1 = track(c.infer(input, { timeoutMs: 200 }));
    const p2 = track(c.infer(input, { timeoutMs: 5000 }));
    await sleep(400);
    await worker(prefix, model).start();

    const [r1, r2] = await Promise.all([p1, p2]);
    expect.soft(!r1.ok && r1.error.code, show(r1)).toBe(ErrorCode.TIMEOUT);
    // Intended: the second caller still waits (until 5 s) and is served, not dropped with the first's deadline.
    expect(r2.ok, show(r2)).toBe(true);
    expect(r2.ok && r2.value.output, show(r2)).toEqual({ y: 9 });
  });

  it('4. stalled-limit failure: a job BullMQ fails for stalling tells its caller INFERQ_JOB_LOST', async () => {
    const prefix = redis.newPrefix();
    const model = 'stall-limit';
    // Crash isolation off: BullMQ's stall limit is then 1 (with it on, 1 + 2 * maxCrashes; the same path, more kills).
    const args = ['--lock-duration-ms', '1000', '--stalled-interval-ms', '300', '--batch-timeout-ms', '5', '--max-crashes', '0'];
    const input = { x: 4, sleep: 5000 };
    const q = queue(prefix, model);

    const w1: SpawnedProcess = await workerProcess(prefix, model, args);
    const c = client(prefix, model);
    const timeoutMs = 20_000;
    const pending = track(c.infer(input, { timeoutMs }));
    let job: Job | undefined;
    await waitFor('the first worker to take the job', async () => {
      job = (await q.getJobs(['active'])).find(Boolean);
      return job !== undefined;
    }, 10_000);
    const jobId = job!.id!;
    await w1.kill();

    // The second worker takes the stalled job back (stall 1) ...
    const w2 = await workerProcess(prefix, model, args);
    await waitFor('the second worker to take the stalled job', async () => {
      const j = await q.getJob(jobId);
      return j !== undefined && j.stalledCounter >= 1 && (await j.getState()) === 'active';
    }, 10_000);
    await w2.kill();
    const secondKill = Date.now();

    // ... and once it stalls again BullMQ fails it ("job stalled more than allowable limit").
    const w3 = await workerProcess(prefix, model, args);
    const r = await within(pending, 10_000 - (Date.now() - secondKill));
    const failed = await q.getJob(jobId).then((j) => j?.failedReason);
    // Intended: the caller hears of it (JOB_LOST) soon, well before its own timeout.
    expect(r, `caller outcome ${show(r)} (job ${jobId} failedReason: ${failed ?? 'none'})`).toBeDefined();
    expect(r && !r.ok && r.error.code, show(r)).toBe(ErrorCode.JOB_LOST);
    expect(r!.at - secondKill, show(r)).toBeLessThan(10_000);
    expect(r!.ms, show(r)).toBeLessThan(timeoutMs - 5000);

    // Intended: nothing of the lost flight blocks the same input afterwards.
    await w3.stop(3000);
    await worker(prefix, model).start(); // fast model: ignores `sleep`
    const again = await track(client(prefix, model).infer(input, { timeoutMs: 5000 }));
    expect(again.ok && again.value.output, show(again)).toEqual({ y: 16 });
  });

  it('5. corrupt cache value: that request gets INFERQ_PROTOCOL_ERROR, the others of its tick are served', async () => {
    const prefix = redis.newPrefix();
    const model = 'corrupt';
    const keys = modelKeys(model, prefix);
    await worker(prefix, model).start();
    const c = client(prefix, model);
    const x = { x: 2 };
    const y = { x: 6 };
    const y2 = { x: 8 };
    const field = cacheKey({ model, modelVersion: '1', quantization: 'FP32' }, x);
    const conn = redis.connect();
    await conn.hset(keys.cacheVal, field, 'not json{');
    await conn.zadd(keys.cacheLru, Date.now(), field);

    const p1 = track(c.infer(x, { timeoutMs: 5000 }));
    const p2 = track(c.infer(y, { timeoutMs: 5000 }));
    const [r1, r2] = await Promise.all([p1, p2]);
    expect.soft(!r1.ok && r1.error.code, show(r1)).toBe('INFERQ_PROTOCOL_ERROR');
    expect.soft(r2.ok && r2.value.output, show(r2)).toEqual({ y: 36 });

    // Nothing is left blocked: a fresh input and the same Y again are served.
    const [r3, r4] = await Promise.all([track(c.infer(y2, { timeoutMs: 3000 })), track(c.infer(y, { timeoutMs: 3000 }))]);
    expect.soft(r3.ok && r3.value.output, show(r3)).toEqual({ y: 64 });
    expect.soft(r4.ok && r4.value.output, show(r4)).toEqual({ y: 36 });
  });

  it('6. model identity: a worker refuses requests for another quantization or model version, and caches nothing', async () => {
    const conn = redis.connect();
    {
      const prefix = redis.newPrefix();
      const model = 'identity';
      await worker(prefix, model, { config: { batchTimeoutMs: 5, quantization: 'FP32' } }).start();
      const c = client(prefix, model, { config: { quantization: 'INT8' } });
      const r = await track(c.infer({ x: 3 }, { timeoutMs: 5000 }));
      expect.soft(!r.ok && r.error.code, `quantization INT8 vs FP32: ${show(r)}`).toBe('INFERQ_MODEL_MISMATCH');
      expect.soft(await conn.hlen(modelKeys(model, prefix).cacheVal), 'cache entries written (quantization mismatch)').toBe(0);
    }
    {
      const prefix = redis.newPrefix();
      const model = 'identity';
      // `modelVersion` is a worker option of the new protocol (today the strict option schema rejects it).
      await worker(prefix, model, { modelVersion: '1' }).start();
      const c = client(prefix, model, { modelVersion: '2' });
      const r = await track(c.infer({ x: 3 }, { timeoutMs: 5000 }));
      expect.soft(!r.ok && r.error.code, `modelVersion 2 vs 1: ${show(r)}`).toBe('INFERQ_MODEL_MISMATCH');
      expect.soft(await conn.hlen(modelKeys(model, prefix).cacheVal), 'cache entries written (modelVersion mismatch)').toBe(0);
    }
  });

  it('7. clock skew: a worker whose clock runs 60 s ahead still serves requests', async () => {
    const prefix = redis.newPrefix();
    const model = 'skew';
    await workerProcess(prefix, model, ['--batch-timeout-ms', '5'], {
      NODE_OPTIONS: `--import ${CLOCK_SKEW}`,
      CLOCK_SKEW_MS: '60000',
    });
    const c = client(prefix, model);
    const r = await track(c.infer({ x: 9 }, { timeoutMs: 5000 }));
    expect(r.ok, show(r)).toBe(true);
    expect(r.ok && r.value.output, show(r)).toEqual({ y: 81 });
  });
});
