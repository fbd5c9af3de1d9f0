/**
 * Redis connection factory: a `redis://` / `rediss://` URL (TLS for rediss),
 * ioredis options, or a Redis Cluster (`{ cluster: [urls], options? }`).
 * BullMQ workers and blocking readers need `maxRetriesPerRequest: null` (a
 * blocking command must not be retried into an error); plain command
 * connections keep ioredis' default so a dead Redis fails calls instead of
 * queueing them forever.
 *
 * On a cluster every multi-key command and script of inferq stays in one
 * hash slot (keys.ts: one hash tag per model shard), so one ioredis
 * `Cluster` routes each of them whole to the master that holds the slot.
 */
import { createRequire } from 'node:module';
import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { ConfigError } from './errors.js';
import { redactRedisUrl } from './secret-redaction.js';

// ioredis is CommonJS; require() loads it with ~40 % less CPU than an ES
// `import`, which makes Node's ES module loader translate each of its files
// (README, "Install": cold start). The same module instance either way.
const ioredis = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');

/** A Redis Cluster: its seed nodes (`redis://host:port`, `rediss://...` or `host:port`) and ioredis ClusterOptions. */
export interface RedisClusterInput {
  cluster: readonly string[];
  /** ioredis ClusterOptions; `redisOptions` applies to every node connection (password, tls, ...). */
  options?: ClusterOptions;
}

export type RedisConnectionInput = string | RedisOptions | RedisClusterInput;

/** One connection as inferq uses it: a single node or a whole cluster. */
export type RedisClient = Redis | Cluster;

export interface CreateRedisOptions {
  /** For BullMQ Worker/QueueEvents and other blocking readers. */
  blocking?: boolean;
  /** Connection name shown by CLIENT LIST, e.g. `inferq:client`. */
  connectionName?: string;
  /** Never resend a command left unanswered by a lost connection (reads that move data, such as the result inbox's). */
  sendOnce?: boolean;
}

export function isClusterInput(input: RedisConnectionInput): input is RedisClusterInput {
  return typeof input === 'object' && input !== null && Array.isArray((input as RedisClusterInput).cluster);
}

export function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as Cluster).isCluster === true;
}

/** The connections to scan for keys: every master of a cluster (SCAN sees one node), else the one connection. */
export function scanTargets(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/** Keys matching `pattern` on every scan target, at most `limit` (bounded SCAN loops). */
export async function countKeys(redis: RedisClient, pattern: string, limit = 50_000): Promise<number> {
  let n = 0;
  for (const node of scanTargets(redis)) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      n += found.length;
      cursor = next;
    } while (cursor !== '0' && n < limit);
  }
  return n;
}

export function createRedis(input: RedisConnectionInput, options: CreateRedisOptions = {}): RedisClient {
  const extra: RedisOptions = {};
  if (options.blocking) extra.maxRetriesPerRequest = null;
  if (options.connectionName) extra.connectionName = options.connectionName;
  if (options.sendOnce) extra.autoResendUnfulfilledCommands = false;
  if (isClusterInput(input)) return createCluster(input, extra);
  if (typeof input === 'string') {
    const problem = redisUrlProblem(input);
    // The URL is shown masked: a typo in the scheme is no reason to print the password.
    if (problem) throw new ConfigError('Redis connection', [{ field: 'redis', message: `${problem}, got '${redactRedisUrl(input)}'` }]);
    return new ioredis.Redis(input, extra);
  }
  return new ioredis.Redis({ ...input, ...extra });
}

function createCluster(input: RedisClusterInput, extra: RedisOptions): Cluster {
  if (input.cluster.length === 0) throw new TypeError('A Redis Cluster needs at least one seed node.');
  const nodes: ClusterNode[] = [];
  // Credentials and TLS of the seed URLs apply to every node (a cluster has one user base).
  let fromUrl: RedisOptions = {};
  for (const node of input.cluster) {
    const o = redisOptionsFrom(/^rediss?:\/\//.test(node) ? node : `redis://${node}`);
    nodes.push({ host: o.host ?? '127.0.0.1', port: o.port ?? 6379 });
    const { host: _h, port: _p, db: _d, ...auth } = o;
    fromUrl = { ...fromUrl, ...auth };
  }
  const given = input.options ?? {};
  const clusterOptions: ClusterOptions = {
    ...given,
    redisOptions: { ...fromUrl, ...given.redisOptions, ...extra },
  };
  // Blocking readers: a command waiting for a slot's master during a failover must not fail into an error.
  if (extra.maxRetriesPerRequest === null) clusterOptions.maxRedirections = given.maxRedirections ?? 16;
  return new ioredis.Cluster(nodes, clusterOptions);
}

/** Plain options for libraries that create their own connections (single node only). */
export function redisOptionsFrom(input: string | RedisOptions): RedisOptions {
  if (typeof input !== 'string') return { ...input };
  const url = new URL(input);
  const opts: RedisOptions = {
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : 6379,
  };
  if (url.username) opts.username = decodeURIComponent(url.username);
  if (url.password) opts.password = decodeURIComponent(url.password);
  const db = url.pathname.replace(/^\//, '');
  if (db) opts.db = Number(db);
  if (url.protocol === 'rediss:') opts.tls = {};
  return opts;
}

/**
 * What is wrong with a Redis URL, or undefined. Besides the scheme: a raw
 * `/`, `?` or `#` in the user:password part ends the host part early in
 * ioredis' parser, which then connects to (and looks up in DNS) a piece of
 * the password as a host name. A raw `@` is parsed right (the last `@`
 * ends the password) and is allowed.
 */
export function redisUrlProblem(url: string): string | undefined {
  if (!/^rediss?:\/\//.test(url)) return 'must be a redis:// or rediss:// URL';
  const rest = url.slice(url.indexOf('//') + 2);
  const at = rest.lastIndexOf('@');
  if (at !== -1 && /[/?#]/.test(rest.slice(0, at))) return "the user:password part holds a raw '/', '?' or '#': percent-encode it (%2F, %3F, %23)";
  return undefined;
}

/** Where a connection input points, for messages: the URL or host:port, its password masked whole. */
export function describeRedis(input: RedisConnectionInput): string {
  // Seed nodes may be written `user:password@host:port`, with no scheme.
  if (isClusterInput(input)) return `cluster ${input.cluster.map((n) => (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(n) ? redactRedisUrl(n) : redactRedisUrl(`redis://${n}`).slice('redis://'.length))).join(',')}`;
  if (typeof input === 'string') return redactRedisUrl(input);
  return `${input.tls ? 'rediss' : 'redis'}://${input.host ?? '127.0.0.1'}:${input.port ?? 6379}`;
}

/**
 * The `redis` value the CLIs build from their flags and environment:
 * `--redis-cluster host:port,...` (or `REDIS_CLUSTER_NODES`) wins over
 * `--redis` / `REDIS_URL`.
 */
export function redisFromCli(url: string | undefined, clusterNodes: string | undefined, env: NodeJS.ProcessEnv = process.env): RedisConnectionInput {
  const nodes = (clusterNodes ?? env.REDIS_CLUSTER_NODES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (nodes.length > 0) return { cluster: nodes };
  return url ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379';
}
