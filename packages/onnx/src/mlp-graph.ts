/**
 * Writes a multi-layer perceptron classifier as an ONNX model, in code, with
 * weights from a seeded PRNG: the same bytes on every machine, no binary file
 * in the repository.
 *
 * One FP32 set of weights is drawn per spec; the FP16 and INT8 graphs are
 * that same network stored at lower precision, so their outputs approximate
 * the FP32 ones (what quantizing a trained model does):
 *
 * - FP32: MatMul + Add + activation per layer, Softmax at the end.
 * - FP16: weights and biases stored as float16 (half the bytes); the input is
 *   cast to float16 and the logits back to float32 before the Softmax.
 *   onnxruntime's x86 CPU provider has no float16 MatMul: at load it inserts
 *   casts and folds the weights back to float32, so the cost is FP32's and
 *   only the weight rounding differs. (ARM builds may run it natively.)
 * - INT8: dynamic quantization like onnxruntime's `quantize_dynamic`: int8
 *   weights (symmetric, one scale per tensor), activations quantized on the
 *   fly to uint8 and multiplied with MatMulInteger. Unlike `quantize_dynamic`
 *   (one activation scale per tensor, i.e. per BATCH), each item (row) gets
 *   its own scale, so an item's output never depends on what else is in its
 *   batch. That matters here: outputs are cached per input.
 */
import onnxProto from 'onnx-proto';
import type { onnx } from 'onnx-proto';
import { ConfigError, type Quantization } from '@inferq/core';
import { toFloat16Array } from './float16.js';
import { mulberry32 } from './mulberry32.js';

const Onnx = onnxProto.onnx;
const DataType = Onnx.TensorProto.DataType;

/** Opset 20 is the first with a standard `Gelu`; IR version 9 is the one that goes with it. */
const OPSET = 20;
const IR_VERSION = 9;

export type MlpActivation = 'Gelu' | 'Relu';

export interface MlpGraphSpec {
  /** Layer widths, input first and classes last, e.g. `[256, 2048, 2048, 16]`. At least two. */
  widths: readonly number[];
  /** Activation after each hidden layer, cycled (`['Gelu', 'Relu']` alternates). */
  activations: readonly MlpActivation[];
  /** PRNG seed of the weights. */
  seed: number;
  quantization: Quantization;
  /** Graph input, `[batch, widths[0]]` float32. */
  inputName: string;
  /** Graph output, `[batch, widths.at(-1)]` float32 class probabilities. */
  outputName: string;
  /** Graph name and producer name written into the model. */
  graphName: string;
  producerVersion: string;
  /** Free text stored as the model's doc string. */
  docString: string;
}

/** Builds the model and returns its serialised bytes (for `InferenceSession.create`). */
export function buildMlpModelBytes(spec: MlpGraphSpec): Uint8Array {
  const b = new GraphBuilder();
  const widths = spec.widths;
  if (widths.length < 2 || widths.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new ConfigError('mlpGraph', [{ field: 'widths', message: `needs two or more positive integers, got [${widths.join(', ')}]` }]);
  }
  const random = mulberry32(spec.seed);

  let h = spec.inputName;
  if (spec.quantization === 'FP16') h = b.node('Cast', [h], { to: DataType.FLOAT16 });

  for (let l = 0; l + 1 < widths.length; l++) {
    const fanIn = widths[l] as number;
    const fanOut = widths[l + 1] as number;
    const { weights, bias } = drawLayer(random, fanIn, fanOut);
    const dense = denseLayer(b, spec.quantization, h, l, weights, bias, [fanIn, fanOut]);
    const hidden = l + 2 < widths.length;
    h = hidden ? b.node(spec.activations[l % spec.activations.length] ?? 'Relu', [dense]) : dense;
  }

  if (spec.quantization === 'FP16') h = b.node('Cast', [h], { to: DataType.FLOAT });
  b.node('Softmax', [h], { axis: -1 }, spec.outputName);

  const model: onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: spec.graphName,
    producerVersion: spec.producerVersion,
    docString: spec.docString,
    graph: {
      name: spec.graphName,
      node: b.nodes,
      initializer: b.initializers,
      input: [batchedValueInfo(spec.inputName, widths[0] as number)],
      output: [batchedValueInfo(spec.outputName, widths[widths.length - 1] as number)],
    },
  };
  return Onnx.ModelProto.encode(model).finish();
}

/**
 * He-uniform weights (variance 2/fanIn, which keeps activations at a steady
 * scale through ReLU/GELU layers, so the softmax is neither flat nor one-hot)
 * and small uniform biases. Drawn in one fixed order: row-major weights, then biases.
 */
function drawLayer(random: () => number, fanIn: number, fanOut: number): { weights: Float32Array; bias: Float32Array } {
  const limit = Math.sqrt(6 / fanIn);
  const weights = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < weights.length; i++) weights[i] = (random() * 2 - 1) * limit;
  const bias = new Float32Array(fanOut);
  for (let i = 0; i < bias.length; i++) bias[i] = (random() * 2 - 1) * 0.1;
  return { weights, bias };
}

