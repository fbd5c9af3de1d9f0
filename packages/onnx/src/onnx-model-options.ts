/**
 * Options of {@link onnxModel}: one zod schema, parsed once; an invalid
 * value throws one `ConfigError` that lists every bad field.
 */
import { z } from 'zod';
import { ConfigError, Quantization, parseConfig } from '@inferq/core';

/** All defaults in one place. */
export const ONNX_MODEL_DEFAULTS = Object.freeze({
  name: 'onnx-model',
  quantization: 'FP32' as Quantization,
  inputType: 'float32' as const,
  /**
   * One thread per session: inferq scales by worker processes, and two
   * processes on two cores that each start a thread per core only fight
   * over the cores (and onnxruntime-node runs inference on the JS thread,
   * so more threads per process would not overlap batches anyway).
   */
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all' as const,
});

/** A per-item tensor shape, without the batch dimension: e.g. `[64]` or `[3, 32, 32]`. */
const ItemShape = z.array(z.number().int().min(1).max(1 << 24)).min(1).max(8);

const SessionOptionsSchema = z
  .object({
    /** Threads one inference may use. 1..256, default 1 (see {@link ONNX_MODEL_DEFAULTS}). */
    intraOpNumThreads: z.number().int().min(1).max(256).default(ONNX_MODEL_DEFAULTS.intraOpNumThreads),
    /** Threads for running independent graph nodes in parallel (only with `executionMode: 'parallel'`). 1..256, default onnxruntime's. */
    interOpNumThreads: z.number().int().min(1).max(256).optional(),
    /** Graph optimisations applied at load. Default 'all'. */
    graphOptimizationLevel: z
      .enum(['disabled', 'basic', 'extended', 'layout', 'all'])
      .default(ONNX_MODEL_DEFAULTS.graphOptimizationLevel),
    /** 'sequential' (default of onnxruntime) or 'parallel' node execution. */
    executionMode: z.enum(['sequential', 'parallel']).optional(),
    /** onnxruntime's CPU memory arena. Default onnxruntime's (on). */
    enableCpuMemArena: z.boolean().optional(),
    /** Memory pattern optimisation (for fixed input shapes). Default onnxruntime's (on). */
    enableMemPattern: z.boolean().optional(),
    /** onnxruntime log level: 0 verbose .. 4 fatal. Default onnxruntime's (2, warnings). */
    logSeverityLevel: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(4)]).optional(),
    /** Execution providers by name, in order of preference, e.g. `['cpu']`. Default onnxruntime's (CPU). */
    executionProviders: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

const SOURCE_FIELDS = "one of 'path', 'bytes' or 'paths'";

export const OnnxModelOptionsSchema = z
  .object({
    /** The model's name (logs, worker default model name). Default 'onnx-model'; set it. */
    name: z.string().min(1).optional(),
    /** An .onnx file to load. Not together with `bytes`. */
    path: z.string().min(1).optional(),
    /** A serialised ONNX model (e.g. built in code). Not together with `path`. */
    bytes: z
      .custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected a Uint8Array (or Buffer) holding a serialised ONNX model')
      .refine((b) => b.byteLength > 0, 'must not be empty')
      .optional(),
    /**
     * One .onnx file per quantization. The file for `quantization` is loaded
     * when present; otherwise `path` or `bytes` is (the fallback).
     */
    paths: z
      .object({ FP32: z.string().min(1).optional(), FP16: z.string().min(1).optional(), INT8: z.string().min(1).optional() })
      .strict()
      .optional(),
    /** The precision this model runs at; picks the file from `paths` and is part of the cache namespace. Default FP32. */
    quantization: Quantization.default(ONNX_MODEL_DEFAULTS.quantization),
    input: z
      .object({
        /** The graph input that receives the stacked batch. */
        name: z.string().min(1),
        /** Per-item shape without the batch dimension, e.g. `[64]`. */
        shape: ItemShape,
        /** Element type of the tensor built from the inputs. Only 'float32' (the default) for now. */
        type: z.literal('float32').default(ONNX_MODEL_DEFAULTS.inputType),
      })
      .strict(),
    output: z
      .object({
        /** The graph output split into per-item outputs. */
        name: z.string().min(1),
        /** Per-item shape without the batch dimension, e.g. `[4]`. Each item's output is the flat `number[]` of this size. */
        shape: ItemShape,
      })
      .strict(),
    /** onnxruntime session options (a checked subset). Default `{ intraOpNumThreads: 1, graphOptimizationLevel: 'all' }`. */
    sessionOptions: SessionOptionsSchema.prefault({}),
  })
  .strict()
  .superRefine(
    (o, ctx) => {
      // Runs even when other fields failed, so one error lists every bad field;
      // hence the defensive reads of values that may not have parsed.
      const hasPath = typeof o.path === 'string';
      const hasBytes = o.bytes instanceof Uint8Array;
      const paths: Record<string, unknown> = typeof o.paths === 'object' && o.paths !== null ? o.paths : {};
      const hasPaths = o.paths !== undefined;
      if (hasPath && hasBytes) {
        ctx.addIssue({ code: 'custom', path: ['bytes'], message: "give 'path' or 'bytes', not both" });
      }
      if (!hasPath && !hasBytes && !hasPaths) {
        ctx.addIssue({ code: 'custom', path: ['path'], message: `a model source is required: ${SOURCE_FIELDS}` });
      }
      const q = Quantization.safeParse(o.quantization ?? ONNX_MODEL_DEFAULTS.quantization);
      if (hasPaths && !hasPath && !hasBytes && q.success && typeof paths[q.data] !== 'string') {
        ctx.addIssue({
          code: 'custom',
          path: ['paths', q.data],
          message: `no file for quantization ${q.data}, and no 'path' or 'bytes' to fall back to`,
        });
      }
    },
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );

/** What {@link onnxModel} accepts. */
export type OnnxModelOptions = z.input<typeof OnnxModelOptionsSchema>;
/** Options after defaults were applied. */
export type ResolvedOnnxModelOptions = z.output<typeof OnnxModelOptionsSchema>;
/** The checked subset of onnxruntime session options, after defaults. */
export type OnnxSessionOptions = z.output<typeof SessionOptionsSchema>;

/** Parses and freezes; throws a `ConfigError` listing every bad field. */
export function parseOnnxModelOptions(input: OnnxModelOptions): ResolvedOnnxModelOptions {
  return Object.freeze(parseConfig('onnxModel', OnnxModelOptionsSchema, input));
}

/** Where the model is loaded from, after the quantization picked a file. */
export type OnnxModelSource =
  | {
      kind: 'path';
      path: string;
      /** True when the file came from `paths[quantization]`, false when it is the fallback `path`. */
      matchesQuantization: boolean;
    }
  | { kind: 'bytes'; byteLength: number };

/** Picks the file for the configured quantization, else the fallback. Options must be parsed. */
export function resolveOnnxModelSource(options: ResolvedOnnxModelOptions): OnnxModelSource {
  const forQuantization = options.paths?.[options.quantization];
  if (forQuantization !== undefined) return { kind: 'path', path: forQuantization, matchesQuantization: true };
  if (options.path !== undefined) return { kind: 'path', path: options.path, matchesQuantization: false };
  if (options.bytes !== undefined) return { kind: 'bytes', byteLength: options.bytes.byteLength };
  // Unreachable for parsed options: the schema requires a source for the quantization.
  throw new ConfigError('onnxModel', [{ field: 'path', message: `a model source is required: ${SOURCE_FIELDS}` }]);
}
