/**
 * `onnxModel`: an ONNX model as an inferq {@link ModelModule}, run with
 * onnxruntime-node.
 *
 * A batch of inputs is stacked into ONE tensor `[batch, ...input.shape]` and
 * run with ONE `InferenceSession.run`; the output `[batch, ...output.shape]`
 * is split back into one flat `number[]` per item. That single call is what
 * makes batching pay: a model's fixed cost per call (reading its weights) is
 * shared by every item of the batch.
 *
 * Two things about onnxruntime-node shape this adapter:
 * - `run` executes synchronously on the JS thread (it is only deferred with
 *   `setImmediate`), so a process runs one inference at a time whatever its
 *   concurrency, and its event loop waits meanwhile. Scale with processes.
 * - The native binding is loaded on first `init()`, not at import, so
 *   importing `@inferq/onnx` costs nothing until a model is initialised.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import {
  ClosedError,
  ConfigError,
  ErrorCode,
  InferqError,
  InputInvalidError,
  ModelError,
  type ConfigIssue,
  type ModelModule,
  type Quantization,
} from '@inferq/core';
import { formatShape, readRow, shapeSize, writeItem, type TensorItemInput } from './batch-tensor.js';
import {
  ONNX_MODEL_DEFAULTS,
  parseOnnxModelOptions,
  resolveOnnxModelSource,
  type OnnxModelOptions,
  type OnnxModelSource,
  type OnnxSessionOptions,
  type ResolvedOnnxModelOptions,
} from './onnx-model-options.js';

/**
 * An ONNX model ready for an inferq worker: per-item numbers in, per-item
 * flat `number[]` out. Each input should be a {@link TensorItemInput}; `run`
 * takes `unknown[]` because inputs come from JSON and are checked item by item
 * (so the module is also a plain `ModelModule` for the worker).
 */
export interface OnnxModel extends ModelModule<unknown, number[]> {
  readonly name: string;
  readonly quantization: Quantization;
  /** The file (or bytes) loaded for `quantization`. */
  readonly source: OnnxModelSource;
  readonly input: { readonly name: string; readonly shape: readonly number[] };
  readonly output: { readonly name: string; readonly shape: readonly number[] };
  /** Creates the session once (later calls share it). `run` calls it when needed. */
  init(): Promise<void>;
  /** Waits for running batches, then releases the session. Later `run` calls throw `ClosedError`. */
  close(): Promise<void>;
  /** True: compact inputs reach `run` as Float64Array (ModelModule.typedInputs). */
  readonly typedInputs: true;
}

type Ort = typeof import('onnxruntime-node');

/** Tensor element types whose data is a typed array of JS numbers. */
const NUMERIC_OUTPUT_TYPES = new Set(['float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32']);

/**
 * Creates an ONNX model module. Options are validated now (a `ConfigError`
 * lists every bad field); the model file is read and the session created on
 * `init()` or on the first `run`.
 *
 * @example
 * ```ts
 * const model = onnxModel({
 *   name: 'sentiment',
 *   paths: { FP32: 'model.onnx', INT8: 'model.int8.onnx' },
 *   quantization: 'INT8',
 *   input: { name: 'x', shape: [64] },
 *   output: { name: 'probabilities', shape: [4] },
 * });
 * ```
 */
