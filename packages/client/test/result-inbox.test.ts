/**
 * The result inbox reads at least once: an element handed out just before
 * its connection died is handed out again after the reconnect, and a
 * connection that dies silently (no error, no close: a blackholed path) is
 * noticed by the watchdog and replaced.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pino from 'pino';
import { modelKeys } from '@inferq/core';
import { startTestRedis, TcpProxy, type TestRedis } from '@inferq/testkit';
import { ResultInbox } from '../src/result-inbox.js';

let redis: TestRedis;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
beforeAll(async () => {
  redis = await startTestRedis({ ownServer: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => redis.cleanup());

const logger = pino({ level: 'silent' });

function inboxOn(url: string, client: string, prefix: string) {
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  conn.on('error', () => undefined);
  const got: string[] = [];
  const inbox = new ResultInbox({ redis: conn, keys: modelKeys('m', prefix), client, onElements: (els) => got.push(...els), logger, pendingTtlMs: 60_000 });
  inbox.start();
  cleanups.push(() => inbox.stop());
  return { got, conn };
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return check();
}

describe('ResultInbox', () => {
  it('hands out again what was taken but not acknowledged when the connection dropped', async () => {
    const prefix = redis.newPrefix();
    const keys = modelKeys('m', prefix);
    const direct = redis.connect();
    // As if a take had moved this element to the pending list and its reply was lost with the connection.
    await direct.rpush(keys.inboxPending('c1'), 'c1.0 {"ok":1}');
    const { got, conn } = inboxOn(redis.url, 'c1', prefix);
    expect(await until(() => got.length === 1, 3000)).toBe(true);
    expect(got).toEqual(['c1.0 {"ok":1}']);
    // c1.0 is acknowledged by the take that hands out c1.1; c1.1 stays pending until the next take.
    await direct.rpush(keys.inbox('c1'), 'c1.1 {"ok":1}');
    expect(await until(() => got.length === 2, 3000)).toBe(true);
    expect(await direct.lrange(keys.inboxPending('c1'), 0, -1)).toEqual(['c1.1 {"ok":1}']);
    conn.disconnect(true);
    await new Promise((r) => setTimeout(r, 500));
    await direct.rpush(keys.inbox('c1'), 'c1.2 {"ok":1}');
    expect(await until(() => got.includes('c1.2 {"ok":1}'), 5000)).toBe(true);
    // c1.1 was still pending at the drop: handed out again (request ids make that harmless).
    // c1.0 was acknowledged: never again. Nothing is lost.
    expect(got.filter((e) => e === 'c1.0 {"ok":1}')).toHaveLength(1);
    expect(new Set(got)).toEqual(new Set(['c1.0 {"ok":1}', 'c1.1 {"ok":1}', 'c1.2 {"ok":1}']));
  });

  it('notices a silently dead connection, reconnects, and loses nothing', async () => {
    const prefix = redis.newPrefix();
    const keys = modelKeys('m', prefix);
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: redis.server!.port });
    cleanups.push(() => proxy.close());
    const direct = redis.connect();
    const { got } = inboxOn(proxy.url, 'c2', prefix);
    await direct.rpush(keys.inbox('c2'), 'c2.0 {"ok":1}');
    expect(await until(() => got.length === 1, 3000)).toBe(true);
    // The path dies silently: the blocked wait on it returns in Redis, but its reply never
    // arrives. The wait moved nothing, so the element is still in the inbox.
    await new Promise((r) => setTimeout(r, 100));
    proxy.blackholeExisting();
    await direct.rpush(keys.inbox('c2'), 'c2.1 {"ok":1}');
    await new Promise((r) => setTimeout(r, 200));
    expect(await direct.llen(keys.inbox('c2'))).toBe(1);
    // No key is ever left without a TTL (a client dying now leaves nothing forever).
    expect(await direct.pttl(keys.inboxPending('c2'))).not.toBe(-1);
    // The watchdog (block time + 4 s) replaces the connection; the pending list is read again.
    expect(await until(() => got.includes('c2.1 {"ok":1}'), 9000)).toBe(true);
    await direct.rpush(keys.inbox('c2'), 'c2.2 {"ok":1}');
    expect(await until(() => got.includes('c2.2 {"ok":1}'), 3000)).toBe(true);
  }, 20_000);
});
