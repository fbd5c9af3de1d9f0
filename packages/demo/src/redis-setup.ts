/**
 * Where the demo's Redis comes from. With `--redis-cluster`, that Redis
 * Cluster (it must answer: an explicit flag does not fall back); otherwise a
 * newcomer's first command must not fail for lack of Redis, so, in order:
 *  1. `REDIS_URL` when set and answering: the run's keys live under a
 *     unique prefix (other data on a shared Redis is never touched) and
 *     are deleted at the end;
 *  2. a `redis-server` binary on this machine: a throwaway server on a
 *     free port, no persistence (nothing here needs to survive a restart);
 *  3. otherwise the embedded in-process mode, which the caller announces.
 */
import { Cluster, Redis } from 'ioredis';
import { createRedis, type RedisClient, type RedisConnectionInput } from '@inferq/core';
import { RedisServerProcess, findRedisServerBinary } from '@inferq/testkit';
import type { RunMode } from './summary.js';

export interface RedisChoice {
  mode: RunMode;
  /** Absent in embedded and cluster mode. */
  url?: string;
  /** Seed nodes (host:port) in cluster mode. */
  clusterNodes?: string[];
  /** Problems met on the way (e.g. REDIS_URL did not answer), to show the user. */
  warnings: string[];
  /** Deletes the run's keys (REDIS_URL) or stops the local server. Idempotent, never throws. */
  release(prefix: string): Promise<void>;
}

const noop = async (): Promise<void> => undefined;

/**
 * The demo's own control connection (start signal, stats), to one Redis or
 * a cluster: a command fails after 2 retries instead of ioredis' 20.
 */
export function controlConnection(input: RedisConnectionInput, connectionName: string): RedisClient {
  if (typeof input === 'string') return new Redis(input, { maxRetriesPerRequest: 2, connectionName });
  if ('cluster' in input) return createRedis({ ...input, options: { ...input.options, redisOptions: { ...input.options?.redisOptions, maxRetriesPerRequest: 2 } } }, { connectionName });
  return new Redis({ ...input, maxRetriesPerRequest: 2, connectionName });
}

/** `redis://user:secret@host` -> `redis://user:***@host`, for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

async function probe(url: string, timeoutMs: number): Promise<{ version: string } | { error: string }> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  r.on('error', () => undefined);
  try {
    await r.connect();
    const info = await r.info('server');
    return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? '?' };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    r.disconnect();
  }
}

export async function chooseRedis(forceEmbedded: boolean, clusterNodes?: readonly string[]): Promise<RedisChoice> {
  const warnings: string[] = [];
  if (forceEmbedded) return { mode: { kind: 'embedded', reason: '--embedded was given' }, warnings, release: noop };
  if (clusterNodes?.length) {
    const p = await probeCluster(clusterNodes, 5000);
    if ('error' in p) throw new Error(`--redis-cluster ${clusterNodes.join(',')} did not answer: ${p.error}`);
    const nodes = [...clusterNodes];
    return { mode: { kind: 'cluster', nodes: nodes.join(','), version: p.version }, clusterNodes: nodes, warnings, release: (prefix) => deleteClusterKeys(nodes, prefix) };
  }

  const external = process.env.REDIS_URL;
  if (external) {
    const p = await probe(external, 3000);
    if ('version' in p) {
      return { mode: { kind: 'external', url: redactUrl(external), version: p.version }, url: external, warnings, release: (prefix) => deleteKeys(external, prefix) };
    }
    warnings.push(`REDIS_URL=${redactUrl(external)} did not answer (${p.error}); falling back.`);
  }

  const binary = findRedisServerBinary();
  if (binary) {
    try {
      const server = await RedisServerProcess.start({ binary, appendOnly: false });
      const p = await probe(server.url, 3000);
      let released = false;
      return {
        mode: { kind: 'local', url: server.url, version: 'version' in p ? p.version : '?' },
        url: server.url,
        warnings,
        release: async () => {
          if (released) return;
          released = true;
          await server.destroy().catch(() => undefined);
        },
      };
    } catch (err) {
      warnings.push(`starting ${binary} failed: ${(err as Error).message}`);
    }
  }

  const reason = external
    ? 'REDIS_URL did not answer and no redis-server could be started'
    : 'no REDIS_URL and no redis-server on this machine (install one, e.g. apt-get install redis-server, or set REDIS_URL, to see the distributed mode)';
  return { mode: { kind: 'embedded', reason }, warnings, release: noop };
}

function clusterConnection(nodes: readonly string[], timeoutMs: number): Cluster {
  const c = new Cluster(
    nodes.map((n) => ({ host: n.slice(0, n.lastIndexOf(':')), port: Number(n.slice(n.lastIndexOf(':') + 1)) })),
    { clusterRetryStrategy: () => null, redisOptions: { maxRetriesPerRequest: 1, connectTimeout: timeoutMs, commandTimeout: timeoutMs } },
  );
  c.on('error', () => undefined);
  return c;
}

async function probeCluster(nodes: readonly string[], timeoutMs: number): Promise<{ version: string } | { error: string }> {
  const c = clusterConnection(nodes, timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const info = await Promise.race([c.info('server'), timeout]);
    return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? '?' };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    clearTimeout(timer);
    c.disconnect();
  }
}

/** Deletes every key under `prefix:` on every master of the cluster (SCAN per master, one UNLINK per key: keys of different slots). */
async function deleteClusterKeys(nodes: readonly string[], prefix: string): Promise<void> {
  const c = clusterConnection(nodes, 3000);
  try {
    await c.ping();
    for (const node of c.nodes('master')) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) {
          const p = node.pipeline();
          for (const k of keys) p.unlink(k);
          await p.exec();
        }
      } while (cursor !== '0');
    }
  } catch (err) {
    process.stderr.write(`warning: deleting the demo's keys (${prefix}:*) on the cluster failed: ${(err as Error).message}\n`);
  } finally {
    c.disconnect();
  }
}

/** Deletes every key under `prefix:` (SCAN + UNLINK: never KEYS, never FLUSHDB on a shared server). */
async function deleteKeys(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 3000, commandTimeout: 5000 });
  r.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.unlink(...keys);
    } while (cursor !== '0');
  } catch (err) {
    process.stderr.write(`warning: deleting the demo's keys (${prefix}:*) failed: ${(err as Error).message}\n`);
  } finally {
    r.disconnect();
  }
}
