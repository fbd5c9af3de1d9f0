/**
 * InferenceWorker options: one zod schema, parsed once at construction; a bad
 * value throws one ConfigError listing every bad field.
 */
import { z } from 'zod';
import {
  DEFAULT_PREFIX,
  ConfigObjectSchema,
  KeyPrefixSchema,
  LoggerSchema,
  ModelNameSchema,
  RedisConnectionSchema,
  TelemetrySchema,
  loadOptimizationConfig,
  parseConfig,
  type BatchPolicy,
  type BullMQTelemetry,
  type Logger,
  type OptimizationConfig,
  type OptimizationConfigInput,
} from '@inferq/core';
import type { RedisConnectionInput } from '@inferq/core';
import { MAX_QUEUE_SHARDS, WIRE_ID_PATTERN, newInstanceId } from '@inferq/core/protocol';
import type { BatchModel, ModelModule } from './models/batch-model.js';
import type { BatchReport } from './batch-pipeline.js';

export const WORKER_DEFAULTS = Object.freeze({
  modelVersion: '1',
  prefix: DEFAULT_PREFIX,
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  inboxTtlMs: 300_000,
  cacheTtlMs: 0,
  stopTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  modelTimeoutMs: 60_000,
  isolatePoison: true,
  maxCrashes: 2,
  stuckExitFactor: 3,
  breakerFailures: 7,
  breakerBackoffMs: 1000,
  priorityAgingMs: 2000,
  breakerMaxBackoffMs: 30_000,
  batchPolicy: 'eager' as BatchPolicy,
  maxOutputBytes: 8 * 1024 * 1024,
});

