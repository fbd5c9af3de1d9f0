/**
 * A client process that ends without close() still delivers the stats it
 * buffered (statsFlushIntervalMs is a minute here, so only the way out can
 * write them): after process.exit(), when killed by SIGTERM or SIGINT with no
 * handler of its own (and it still dies by that signal), and when its own
 * SIGTERM handler exits (the handler runs, the exit code is the
 * application's). With flushStatsOnExit: false nothing is written, and the
 * signal kills at once as Node's default does. Real child processes
 * (fixtures/exit-without-close.ts) against a real Redis.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { readStats } from '@inferq/core';
import { spawnNode, startTestRedis, type TestRedis } from '@inferq/testkit';

const SCRIPT = fileURLToPath(new URL('./fixtures/exit-without-close.ts', import.meta.url));
const REQUESTS = 174;

let redis: TestRedis;
const workers: InferenceWorker[] = [];
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await redis.cleanup();
});

async function run(model: string, mode: string, signal?: NodeJS.Signals) {
  const worker = new InferenceWorker<number, number>({ redis: redis.url, model, prefix: redis.prefix, run: async (xs) => xs });
  workers.push(worker);
  await worker.start();
  const p = spawnNode(SCRIPT, [redis.url, redis.prefix, model, mode, String(REQUESTS)]);
  if (signal) {
    await p.waitForLine(/^DONE$/, 30_000);
    p.child.kill(signal);
  }
  const timer = setTimeout(() => void p.kill(), 20_000); // never left running
  const exit = await p.exited;
  clearTimeout(timer);
  // The stats a process wrote on its way out are in Redis once it is gone (the kernel sends what it was handed).
  const conn = redis.connect();
  let stats = await readStats(conn, model, redis.prefix);
  for (let i = 0; i < 20 && stats.totalRequests < REQUESTS; i++) {
    await new Promise((r) => setTimeout(r, 50));
    stats = await readStats(conn, model, redis.prefix);
  }
  return { exit, stats, out: p.lines, err: p.stderr() };
}

describe('client stats when the process ends without close()', () => {
  it('process.exit() right after the requests: the buffered stats are written', async () => {
    const r = await run('exit-call', 'exit');
    expect(r.exit, r.err).toEqual({ code: 0, signal: null });
    expect(r.stats).toMatchObject({ totalRequests: REQUESTS, cacheMisses: REQUESTS, batchItems: REQUESTS });
  });

  it('SIGTERM with no handler of the application: written, and the process still dies by SIGTERM', async () => {
    const r = await run('exit-sigterm', 'signal', 'SIGTERM');
    expect(r.exit, r.err).toEqual({ code: null, signal: 'SIGTERM' });
    expect(r.stats).toMatchObject({ totalRequests: REQUESTS, cacheMisses: REQUESTS });
  });

  it('SIGINT (Ctrl-C) with no handler: written, and the process dies by SIGINT', async () => {
    const r = await run('exit-sigint', 'signal', 'SIGINT');
    expect(r.exit, r.err).toEqual({ code: null, signal: 'SIGINT' });
    expect(r.stats).toMatchObject({ totalRequests: REQUESTS, cacheMisses: REQUESTS });
  });

  it("the application's own SIGTERM handler runs and decides the exit; the stats are written", async () => {
    const r = await run('exit-app', 'app-handler', 'SIGTERM');
    expect(r.out).toContain('APP SIGTERM');
    expect(r.exit, r.err).toEqual({ code: 0, signal: null });
    expect(r.stats).toMatchObject({ totalRequests: REQUESTS, cacheMisses: REQUESTS });
  });

  it('flushStatsOnExit: false: nothing written, SIGTERM kills at once', async () => {
    const r = await run('exit-off', 'flush-off', 'SIGTERM');
    expect(r.exit, r.err).toEqual({ code: null, signal: 'SIGTERM' });
    expect(r.stats.totalRequests).toBe(0);
  });

  it('one listener per signal for every open client of the process, none once they are closed', async () => {
    const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT'), exit: process.listenerCount('exit') };
    const a = new InferenceClient({ redis: redis.url, model: 'exit-listeners', prefix: redis.prefix });
    const b = new InferenceClient({ redis: redis.url, model: 'exit-listeners', prefix: redis.prefix });
    expect({ term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT'), exit: process.listenerCount('exit') }).toEqual({ term: before.term + 1, int: before.int + 1, exit: before.exit + 1 });
    await a.close();
    expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
    await b.close();
    expect({ term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT'), exit: process.listenerCount('exit') }).toEqual(before);
  });
});
