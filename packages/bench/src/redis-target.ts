/**
 * The one Redis every scenario of a run uses: the bench's own `redis-server`
 * child (testkit's RedisServerProcess, AOF off: persistence is not what is
 * compared, and fsyncs on a 2-core box would add noise), or an external one
 * from `--redis-url` / `REDIS_URL`. Only 127.0.0.1: the bench measures the
 * queue, not a network.
 *
 * Between scenarios the bench's own server is emptied with FLUSHALL; an
 * external server is someone else's, so only the scenario's own keys (its
 * namespace prefix) are deleted there.
 */
import { Redis } from 'ioredis';
import { RedisServerProcess } from '@inferq/testkit';
import { LatencyRecorder, type LatencySummary } from './latency.js';

export interface RedisTarget {
  readonly url: string;
  /** How the run got its Redis, for the report. */
  readonly description: string;
  readonly own: boolean;
  /** A command connection of the parent (every command bounded by a timeout). */
  readonly redis: Redis;
  version(): Promise<string>;
  /** Empties what a scenario left behind. */
  reset(namespace: string): Promise<void>;
  /** Sequential PING round trips on an idle connection. */
  pingRtt(samples: number): Promise<LatencySummary>;
  close(): Promise<void>;
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost']);

export async function openRedisTarget(externalUrl: string | undefined): Promise<RedisTarget> {
  let server: RedisServerProcess | undefined;
  let url: string;
  let description: string;
  if (externalUrl) {
    const host = new URL(externalUrl).hostname;
    if (!LOCAL_HOSTS.has(host)) throw new Error(`--redis-url must point at 127.0.0.1 (got host '${host}'): the bench measures the queue, not a network.`);
    url = externalUrl;
    description = `external Redis ${externalUrl} (from --redis-url / REDIS_URL; only the bench's own keys are deleted between scenarios)`;
  } else {
    server = await RedisServerProcess.start({ appendOnly: false });
    url = server.url;
    description = `bench's own redis-server on ${url} (pid ${server.pid}, appendonly no, maxmemory-policy noeviction; FLUSHALL between scenarios)`;
  }
  const redis = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 10_000, connectionName: 'bench:parent' });
  redis.on('error', () => undefined); // commands reject with the error; no unhandled 'error' events
  await redis.ping();
  if (!server) {
    const policy = (await redis.config('GET', 'maxmemory-policy')) as string[];
    if (policy[1] !== 'noeviction') console.warn(`warning: external Redis has maxmemory-policy ${policy[1]}; BullMQ expects noeviction.`);
  }
  return {
    url,
    description,
    own: server !== undefined,
    redis,
    async version() {
      const info = await redis.info('server');
      return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
    },
    async reset(namespace) {
      if (server) {
        await redis.flushall();
        return;
      }
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
    },
    async pingRtt(samples) {
      const rec = new LatencyRecorder();
      for (let i = 0; i < samples / 10; i++) await redis.ping(); // connection and code paths warm
      for (let i = 0; i < samples; i++) {
        const t0 = performance.now();
        await redis.ping();
        rec.record(performance.now() - t0);
      }
      return rec.summary();
    },
    async close() {
      redis.disconnect();
      await server?.destroy();
    },
  };
}
