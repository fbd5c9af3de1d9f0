import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis, type RedisOptions } from 'ioredis';
import { TcpProxy, startTestRedis, type TestRedis } from '../src/index.js';

/** Resolves to 'timeout' if `promise` has not settled within `ms`. */
function raceTimer<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls until `check` holds (sockets close asynchronously). */
async function eventually(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('TcpProxy', () => {
  let redis: TestRedis;
  let proxy: TcpProxy;
  const clients: Redis[] = [];

  /** An ioredis client that would wait forever rather than give up: only the proxy decides what it sees. */
  const client = (url: string, extra: RedisOptions = {}): Redis => {
    const c = new Redis(url, { maxRetriesPerRequest: null, enableOfflineQueue: true, ...extra });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  /** Connections the Redis server itself sees (the one direct connection used to ask included). */
  const serverSideClients = async (): Promise<number> => {
    direct ??= redis.connect();
    const list = await direct.client('LIST');
    return String(list).trim().split('\n').length;
  };
  let direct: Redis | undefined;

  beforeAll(async () => {
    redis = await startTestRedis();
    const target = new URL(redis.url);
    expect(target.hostname).toBe('127.0.0.1');
    proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
  });

  // A failed test must not leave the next one behind a blackhole or a hold.
  afterEach(() => {
    proxy.restore();
    proxy.release();
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await proxy?.close();
    await redis?.cleanup();
  });

  it('listens on 127.0.0.1 and forwards both ways', async () => {
    expect(proxy.url).toBe(`redis://127.0.0.1:${proxy.port}`);
    const c = client(proxy.url);
    expect(await c.ping()).toBe('PONG');
    await c.set(`${redis.prefix}:k`, 'through the proxy');
    expect(await redis.connect().get(`${redis.prefix}:k`)).toBe('through the proxy');
    expect(proxy.connections).toBeGreaterThanOrEqual(1);
  });

  it('blackhole() swallows bytes and keeps the socket open; restore() lets new connections through', async () => {
    const c = client(proxy.url);
    expect(await c.ping()).toBe('PONG');
    let closed = false;
    c.on('close', () => (closed = true));
    const live = proxy.connections;

    proxy.blackhole();
    const pending = c.ping();
    pending.catch(() => undefined); // rejected by disconnect() in afterAll
    expect(await raceTimer(pending, 500)).toBe('timeout');
    // No FIN, no RST reached the client: it still believes the connection is fine.
    expect(closed).toBe(false);
    expect(c.status).toBe('ready');
    expect(proxy.connections).toBe(live);

    // A connection accepted during the blackhole must not reach Redis.
    const before = await serverSideClients();
    const late = client(proxy.url, { lazyConnect: true });
    late.connect().catch(() => undefined); // never answers while blackholed
    await eventually(() => proxy.connections === live + 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(await serverSideClients()).toBe(before);

    proxy.restore();
    const fresh = client(proxy.url);
    expect(await raceTimer(fresh.ping(), 2000)).toBe('PONG');
  });

  it('hold() keeps what new connections send until release(), then forwards it in order', async () => {
    const before = await serverSideClients();
    proxy.hold();
    const c = client(proxy.url);
    const key = `${redis.prefix}:held`;
    // Sent while held: neither reaches Redis until the release.
    const set = c.set(key, 'first');
    const get = c.get(key);
    await eventually(() => proxy.connections >= 1);
    expect(await raceTimer(set, 300)).toBe('timeout');
    expect(await serverSideClients()).toBe(before);
    expect(await redis.connect().get(key)).toBeNull();

    proxy.release();
    expect(await raceTimer(set, 2000)).toBe('OK');
    expect(await raceTimer(get, 2000)).toBe('first');
    // Connections made after the release are forwarded at once.
    expect(await raceTimer(client(proxy.url).ping(), 2000)).toBe('PONG');
  });

  it('dropAll() resets every connection; the client notices and reconnects', async () => {
    const c = client(proxy.url);
    expect(await c.ping()).toBe('PONG');
    const noticed = new Promise<string>((resolve) => {
      c.once('close', () => resolve('close'));
      c.once('end', () => resolve('end'));
      c.once('reconnecting', () => resolve('reconnecting'));
    });
    proxy.dropAll();
    expect(proxy.connections).toBe(0);
    expect(await raceTimer(noticed, 2000)).not.toBe('timeout');
    // ioredis reconnects through the proxy, which forwards again.
    expect(await raceTimer(c.ping(), 5000)).toBe('PONG');
  });
});
