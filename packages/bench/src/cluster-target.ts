/**
 * The Redis Cluster of the cluster scenarios (scale-cluster-*): a local
 * cluster started by the bench (testkit's RedisClusterProcess: 3 masters +
 * 3 replicas on free ports of 127.0.0.1, AOF and snapshots off, like the
 * bench's own redis-server), or an existing one from `--redis-cluster`
 * (127.0.0.1 only, as --redis-url). Started once per run, only when a
 * selected scenario needs it, and stopped (every node by pid) at the end.
 *
 * Between scenarios the bench's own cluster is emptied with FLUSHALL on
 * every master (replicas follow); on an external cluster only the
 * scenario's own keys (its namespace prefix) are deleted, master by master.
 *
 * Each node's CPU is read from INFO cpu on a direct connection to that
 * node: the main thread's (used_cpu_*_main_thread, Redis 6.2+) is what
 * bounds one shard, since a shard's every key sits in one slot of one master.
 */
import { Cluster, Redis } from 'ioredis';
import { RedisClusterProcess, clusterSupport } from '@inferq/testkit';

export interface ClusterNodeInfo {
  /** host:port */
  node: string;
  role: 'master' | 'replica';
  /** A replica's master (host:port). */
  masterOf?: string;
  /** A master's slot ranges, inclusive. */
  slots: Array<[number, number]>;
}

export interface ClusterTarget {
  /** Seed nodes, host:port. */
  readonly nodes: readonly string[];
  /** How the run got its cluster, for the report. */
  readonly description: string;
  readonly own: boolean;
  /** A cluster connection of the parent (commands bounded by a timeout). */
  readonly redis: Cluster;
  version(): Promise<string>;
  /** Masters and replicas as the cluster sees them now (CLUSTER NODES). */
  topology(): Promise<ClusterNodeInfo[]>;
  /** A direct connection to one node (host:port), opened on first use, closed by close(). */
  node(node: string): Redis;
  /** Empties what a scenario left behind. */
  reset(namespace: string): Promise<void>;
  close(): Promise<void>;
}

export type ClusterOpening = { ok: true; target: ClusterTarget } | { ok: false; reason: string };

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost']);
/**
 * The bench's own cluster: a node is declared failing after this long without
 * answering. Redis's default (15 s), not testkit's 2 s: on a 2-core machine under
 * full load a node can miss 2 s of gossip, and a failover mid-window is not what is measured.
 */
const NODE_TIMEOUT_MS = 15_000;

