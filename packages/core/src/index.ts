/**
 * `@inferq/core`: named exports only. The first group is the public API
 * (README, "Public API"); the second is what `@inferq/client` and
 * `@inferq/worker` build on, exported for them and for model adapters, with
 * no stability promise of its own. Everything clients and workers say
 * through Redis is in the `@inferq/core/protocol` subpath.
 */

// Public API: errors.
export {
  ErrorCode,
  InferqError,
  ConfigError,
  InputNotSerializableError,
  InputTooLargeError,
  InputInvalidError,
  TimeoutError,
  DeadlineExceededError,
  ModelError,
  ModelCrashedError,
  ModelUnavailableError,
  ModelOutputMismatchError,
  ClosedError,
  NotStartedError,
  RedisUnavailableError,
  JobLostError,
  ModelMismatchError,
  ProtocolError,
  QueueFullError,
  QueueShardsMismatchError,
  ShardCountInvalidError,
  isErrorCode,
  isInferqError,
  type ConfigIssue,
  type InferqErrorOptions,
} from './errors.js';

// Public API: configuration.
export {
  Quantization,
  QUANTIZATIONS,
  OPTIMIZATION_DEFAULTS,
  OPTIMIZATION_ENV,
  parseOptimizationConfig,
  optimizationConfigFromEnv,
  loadOptimizationConfig,
  type OptimizationConfig,
  type OptimizationConfigInput,
} from './config.js';

// Public API: the model contract, the in-process optimizer and its parts.
export type { BatchModel, ModelModule, ModelExport } from './model-module.js';
export {
  InferenceOptimizer,
  type InferOptions,
  type InferenceResult,
  type InferenceOptimizerOptions,
  type OptimizerStats,
} from './inference-optimizer.js';
export {
  RequestBatcher,
  type BatchPolicy,
  type BatchProcessor,
  type BatchInfo,
  type RequestBatcherOptions,
  type RequestBatcherStats,
  type SubmitOptions,
  type StopOptions,
} from './request-batcher.js';
export { MemoryLruCache } from './memory-lru-cache.js';
export { RedisLruCache, type RedisLruCacheOptions } from './redis-lru-cache.js';
export { cacheKey, type ModelIdentity } from './cache-key.js';
export { canonicalJson, type CanonicalJsonLimits } from './canonical-json.js';

// Public API: statistics, keys, Redis and logging.
export { readStats, resetStats, type InferenceStats } from './stats-reader.js';
export { readTenantStats, OTHER_TENANTS, type TenantStats } from './tenant-stats.js';
export { LATENCY_BUCKET_BOUNDS_MS } from './latency-histogram.js';
export { DEFAULT_PREFIX, MODEL_NAME_PATTERN, modelKeys, type ModelKeys } from './protocol/keys.js';
export { liveWorkers } from './protocol/worker-registry.js';
export {
  createRedis,
  describeRedis,
  redisUrlProblem,
  countKeys,
  isCluster,
  isClusterInput,
  scanTargets,
  redisFromCli,
  type RedisClient,
  type RedisClusterInput,
  type RedisConnectionInput,
  type CreateRedisOptions,
} from './redis-connection.js';
export { createLogger, throttledLog, type Logger } from './logger.js';
export { REDACTED, redactError, redactRedisUrl, redactSecrets, redactUrlsIn } from './secret-redaction.js';

// For @inferq/client, @inferq/worker and model adapters (no stability promise).
export { settledWithin } from './settled-within.js';
export { packageVersion } from './package-version.js';
export { HttpAccess, isLoopbackHost, type HttpAccessOptions, type AdmitOptions } from './http-access.js';
export { checkRedis, type RedisCheckOptions, type RedisRole } from './redis-check.js';
export { errorFromWire } from './errors.js';
export { parseConfig } from './config.js';
export { keyFromCanonicalInput } from './cache-key.js';
export { StatsRecorder, type StatsRecorderOptions } from './stats-recorder.js';
export { deriveStats } from './stats-reader.js';
export { LatencyHistogram } from './latency-histogram.js';
export { ConfigObjectSchema, KeyPrefixSchema, LoggerSchema, ModelNameSchema, RedisConnectionSchema, TelemetrySchema, type BullMQTelemetry } from './option-schemas.js';
export { ATTR as TRACE_ATTR, TRACER_NAME, MAX_CARRIER_BYTES, startRequestSpan, endRequestSpan, startBatchSpan, childSpan, recordQueueWait, inSpan, failSpan, linksOf, decodeCarrier, type TraceCarrier } from './tracing.js';
