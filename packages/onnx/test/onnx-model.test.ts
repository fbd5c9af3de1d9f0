import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ClosedError, ConfigError, ErrorCode, InferqError, InputInvalidError, ModelError, canonicalJson } from '@inferq/core';
import { decodeF64, encodeF64, flatNumbers } from '@inferq/core/protocol';
import { writeItem } from '../src/batch-tensor.js';
import { buildMlpModelBytes, type MlpGraphSpec } from '../src/mlp-graph.js';
import { mulberry32 } from '../src/mulberry32.js';
import { onnxModel, type OnnxModel } from '../src/onnx-model.js';
import type { OnnxModelOptions } from '../src/onnx-model-options.js';

const WIDTH = 8;
const CLASSES = 4;

/** A small MLP (8 -> 32 -> 32 -> 4): the same graph code as the default model, cheap to build. */
function smallMlp(overrides: Partial<MlpGraphSpec> = {}): Uint8Array {
  return buildMlpModelBytes({
    widths: [WIDTH, 32, 32, CLASSES],
    activations: ['Gelu', 'Relu'],
    seed: 7,
    quantization: 'FP32',
    inputName: 'x',
    outputName: 'y',
    graphName: 'test-mlp',
    producerVersion: '0',
    docString: 'test',
    ...overrides,
  });
}

/** A one-node graph `y = op(x)` with the given declared shapes (strings are symbolic dims). */
function oneNodeGraph(op: 'Identity' | 'Log', inputDims: (number | string)[], outputDims: (number | string)[] = inputDims): Uint8Array {
  const { onnx } = onnxProto;
  const dims = (d: (number | string)[]) => d.map((v) => (typeof v === 'string' ? { dimParam: v } : { dimValue: v }));
  const valueInfo = (name: string, d: (number | string)[]) => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims(d) } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 9,
    opsetImport: [{ domain: '', version: 20 }],
    graph: {
      name: 'g',
      node: [{ opType: op, input: ['x'], output: ['y'] }],
      input: [valueInfo('x', inputDims)],
      output: [valueInfo('y', outputDims)],
    },
  }).finish();
}

function randomItems(count: number, width = WIDTH, seed = 1): number[][] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => Array.from({ length: width }, () => random() * 4 - 2));
}

const opened: OnnxModel[] = [];
function model(options: OnnxModelOptions): OnnxModel {
  const m = onnxModel(options);
  opened.push(m);
  return m;
}
const mlp = (extra: Partial<OnnxModelOptions> = {}): OnnxModel =>
  model({ bytes: smallMlp(), input: { name: 'x', shape: [WIDTH] }, output: { name: 'y', shape: [CLASSES] }, ...extra });

afterEach(async () => {
  await Promise.all(opened.splice(0).map((m) => m.close()));
});