export function onnxModel(options: OnnxModelOptions): OnnxModel {
  const parsed = parseOnnxModelOptions(options);
  const source = resolveOnnxModelSource(parsed);
  // `opts` lives as long as the model; the bytes must not (see `bytes` below).
  const { bytes: givenBytes, ...opts } = parsed;
  const name = opts.name ?? ONNX_MODEL_DEFAULTS.name;
  const inputShape = Object.freeze([...opts.input.shape]);
  const outputShape = Object.freeze([...opts.output.shape]);
  const inputSize = shapeSize(inputShape);
  const outputSize = shapeSize(outputShape);
  const label = `ONNX model '${name}' (${opts.quantization})`;

  // Held only until the session exists: a model built in code can be tens of MB.
  let bytes: Uint8Array | undefined = source.kind === 'bytes' ? givenBytes : undefined;
  let ort: Ort | undefined;
  let session: InferenceSession | undefined;
  let loading: Promise<InferenceSession> | undefined;
  let closed = false;
  const running = new Set<Promise<unknown>>();

  async function load(): Promise<InferenceSession> {
    ort ??= await import('onnxruntime-node');
    const sessionOptions = toOrtSessionOptions(opts.sessionOptions);
    let created: InferenceSession;
    try {
      created =
        source.kind === 'path'
          ? await ort.InferenceSession.create(source.path, sessionOptions)
          : await ort.InferenceSession.create(bytes ?? new Uint8Array(0), sessionOptions);
    } catch (err) {
      const from = source.kind === 'path' ? `from '${source.path}'` : `from ${source.byteLength} bytes`;
      throw new ModelError(`${label}: could not load the model ${from}: ${messageOf(err)}`, {
        cause: err,
        details: { model: name, source },
      });
    }
    try {
      checkSessionMatchesOptions(created, opts);
    } catch (err) {
      await created.release();
      throw err;
    }
    return created;
  }

  async function init(): Promise<void> {
    if (closed) throw new ClosedError(label);
    if (session) return;
    loading ??= load();
    try {
      session = await loading;
      bytes = undefined;
    } catch (err) {
      // Forget the failure so a later init() can retry (e.g. the file appears).
      loading = undefined;
      throw err;
    }
  }

  async function runBatch(inputs: unknown[]): Promise<Array<number[] | Error>> {
    if (closed) throw new ClosedError(label);
    // Take the session before any await: a batch that started before close()
    // finishes on it (close() waits for running batches before releasing).
    if (!session) await init();
    const current = session;
    if (closed || !current || !ort) throw new ClosedError(label);
    const results = new Array<number[] | Error>(inputs.length);
    if (inputs.length === 0) return results;

    // Stack the valid items; a bad item gets its error and no row.
    const data = new Float32Array(inputs.length * inputSize);
    const rows: number[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const problem = writeItem(inputs[i], inputShape, data, rows.length * inputSize);
      if (problem === undefined) rows.push(i);
      else
        results[i] = new InputInvalidError(`Input ${i} of the batch for ${label}: ${problem}`, {
          details: { model: name, index: i, inputShape },
        });
    }
    if (rows.length === 0) return results;

    const feed = new ort.Tensor(
      'float32',
      rows.length === inputs.length ? data : data.slice(0, rows.length * inputSize),
      [rows.length, ...inputShape],
    );
    let out: InferenceSession.ReturnType;
    try {
      out = await current.run({ [opts.input.name]: feed }, [opts.output.name]);
    } catch (err) {
      throw new ModelError(`${label} failed on a batch of ${rows.length}: ${messageOf(err)}`, {
        cause: err,
        details: { model: name, batchSize: rows.length },
      });
    }
    const tensor = outputTensor(out[opts.output.name], rows.length);
    for (let r = 0; r < rows.length; r++) {
      const slot = rows[r] as number;
      const row = readRow(tensor.data as ArrayLike<number>, r, outputSize);
      results[slot] =
        row ??
        new InferqError(ErrorCode.OUTPUT_NOT_SERIALIZABLE, `${label} produced NaN or Infinity for input ${slot}.`, {
          details: { model: name, index: slot },
        });
    }
    return results;
  }

  /** Checks the output against `output.shape`: a mismatch is a configuration error, so it fails the batch. */
  function outputTensor(value: unknown, batch: number): Tensor {
    if (!isTensor(value)) throw new ModelError(`${label}: output '${opts.output.name}' is not a tensor.`);
    if (!NUMERIC_OUTPUT_TYPES.has(value.type)) {
      const supported = [...NUMERIC_OUTPUT_TYPES].join(', ');
      throw new ModelError(
        `${label}: output '${opts.output.name}' has element type ${value.type}; supported: ${supported} ` +
          '(add a Cast to float32 in the graph).',
      );
    }
    const dims = value.dims;
    if (dims[0] !== batch || shapeSize(dims.slice(1)) !== outputSize) {
      const expected = [batch, ...outputShape];
      throw new ModelError(
        `${label}: output '${opts.output.name}' has shape ${formatShape(dims)} for a batch of ${batch}, ` +
          `expected ${formatShape(expected)}. Check 'output.shape'.`,
        { details: { model: name, dims: [...dims], expected } },
      );
    }
    return value;
  }

  async function run(inputs: unknown[]): Promise<Array<number[] | Error>> {
    const p = runBatch(inputs);
    running.add(p);
    try {
      return await p;
    } finally {
      running.delete(p);
    }
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    bytes = undefined;
    await Promise.allSettled([...running]);
    const current = session ?? (await loading?.catch(() => undefined));
    session = undefined;
    loading = undefined;
    await current?.release();
  }

  return Object.freeze({
    name,
    quantization: opts.quantization,
    source,
    input: Object.freeze({ name: opts.input.name, shape: inputShape }),
    output: Object.freeze({ name: opts.output.name, shape: outputShape }),
    init,
    run,
    close,
    // Compact inputs as Float64Array: read straight into the batch tensor (no number[] in between).
    typedInputs: true,
  });
}

