/**
 * The model inferq ships for its demo, benchmark and `builtin:onnx-default`:
 * a synthetic MLP classifier built in code with fixed pseudo-random weights.
 *
 * Why synthetic: a batching queue is judged by what it does to a model whose
 * cost looks like a real one, i.e. a fixed cost per call that batching
 * shares and a smaller cost per item that it cannot. A trained model would
 * mean a binary file in the repository or a download; this one is rebuilt
 * byte for byte from a seed.
 *
 * Why this size: at batch 1 a dense layer is a matrix-vector product, bound
 * by reading its weights from memory; at batch 32 it is a matrix-matrix
 * product that reuses each weight 32 times, bound by arithmetic. With ~52 MB
 * of FP32 weights (more than this machine's 32 MB L3 cache, so they come
 * from DRAM on every call) a call costs a few ms at batch 1 and roughly 8x
 * less per item at batch 32. Run `npx tsx --conditions=source packages/onnx/scripts/model-cost.ts`
 * for the curve on your machine.
 */
import { z } from 'zod';
import { Quantization, parseConfig } from '@inferq/core';
import { buildMlpModelBytes, type MlpActivation } from './mlp-graph.js';
import { onnxModel, type OnnxModel } from './onnx-model.js';
import type { OnnxModelOptions } from './onnx-model-options.js';

const WIDTHS = [256, 2048, 2048, 2048, 2048, 16] as const;
const ACTIVATIONS: readonly MlpActivation[] = Object.freeze(['Gelu', 'Relu']);
const SEED = 0x1f3a9c5d;

function countParameters(widths: readonly number[]): number {
  let n = 0;
  for (let l = 0; l + 1 < widths.length; l++) n += (widths[l] as number) * (widths[l + 1] as number) + (widths[l + 1] as number);
  return n;
}

const PARAMETERS = countParameters(WIDTHS);
const MB = (bytesPerWeight: number): string => `${((PARAMETERS * bytesPerWeight) / 1e6).toFixed(1)} MB`;

/** What the default model is, honestly. `version` changes whenever its bytes would. */
export const DEFAULT_MODEL_INFO = Object.freeze({
  name: 'inferq-default-mlp',
  /** Bump when widths, seed or graph change: the worker can put it into the cache namespace. */
  version: '1',
  description:
    `A synthetic MLP classifier ${WIDTHS.join(' -> ')} with alternating GELU/ReLU and a softmax, ` +
    `fixed pseudo-random weights (mulberry32, seed 0x${SEED.toString(16)}). It computes nothing meaningful: ` +
    `it only costs what a small real model costs on CPU (${(PARAMETERS / 1e6).toFixed(1)} M parameters, ` +
    `${MB(4)} of FP32 weights: a few ms per call at batch 1, far less per item at batch 32).`,
  input: Object.freeze({ name: 'input', shape: Object.freeze([WIDTHS[0]]) as readonly number[] }),
  output: Object.freeze({ name: 'probabilities', shape: Object.freeze([WIDTHS[WIDTHS.length - 1]]) as readonly number[] }),
  widths: Object.freeze([...WIDTHS]) as readonly number[],
  activations: ACTIVATIONS,
  seed: SEED,
  parameters: PARAMETERS,
  quantizations: Object.freeze({
    FP32: `float32 weights and compute (${MB(4)}).`,
    FP16:
      `float16 weights (${MB(2)}); onnxruntime's x86 CPU provider casts them to float32 at load and computes ` +
      'in float32, so it costs what FP32 costs; outputs differ from FP32 by the weight rounding only.',
    INT8:
      `7-bit int8 weights (${MB(1)}) with per-item dynamic uint8 activation quantization (MatMulInteger): ` +
      "several times cheaper at batch 1 (the weights fit in cache), outputs close to FP32's.",
  } satisfies Record<Quantization, string>),
});

const DefaultModelOptionsSchema = z
  .object({
    quantization: Quantization.default('FP32'),
    name: z.string().min(1).optional(),
    // Checked field by field by onnxModel.
    sessionOptions: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export interface DefaultModelOptions {
  /** Precision of the built graph; also the model's reported quantization. Default FP32. */
  quantization?: Quantization;
  /** Overrides the model name. Default `DEFAULT_MODEL_INFO.name`. */
  name?: string;
  /** onnxruntime session options (see `onnxModel`). Default `{ intraOpNumThreads: 1, graphOptimizationLevel: 'all' }`. */
  sessionOptions?: OnnxModelOptions['sessionOptions'];
}

/**
 * Serialises the default model at `quantization` (default FP32). Deterministic:
 * the same options give the same bytes on every machine. Takes a few hundred
 * ms and returns ~13-53 MB.
 */
export function buildDefaultModelBytes(options: { quantization?: Quantization } = {}): Uint8Array {
  const { quantization } = parseConfig('defaultModel', DefaultModelOptionsSchema, { quantization: options.quantization });
  return buildMlpModelBytes({
    widths: DEFAULT_MODEL_INFO.widths,
    activations: DEFAULT_MODEL_INFO.activations,
    seed: DEFAULT_MODEL_INFO.seed,
    quantization,
    inputName: DEFAULT_MODEL_INFO.input.name,
    outputName: DEFAULT_MODEL_INFO.output.name,
    graphName: DEFAULT_MODEL_INFO.name,
    producerVersion: DEFAULT_MODEL_INFO.version,
    docString: `${DEFAULT_MODEL_INFO.description} Quantization ${quantization}: ${DEFAULT_MODEL_INFO.quantizations[quantization]}`,
  });
}

/**
 * The default model as a worker module: input 256 numbers per item, output
 * 16 class probabilities per item. The graph is built now; the onnxruntime
 * session on `init()` or the first batch.
 */
export function defaultModel(options: DefaultModelOptions = {}): OnnxModel {
  const o = parseConfig('defaultModel', DefaultModelOptionsSchema, options);
  return onnxModel({
    name: o.name ?? DEFAULT_MODEL_INFO.name,
    bytes: buildDefaultModelBytes({ quantization: o.quantization }),
    quantization: o.quantization,
    input: { name: DEFAULT_MODEL_INFO.input.name, shape: [...DEFAULT_MODEL_INFO.input.shape] },
    output: { name: DEFAULT_MODEL_INFO.output.name, shape: [...DEFAULT_MODEL_INFO.output.shape] },
    ...(options.sessionOptions === undefined ? {} : { sessionOptions: options.sessionOptions }),
  });
}