export interface InferenceWorkerOptions<I = unknown, O = unknown> {
  /** `redis://` / `rediss://` URL or ioredis options. */
  redis: RedisConnectionInput;
  /** Model (queue) name; the same as the clients'. */
  model: string;
  /**
   * Queue shards of the model (1..64; default 1): the same number in every
   * client and worker of the model (a worker or client with another number
   * is refused with INFERQ_QUEUE_SHARDS_MISMATCH). Each shard has its own
   * queue, cache part and hash tag, so on Redis Cluster one model can use as
   * many masters as it has shards. A worker consumes every shard.
   */
  queueShards?: number;
  /** The model: a batch function `(inputs) => outputs` ... */
  run?: BatchModel<I, O>;
  /** ... or a module with `run` and optional `init`/`close` (e.g. `onnxModel(...)`). Exactly one of `run`/`module`. */
  module?: ModelModule<I, O>;
  /**
   * The model version this worker serves; part of every cache key. Requests
   * of clients asking for another version (or another `quantization`) are
   * refused with INFERQ_MODEL_MISMATCH and nothing is cached. Default '1'.
   */
  modelVersion?: string;
  /** Key prefix of every Redis key. Default 'inferq'. */
  prefix?: string;
  /** OptimizationConfig: `maxBatchSize`, `batchTimeoutMs`, `numWorkers` (batches in flight), `enableCaching`, `cacheMaxSize`, `cacheMaxBytes`. Env `INFERQ_*` is read first. */
  config?: OptimizationConfigInput;
  /** Jobs (request envelopes) held at once. Default `maxBatchSize * numWorkers`, enough to fill every batch slot with one-request jobs. */
  jobConcurrency?: number;
  /**
   * Most request items this worker holds at once (in jobs taken, not yet
   * answered). Past it the worker takes no new job until some are answered,
   * so a backlog stays in Redis for every worker to share — including one
   * started later. A job in hand may take the count past it by one envelope.
   * Default `4 * maxBatchSize * numWorkers`.
   */
  maxHeldItems?: number;
  /** BullMQ lock of an active job, in ms: a killed worker's jobs are retried by another after this. Default 30000. */
  lockDurationMs?: number;
  /** How often BullMQ looks for stalled jobs, in ms. Default 30000. */
  stalledIntervalMs?: number;
  /** TTL of client inboxes, refreshed on each result, in ms. Default 300000. */
  inboxTtlMs?: number;
  /** TTL of cache entries this worker writes, in ms; 0 = none. Default 0. */
  cacheTtlMs?: number;
  /** Longest wait of `stop()` for batches in hand, in ms; every later shutdown step is bounded too. Default 30000. */
  stopTimeoutMs?: number;
  /**
   * Longest a model call may take, in ms; 0 = no limit. Past it the batch's
   * requests fail as retryable (BullMQ retries their jobs, on another worker
   * while this one is stuck), and the worker takes no new job while every
   * model slot is stuck. Default 60000.
   */
  modelTimeoutMs?: number;
  /**
   * `'eager'` (default): when no batch is running, what is pending goes to the
   * model at once — a lone request waits for nothing but the model — and
   * while the model is busy, batches form up to `maxBatchSize` or
   * `batchTimeoutMs`. `'timeout'`: a batch goes out only when full or when its
   * oldest item has waited `batchTimeoutMs` (Triton's `max_queue_delay`).
   */
  batchPolicy?: BatchPolicy;
  /** Largest model output accepted, in bytes of its JSON; a larger one fails its request (INFERQ_OUTPUT_TOO_LARGE). Default 8 MiB. */
  maxOutputBytes?: number;
  /**
   * When a model call throws, split the batch and call the halves again, so
   * only the inputs that make the model throw fail. Default true.
   */
  isolatePoison?: boolean;
  /**
   * Crash isolation: a job re-run after its worker died runs its remaining
   * inputs one at a time, each alone in the model, and an input that was
   * alone in the model when a worker process died `maxCrashes` times is
   * answered INFERQ_MODEL_CRASHED (not run again); the rest of its envelope
   * is answered. BullMQ's `maxStalledCount` becomes `1 + 2 * maxCrashes`.
   * 0 = off (BullMQ's default of 1 stall; a crashing input fails its whole
   * job with INFERQ_JOB_LOST). All workers of a model should use the same
   * value. Default 2: one death in an isolated call could be a coincidence
   * (an OOM kill, a deploy); two are not.
   */
  maxCrashes?: number;
  /**
   * A stuck worker leaves: once every model slot has been stuck (each call
   * past `modelTimeoutMs`, none returned) for `stuckExitFactor x
   * modelTimeoutMs`, the worker hands its jobs back to the queue (not
   * answered, not counted as a crash), stops, and calls `onStuckExit`;
   * `inferq-worker` then exits with code 3 for its supervisor to start a
   * fresh process. A stuck call cannot be cancelled: only a new process gets
   * the slots back. 0 = never (the worker stays paused until the model
   * returns). Default 3.
   */
  stuckExitFactor?: number;
  /**
   * The model module as `inferq-worker --module` names it (a file path or
   * `builtin:<name>`; the CLI sets it). Lets crash isolation prove a
   * conviction: an input seen in a worker's death is run in a fresh probe
   * process as its first and only model call, which latent state left by
   * other inputs cannot fake. Without it, a death is proof only when the
   * input was the worker process's first model call.
   */
  probeModule?: string;
  /** Told once the worker left after every model slot stayed stuck (see `stuckExitFactor`), its jobs handed back. */
  onStuckExit?: (info: { stuckMs: number; slots: number; handedBack: number }) => void;
  /**
   * Circuit breaker: after this many model calls in a row that failed
   * (threw, or returned the wrong number of outputs), this worker stops
   * calling the model and answers INFERQ_MODEL_UNAVAILABLE at once; after
   * `breakerBackoffMs` one call probes the model (back-off doubling up to
   * 30 s while it still fails). Also bounds bisection: a batch of 64 against
   * a dead model costs 7 calls. 0 = off. Default 7.
   */
  breakerFailures?: number;
  /** First back-off of the circuit breaker before it probes the model again, ms. Default 1000. */
  breakerBackoffMs?: number;
  /**
   * A request queued this long in its priority class moves to the front of
   * the class above (`low` -> `normal` -> `high`; one that started `low` moves
   * on to `high` after twice this), so no class starves below a constant
   * stream above it. In ms, default 2000.
   */
  priorityAgingMs?: number;
  /** Longest wait of `start()` for a usable Redis (reachable, authenticated, permitted), in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Worker id shown in results, stats and logs. Default `<host>-<pid>-<random>`. */
  workerId?: string;
  /** A pino logger; default one named `inferq:worker`. */
  logger?: Logger;
  /**
   * BullMQ's own spans (job process, move to completed), passed to the
   * worker's BullMQ `Worker`s as their `telemetry` option: e.g. `new
   * BullMQOtel()` from the `bullmq-otel` package, which the
   * application installs (inferq does not depend on it). inferq's own batch
   * spans need only an OpenTelemetry SDK (docs/tracing.md). Default: none.
   */
  telemetry?: BullMQTelemetry;
  /**
   * Told about each batch once its results reached Redis (size, model time,
   * items by outcome, errors by code, flight waiters answered), and about
   * items refused before any batch: what `WorkerMetrics` (the CLI's
   * `--metrics-port`) counts. Called off the batch's path; keep it cheap. A
   * throw is logged and ignored.
   */
  onBatch?: (report: BatchReport) => void;
}

