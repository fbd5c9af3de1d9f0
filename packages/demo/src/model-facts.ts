/**
 * What the demo needs to know about `builtin:onnx-default` to build its
 * inputs, restated here so that the demo's client processes need not import
 * `@inferq/onnx` (and onnx-proto) for two facts; a mismatch would show at
 * once as failed requests (the worker checks every item's length).
 * Source of truth: packages/onnx/src/default-model.ts (`DEFAULT_MODEL_INFO`).
 */
export const DEFAULT_MODEL = Object.freeze({
  module: 'builtin:onnx-default',
  /** Numbers per input item (the model's input shape is [256]). */
  inputSize: 256,
  description:
    'inferq-default-mlp: a synthetic MLP classifier 256 -> 2048 -> 2048 -> 2048 -> 2048 -> 16 with fixed pseudo-random weights ' +
    '(13.1 M parameters, 52.6 MB FP32) run by onnxruntime-node on CPU. It computes nothing meaningful; it costs what a small real ' +
    'model costs: a few ms per call at batch 1, several times less per item at batch 32.',
});
