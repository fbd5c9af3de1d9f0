/**
 * What the parent tells every process of a scenario (as one JSON argument):
 * the same settings reach the clients and workers of all three systems, so a
 * difference in the results comes from the system, not from its setup.
 */
import type { WorkloadConfig } from './workload.js';

export type SystemId = 'bullmq' | 'inferq' | 'floor';
export type ModelKind = 'noop' | 'onnx';

/** The worker module of each model kind: the same built-ins for all three systems. */
export const MODEL_MODULE: Readonly<Record<ModelKind, string>> = Object.freeze({
  noop: 'builtin:noop',
  onnx: 'builtin:onnx-default',
});

export interface ScenarioSettings {
  system: SystemId;
  model: ModelKind;
  redisUrl: string;
  /** Key prefix of this scenario run: everything it writes lives under it. */
  namespace: string;
  /** Queue / model name. */
  queueName: string;
  /** inferq's maxBatchSize; also BullMQ's concurrency and the list queue's batch (the fair setting, see bench.ts). */
  maxBatchSize: number;
  /** Batches in flight per worker process (inferq --num-workers; list-queue loops; BullMQ concurrency = this x maxBatchSize). */
  numWorkers: number;
  batchTimeoutMs: number;
  /** inferq result cache (scenario c); off for the others. */
  caching: boolean;
  cacheMaxSize: number;
  /** A request that takes longer fails (counted as an error): bounds every wait of a client. */
  requestTimeoutMs: number;
}

export interface ClientConfig extends ScenarioSettings {
  role: 'client';
  clientIndex: number;
  /** Requests this client keeps in flight. */
  inFlight: number;
  workload: WorkloadConfig;
  /** List the parent pushes the start signal to (one entry per client). */
  controlKey: string;
  /** Also time PING round trips on a spare connection during the measured window. */
  probePing: boolean;
}

export interface WorkerConfig extends ScenarioSettings {
  role: 'worker';
  workerIndex: number;
}

export type ChildConfig = ClientConfig | WorkerConfig;

/** The start signal: absolute times (ms since the epoch; all processes share this machine's clock). */
export interface GoSignal {
  /** Load starts now; completions before `warmupUntil` are not counted. */
  startAt: number;
  warmupUntil: number;
  measureUntil: number;
}

/** Cumulative counters a system keeps in Redis; the parent diffs two reads to get the measured window's. */
export interface BatchCounters {
  batches: number;
  items: number;
  cacheHits?: number;
  cacheMisses?: number;
  coalesced?: number;
  workerCacheHits?: number;
  errors?: number;
  timeouts?: number;
  deadlineDrops?: number;
}
