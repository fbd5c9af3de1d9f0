/**
 * Prints the default model's cost curve: ms per call and us per item at
 * batch 1, 8, 32 and 64 (median after warm-up), bounded to ~20 s in all.
 *
 *   npx tsx --conditions=source packages/onnx/scripts/model-cost.ts            # FP32
 *   npx tsx --conditions=source packages/onnx/scripts/model-cost.ts INT8       # one quantization
 *   npx tsx --conditions=source packages/onnx/scripts/model-cost.ts all        # FP32, FP16 and INT8
 *
 * Run it on an idle machine: another busy process on a 2-core box shows up
 * directly in the numbers (the min column is the least disturbed call).
 */
import { Quantization } from '@inferq/core';
import { DEFAULT_MODEL_INFO, defaultModel } from '../src/default-model.js';
import { formatModelCost, measureModelCost } from '../src/model-cost.js';
import { mulberry32 } from '../src/mulberry32.js';

/** Time for the timed calls of all quantizations; building and loading take ~1 s each on top. */
const TOTAL_BUDGET_MS = 15_000;

async function main(): Promise<void> {
  const arg = (process.argv[2] ?? 'FP32').toUpperCase();
  const quantizations: Quantization[] = arg === 'ALL' ? [...Quantization.options] : [Quantization.parse(arg)];
  const ort = await import('onnxruntime-node');

  console.log(DEFAULT_MODEL_INFO.description);
  console.log(`onnxruntime-node ${ort.env.versions.node ?? '?'}, intraOpNumThreads 1, Node ${process.version}\n`);

  const random = mulberry32(0x5eed);
  const width = DEFAULT_MODEL_INFO.input.shape[0] ?? 0;
  const inputs = Array.from({ length: 64 }, () => Array.from({ length: width }, () => random() * 2 - 1));

  for (const quantization of quantizations) {
    let start = performance.now();
    const model = defaultModel({ quantization }); // builds the graph
    const buildMs = performance.now() - start;
    const bytes = model.source.kind === 'bytes' ? model.source.byteLength : NaN;
    start = performance.now();
    await model.init();
    const loadMs = performance.now() - start;
    try {
      const points = await measureModelCost(model, (i) => inputs[i % inputs.length], {
        budgetMs: TOTAL_BUDGET_MS / quantizations.length,
      });
      console.log(
        `${quantization}: ${(bytes / 1e6).toFixed(1)} MB model, built in ${buildMs.toFixed(0)} ms, session created in ${loadMs.toFixed(0)} ms`,
      );
      console.log(formatModelCost(points) + '\n');
    } finally {
      await model.close();
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
