/**
 * Gives a test file an isolated, real Redis. In order:
 *  1. `REDIS_URL` when set: a unique key prefix per call, its keys deleted on cleanup;
 *  2. a `redis-server` child process on a free port in its own temp dir
 *     (the only mode that lets fault tests stop, kill and restart Redis);
 *  3. a testcontainers Redis when a Docker engine answers;
 *  4. otherwise an error that says how to get one.
 * Tests never mock Redis.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisServerProcess, findRedisServerBinary } from './redis-server-process.js';

export type TestRedisKind = 'external' | 'process' | 'container';

export interface TestRedis {
  kind: TestRedisKind;
  url: string;
  /** Unique key prefix for this test (pass it as `prefix` to inferq components). */
  prefix: string;
  /** Present in `process` mode: stop, kill and restart the server. */
  server: RedisServerProcess | undefined;
  /** A new ioredis connection to this Redis (closed by cleanup). */
  connect(): Redis;
  /** A fresh unique prefix, for tests that need several isolated namespaces. */
  newPrefix(): string;
  cleanup(): Promise<void>;
}

export interface TestRedisOptions {
  /** Need a server this test controls (stop/kill/restart): skips REDIS_URL. */
  ownServer?: boolean;
}

export const HOW_TO_GET_REDIS =
  'No Redis for the tests: set REDIS_URL=redis://127.0.0.1:6379, or install redis-server ' +
  '(Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis), or start a Docker engine ' +
  '(testcontainers then runs redis:7).';

function uniquePrefix(): string {
  return `inferqtest-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export async function startTestRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const external = process.env.REDIS_URL;
  if (external && !options.ownServer) return wrap('external', external, undefined, async () => undefined);

  if (findRedisServerBinary()) {
    const server = await RedisServerProcess.start();
    return wrap('process', server.url, server, () => server.destroy());
  }
  if (options.ownServer) throw new Error(`This test controls its own redis-server. ${HOW_TO_GET_REDIS}`);

  const container = await startContainer();
  if (container) return wrap('container', container.url, undefined, container.stop);
  throw new Error(HOW_TO_GET_REDIS);
}

async function startContainer(): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  try {
    const { RedisContainer } = await import('@testcontainers/redis');
    const started = await new RedisContainer('redis:7-alpine')
      .withCommand(['redis-server', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction'])
      .start();
    return { url: started.getConnectionUrl(), stop: async () => void (await started.stop()) };
  } catch {
    return undefined; // no Docker engine answered
  }
}

function wrap(kind: TestRedisKind, url: string, server: RedisServerProcess | undefined, stop: () => Promise<void>): TestRedis {
  const connections: Redis[] = [];
  const prefixes: string[] = [];
  const newPrefix = () => {
    const p = uniquePrefix();
    prefixes.push(p);
    return p;
  };
  const prefix = newPrefix();
  return {
    kind,
    url,
    prefix,
    server,
    newPrefix,
    connect() {
      const r = new Redis(url, { maxRetriesPerRequest: 3 });
      r.on('error', () => undefined);
      connections.push(r);
      return r;
    },
    async cleanup() {
      if (kind === 'external' || (server && server.running)) {
        const r = new Redis(url, { maxRetriesPerRequest: 1 });
        r.on('error', () => undefined);
        try {
          for (const p of prefixes) await deleteByPattern(r, `${p}:*`);
        } catch {
          // best effort: the server may have been stopped by the test
        } finally {
          r.disconnect();
        }
      }
      for (const c of connections) c.disconnect();
      await stop();
    },
  };
}

async function deleteByPattern(r: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await r.unlink(...keys);
  } while (cursor !== '0');
}
