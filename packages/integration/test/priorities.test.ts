/**
 * Fair service and priorities, through a real worker and real clients: what
 * the model computes, in what order. Each test records the model's inputs in
 * the order it saw them and counts how many queued requests went ahead of the
 * ones that should pass them (order, not wall-clock time, so a slow machine
 * does not decide the verdict).
 *
 * - `high` passes a queued backlog; a request sent `low` waits for all of it.
 * - A polite tenant passes a flooder's backlog (ranks by per-tenant count).
 * - Aging: a `low` request under a stream of `high` ones is served while the
 *   stream still runs.
 * - A tenant's cap on model slots holds in every model call.
 */
import { describe, expect, it } from 'vitest';
import { classOf, jobPriority, setTenant } from '@inferq/core/protocol';
import { modelKeys } from '@inferq/core';
import { InferenceClient, type InferenceClientOptions } from '@inferq/client';
import { InferenceWorker, type InferenceWorkerOptions } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

type In = { x: number; t: string };
type Out = { y: number };

const h = useTestRedis();

/** A worker whose model takes `sleepMs` per call and records every input in order; started. */
async function startWorker(prefix: string, worker: Partial<InferenceWorkerOptions<In, Out>> = {}, sleepMs = 10) {
  const seen: In[] = [];
  const calls: In[][] = [];
  const w = h.after(
    new InferenceWorker<In, Out>({
      redis: h.redis.url,
      model: 'prio',
      prefix,
      run: async (inputs) => {
        calls.push(inputs);
        seen.push(...inputs);
        await new Promise((r) => setTimeout(r, sleepMs));
        return inputs.map((i) => ({ y: i.x * i.x }));
      },
      config: { maxBatchSize: 8, batchTimeoutMs: 5, numWorkers: 1 },
      ...worker,
    } as InferenceWorkerOptions<In, Out>),
    (x) => x.stop(),
  );
  await w.start();
  return { seen, calls };
}

function client(prefix: string, o: Partial<InferenceClientOptions<In>> = {}): InferenceClient<In, Out> {
  return h.after(new InferenceClient<In, Out>({ redis: h.redis.url, model: 'prio', prefix, config: { enableCaching: false }, ...o }), (c) => c.close());
}

/** Sends `n` requests in ticks of `perTick` (so they travel as many jobs, as real traffic does); resolves when all are sent. */
async function backlog(c: InferenceClient<In, Out>, t: string, n: number, perTick: number, opts: { priority?: 'high' | 'normal' | 'low' } = {}): Promise<Promise<unknown>[]> {
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < n; i += perTick) {
    for (let j = i; j < Math.min(n, i + perTick); j++) all.push(c.infer({ x: j, t }, { timeoutMs: 60_000, ...opts }));
    await new Promise((r) => setImmediate(r));
  }
  return all;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** How many inputs tagged `tag` the model computed after position `from` and before the first input tagged `probe` with x = `x`. */
function passedBy(seen: In[], from: number, probe: string, x: number, tag: string): number {
  const at = seen.findIndex((i) => i.t === probe && i.x === x);
  expect(at, `${probe}/${x} computed`).toBeGreaterThanOrEqual(0);
  return seen.slice(from, at).filter((i) => i.t === tag).length;
}

