/**
 * The default ONNX model's cost curve (ms per call at batch 1, 8, 32, 64), measured
 * in the bench's own process before any scenario runs, with
 * `@inferq/onnx`'s `measureModelCost`: it says what batching can gain on this
 * machine, which is what the ONNX rows should be read against.
 */
import { DEFAULT_MODEL_INFO, defaultModel, formatModelCost, measureModelCost, type ModelCostPoint } from '@inferq/onnx';
import { Workload } from './workload.js';

export const COST_BATCH_SIZES: readonly number[] = Object.freeze([1, 8, 32, 64]);

/** Numbers per input of the default model (its input tensor is [batch, 256]). */
export function defaultModelInputSize(): number {
  return DEFAULT_MODEL_INFO.input.shape.reduce((a, b) => a * b, 1);
}

export function defaultModelDescription(): string {
  return DEFAULT_MODEL_INFO.description;
}

export interface CostCurve {
  points: ModelCostPoint[];
  text: string;
  /** Graph build + session creation, ms. */
  loadMs: number;
}

export async function measureDefaultModelCost(quick: boolean, seed: number): Promise<CostCurve> {
  const start = performance.now();
  const model = defaultModel();
  await model.init();
  const loadMs = performance.now() - start;
  const workload = new Workload({ inputSize: defaultModelInputSize(), seed, repeatFraction: 0, repeatWindow: 0 }, 9999);
  const inputs = Array.from({ length: Math.max(...COST_BATCH_SIZES) }, () => workload.input());
  try {
    const points = await measureModelCost(model, (i) => inputs[i % inputs.length], {
      batchSizes: COST_BATCH_SIZES,
      // Quick mode has ~60 s for everything: a short, still interleaved, median.
      warmupCalls: quick ? 2 : 5,
      repetitions: quick ? 11 : 41,
      budgetMs: quick ? 1000 : 8000,
    });
    return { points, text: formatModelCost(points), loadMs };
  } finally {
    await model.close();
  }
}