/** `h @ W + b` at the given precision; returns the output name. */
function denseLayer(
  b: GraphBuilder,
  quantization: Quantization,
  h: string,
  layer: number,
  weights: Float32Array,
  bias: Float32Array,
  dims: [number, number],
): string {
  const fanOut = dims[1];
  switch (quantization) {
    case 'FP32':
      return b.node('Add', [
        b.node('MatMul', [h, b.initializer(`w${layer}`, DataType.FLOAT, dims, weights)]),
        b.initializer(`b${layer}`, DataType.FLOAT, [fanOut], bias),
      ]);
    case 'FP16':
      return b.node('Add', [
        b.node('MatMul', [h, b.initializer(`w${layer}`, DataType.FLOAT16, dims, toFloat16Array(weights))]),
        b.initializer(`b${layer}`, DataType.FLOAT16, [fanOut], toFloat16Array(bias)),
      ]);
    case 'INT8':
      return int8DenseLayer(b, h, layer, weights, bias, dims);
  }
}

/**
 * Weights use 7 bits (-63..63), as `quantize_dynamic(reduce_range=True)` does:
 * x86 CPUs without VNNI multiply uint8 x int8 with an instruction that adds
 * pairs of products into int16 and saturates (2 * 255 * 127 > 32767); with
 * the full int8 range the outputs of this model were off by up to 0.09.
 */
const WEIGHT_MAX = 63;

/**
 * Dynamically quantized dense layer, per-row activation scale:
 *
 *   s   = max(|h| over the row) / 127                 [batch, 1]
 *   q   = uint8(round(h / s) + 128)                   zero point 128: a symmetric range in uint8
 *   acc = MatMulInteger(q, Wq, 128)                   int32; Wq = round(W / wScale) in -63..63
 *   out = float(acc) * wScale * s + b
 *
 * uint8 activations with int8 weights is the combination onnxruntime's x86
 * kernels are fast at (int8 x int8 ran ~40x slower here). The two Muls are
 * ordered on purpose: written as `float(acc) * (s * wScale)`, onnxruntime
 * 1.30's optimizer (levels 'extended' and 'all') fuses the chain into one
 * kernel that gets per-row scales wrong (outputs off by up to 0.02 here,
 * while 'basic' matched); `(float(acc) * wScale) * s` is left alone.
 */
function int8DenseLayer(
  b: GraphBuilder,
  h: string,
  layer: number,
  weights: Float32Array,
  bias: Float32Array,
  dims: [number, number],
): string {
  let maxAbs = 0;
  for (let i = 0; i < weights.length; i++) maxAbs = Math.max(maxAbs, Math.abs(weights[i] as number));
  const wScale = maxAbs / WEIGHT_MAX;
  const quantized = new Int8Array(weights.length);
  for (let i = 0; i < weights.length; i++) quantized[i] = Math.round((weights[i] as number) / wScale);

  const c = b.int8Constants();
  const rowMax = b.node('ReduceMax', [b.node('Abs', [h]), c.lastAxis], { keepdims: 1 });
  const scale = b.node('Max', [b.node('Div', [rowMax, c.f127]), c.epsilon]);
  const q = b.node('Cast', [b.node('Add', [b.node('Round', [b.node('Div', [h, scale])]), c.f128])], { to: DataType.UINT8 });
  const acc = b.node('MatMulInteger', [q, b.initializer(`w${layer}`, DataType.INT8, dims, quantized), c.u128]);
  const real = b.node('Mul', [
    b.node('Mul', [b.node('Cast', [acc], { to: DataType.FLOAT }), b.initializer(`w${layer}_scale`, DataType.FLOAT, [], new Float32Array([wScale]))]),
    scale,
  ]);
  return b.node('Add', [real, b.initializer(`b${layer}`, DataType.FLOAT, [dims[1]], bias)]);
}

function batchedValueInfo(name: string, width: number): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: width }] } } },
  };
}

/** Collects nodes and initializers, naming every intermediate value uniquely and deterministically. */
class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private count = 0;
  private constants: { lastAxis: string; f127: string; f128: string; u128: string; epsilon: string } | undefined;

  /** Adds a node with one output; integer attributes only (all this builder needs). Returns the output name. */
  node(opType: string, inputs: string[], attributes: Record<string, number> = {}, output?: string): string {
    const id = this.count++;
    const out = output ?? `${opType.toLowerCase()}_${id}`;
    this.nodes.push({
      name: `${opType}_${id}`,
      opType,
      input: inputs,
      output: [out],
      attribute: Object.entries(attributes).map(([name, i]) => ({ name, type: Onnx.AttributeProto.AttributeType.INT, i })),
    });
    return out;
  }

  /** Adds a constant tensor. Typed arrays are written as raw little-endian bytes, as ONNX stores them (and as x86/ARM hold them). */
  initializer(
    name: string,
    dataType: number,
    dims: readonly number[],
    values: Float32Array | Uint16Array | Int8Array | Uint8Array | BigInt64Array,
  ): string {
    this.initializers.push({
      name,
      dataType,
      dims: [...dims],
      rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    });
    return name;
  }

  /** The shared constants of the INT8 layers, added once on first use. */
  int8Constants(): { lastAxis: string; f127: string; f128: string; u128: string; epsilon: string } {
    this.constants ??= {
      lastAxis: this.initializer('axis_last', DataType.INT64, [1], new BigInt64Array([-1n])),
      f127: this.initializer('f127', DataType.FLOAT, [], new Float32Array([127])),
      f128: this.initializer('f128', DataType.FLOAT, [], new Float32Array([128])),
      u128: this.initializer('u128', DataType.UINT8, [], new Uint8Array([128])),
      // An all-zero row would otherwise divide by a zero scale.
      epsilon: this.initializer('epsilon', DataType.FLOAT, [], new Float32Array([1e-12])),
    };
    return this.constants;
  }
}

