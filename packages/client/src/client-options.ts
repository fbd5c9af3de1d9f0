/**
 * InferenceClient options: one zod schema, parsed once at construction; a bad
 * value throws one ConfigError listing every bad field.
 */
import { z } from 'zod';
import type { RedisClient } from '@inferq/core';
import { DEFAULT_TENANT, MAX_QUEUE_SHARDS, PRIORITIES, TENANT_PATTERN, type Priority } from '@inferq/core/protocol';
import type { RedisConnectionInput } from '@inferq/core';
import {
  DEFAULT_PREFIX,
  ConfigObjectSchema,
  KeyPrefixSchema,
  LoggerSchema,
  ModelNameSchema,
  RedisConnectionSchema,
  TelemetrySchema,
  OPTIMIZATION_ENV,
  loadOptimizationConfig,
  parseConfig,
  type BullMQTelemetry,
  type Logger,
  type OptimizationConfig,
  type OptimizationConfigInput,
} from '@inferq/core';

export const CLIENT_DEFAULTS = Object.freeze({
  modelVersion: '1',
  prefix: DEFAULT_PREFIX,
  maxInputBytes: 1_048_576,
  defaultTimeoutMs: 30_000,
  maxEnvelopeItems: 256,
  maxEnvelopeBytes: 4 * 1024 * 1024,
  statsFlushIntervalMs: 100,
  connectTimeoutMs: 10_000,
  keepJobs: Object.freeze({ completed: 10, failed: 100, maxAgeSeconds: 3600 }),
  flushStatsOnExit: true,
  compactInputs: true,
});

