export { InferenceWorker, type WorkerJobResult } from './inference-worker.js';
export { WORKER_DEFAULTS, type InferenceWorkerOptions } from './worker-options.js';
export { BatchPipeline, type WorkItem } from './batch-pipeline.js';
export { loadModelModule, BUILTIN_MODELS } from './model-module-loader.js';
export type { BatchModel, ModelModule, ModelExport } from './models/batch-model.js';
