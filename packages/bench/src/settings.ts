/**
 * What the parent tells every process of a scenario (as one JSON argument):
 * the same settings reach the clients and workers of all three systems, so a
 * difference in the results comes from the system, not from its setup.
 */
import { fileURLToPath } from 'node:url';
import type { WorkloadConfig } from './workload.js';

export type SystemId = 'bullmq' | 'bullmq-batched' | 'inferq' | 'floor';
export type ModelKind = 'noop' | 'onnx' | 'sleep' | 'bad' | 'clean';
export type BatchPolicy = 'eager' | 'timeout';
/** inferq's request classes (client option `priority`). */
export type Priority = 'high' | 'normal' | 'low';

/** Cost of one call of the `sleep` model (src/models/sleep-model.mjs), ms, whatever the batch size. */
export const SLEEP_MODEL_COST_MS = 40;

/** The worker module of each model kind: the same modules for every system. */
export const MODEL_MODULE: Readonly<Record<ModelKind, string>> = Object.freeze({
  noop: 'builtin:noop',
  onnx: 'builtin:onnx-default',
  sleep: fileURLToPath(new URL('./models/sleep-model.mjs', import.meta.url)),
  bad: fileURLToPath(new URL('./models/bad-model.mjs', import.meta.url)),
  clean: fileURLToPath(new URL('./models/clean-model.mjs', import.meta.url)),
});

/** The bad-model scenario (src/models/bad-model.mjs): share of inputs that hang, and that throw; how long a hang lasts. */
export const BAD_MODEL = Object.freeze({ hangRate: 0.0005, throwRate: 0.01, hangMs: 3000 });

/** Environment of every child process of a scenario (the sleep model reads its cost from it). */
export const MODEL_ENV: NodeJS.ProcessEnv = Object.freeze({
  BENCH_SLEEP_MODEL_MS: String(SLEEP_MODEL_COST_MS),
  BENCH_BAD_HANG_RATE: String(BAD_MODEL.hangRate),
  BENCH_BAD_THROW_RATE: String(BAD_MODEL.throwRate),
  BENCH_BAD_HANG_MS: String(BAD_MODEL.hangMs),
});

/** How a client process offers its load. */
export type LoadShape =
  /** `inFlight` loops, each sending its next request as soon as the last is answered. */
  | { kind: 'closed'; inFlight: number }
  /** Requests at a fixed rate whatever the answers (evenly spaced), latency counted from each request's scheduled time. */
  | { kind: 'open'; ratePerSec: number; /** 0..1 of one interval: spreads the clients of a scenario evenly instead of sending in step. */ phase: number };

export interface ScenarioSettings {
  system: SystemId;
  model: ModelKind;
  /** The bench's one Redis: the queue of every system (unless clusterNodes), and the start signal always. */
  redisUrl: string;
  /** inferq on a Redis Cluster: its seed nodes (host:port); the queue lives there, the start signal stays on redisUrl. */
  clusterNodes: string[] | undefined;
  /** inferq queueShards of clients and workers; undefined = not passed (the library default, 1). */
  queueShards: number | undefined;
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
  /** inferq client's in-process result cache (`localCache`, its defaults) in front of Redis's. */
  localCache: boolean;
  /**
   * inferq: the library's defaults for everything the bench otherwise sets
   * (worker CLI without --max-batch-size/--batch-timeout-ms/--num-workers/
   * --enable-caching/--cache-max-size, client without `config`), i.e. what a
   * user who changes nothing gets. Only `batchPolicy` and `maxQueueLength` are
   * still applied when given.
   */
  libraryDefaults: boolean;
  /** inferq worker --batch-policy (and the batching BullMQ worker's); undefined = the library default (eager). */
  batchPolicy: BatchPolicy | undefined;
  /** inferq worker --job-concurrency; undefined = its default. */
  jobConcurrency: number | undefined;
  /** More `inferq-worker` flags of this scenario (the bad-model scenario's --model-timeout-ms). */
  workerArgs: string[];
  /** inferq client config maxQueueLength; 0 = no bound (the default). */
  maxQueueLength: number;
  cacheMaxSize: number;
  /** A request that takes longer fails (counted as an error): bounds every wait of a client. */
  requestTimeoutMs: number;
}

export interface ClientConfig extends ScenarioSettings {
  role: 'client';
  clientIndex: number;
  /** Requests this client keeps in flight (closed loop), or its share of the open-loop rate. */
  load: LoadShape;
  workload: WorkloadConfig;
  /** List the parent pushes the start signal to (one entry per client). */
  controlKey: string;
  /** Also time PING round trips on a spare connection during the measured window. */
  probePing: boolean;
  /** The part of the scenario this client plays (scenarios with `parts`: a tenant, a priority class); reported apart. */
  part?: string;
  /** inferq client option `tenant`; undefined = the library default. */
  tenant?: string;
  /** inferq client option `priority` of every request; undefined = the library default (normal). */
  priority?: Priority;
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
  /** Time inside the model, summed over the batches (inferq: its stats' model time). */
  modelMs?: number;
}
