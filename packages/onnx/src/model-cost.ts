/**
 * Measures a batch model's cost curve: time per call and per item at several
 * batch sizes. The curve says what batching can gain (the fixed cost per
 * call that a batch shares) and what it cannot (the cost per item), which
 * is what the demo and the benchmark print next to their throughput.
 */
import { ConfigError, ModelError, ModelOutputMismatchError, type BatchModel, type ModelModule } from '@inferq/core';

/** All defaults in one place. */
export const MODEL_COST_DEFAULTS = Object.freeze({
  batchSizes: Object.freeze([1, 8, 32, 64]) as readonly number[],
  warmupCalls: 5,
  repetitions: 41,
  budgetMs: 15_000,
});

export interface ModelCostOptions {
  /** Batch sizes to measure. Default `[1, 8, 32, 64]`. */
  batchSizes?: readonly number[];
  /** Untimed calls per batch size first (buffer allocation, caches, lazy init). Default 5. */
  warmupCalls?: number;
  /** Timed calls per batch size; the median is reported. Default 41. */
  repetitions?: number;
  /**
   * Wall-clock bound of the timed calls, in ms: measuring stops early when
   * it is spent (after at least 3 calls per batch size). Default 15,000.
   */
  budgetMs?: number;
}

/** The cost at one batch size. */
export interface ModelCostPoint {
  batchSize: number;
  /** Median time of one call, ms. */
  msPerCall: number;
  /** `msPerCall` divided by the batch size, in microseconds. */
  usPerItem: number;
  /** Fastest call, ms (the cost without interference from other processes). */
  minMsPerCall: number;
  /** Timed calls the median is taken over. */
  calls: number;
}

/**
 * Times `model` at each batch size. Calls of the different batch sizes are
 * interleaved, round after round, so that a burst of load from another
 * process lands on every batch size alike instead of skewing one of them.
 *
 * @param makeInput - returns input number `index` (0 .. largest batch size - 1); the same inputs are reused every call.
 * @throws ModelError when the model fails an item (a cost of failing calls means nothing).
 */
export async function measureModelCost(
  model: BatchModel | ModelModule,
  makeInput: (index: number) => unknown,
  options: ModelCostOptions = {},
): Promise<ModelCostPoint[]> {
  const batchSizes = options.batchSizes ?? MODEL_COST_DEFAULTS.batchSizes;
  const warmupCalls = options.warmupCalls ?? MODEL_COST_DEFAULTS.warmupCalls;
  const repetitions = Math.max(3, options.repetitions ?? MODEL_COST_DEFAULTS.repetitions);
  const budgetMs = options.budgetMs ?? MODEL_COST_DEFAULTS.budgetMs;
  if (batchSizes.length === 0 || batchSizes.some((b) => !Number.isInteger(b) || b < 1)) {
    throw new ConfigError('measureModelCost', [
      { field: 'batchSizes', message: `must be positive integers, got [${batchSizes.join(', ')}]` },
    ]);
  }

  const run = typeof model === 'function' ? model : model.run;
  if (typeof model !== 'function') await model.init?.();
  const largest = Math.max(...batchSizes);
  const pool = Array.from({ length: largest }, (_, i) => makeInput(i));
  const batches = batchSizes.map((size) => pool.slice(0, size));

  for (const batch of batches) {
    for (let i = 0; i < warmupCalls; i++) await callChecked(run, batch);
  }

  const times = batchSizes.map(() => [] as number[]);
  const deadline = performance.now() + budgetMs;
  for (let round = 0; round < repetitions; round++) {
    if (round >= 3 && performance.now() > deadline) break;
    for (let b = 0; b < batches.length; b++) {
      const start = performance.now();
      await callChecked(run, batches[b] as unknown[]);
      (times[b] as number[]).push(performance.now() - start);
    }
  }

  return batchSizes.map((batchSize, b) => {
    const sorted = [...(times[b] as number[])].sort((x, y) => x - y);
    const msPerCall = median(sorted);
    return { batchSize, msPerCall, usPerItem: (msPerCall * 1000) / batchSize, minMsPerCall: sorted[0] ?? NaN, calls: sorted.length };
  });
}

async function callChecked(run: BatchModel, batch: unknown[]): Promise<void> {
  const outputs = await run(batch);
  if (!Array.isArray(outputs) || outputs.length !== batch.length) throw new ModelOutputMismatchError(batch.length, outputs);
  const failed = outputs.findIndex((o) => o instanceof Error);
  if (failed >= 0) {
    throw new ModelError(`Cannot measure the model: it failed item ${failed}: ${(outputs[failed] as Error).message}`, {
      cause: outputs[failed],
    });
  }
}

/** Median of an ascending array (the mean of the middle two for an even length). */
function median(sorted: readonly number[]): number {
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The curve as a text table, with each batch size's per-item cost relative to batch 1's. */
export function formatModelCost(points: readonly ModelCostPoint[]): string {
  const base = points.find((p) => p.batchSize === 1)?.usPerItem;
  const header = ' batch | ms/call (median) | ms/call (min) | us/item | batch-1 cost / item cost | calls';
  const rows = points.map((p) => {
    const gain = base === undefined ? '' : `${(base / p.usPerItem).toFixed(1)}x`;
    return [
      String(p.batchSize).padStart(6),
      p.msPerCall.toFixed(3).padStart(17),
      p.minMsPerCall.toFixed(3).padStart(14),
      p.usPerItem.toFixed(1).padStart(8),
      gain.padStart(25),
      String(p.calls).padStart(6),
    ].join(' |');
  });
  return [header, ...rows].join('\n');
}