describe('priorities and fair service', () => {
  it('a high-priority request passes a queued backlog; one sent low waits for it', async () => {
    const prefix = h.redis.newPrefix();
    const { seen } = await startWorker(prefix);
    const bulk = client(prefix);
    const interactive = client(prefix);
    const done = await backlog(bulk, 'bulk', 400, 10);
    await until(() => seen.length >= 16);
    const ahead: number[] = [];
    for (let i = 0; i < 3; i++) {
      const from = seen.length;
      await interactive.infer({ x: 1000 + i, t: 'hi' }, { priority: 'high', timeoutMs: 30_000 });
      ahead.push(passedBy(seen, from, 'hi', 1000 + i, 'bulk'));
    }
    // A low request (rank 1 in its class) waits for every normal one queued.
    const from = seen.length;
    const queued = 400 - seen.filter((i) => i.t === 'bulk').length;
    const lowProbe = interactive.infer({ x: 2000, t: 'lo' }, { priority: 'low', timeoutMs: 60_000 });
    await Promise.all([lowProbe, ...done]);
    const lowAhead = passedBy(seen, from, 'lo', 2000, 'bulk');
    // At most what the model had already started (a batch or two) goes before a high request.
    for (const n of ahead) expect(n, `bulk items computed before a high request (${ahead.join(', ')})`).toBeLessThanOrEqual(24);
    expect(lowAhead, `bulk items computed before the low probe (${queued} were queued)`).toBe(queued);
  }, 60_000);

  it("a polite tenant's requests pass a flooder's backlog (fair service by tenant)", async () => {
    const prefix = h.redis.newPrefix();
    const { seen } = await startWorker(prefix);
    const flood = client(prefix, { tenant: 'flood' });
    const polite = client(prefix, { tenant: 'polite' });
    const done = await backlog(flood, 'flood', 400, 10);
    await until(() => seen.length >= 16);
    const ahead: number[] = [];
    for (let i = 0; i < 3; i++) {
      const from = seen.length;
      await polite.infer({ x: i, t: 'polite' }, { timeoutMs: 30_000 });
      ahead.push(passedBy(seen, from, 'polite', i, 'flood'));
    }
    await Promise.all(done);
    // Same priority, but the flooder's later requests rank behind the polite tenant's first.
    for (const n of ahead) expect(n, `flood items computed before a polite request (${ahead.join(', ')})`).toBeLessThanOrEqual(24);
  }, 60_000);

  it('a low request is served while a stream of high ones still runs (aging)', async () => {
    const prefix = h.redis.newPrefix();
    const { seen } = await startWorker(prefix, { priorityAgingMs: 300 });
    const stream = client(prefix, { priority: 'high', tenant: 'stream' });
    const other = client(prefix);
    // The stream keeps 40 high requests waiting, bounded to 15 s.
    let stop = false;
    const endAt = Date.now() + 15_000;
    let x = 0;
    const lane = async () => {
      while (!stop && Date.now() < endAt) await stream.infer({ x: x++, t: 'stream' }, { timeoutMs: 30_000 });
    };
    const lanes = Array.from({ length: 40 }, lane);
    await until(() => seen.length >= 40);
    const t0 = Date.now();
    await other.infer({ x: -1, t: 'low' }, { priority: 'low', timeoutMs: 20_000 });
    const waited = Date.now() - t0;
    const streamRunning = !stop && Date.now() < endAt;
    stop = true;
    await Promise.all(lanes);
    expect(streamRunning, `the low request waited ${waited} ms: for the stream to end`).toBe(true);
  }, 60_000);

  it("a tenant's cap on model slots holds in every model call, and its requests all complete", async () => {
    const prefix = h.redis.newPrefix();
    await setTenant(h.redis.connect(), modelKeys('prio', prefix), 'capped', { maxSlots: 2 });
    const { calls } = await startWorker(prefix, { config: { maxBatchSize: 8, batchTimeoutMs: 5, numWorkers: 2 } } as Partial<InferenceWorkerOptions<In, Out>>);
    await new Promise((r) => setTimeout(r, 300)); // the worker's upkeep has read the caps
    const capped = client(prefix, { tenant: 'capped' });
    const free = client(prefix, { tenant: 'free' });
    const all = [...(await backlog(capped, 'capped', 40, 40)), ...(await backlog(free, 'free', 40, 40))];
    await Promise.all(all);
    const perCall = calls.map((c) => c.filter((i) => i.t === 'capped').length);
    expect(perCall.reduce((a, b) => a + b, 0)).toBe(40);
    expect(Math.max(...perCall)).toBeLessThanOrEqual(2);
    // The free tenant used the room the capped one could not.
    expect(Math.max(...calls.map((c) => c.filter((i) => i.t === 'free').length))).toBeGreaterThan(2);
  }, 60_000);
});

describe('aging in the queue', () => {
  it('a queued low job moves to the front of normal, then of high, while no worker can take it', async () => {
    const prefix = h.redis.newPrefix();
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((r) => (release = r));
    h.defer(() => release());
    // One model slot, held by the first request; the worker takes no more jobs (maxHeldItems 1).
    await startWorker(prefix, {
      run: async (inputs) => {
        await blocked;
        return inputs.map((i) => ({ y: i.x * i.x }));
      },
      config: { maxBatchSize: 1, batchTimeoutMs: 0, numWorkers: 1 },
      maxHeldItems: 1,
      jobConcurrency: 1,
      priorityAgingMs: 200,
    });
    const c = client(prefix);
    const first = c.infer({ x: 1, t: 'first' }, { timeoutMs: 30_000 });
    const conn = h.redis.connect();
    const keys = modelKeys('prio', prefix);
    const active = `${keys.queuePrefix}:${keys.queueName}:active`;
    await until(async () => (await conn.llen(active)) === 1);
    const low = c.infer({ x: 2, t: 'low' }, { priority: 'low', timeoutMs: 30_000 });
    const prioritized = `${keys.queuePrefix}:${keys.queueName}:prioritized`;
    const priorityOfQueued = async () => {
      const [id] = await conn.zrange(prioritized, 0, 0);
      return id === undefined ? undefined : Number(await conn.hget(`${keys.queuePrefix}:${keys.queueName}:${id}`, 'priority'));
    };
    await until(async () => (await priorityOfQueued()) !== undefined);
    const seenPriorities = new Set<number>();
    const end = Date.now() + 8000;
    while (Date.now() < end && !seenPriorities.has(jobPriority('high', 0))) {
      seenPriorities.add((await priorityOfQueued()) as number);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Sent low; aged to normal's front after one period, to high's front after two more.
    expect([...seenPriorities].map(classOf)).toEqual(['low', 'normal', 'high']);
    expect(seenPriorities).toContain(jobPriority('normal', 0));
    expect(seenPriorities).toContain(jobPriority('high', 0));
    release();
    await Promise.all([first, low]);
  }, 30_000);
});