export interface InferenceClientOptions<I = unknown> {
  /** `redis://` / `rediss://` URL or ioredis options. The client opens its own connections. */
  redis: RedisConnectionInput;
  /** Model (queue) name; letters, digits, `.`, `_`, `-`. */
  model: string;
  /**
   * Queue shards of the model (1..64; default 1): the same number in every
   * client and worker of the model, else INFERQ_QUEUE_SHARDS_MISMATCH. A
   * request goes to the shard of its cache key; on Redis Cluster the shards
   * spread one model over several masters.
   */
  queueShards?: number;
  /** Part of the cache key: bump it when the model's weights change. Default '1'. */
  modelVersion?: string;
  /** Key prefix of every Redis key. Default 'inferq'. */
  prefix?: string;
  /** OptimizationConfig; the client uses `enableCaching` and `quantization` (the cache namespace). Env `INFERQ_*` is read first. */
  config?: OptimizationConfigInput;
  /** Largest input accepted, in bytes of its JSON. Default 1 MiB. */
  maxInputBytes?: number;
  /** Timeout of a request when `infer` is given none, in ms. Default 30000. */
  defaultTimeoutMs?: number;
  /** Optional zod schema every input must pass (checked before anything is written). */
  inputSchema?: z.ZodType<I>;
  /**
   * Most requests packed into one queue job. Default 256: under load, fewer
   * and larger jobs spread BullMQ's per-job work (two Lua scripts, an event)
   * over more requests; workers still batch by `maxBatchSize` items.
   */
  maxEnvelopeItems?: number;
  /** Most input bytes (JSON characters) packed into one queue job; a larger input travels alone. Default 4 MiB. */
  maxEnvelopeBytes?: number;
  /**
   * Send a flat array of finite numbers (`number[]`, Float32Array,
   * Float64Array) of a request that does not use the cache in compact form
   * (its float64 values) instead of JSON text: no number formatting here, no
   * parsing in the worker. Same values, same meaning. Workers older than this
   * option refuse such requests (INFERQ_PROTOCOL_ERROR): upgrade workers
   * first, or set false until they are. Default true.
   */
  compactInputs?: boolean;
  /** How often buffered stats are written to Redis, in ms. Default 100. */
  statsFlushIntervalMs?: number;
  /**
   * An in-process result cache in front of Redis: a repeated input is
   * answered without a round trip. Off by default. Bounded by entries, bytes
   * and TTL; dropped in every client within about a second of any
   * `clearCache()` and of workers starting to serve another model version or
   * quantization. Outputs are stored as JSON text, so each hit gets its own copy.
   */
  localCache?: { maxEntries?: number; maxBytes?: number; ttlMs?: number } | false;
  /**
   * Longest wait for a usable Redis (reachable, authenticated, permitted), in
   * ms: requests made before then wait at most this long, then reject with a
   * typed error naming the cause. Default 10000.
   */
  connectTimeoutMs?: number;
  /**
   * The tenant this client's requests belong to: a fairness label (when the
   * model's queue is contended, each tenant with requests waiting is owed a
   * share of its bound by weight; caps and weights are the operator's, see
   * `inferq tenants`), not an authentication boundary. 1-64 letters, digits,
   * '.', '_', '-'. Default `default`.
   */
  tenant?: string;
  /**
   * The class of this client's requests when a call names none: `'high'`
   * goes before `'normal'` before `'low'` when workers choose what to batch;
   * a request waiting longer than the workers' `priorityAgingMs` in its class
   * moves up one, so none waits for ever. Default `'normal'`.
   */
  priority?: Priority;
  /**
   * How many finished queue jobs (envelopes) Redis keeps for inspection, e.g.
   * in bull-board (docs/bull-board.md): the last `completed` and `failed` of
   * each queue shard, none older than `maxAgeSeconds`. Default
   * `{ completed: 10, failed: 100, maxAgeSeconds: 3600 }`. Each kept job holds
   * its whole envelope (up to `maxEnvelopeBytes`), so keep the counts small.
   */
  keepJobs?: { completed?: number; failed?: number; maxAgeSeconds?: number };
  /**
   * Write buffered stats when the process ends without `close()`: on
   * `process.exit()`, and on SIGTERM / SIGINT, after which a process with no
   * handler of its own still dies by the signal (docs/process-lifecycle.md).
   * Default true.
   */
  flushStatsOnExit?: boolean;
  /**
   * BullMQ's own spans (the job add of each envelope), passed to the client's
   * BullMQ `Queue`s as their `telemetry` option: e.g. `new BullMQOtel()`
   * from the `bullmq-otel` package, which the application installs (inferq
   * does not depend on it). inferq's own spans need only an OpenTelemetry SDK
   * (docs/tracing.md). Default: none.
   */
  telemetry?: BullMQTelemetry;
  /** A pino logger; default one named `inferq:client`. */
  logger?: Logger;
}

const OptionsSchema = z
  .object({
    redis: RedisConnectionSchema,
    model: ModelNameSchema,
    modelVersion: z.string().min(1).max(64).default(CLIENT_DEFAULTS.modelVersion),
    prefix: KeyPrefixSchema.default(CLIENT_DEFAULTS.prefix),
    config: ConfigObjectSchema.optional(),
    maxInputBytes: z.number().int().min(1).max(512 * 1024 * 1024).default(CLIENT_DEFAULTS.maxInputBytes),
    defaultTimeoutMs: z.number().int().min(1).max(3_600_000).default(CLIENT_DEFAULTS.defaultTimeoutMs),
    inputSchema: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'must be a zod schema').optional(),
    maxEnvelopeItems: z.number().int().min(1).max(10_000).default(CLIENT_DEFAULTS.maxEnvelopeItems),
    maxEnvelopeBytes: z.number().int().min(1024).max(512 * 1024 * 1024).default(CLIENT_DEFAULTS.maxEnvelopeBytes),
    compactInputs: z.boolean().default(CLIENT_DEFAULTS.compactInputs),
    statsFlushIntervalMs: z.number().int().min(1).max(60_000).default(CLIENT_DEFAULTS.statsFlushIntervalMs),
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(CLIENT_DEFAULTS.connectTimeoutMs),
    queueShards: z.number().int().min(1).max(MAX_QUEUE_SHARDS).default(1),
    localCache: z
      .union([
        z.literal(false),
        z
          .object({
            maxEntries: z.number().int().min(1).max(1_000_000).default(10_000),
            maxBytes: z.number().int().min(1024).max(2 ** 34).default(64 * 1024 * 1024),
            ttlMs: z.number().int().min(1).max(86_400_000).default(60_000),
          })
          .strict(),
      ])
      .default(false),
    tenant: z.string().regex(TENANT_PATTERN, "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit").default(DEFAULT_TENANT),
    priority: z.enum(PRIORITIES).default('normal'),
    keepJobs: z
      .object({
        completed: z.number().int().min(0).max(100_000).default(CLIENT_DEFAULTS.keepJobs.completed),
        failed: z.number().int().min(0).max(100_000).default(CLIENT_DEFAULTS.keepJobs.failed),
        maxAgeSeconds: z.number().int().min(1).max(30 * 86_400).default(CLIENT_DEFAULTS.keepJobs.maxAgeSeconds),
      })
      .strict()
      // prefault: an absent keepJobs is parsed as {} (each field's default), not taken as-is.
      .prefault({}),
    flushStatsOnExit: z.boolean().default(CLIENT_DEFAULTS.flushStatsOnExit),
    telemetry: TelemetrySchema.optional(),
    logger: LoggerSchema.optional(),
  })
  .strict();