const isFunction = (v: unknown) => typeof v === 'function';

const OptionsSchema = z
  .object({
    redis: RedisConnectionSchema,
    model: ModelNameSchema,
    queueShards: z.number().int().min(1).max(MAX_QUEUE_SHARDS).default(1),
    run: z.custom<BatchModel>(isFunction, 'must be a function (inputs) => outputs').optional(),
    module: z
      .custom<ModelModule>((v) => typeof v === 'object' && v !== null && isFunction((v as ModelModule).run), 'must be an object with a run(inputs) function')
      .optional(),
    modelVersion: z.string().min(1).max(64).default(WORKER_DEFAULTS.modelVersion),
    prefix: KeyPrefixSchema.default(WORKER_DEFAULTS.prefix),
    config: ConfigObjectSchema.optional(),
    jobConcurrency: z.number().int().min(1).max(10_000).optional(),
    maxHeldItems: z.number().int().min(1).max(10_000_000).optional(),
    lockDurationMs: z.number().int().min(100).max(3_600_000).default(WORKER_DEFAULTS.lockDurationMs),
    stalledIntervalMs: z.number().int().min(100).max(3_600_000).default(WORKER_DEFAULTS.stalledIntervalMs),
    inboxTtlMs: z.number().int().min(1000).max(86_400_000).default(WORKER_DEFAULTS.inboxTtlMs),
    cacheTtlMs: z.number().int().min(0).max(365 * 86_400_000).default(WORKER_DEFAULTS.cacheTtlMs),
    stopTimeoutMs: z.number().int().min(0).max(3_600_000).default(WORKER_DEFAULTS.stopTimeoutMs),
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(WORKER_DEFAULTS.connectTimeoutMs),
    modelTimeoutMs: z.number().int().min(0).max(86_400_000).default(WORKER_DEFAULTS.modelTimeoutMs),
    isolatePoison: z.boolean().default(WORKER_DEFAULTS.isolatePoison),
    maxCrashes: z.number().int().min(0).max(100).default(WORKER_DEFAULTS.maxCrashes),
    probeModule: z.string().min(1).optional(),
    stuckExitFactor: z.number().int().min(0).max(1000).default(WORKER_DEFAULTS.stuckExitFactor),
    onStuckExit: z.custom<(info: { stuckMs: number; slots: number; handedBack: number }) => void>(isFunction, 'must be a function (info) => void').optional(),
    breakerFailures: z.number().int().min(0).max(10_000).default(WORKER_DEFAULTS.breakerFailures),
    breakerBackoffMs: z.number().int().min(10).max(3_600_000).default(WORKER_DEFAULTS.breakerBackoffMs),
    priorityAgingMs: z.number().int().min(100).max(3_600_000).default(WORKER_DEFAULTS.priorityAgingMs),
    batchPolicy: z.enum(['eager', 'timeout']).default(WORKER_DEFAULTS.batchPolicy),
    maxOutputBytes: z.number().int().min(1).max(512 * 1024 * 1024).default(WORKER_DEFAULTS.maxOutputBytes),
    workerId: z.string().min(1).max(128).regex(WIRE_ID_PATTERN, 'letters, digits, ".", "_" and "-" only').optional(),
    logger: LoggerSchema.optional(),
    telemetry: TelemetrySchema.optional(),
    onBatch: z.custom<(report: BatchReport) => void>(isFunction, 'must be a function (report) => void').optional(),
  })
  .strict()
  .refine((o) => (o.run === undefined) !== (o.module === undefined), { message: 'give exactly one of run or module', path: ['run'] });

