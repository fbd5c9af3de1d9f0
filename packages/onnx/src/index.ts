/**
 * `@inferq/onnx`: ONNX models for inferq workers, run with onnxruntime-node.
 * Named exports only; the README's "Public API" table lists them. The worker
 * imports this package only for `--module builtin:onnx-default`.
 */
export { onnxModel, type OnnxModel } from './onnx-model.js';
export {
  ONNX_MODEL_DEFAULTS,
  parseOnnxModelOptions,
  type OnnxModelOptions,
  type OnnxModelSource,
  type OnnxSessionOptions,
  type ResolvedOnnxModelOptions,
} from './onnx-model-options.js';
export type { TensorItemInput, NestedNumbers } from './batch-tensor.js';
export { defaultModel, buildDefaultModelBytes, DEFAULT_MODEL_INFO, type DefaultModelOptions } from './default-model.js';
export { measureModelCost, formatModelCost, MODEL_COST_DEFAULTS, type ModelCostOptions, type ModelCostPoint } from './model-cost.js';
