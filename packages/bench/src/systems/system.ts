/**
 * The contract each compared system fulfils: the parent starts its workers
 * and reads its batch counters; a client process opens its transport; a
 * worker process (for the systems without a CLI of their own) runs its loop.
 */
import type { Cluster, Redis } from 'ioredis';
import type { BatchCounters, ClientConfig, ScenarioSettings, SystemId, WorkerConfig } from '../settings.js';

/** One request, end to end. `cached` is true when the system answered from a result cache. */
export interface Transport {
  send(input: number[]): Promise<{ cached: boolean }>;
}

export interface SystemDefinition {
  id: SystemId;
  /** Shown in the table. */
  label: string;
  /** Parent side: the command line of worker process `index` (a .ts entry runs through tsx). */
  workerCommand(s: ScenarioSettings, index: number): { script: string; args: string[] };
  /** Parent side: cumulative counters, or undefined when the system does not batch (avg batch = 1). A Cluster only for inferq's cluster scenarios. */
  readCounters(redis: Redis | Cluster, s: ScenarioSettings): Promise<BatchCounters | undefined>;
  /** Client process: connect and return the transport (resolves once it can send). */
  connectClient(cfg: ClientConfig): Promise<Transport>;
  /** Worker process: start, print `READY <id>` once taking work, run until killed. */
  runWorker?(cfg: WorkerConfig): Promise<void>;
}