export async function openClusterTarget(external: readonly string[] | undefined): Promise<ClusterOpening> {
  let cluster: RedisClusterProcess | undefined;
  let nodes: string[];
  let description: string;
  if (external) {
    const remote = external.map((n) => n.slice(0, n.lastIndexOf(':'))).filter((h) => !LOCAL_HOSTS.has(h));
    if (remote.length) throw new Error(`--redis-cluster must point at 127.0.0.1 (got host '${remote[0]}'): the bench measures the queue, not a network.`);
    nodes = [...external];
    description = `external Redis Cluster ${nodes.join(',')} (from --redis-cluster / REDIS_CLUSTER_NODES; only the bench's own keys are deleted between scenarios)`;
  } else {
    const support = clusterSupport();
    if (!support.ok) return { ok: false, reason: support.reason };
    try {
      cluster = await RedisClusterProcess.start({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: NODE_TIMEOUT_MS, readyTimeoutMs: 60_000 });
    } catch (err) {
      return { ok: false, reason: `starting a local Redis Cluster failed: ${(err as Error).message.split('\n')[0]}` };
    }
    nodes = cluster.startupNodes.map((u) => u.replace('redis://', ''));
    description =
      `bench's own Redis Cluster: 3 masters + 3 replicas on ${nodes.join(',')} ` +
      `(pids ${cluster.nodes.map((n) => n.pid).join(',')}; appendonly no, cluster-node-timeout ${NODE_TIMEOUT_MS / 1000} s; FLUSHALL on every master between scenarios)`;
  }
  const redis = new Cluster(
    nodes.map((n) => ({ host: n.slice(0, n.lastIndexOf(':')), port: Number(n.slice(n.lastIndexOf(':') + 1)) })),
    { redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 10_000, connectionName: 'bench:parent' } },
  );
  redis.on('error', () => undefined); // commands reject with the error
  const direct = new Map<string, Redis>();
  const node = (n: string): Redis => {
    let r = direct.get(n);
    if (!r) {
      r = new Redis({ host: n.slice(0, n.lastIndexOf(':')), port: Number(n.slice(n.lastIndexOf(':') + 1)), maxRetriesPerRequest: 1, commandTimeout: 10_000, connectionName: 'bench:node' });
      r.on('error', () => undefined);
      direct.set(n, r);
    }
    return r;
  };
  const close = async () => {
    redis.disconnect();
    for (const r of direct.values()) r.disconnect();
    await cluster?.stop();
  };
  try {
    await redis.ping();
  } catch (err) {
    await close();
    if (external) throw new Error(`--redis-cluster ${nodes.join(',')} did not answer: ${(err as Error).message}`);
    return { ok: false, reason: `the local Redis Cluster did not answer: ${(err as Error).message}` };
  }
  const topology = async (): Promise<ClusterNodeInfo[]> => parseClusterNodes(String(await redis.call('CLUSTER', 'NODES')));
  return {
    ok: true,
    target: {
      nodes,
      description,
      own: cluster !== undefined,
      redis,
      async version() {
        const info = await redis.info('server');
        return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
      },
      topology,
      node,
      async reset(namespace) {
        const masters = (await topology()).filter((n) => n.role === 'master');
        for (const m of masters) {
          const conn = node(m.node);
          if (cluster) {
            await conn.flushall();
            continue;
          }
          // Keys of different slots: one UNLINK each (a multi-key UNLINK would be CROSSSLOT).
          let cursor = '0';
          do {
            const [next, keys] = await conn.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
            cursor = next;
            if (keys.length) {
              const p = conn.pipeline();
              for (const k of keys) p.unlink(k);
              await p.exec();
            }
          } while (cursor !== '0');
        }
      },
      close,
    },
  };
}

/** CLUSTER NODES: `<id> <ip:port@bus> <flags> <master id|-> <ping> <pong> <epoch> <link> <slot> ...` per line. */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  const rows = text
    .split('\n')
    .map((l) => l.trim().split(' '))
    .filter((f) => f.length >= 8);
  const addrOf = new Map(rows.map((f) => [f[0] as string, (f[1] as string).split('@')[0] as string]));
  const out: ClusterNodeInfo[] = [];
  for (const f of rows) {
    const flags = (f[2] as string).split(',');
    if (flags.includes('fail') || flags.includes('noaddr') || flags.includes('handshake')) continue;
    const nodeAddr = addrOf.get(f[0] as string) as string;
    if (flags.includes('master')) {
      const slots: Array<[number, number]> = [];
      for (const r of f.slice(8)) {
        if (r.startsWith('[')) continue; // a slot being migrated
        const [a, b] = r.split('-');
        slots.push([Number(a), Number(b ?? a)]);
      }
      out.push({ node: nodeAddr, role: 'master', slots: slots.sort((x, y) => x[0] - y[0]) });
    } else if (flags.includes('slave')) {
      const masterOf = addrOf.get(f[3] as string);
      out.push({ node: nodeAddr, role: 'replica', ...(masterOf ? { masterOf } : {}), slots: [] });
    }
  }
  // Masters in slot order, then the replicas in the order of their masters.
  const masters = out.filter((n) => n.role === 'master').sort((x, y) => (x.slots[0]?.[0] ?? 0) - (y.slots[0]?.[0] ?? 0));
  const replicas = out.filter((n) => n.role === 'replica').sort((x, y) => masters.findIndex((m) => m.node === x.masterOf) - masters.findIndex((m) => m.node === y.masterOf));
  return [...masters, ...replicas];
}