export interface ResolvedWorkerOptions {
  redis: RedisConnectionInput;
  model: string;
  queueShards: number;
  module: ModelModule;
  modelVersion: string;
  prefix: string;
  config: OptimizationConfig;
  jobConcurrency: number;
  maxHeldItems: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  inboxTtlMs: number;
  cacheTtlMs: number;
  stopTimeoutMs: number;
  connectTimeoutMs: number;
  modelTimeoutMs: number;
  isolatePoison: boolean;
  maxCrashes: number;
  stuckExitFactor: number;
  probeModule: string | undefined;
  onStuckExit: ((info: { stuckMs: number; slots: number; handedBack: number }) => void) | undefined;
  breakerFailures: number;
  breakerBackoffMs: number;
  priorityAgingMs: number;
  batchPolicy: BatchPolicy;
  maxOutputBytes: number;
  workerId: string;
  logger: Logger | undefined;
  telemetry: BullMQTelemetry | undefined;
  onBatch: ((report: BatchReport) => void) | undefined;
}

export function resolveWorkerOptions(input: InferenceWorkerOptions<unknown, unknown>): ResolvedWorkerOptions {
  const o = parseConfig('InferenceWorker', OptionsSchema, input);
  const config = loadOptimizationConfig((o.config ?? {}) as OptimizationConfigInput);
  const module: ModelModule = o.module ?? { run: o.run as BatchModel };
  return Object.freeze({
    redis: o.redis as RedisConnectionInput,
    model: o.model,
    queueShards: o.queueShards,
    module,
    modelVersion: o.modelVersion,
    prefix: o.prefix,
    config,
    jobConcurrency: o.jobConcurrency ?? config.maxBatchSize * config.numWorkers,
    maxHeldItems: o.maxHeldItems ?? 4 * config.maxBatchSize * config.numWorkers,
    lockDurationMs: o.lockDurationMs,
    stalledIntervalMs: o.stalledIntervalMs,
    inboxTtlMs: o.inboxTtlMs,
    cacheTtlMs: o.cacheTtlMs,
    stopTimeoutMs: o.stopTimeoutMs,
    connectTimeoutMs: o.connectTimeoutMs,
    modelTimeoutMs: o.modelTimeoutMs,
    isolatePoison: o.isolatePoison,
    maxCrashes: o.maxCrashes,
    stuckExitFactor: o.stuckExitFactor,
    probeModule: o.probeModule,
    onStuckExit: o.onStuckExit,
    breakerFailures: o.breakerFailures,
    breakerBackoffMs: o.breakerBackoffMs,
    priorityAgingMs: o.priorityAgingMs,
    batchPolicy: o.batchPolicy,
    maxOutputBytes: o.maxOutputBytes,
    workerId: o.workerId ?? newInstanceId(),
    logger: o.logger,
    telemetry: o.telemetry,
    onBatch: o.onBatch,
  });
}
