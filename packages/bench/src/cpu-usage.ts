/**
 * Where the CPU went during a scenario's window: the client processes, the
 * worker processes and redis-server, each as a share of one core and as CPU
 * time per completed request. On a 2-core machine every component competes
 * for the same cores, so this is what explains a throughput difference
 * (e.g. a client library spending more CPU per request than the queue itself).
 *
 * Processes: utime + stime from /proc/<pid>/stat (Linux; elsewhere the
 * numbers are left out). Redis: `INFO cpu` of every node under test (the
 * bench's one redis-server, or every node of the cluster), all its threads
 * and its main thread apart: the main thread runs every command, so it is
 * what one Redis (one shard of a cluster) tops out on.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** USER_HZ: the unit of /proc/<pid>/stat times; 100 on every Linux architecture Node supports. */
const TICKS_PER_S = 100;

export interface CpuSnapshot {
  /** CPU seconds per process label. */
  processes: Record<string, number>;
  /** CPU seconds of every Redis node under test, all threads. */
  redis: number;
  /** Per node (host:port): all threads, and the main thread (NaN when INFO does not say). */
  redisNodes: Record<string, { total: number; main: number }>;
  /** CPU seconds of the whole machine, busy (every process, this bench's or not), from /proc/stat; undefined elsewhere. */
  machineBusy: number | undefined;
}

/** One Redis node over the window, as a share of one core. */
export interface RedisNodeCpu {
  node: string;
  /** All threads. */
  cores: number;
  /** The main thread (commands, scripts): 1.0 = saturated. */
  mainThreadCores: number;
  /** Set by the scenario: what the node is, and which of the model's keys it holds (e.g. 'shard 0', 'stats'). */
  role?: 'standalone' | 'master' | 'replica';
  masterOf?: string;
  holds?: string[];
}

export interface CpuUsage {
  /** Share of one core over the window, per role: 1.0 = one core busy all the time. */
  cores: { clients: number; workers: number; redis: number };
  /** CPU microseconds per completed request, per role. */
  usPerRequest: { clients: number; workers: number; redis: number };
  /** Each Redis node under test. */
  redisNodes: RedisNodeCpu[];
  /** Cores busy on the whole machine over the window, every process (other load included); undefined without /proc/stat. */
  machine?: number;
}

/** Busy CPU seconds of the whole machine since boot (all cores): /proc/stat's first line minus idle and iowait. */
export function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    if (!line.startsWith('cpu ')) return undefined;
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const busy = f.reduce((a, b) => a + b, 0) - (f[3] ?? 0) - (f[4] ?? 0);
    return busy / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** CPU seconds used so far by `pid`, or undefined when /proc is not there (or the process is gone). */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** CPU seconds of a Redis server: all threads, and its main thread (NaN before Redis 6.2). */
export async function redisCpuSeconds(redis: Redis): Promise<{ total: number; main: number }> {
  const info = await redis.info('cpu');
  const num = (field: string) => Number(new RegExp(`${field}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return { total: num('used_cpu_sys') + num('used_cpu_user'), main: num('used_cpu_sys_main_thread') + num('used_cpu_user_main_thread') };
}

export async function cpuSnapshot(pids: ReadonlyArray<{ label: string; pid: number }>, redisNodes: ReadonlyArray<{ node: string; redis: Redis }>): Promise<CpuSnapshot> {
  const processes: Record<string, number> = {};
  for (const { label, pid } of pids) {
    const s = processCpuSeconds(pid);
    if (s !== undefined) processes[label] = s;
  }
  const nodes = await Promise.all(redisNodes.map(async (n) => [n.node, await redisCpuSeconds(n.redis)] as const));
  return { processes, redis: nodes.reduce((sum, [, c]) => sum + c.total, 0), redisNodes: Object.fromEntries(nodes), machineBusy: machineBusySeconds() };
}

/** Usage between two snapshots; `roleOf` maps a process label to its role. Undefined without /proc data. */
export function cpuUsage(
  a: CpuSnapshot,
  b: CpuSnapshot,
  roleOf: (label: string) => 'client' | 'worker' | undefined,
  windowS: number,
  requests: number,
): CpuUsage | undefined {
  let clients = 0;
  let workers = 0;
  let seen = 0;
  for (const [label, after] of Object.entries(b.processes)) {
    const before = a.processes[label];
    if (before === undefined) continue;
    seen++;
    if (roleOf(label) === 'client') clients += after - before;
    else if (roleOf(label) === 'worker') workers += after - before;
  }
  if (seen === 0) return undefined;
  const redis = b.redis - a.redis;
  const per = (s: number) => (requests > 0 ? (s * 1e6) / requests : NaN);
  const redisNodes: RedisNodeCpu[] = [];
  for (const [node, after] of Object.entries(b.redisNodes)) {
    const before = a.redisNodes[node];
    if (before) redisNodes.push({ node, cores: (after.total - before.total) / windowS, mainThreadCores: (after.main - before.main) / windowS });
  }
  return {
    cores: { clients: clients / windowS, workers: workers / windowS, redis: redis / windowS },
    usPerRequest: { clients: per(clients), workers: per(workers), redis: per(redis) },
    redisNodes,
    ...(a.machineBusy !== undefined && b.machineBusy !== undefined ? { machine: (b.machineBusy - a.machineBusy) / windowS } : {}),
  };
}