/** Our checked subset, without the unset fields (onnxruntime's types reject explicit undefined). */
function toOrtSessionOptions(o: OnnxSessionOptions): InferenceSession.SessionOptions {
  const out: InferenceSession.SessionOptions = {
    intraOpNumThreads: o.intraOpNumThreads,
    graphOptimizationLevel: o.graphOptimizationLevel,
  };
  if (o.interOpNumThreads !== undefined) out.interOpNumThreads = o.interOpNumThreads;
  if (o.executionMode !== undefined) out.executionMode = o.executionMode;
  if (o.enableCpuMemArena !== undefined) out.enableCpuMemArena = o.enableCpuMemArena;
  if (o.enableMemPattern !== undefined) out.enableMemPattern = o.enableMemPattern;
  if (o.logSeverityLevel !== undefined) out.logSeverityLevel = o.logSeverityLevel;
  if (o.executionProviders !== undefined) out.executionProviders = o.executionProviders;
  return out;
}

/**
 * Compares the loaded graph with `input`/`output` so a wrong name or shape
 * fails at startup, naming the option, instead of failing every batch.
 */
function checkSessionMatchesOptions(session: InferenceSession, opts: Pick<ResolvedOnnxModelOptions, 'input' | 'output'>): void {
  const issues: ConfigIssue[] = [];
  const { inputNames, outputNames } = session;
  if (!inputNames.includes(opts.input.name)) {
    const message = `the model has no input '${opts.input.name}'; its inputs: ${inputNames.join(', ')}`;
    issues.push({ field: 'input.name', message });
  }
  if (!outputNames.includes(opts.output.name)) {
    const message = `the model has no output '${opts.output.name}'; its outputs: ${outputNames.join(', ')}`;
    issues.push({ field: 'output.name', message });
  }
  const input = session.inputMetadata[inputNames.indexOf(opts.input.name)];
  if (input?.isTensor) {
    if (input.type !== opts.input.type) {
      const message = `the model's input '${opts.input.name}' is ${input.type}; only float32 inputs are supported`;
      issues.push({ field: 'input.type', message });
    }
    issues.push(...shapeIssues('input', input.shape, opts.input.shape));
  }
  const output = session.outputMetadata[outputNames.indexOf(opts.output.name)];
  if (output?.isTensor) issues.push(...shapeIssues('output', output.shape, opts.output.shape));
  if (issues.length > 0) throw new ConfigError('onnxModel', issues);
}

/** Dims the graph declares (numbers) must match; symbolic dims (strings) and unknown (-1) match anything. */
function shapeIssues(
  which: 'input' | 'output',
  declared: ReadonlyArray<number | string>,
  perItem: readonly number[],
): ConfigIssue[] {
  if (declared.length === 0) return []; // shape not declared in the graph
  const field = `${which}.shape`;
  const graphShape = `the model's ${which} has shape ${formatShape(declared)} (batch dimension first)`;
  if (declared.length !== perItem.length + 1) {
    const message = `${graphShape}; ${formatShape(perItem)} has ${perItem.length} dimension(s), expected ${declared.length - 1}`;
    return [{ field, message }];
  }
  const batch = declared[0];
  if (typeof batch === 'number' && batch > 0) {
    const message =
      `the model's ${which} has a fixed batch dimension (${batch}); onnxModel stacks a batch into one tensor, ` +
      'so export the model with a dynamic first dimension';
    return [{ field, message }];
  }
  const mismatch = perItem.some((d, i) => {
    const m = declared[i + 1];
    return typeof m === 'number' && m > 0 && m !== d;
  });
  return mismatch ? [{ field, message: `${graphShape}, which ${formatShape(perItem)} does not match` }] : [];
}

function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && 'dims' in value && 'data' in value && 'type' in value;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
