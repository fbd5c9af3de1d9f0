/**
 * Loads the model a worker CLI serves: a file that default-exports a batch
 * function `(inputs) => outputs` or an object `{ run, init?, close? }`, or a
 * built-in: `builtin:onnx-default` (the project's default ONNX model, from the
 * separate package `@inferq/onnx`, imported only here and only when asked
 * for), `builtin:noop` (returns each input as its output: for measuring the
 * queue itself).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, InferqError, type ModelModule, type Quantization } from '@inferq/core';

export const BUILTIN_MODELS = ['builtin:onnx-default', 'builtin:noop'] as const;

/** The package that holds the ONNX adapter and the default model: an optional peer of the worker. */
export const ONNX_PACKAGE = '@inferq/onnx';

/** What the worker needs of `@inferq/onnx`; the package is not a dependency, so it is typed here. */
interface OnnxPackage {
  defaultModel(options?: { quantization?: Quantization }): ModelModule;
}

async function importOnnxPackage(spec: string): Promise<OnnxPackage> {
  // A variable specifier: TypeScript and bundlers leave the optional package alone.
  const name: string = ONNX_PACKAGE;
  try {
    return (await import(name)) as OnnxPackage;
  } catch (cause) {
    const err = cause as NodeJS.ErrnoException;
    const missing = err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(`'${ONNX_PACKAGE}'`);
    throw new InferqError(
      ErrorCode.MODEL_MODULE_INVALID,
      missing
        ? `'${spec}' needs the package ${ONNX_PACKAGE}, which is not installed: run \`npm install ${ONNX_PACKAGE}\` (it brings onnxruntime-node).`
        : `Cannot load ${ONNX_PACKAGE} for '${spec}': ${err?.message ?? String(cause)}`,
      { cause, details: { module: spec, package: ONNX_PACKAGE, missing } },
    );
  }
}

export async function loadModelModule(spec: string, options: { quantization?: Quantization } = {}): Promise<ModelModule> {
  if (spec === 'builtin:noop') return { run: async (inputs: unknown[]) => inputs };
  if (spec === 'builtin:onnx-default') {
    const onnx = await importOnnxPackage(spec);
    return onnx.defaultModel(options.quantization ? { quantization: options.quantization } : {});
  }
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