const dir = mkdtempSync(join(tmpdir(), 'inferq-onnx-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectClose(actual: unknown, expected: readonly number[], tolerance = 1e-5): void {
  expect(Array.isArray(actual)).toBe(true);
  const row = actual as number[];
  expect(row).toHaveLength(expected.length);
  row.forEach((v, i) => expect(Math.abs(v - (expected[i] as number))).toBeLessThan(tolerance));
}

describe('onnxModel run', () => {
  it('returns one output per input, and a batch equals its items run one at a time', async () => {
    const m = mlp();
    const items = randomItems(17);
    const batch = await m.run(items);
    expect(batch).toHaveLength(items.length);
    for (let i = 0; i < items.length; i++) {
      const [single] = await m.run([items[i] as number[]]);
      expect(Array.isArray(single)).toBe(true);
      expectClose(batch[i], single as number[]);
      // Plain, JSON-friendly arrays: a softmax over the classes.
      expect(Object.getPrototypeOf(batch[i])).toBe(Array.prototype);
      expect((batch[i] as number[]).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it('returns an empty array for an empty batch', async () => {
    expect(await mlp().run([])).toEqual([]);
  });

  it('fails only the slot of a wrong-sized item; the other items still run', async () => {
    const m = mlp();
    const items = randomItems(4);
    const expected = await m.run(items);
    const batch = await m.run([items[0], [1, 2, 3], items[1], 'not numbers', items[2], [...(items[3] as number[]), 0]]);
    expect(batch).toHaveLength(6);
    for (const bad of [1, 3, 5]) {
      expect(batch[bad]).toBeInstanceOf(InputInvalidError);
      expect((batch[bad] as InferqError).code).toBe(ErrorCode.INPUT_INVALID);
      expect((batch[bad] as InferqError).details).toMatchObject({ index: bad, inputShape: [WIDTH] });
    }
    expect((batch[1] as Error).message).toContain('got an array of length 3');
    expectClose(batch[0], expected[0] as number[]);
    expectClose(batch[2], expected[1] as number[]);
    expectClose(batch[4], expected[2] as number[]);
  });

  it('fails every slot when every item is invalid, without running the model', async () => {
    const batch = await mlp().run([[1], null, [Number.NaN, 0, 0, 0, 0, 0, 0, 0]]);
    expect(batch.every((r) => r instanceof InputInvalidError)).toBe(true);
    expect((batch[2] as Error).message).toContain('NaN');
  });

  it('accepts Float32Array items and nested arrays of the per-item shape', async () => {
    const grid = model({ bytes: oneNodeGraph('Identity', ['batch', 2, 3]), input: { name: 'x', shape: [2, 3] }, output: { name: 'y', shape: [2, 3] } });
    const out = await grid.run([
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      [7, 8, 9, 10, 11, 12],
      new Float32Array([0.5, 1, 1.5, 2, 2.5, 3]),
      [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
    ]);
    expect(out.slice(0, 3)).toEqual([
      [1, 2, 3, 4, 5, 6],
      [7, 8, 9, 10, 11, 12],
      [0.5, 1, 1.5, 2, 2.5, 3],
    ]);
    expect(out[3]).toBeInstanceOf(InputInvalidError);
  });

  it('takes compact inputs as Float64Array (typedInputs): the same outputs as the number[] JSON gives', async () => {
    const m = mlp();
    expect(m.typedInputs).toBe(true);
    const items = randomItems(9);
    // What a worker hands it: each compact input decoded from the wire.
    const compact = items.map((x) => decodeF64(encodeF64(flatNumbers(x) as Float64Array)) as Float64Array);
    expect(compact.every((x) => x instanceof Float64Array)).toBe(true);
    const fromJson = await m.run(items.map((x) => JSON.parse(canonicalJson(x)) as number[]));
    const fromCompact = await m.run(compact);
    // Identical, not merely close: the same float64 values round to the same float32 tensor.
    expect(fromCompact).toEqual(fromJson);
    // Mixed in one batch, and a bad typed item fails alone.
    const mixed = await m.run([compact[0], items[1], new Float64Array(WIDTH).fill(Number.NaN), new Float64Array(3)]);
    expect(mixed.slice(0, 2)).toEqual(fromJson.slice(0, 2));
    expect((mixed[2] as Error).message).toContain('element [0] is NaN');
    expect((mixed[3] as Error).message).toContain('Float64Array of length 3');
  });

  it('puts an error in the slot of an output holding NaN or Infinity (JSON would make it null)', async () => {
    const log = model({ bytes: oneNodeGraph('Log', ['batch', 2]), input: { name: 'x', shape: [2] }, output: { name: 'y', shape: [2] } });
    const out = await log.run([
      [1, 1],
      [0, 1],
    ]);
    expect(out[0]).toEqual([0, 0]);
    expect((out[1] as InferqError).code).toBe(ErrorCode.OUTPUT_NOT_SERIALIZABLE);
  });
});

describe('onnxModel lifecycle', () => {
  it('creates the session once, on init() or on the first run', async () => {
    const m = mlp();
    await Promise.all([m.init(), m.init(), m.run(randomItems(1))]);
    await m.init();
    expect(await m.run(randomItems(2))).toHaveLength(2);
  });

  it('rejects runs after close() with ClosedError; close() is idempotent', async () => {
    const m = mlp();
    await m.run(randomItems(1));
    await Promise.all([m.close(), m.close()]);
    await expect(m.run(randomItems(1))).rejects.toBeInstanceOf(ClosedError);
  });

  it('lets a batch that is running finish before close() releases the session', async () => {
    const m = mlp();
    await m.init();
    const running = m.run(randomItems(8));
    await m.close();
    expect(await running).toHaveLength(8);
  });

  it('reports a missing file as a ModelError naming the path, and retries on the next init', async () => {
    const path = join(dir, 'appears-later.onnx');
    const m = model({ path, input: { name: 'x', shape: [WIDTH] }, output: { name: 'y', shape: [CLASSES] } });
    const err = await m.init().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain(path);
    writeFileSync(path, smallMlp());
    await m.init();
    expect(await m.run(randomItems(1))).toHaveLength(1);
  });

  it('checks input/output names and shapes against the graph at init', async () => {
    const m = model({ bytes: smallMlp(), input: { name: 'input', shape: [WIDTH + 1] }, output: { name: 'y', shape: [CLASSES + 1] } });
    const err = await m.init().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const fields = (err as ConfigError).issues.map((i) => i.field);
    expect(fields).toEqual(expect.arrayContaining(['input.name', 'output.shape']));
    expect((err as Error).message).toContain('its inputs: x');
  });

  it('refuses a graph with a fixed batch dimension', async () => {
    const m = model({ bytes: oneNodeGraph('Identity', [1, 4]), input: { name: 'x', shape: [4] }, output: { name: 'y', shape: [4] } });
    const err = await m.init().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('fixed batch dimension');
  });
});

describe('onnxModel sources', () => {
  it('loads a model from a file path', async () => {
    const path = join(dir, 'mlp.onnx');
    writeFileSync(path, smallMlp());
    const fromFile = model({ path, input: { name: 'x', shape: [WIDTH] }, output: { name: 'y', shape: [CLASSES] } });
    expect(fromFile.source).toEqual({ kind: 'path', path, matchesQuantization: false });
    const items = randomItems(3);
    const [a, b] = [await fromFile.run(items), await mlp().run(items)];
    a.forEach((row, i) => expectClose(row, b[i] as number[], 1e-7));
  });

  it('loads the file of the configured quantization from paths, else falls back to path', async () => {
    // Different seeds, so outputs tell which file was loaded.
    const files = { FP32: join(dir, 'q-fp32.onnx'), INT8: join(dir, 'q-int8.onnx'), fallback: join(dir, 'q-fallback.onnx') };
    writeFileSync(files.FP32, smallMlp({ seed: 1 }));
    writeFileSync(files.INT8, smallMlp({ seed: 2, quantization: 'INT8' }));
    writeFileSync(files.fallback, smallMlp({ seed: 3 }));
    const io = { input: { name: 'x', shape: [WIDTH] }, output: { name: 'y', shape: [CLASSES] } };
    const paths = { FP32: files.FP32, INT8: files.INT8 };

    const int8 = model({ ...io, paths, path: files.fallback, quantization: 'INT8' });
    const fp32 = model({ ...io, paths, path: files.fallback });
    const fp16 = model({ ...io, paths, path: files.fallback, quantization: 'FP16' });
    expect(int8.source).toEqual({ kind: 'path', path: files.INT8, matchesQuantization: true });
    expect(fp32.source).toEqual({ kind: 'path', path: files.FP32, matchesQuantization: true });
    expect(fp16.source).toEqual({ kind: 'path', path: files.fallback, matchesQuantization: false });
    expect([int8.quantization, fp32.quantization, fp16.quantization]).toEqual(['INT8', 'FP32', 'FP16']);

    const items = randomItems(2);
    for (const [m, file] of [
      [int8, files.INT8],
      [fp32, files.FP32],
      [fp16, files.fallback],
    ] as const) {
      const direct = await model({ ...io, path: file }).run(items);
      (await m.run(items)).forEach((row, i) => expectClose(row, direct[i] as number[], 1e-7));
    }
  });

  it('reports its identity: name and quantization (default FP32)', () => {
    const m = mlp({ name: 'sentiment' });
    expect([m.name, m.quantization]).toEqual(['sentiment', 'FP32']);
    expect(mlp().name).toBe('onnx-model');
  });
});

describe('onnxModel options', () => {
  function configError(options: unknown): ConfigError {
    try {
      onnxModel(options as OnnxModelOptions);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  }

  it('lists every bad field in one ConfigError', () => {
    const err = configError({
      path: 'a.onnx',
      bytes: new Uint8Array([1]),
      quantization: 'INT4',
      input: { name: '', shape: [0, 2] },
      output: { name: 'y' },
      sessionOptions: { intraOpNumThreads: 0, bogus: true },
      extra: 1,
    });
    const fields = err.issues.map((i) => i.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'bytes',
        'quantization',
        'input.name',
        'input.shape.0',
        'output.shape',
        'sessionOptions.intraOpNumThreads',
        'sessionOptions',
        '(root)',
      ]),
    );
    expect(err.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(err.message).toContain("unknown option(s) 'bogus'");
  });

  it('requires a model source', () => {
    const io = { input: { name: 'x', shape: [2] }, output: { name: 'y', shape: [2] } };
    expect(configError(io).issues).toEqual([{ field: 'path', message: expect.stringContaining("one of 'path', 'bytes' or 'paths'") }]);
    expect(configError({ ...io, paths: { FP32: 'a.onnx' }, quantization: 'INT8' }).issues.map((i) => i.field)).toEqual(['paths.INT8']);
    expect(configError({ ...io, bytes: new Uint8Array(0) }).issues.map((i) => i.field)).toEqual(['bytes']);
    expect(configError({ ...io, bytes: [1, 2] }).issues.map((i) => i.field)).toEqual(['bytes']);
  });
});

describe('writeItem', () => {
  const target = new Float32Array(6);
  it.each([
    [[1, 2, 3, 4, 5, 6], undefined],
    [
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      undefined,
    ],
    [[[1, 2, 3], [4, 5]], 'element [1] has length 2, expected 3'],
    [[[1, 2, 3], 4], 'got an array of length 2'],
    [[1, 2, 3, 4, 5, '6'], 'element [5] is a string'],
    [[1, 2, 3, 4, 5, Infinity], 'element [5] is Infinity'],
    [{ length: 6 }, 'got a Object'],
    [new Float64Array(5), 'got a Float64Array of length 5'],
  ])('checks %j against per-item shape [2, 3]', (item, problem) => {
    const result = writeItem(item, [2, 3], target, 0);
    if (problem === undefined) {
      expect(result).toBeUndefined();
      expect([...target]).toEqual([1, 2, 3, 4, 5, 6]);
    } else {
      expect(result).toContain(problem);
    }
  });
});
