/**
 * Where the CPU went during a scenario's window: the client processes, the
 * worker processes and redis-server, each as a share of one core and as CPU
 * time per completed request. On a 2-core machine every component competes
 * for the same cores, so this is what explains a throughput difference
 * (e.g. a client library spending more CPU per request than the queue itself).
 *
 * Processes: utime + stime from /proc/<pid>/stat (Linux; elsewhere the
 * numbers are left out). Redis: `INFO cpu` (all its threads).
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** USER_HZ: the unit of /proc/<pid>/stat times; 100 on every Linux architecture Node supports. */
const TICKS_PER_S = 100;

export interface CpuSnapshot {
  /** CPU seconds per process label. */
  processes: Record<string, number>;
  redis: number;
}

export interface CpuUsage {
  /** Share of one core over the window, per role: 1.0 = one core busy all the time. */
  cores: { clients: number; workers: number; redis: number };
  /** CPU microseconds per completed request, per role. */
  usPerRequest: { clients: number; workers: number; redis: number };
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

export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const num = (field: string) => Number(new RegExp(`${field}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return num('used_cpu_sys') + num('used_cpu_user');
}

export async function cpuSnapshot(pids: ReadonlyArray<{ label: string; pid: number }>, redis: Redis): Promise<CpuSnapshot> {
  const processes: Record<string, number> = {};
  for (const { label, pid } of pids) {
    const s = processCpuSeconds(pid);
    if (s !== undefined) processes[label] = s;
  }
  return { processes, redis: await redisCpuSeconds(redis) };
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
  return {
    cores: { clients: clients / windowS, workers: workers / windowS, redis: redis / windowS },
    usPerRequest: { clients: per(clients), workers: per(workers), redis: per(redis) },
  };
}
