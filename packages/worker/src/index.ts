/**
 * `@inferq/worker`: named exports only; the README's "Public API" table lists
 * them. ONNX models live in `@inferq/onnx`, loaded only when asked for
 * (`builtin:onnx-default`), so a worker of plain JavaScript models installs
 * no native runtime.
 */
export { InferenceWorker, type WorkerJobResult } from './inference-worker.js';
export { WORKER_DEFAULTS, type InferenceWorkerOptions } from './worker-options.js';
export type { BatchReport } from './batch-pipeline.js';
export { HEALTH_DEFAULTS, type WorkerHealth, type HealthOptions } from './worker-health.js';
export { loadModelModule, BUILTIN_MODELS, ONNX_PACKAGE } from './model-module-loader.js';
export {
  ErrorCode,
  InferqError,
  isInferqError,
  ConfigError,
  InputInvalidError,
  ModelError,
  ModelOutputMismatchError,
  DeadlineExceededError,
  ClosedError,
  NotStartedError,
  type BatchModel,
  type ModelModule,
  type ModelExport,
  type OptimizationConfigInput,
  type Quantization,
} from '@inferq/core';
