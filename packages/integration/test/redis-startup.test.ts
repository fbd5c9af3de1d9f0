/**
 * Start-up against a Redis that cannot serve: nothing listening, wrong
 * credentials, an ACL user that lacks a command. Each ends in one typed
 * error naming the cause within a bounded time; `start()` and `close()`
 * settle; nothing keeps running or logging.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectingLogger } from './fixtures/collecting-logger.js';
import { ErrorCode, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { WORKER_CLI, freePort, spawnNode, startTestRedis, type TestRedis } from '@inferq/testkit';

let redis: TestRedis;
let port = 0;
beforeAll(async () => {
  redis = await startTestRedis({ ownServer: true });
  port = redis.server!.port;
  const admin = redis.connect();
  // A user with everything, a user without scripts, one without INFO/CLIENT, one without blocking list moves.
  await admin.call('ACL', 'SETUSER', 'full', 'on', '>right', '~*', '&*', '+@all');
  await admin.call('ACL', 'SETUSER', 'noscripts', 'on', '>pw', '~*', '&*', '+@all', '-evalsha', '-eval');
  await admin.call('ACL', 'SETUSER', 'noinfo', 'on', '>pw', '~*', '&*', '+@all', '-info', '-client');
  await admin.call('ACL', 'SETUSER', 'noblmove', 'on', '>pw', '~*', '&*', '+@all', '-blmove');
  // The README's least-privilege rule: the prefix's keys only, no channels, no dangerous commands but the few needed.
  await admin.call('ACL', 'SETUSER', 'inferq', 'on', '>pw', 'resetkeys', `~${LEAST_PREFIX}:*`, 'resetchannels', '+@all', '-@dangerous', '+info', '+client|setname', '+client|getname');
});
afterAll(() => redis.cleanup());


const model = 'startup';
const LEAST_PREFIX = 'leastpriv';
const run = async (xs: unknown[]) => xs;

async function failedStart(url: string, connectTimeoutMs = 1500): Promise<{ err: InferqError; ms: number; lines: string[] }> {
  const { logger, lines } = collectingLogger();
  const worker = new InferenceWorker({ redis: url, model, prefix: redis.newPrefix(), run, logger, connectTimeoutMs });
  const t0 = Date.now();
  const err = (await worker.start().then(() => undefined, (e: unknown) => e)) as InferqError;
  return { err, ms: Date.now() - t0, lines };
}

describe('start-up against a Redis that cannot serve', () => {
  it('nothing listening: the worker and the client fail typed within the connect timeout, and close', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const { err, ms, lines } = await failedStart(url);
    expect(err.code).toBe(ErrorCode.REDIS_UNAVAILABLE);
    expect(err.details.reason).toBe('refused');
    expect(err.message).toContain(url);
    expect(ms).toBeLessThan(5000);
    const before = lines.length;
    await new Promise((r) => setTimeout(r, 1000));
    expect(lines.length).toBe(before); // nothing keeps retrying and logging

    const client = new InferenceClient({ redis: url, model, connectTimeoutMs: 1000, logger: collectingLogger().logger });
    const t0 = Date.now();
    const e = (await client.infer({ x: 1 }, { timeoutMs: 20_000 }).catch((x: unknown) => x)) as InferqError;
    expect(e.code).toBe(ErrorCode.REDIS_UNAVAILABLE);
    expect(Date.now() - t0).toBeLessThan(5000);
    const t1 = Date.now();
    await client.close();
    expect(Date.now() - t1).toBeLessThan(8000);
  }, 30_000);

  it('a client whose start-up check fails before anything awaits it: logged, no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const { logger, lines } = collectingLogger();
    const client = new InferenceClient({ redis: `redis://127.0.0.1:${await freePort()}`, model, connectTimeoutMs: 300, logger });
    try {
      // Nobody calls infer(): the check fails on its own, with no one waiting for it.
      await new Promise((r) => setTimeout(r, 1200));
      expect(unhandled).toEqual([]);
      expect(lines.join('\n')).toContain('Redis is not usable');
      const e = (await client.infer({ x: 1 }, { timeoutMs: 5000 }).catch((x: unknown) => x)) as InferqError;
      expect(e.code).toBe(ErrorCode.REDIS_UNAVAILABLE);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await client.close();
    }
  }, 30_000);

  it('wrong password: INFERQ_REDIS_AUTH_FAILED at once, for the worker and for every request of the client', async () => {
    const url = `redis://full:wrong@127.0.0.1:${port}`;
    const { err, ms } = await failedStart(url);
    expect(err.code).toBe(ErrorCode.REDIS_AUTH_FAILED);
    expect(err.message).not.toContain('wrong'); // the password is hidden
    expect(ms).toBeLessThan(1500);
    const client = new InferenceClient({ redis: url, model, logger: collectingLogger().logger });
    for (const useCache of [true, false]) {
      const e = (await client.infer({ x: 1 }, { useCache, timeoutMs: 20_000 }).catch((x: unknown) => x)) as InferqError;
      expect(e.code).toBe(ErrorCode.REDIS_AUTH_FAILED);
    }
    await client.close();
  });

  it('an ACL user without a needed command: INFERQ_REDIS_PERMISSION_DENIED naming it; nothing spins', async () => {
    const a = await failedStart(`redis://noscripts:pw@127.0.0.1:${port}`);
    expect(a.err.code).toBe(ErrorCode.REDIS_PERMISSION_DENIED);
    expect(a.err.details.missing).toEqual(expect.arrayContaining(['EVAL', 'EVALSHA']));
    const b = await failedStart(`redis://noinfo:pw@127.0.0.1:${port}`);
    expect(b.err.code).toBe(ErrorCode.REDIS_PERMISSION_DENIED);
    expect(b.err.details.missing).toEqual(expect.arrayContaining(['INFO']));
    await new Promise((r) => setTimeout(r, 500));
    expect(a.lines.length + b.lines.length).toBeLessThan(10);
    const client = new InferenceClient({ redis: `redis://noblmove:pw@127.0.0.1:${port}`, model, logger: collectingLogger().logger });
    const e = (await client.infer({ x: 1 }, { timeoutMs: 20_000 }).catch((x: unknown) => x)) as InferqError;
    expect(e.code).toBe(ErrorCode.REDIS_PERMISSION_DENIED);
    expect(e.details.missing).toEqual(['BLMOVE']);
    await client.close();
  });

  it('the least-privilege ACL rule of the README is enough for a client and a worker', async () => {
    const url = `redis://inferq:pw@127.0.0.1:${port}`;
    const worker = new InferenceWorker<{ x: number }, { y: number }>({ redis: url, model, prefix: LEAST_PREFIX, config: { batchTimeoutMs: 5 }, run: async (xs) => xs.map((x) => ({ y: -x.x })) });
    await worker.start();
    const client = new InferenceClient<{ x: number }, { y: number }>({ redis: url, model, prefix: LEAST_PREFIX });
    try {
      const rs = await Promise.all([client.infer({ x: 1 }), client.infer({ x: 1 }), client.infer({ x: 2 }, { useCache: false })]);
      expect(rs.map((r) => r.output.y)).toEqual([-1, -1, -2]);
      expect((await client.stats()).totalRequests).toBeGreaterThanOrEqual(3);
      // ...and nothing outside its prefix.
      const e = (await new InferenceClient({ redis: url, model, prefix: 'other', logger: collectingLogger().logger }).infer({ x: 1 }).catch((x: unknown) => x)) as InferqError;
      expect(e.code).toBe(ErrorCode.REDIS_PERMISSION_DENIED);
    } finally {
      await client.close();
      await worker.stop();
    }
  });

  it('the worker CLI prints the cause and exits non-zero, without a stack trace', async () => {
    const p = spawnNode(WORKER_CLI, ['--model', model, '--module', 'builtin:noop'], { REDIS_URL: `redis://full:wrong@127.0.0.1:${port}`, INFERQ_LOG_LEVEL: 'silent' });
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.stderr()).toContain('refused the credentials');
    expect(p.stderr()).not.toMatch(/\n\s+at /);
  }, 30_000);
});

describe('every public method rejects typed when Redis refuses writes or is down', () => {
  it('OOM (noeviction, maxmemory reached), then Redis down: infer, stats and clearCache reject with InferqErrors', async () => {
    const own = await startTestRedis({ ownServer: true });
    const admin = own.connect();
    const client = new InferenceClient({ redis: own.url, model, prefix: own.prefix, logger: collectingLogger().logger, connectTimeoutMs: 1500 });
    try {
      // Let the client pass its start-up check, then make Redis refuse every write.
      await client.stats();
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      for (const useCache of [true, false]) {
        const e = (await client.infer({ x: 1 }, { useCache, timeoutMs: 5000 }).catch((x: unknown) => x)) as InferqError;
        expect(e.code, String(e)).toMatch(/^INFERQ_/);
      }
      // (Deleting is allowed under OOM: clearCache works then.)
      await admin.config('SET', 'maxmemory', '0');
      await own.server!.kill();
      const c = (await client.clearCache().catch((x: unknown) => x)) as InferqError;
      expect(c?.code, String(c)).toMatch(/^INFERQ_/);
      const s = (await client.stats().catch((x: unknown) => x)) as InferqError;
      expect(s.code, String(s)).toMatch(/^INFERQ_/);
      const d = (await client.infer({ x: 2 }, { timeoutMs: 3000 }).catch((x: unknown) => x)) as InferqError;
      expect(d.code, String(d)).toMatch(/^INFERQ_/);
    } finally {
      const t0 = Date.now();
      await client.close();
      expect(Date.now() - t0).toBeLessThan(8000);
      await own.cleanup();
    }
  }, 60_000);
});

describe('a slow Redis', () => {
  it('paused Redis: every public method still settles within its bound, typed', async () => {
    const own = await startTestRedis({ ownServer: true });
    const admin = own.connect();
    const worker = new InferenceWorker<{ x: number }, { y: number }>({ redis: own.url, model, prefix: own.prefix, config: { batchTimeoutMs: 2 }, run: async (xs) => xs.map((x) => ({ y: x.x })), stopTimeoutMs: 500 });
    await worker.start();
    const client = new InferenceClient<{ x: number }, { y: number }>({ redis: own.url, model, prefix: own.prefix, connectTimeoutMs: 1000, logger: collectingLogger().logger });
    try {
      expect((await client.infer({ x: 1 })).output.y).toBe(1);
      // Redis stops answering every client for 4 s (as a saturated or swapping server would).
      await admin.call('CLIENT', 'PAUSE', '4000', 'ALL');
      const t0 = Date.now();
      const [r, s, c] = await Promise.all([
        client.infer({ x: 2 }, { timeoutMs: 800 }).catch((x: unknown) => x as InferqError),
        client.stats().catch((x: unknown) => x as InferqError),
        client.clearCache().catch((x: unknown) => x as InferqError),
      ]);
      expect((r as InferqError).code).toBe(ErrorCode.TIMEOUT);
      expect((s as InferqError).code).toMatch(/^INFERQ_/);
      expect((c as InferqError).code).toMatch(/^INFERQ_/);
      expect(Date.now() - t0).toBeLessThan(3000);
      const t1 = Date.now();
      await worker.stop();
      await client.close({ timeoutMs: 100 });
      expect(Date.now() - t1).toBeLessThan(8000);
    } finally {
      await own.cleanup();
    }
  }, 60_000);
});
