/**
 * The overload scenarios' model: a fixed cost per call, whatever the batch
 * size (a timer, no CPU), so what the workers can serve is known in advance
 * and does not move with the noise of a shared 2-core machine:
 * capacity = worker processes x batches in flight x maxBatchSize / cost.
 * The cost comes from BENCH_SLEEP_MODEL_MS (the bench sets it: settings.ts
 * SLEEP_MODEL_COST_MS). Loaded by `inferq-worker --module <this file>` (a
 * default-exported batch function) and by the bench's own baseline workers.
 */
const costMs = Number(process.env.BENCH_SLEEP_MODEL_MS ?? 40);
if (!Number.isFinite(costMs) || costMs < 0) throw new Error(`BENCH_SLEEP_MODEL_MS must be a number >= 0, got '${process.env.BENCH_SLEEP_MODEL_MS}'`);

export default async function sleepModel(inputs) {
  await new Promise((resolve) => setTimeout(resolve, costMs));
  return inputs;
}
