/** What the numbers were measured on: they mean little without it. */
import { cpus, totalmem, loadavg, platform, release } from 'node:os';
import type { RedisTarget } from './redis-target.js';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  os: string;
  node: string;
  redisVersion: string;
  redis: string;
  /** 1-minute load average when the run started (a busy machine skews everything). */
  loadAverage: number;
}

export async function machineInfo(target: RedisTarget): Promise<MachineInfo> {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    os: `${platform()} ${release()}`,
    node: process.version,
    redisVersion: await target.version(),
    redis: target.description,
    loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}
