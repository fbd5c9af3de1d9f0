/**
 * `@inferq/client`: named exports only; the README's "Public API" table lists
 * them. The errors a caller branches on are re-exported from `@inferq/core`,
 * so an application needs this package alone.
 */
export { InferenceClient, type ClientInferenceResult } from './inference-client.js';
export { CLIENT_DEFAULTS, type InferenceClientOptions } from './client-options.js';
export { formatStatsTable } from './stats-table.js';
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
  ModelOutputMismatchError,
  ClosedError,
  NotStartedError,
  RedisUnavailableError,
  JobLostError,
  ModelMismatchError,
  ProtocolError,
  QueueFullError,
  QueueShardsMismatchError,
  isErrorCode,
  isInferqError,
  type ConfigIssue,
  type RedisConnectionInput,
  type RedisClusterInput,
  type InferOptions,
  type InferenceStats,
  type OptimizationConfigInput,
  type Quantization,
} from '@inferq/core';