export interface ResolvedClientOptions {
  redis: RedisConnectionInput;
  model: string;
  queueShards: number;
  modelVersion: string;
  prefix: string;
  config: OptimizationConfig;
  maxInputBytes: number;
  defaultTimeoutMs: number;
  inputSchema: z.ZodType | undefined;
  maxEnvelopeItems: number;
  maxEnvelopeBytes: number;
  compactInputs: boolean;
  statsFlushIntervalMs: number;
  connectTimeoutMs: number;
  localCache: { maxEntries: number; maxBytes: number; ttlMs: number } | false;
  tenant: string;
  priority: Priority;
  keepJobs: { completed: number; failed: number; maxAgeSeconds: number };
  flushStatsOnExit: boolean;
  telemetry: BullMQTelemetry | undefined;
  logger: Logger | undefined;
}

/** The env variables a client reads: the ones that change what it sends (cache namespace, cache use). */
const CLIENT_ENV = [OPTIMIZATION_ENV.quantization, OPTIMIZATION_ENV.enableCaching, OPTIMIZATION_ENV.maxQueueLength];

function clientEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(CLIENT_ENV.filter((k) => env[k] !== undefined).map((k) => [k, env[k]]));
}

export function resolveClientOptions(input: InferenceClientOptions<unknown>): ResolvedClientOptions {
  const o = parseConfig('InferenceClient', OptionsSchema, input);
  return Object.freeze({
    redis: o.redis as RedisConnectionInput,
    model: o.model,
    queueShards: o.queueShards,
    modelVersion: o.modelVersion,
    prefix: o.prefix,
    // Only the client's own settings come from the environment: a bad INFERQ_MAX_BATCH_SIZE meant
    // for workers must not stop an application from starting.
    config: loadOptimizationConfig((o.config ?? {}) as OptimizationConfigInput, clientEnv(process.env)),
    maxInputBytes: o.maxInputBytes,
    defaultTimeoutMs: o.defaultTimeoutMs,
    inputSchema: o.inputSchema,
    maxEnvelopeItems: o.maxEnvelopeItems,
    maxEnvelopeBytes: o.maxEnvelopeBytes,
    compactInputs: o.compactInputs,
    statsFlushIntervalMs: o.statsFlushIntervalMs,
    connectTimeoutMs: o.connectTimeoutMs,
    localCache: o.localCache,
    tenant: o.tenant,
    priority: o.priority,
    keepJobs: o.keepJobs,
    flushStatsOnExit: o.flushStatsOnExit,
    telemetry: o.telemetry,
    logger: o.logger,
  });
}

export type { RedisClient };
