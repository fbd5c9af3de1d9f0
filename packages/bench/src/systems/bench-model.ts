/**
 * The model a plain-BullMQ or list-queue worker runs in-process, the same as
 * the `inferq-worker` CLI's built-ins:
 * - `noop`: `async (inputs) => inputs`, exactly what `builtin:noop` is; written
 *   out here so a no-op baseline worker does not import @inferq/worker, whose
 *   import costs ~1 s of CPU per process at startup (the bench starts dozens);
 * - `onnx`: `builtin:onnx-default` loaded through the CLI's own
 *   `loadModelModule`, so all three systems call the identical ONNX model.
 * `init()` runs before the worker says READY: model load time is never inside
 * the measured window.
 */
import type { ModelModule } from '@inferq/worker';
import { MODEL_MODULE, type ModelKind } from '../settings.js';

export async function loadBenchModel(kind: ModelKind): Promise<ModelModule> {
  if (kind === 'noop') return { run: async (inputs: unknown[]) => inputs };
  const { loadModelModule } = await import('@inferq/worker');
  const model = await loadModelModule(MODEL_MODULE[kind]);
  await model.init?.();
  return model;
}
