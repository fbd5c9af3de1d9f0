/**
 * Loads the model a worker CLI serves: a file that default-exports a batch
 * function `(inputs) => outputs` or an object `{ run, init?, close? }`, or a
 * built-in: `builtin:onnx-default` (the project's default ONNX model),
 * `builtin:noop` (returns each input as its output: for measuring the
 * queue itself).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, InferqError, type Quantization } from '@inferq/core';
import type { ModelModule } from './models/batch-model.js';
import { defaultModel } from './models/default-model.js';

export const BUILTIN_MODELS = ['builtin:onnx-default', 'builtin:noop'] as const;

export async function loadModelModule(spec: string, options: { quantization?: Quantization } = {}): Promise<ModelModule> {
  if (spec === 'builtin:noop') return { run: async (inputs: unknown[]) => inputs };
  if (spec === 'builtin:onnx-default') return defaultModel(options.quantization ? { quantization: options.quantization } : {});
  if (spec.startsWith('builtin:')) {
    throw new InferqError(ErrorCode.MODEL_MODULE_INVALID, `Unknown built-in model '${spec}'; available: ${BUILTIN_MODELS.join(', ')}.`);
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(spec)).href)) as { default?: unknown };
  } catch (cause) {
    throw new InferqError(ErrorCode.MODEL_MODULE_INVALID, `Cannot load model module '${spec}': ${(cause as Error).message}`, { cause });
  }
  const exported = mod.default;
  if (typeof exported === 'function') return { run: exported as ModelModule['run'] };
  if (typeof exported === 'object' && exported !== null && typeof (exported as ModelModule).run === 'function') {
    return exported as ModelModule;
  }
  throw new InferqError(
    ErrorCode.MODEL_MODULE_INVALID,
    `Model module '${spec}' must default-export a function (inputs) => outputs or an object with run(inputs); it exports ${typeof exported}.`,
  );
}
