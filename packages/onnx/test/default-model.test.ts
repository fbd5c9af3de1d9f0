import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError, ModelError, type Quantization } from '@inferq/core';
import { DEFAULT_MODEL_INFO, buildDefaultModelBytes, defaultModel } from '../src/default-model.js';
import { float16Bits } from '../src/float16.js';
import { measureModelCost } from '../src/model-cost.js';
import { mulberry32 } from '../src/mulberry32.js';
import type { OnnxModel } from '../src/onnx-model.js';

// Building a default model takes a few hundred ms: tests share one per quantization.
const shared = new Map<Quantization, OnnxModel>();
function model(quantization: Quantization = 'FP32'): OnnxModel {
  let m = shared.get(quantization);
  if (!m) shared.set(quantization, (m = defaultModel({ quantization })));
  return m;
}
const opened: OnnxModel[] = [];
function freshModel(): OnnxModel {
  const m = defaultModel();
  opened.push(m);
  return m;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((m) => m.close()));
});
afterAll(async () => {
  await Promise.all([...shared.values()].map((m) => m.close()));
});

const WIDTH = DEFAULT_MODEL_INFO.input.shape[0] as number;
const CLASSES = DEFAULT_MODEL_INFO.output.shape[0] as number;

function items(count: number, seed = 11): number[][] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => Array.from({ length: WIDTH }, () => random() * 2 - 1));
}

function maxAbsDiff(a: readonly unknown[], b: readonly unknown[]): number {
  let max = 0;
  a.forEach((row, i) => (row as number[]).forEach((v, j) => (max = Math.max(max, Math.abs(v - ((b[i] as number[])[j] as number))))));
  return max;
}

const argmax = (row: unknown): number => {
  const r = row as number[];
  return r.indexOf(Math.max(...r));
};

describe('buildDefaultModelBytes', () => {
  it('builds identical bytes every time (fixed seed, no binary file)', () => {
    const a = buildDefaultModelBytes();
    const b = buildDefaultModelBytes({ quantization: 'FP32' });
    expect(a.byteLength).toBe(b.byteLength);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    // ~4 bytes per FP32 parameter.
    expect(a.byteLength).toBeGreaterThan(DEFAULT_MODEL_INFO.parameters * 4);
    expect(a.byteLength).toBeLessThan(DEFAULT_MODEL_INFO.parameters * 4 * 1.01);
  });

  it('stores FP16 weights in 2 bytes and INT8 weights in 1, deterministically', () => {
    const fp16 = buildDefaultModelBytes({ quantization: 'FP16' });
    const int8 = buildDefaultModelBytes({ quantization: 'INT8' });
    expect(Buffer.from(int8).equals(Buffer.from(buildDefaultModelBytes({ quantization: 'INT8' })))).toBe(true);
    expect(fp16.byteLength / DEFAULT_MODEL_INFO.parameters).toBeCloseTo(2, 1);
    expect(int8.byteLength / DEFAULT_MODEL_INFO.parameters).toBeCloseTo(1, 1);
  });

  it('rejects an unknown quantization with a ConfigError', () => {
    expect(() => buildDefaultModelBytes({ quantization: 'INT4' as Quantization })).toThrow(ConfigError);
  });
});

describe('defaultModel', () => {
  it('describes itself honestly', () => {
    const widths = DEFAULT_MODEL_INFO.widths;
    let parameters = 0;
    for (let l = 0; l + 1 < widths.length; l++) parameters += (widths[l] as number) * (widths[l + 1] as number) + (widths[l + 1] as number);
    expect(DEFAULT_MODEL_INFO.parameters).toBe(parameters);
    expect(DEFAULT_MODEL_INFO.description).toContain(widths.join(' -> '));
    expect([widths[0], widths.at(-1)]).toEqual([WIDTH, CLASSES]);
    const m = model('INT8');
    expect([m.name, m.quantization]).toEqual([DEFAULT_MODEL_INFO.name, 'INT8']);
    expect(m.source).toEqual({ kind: 'bytes', byteLength: expect.any(Number) });
  });

  it('gives identical outputs in two sessions', async () => {
    const xs = items(5);
    const [a, b] = await Promise.all([model().run(xs), freshModel().run(xs)]);
    expect(a).toEqual(b);
  });

  it.each(['FP32', 'FP16', 'INT8'] as const)('%s: a batch equals its items run one at a time; outputs are probabilities', async (q) => {
    const m = model(q);
    const xs = items(9);
    const batch = await m.run(xs);
    expect(batch).toHaveLength(xs.length);
    const singles = [];
    for (const x of xs) singles.push((await m.run([x]))[0]);
    // INT8 quantizes each item on its own scale, so an item's output does not depend on its batch mates.
    expect(maxAbsDiff(batch, singles)).toBeLessThan(1e-5);
    for (const row of batch) {
      expect(row).toHaveLength(CLASSES);
      expect((row as number[]).every((p) => p >= 0 && p <= 1)).toBe(true);
      expect((row as number[]).reduce((s, p) => s + p, 0)).toBeCloseTo(1, 5);
    }
  });

  it('FP16 and INT8 approximate the FP32 network they were quantized from', async () => {
    const xs = items(32, 5);
    const [fp32, fp16, int8] = await Promise.all([model('FP32').run(xs), model('FP16').run(xs), model('INT8').run(xs)]);
    expect(maxAbsDiff(fp16, fp32)).toBeLessThan(1e-3);
    expect(maxAbsDiff(int8, fp32)).toBeLessThan(0.03);
    const agree = fp32.filter((row, i) => argmax(row) === argmax(int8[i])).length;
    expect(agree).toBeGreaterThanOrEqual(28);
  });

  it('fails only the slot of a wrong-sized item', async () => {
    const xs = items(3);
    const out = await model().run([xs[0], xs[1]?.slice(1), xs[2]]);
    expect(out[1]).toBeInstanceOf(Error);
    expect(Array.isArray(out[0]) && Array.isArray(out[2])).toBe(true);
  });
});

describe('measureModelCost', () => {
  it('reports one point per batch size (no timing assertions)', async () => {
    const xs = items(4);
    const points = await measureModelCost(model(), (i) => xs[i], { batchSizes: [1, 4], warmupCalls: 1, repetitions: 3 });
    expect(points.map((p) => [p.batchSize, p.calls])).toEqual([
      [1, 3],
      [4, 3],
    ]);
    for (const p of points) {
      expect(p.msPerCall).toBeGreaterThan(0);
      expect(p.usPerItem).toBeCloseTo((p.msPerCall * 1000) / p.batchSize, 6);
    }
  });

  it('refuses to measure a model that fails items', async () => {
    const failing = async (inputs: unknown[]) => inputs.map(() => new Error('nope'));
    await expect(measureModelCost(failing, () => 0, { batchSizes: [2], repetitions: 3 })).rejects.toBeInstanceOf(ModelError);
  });
});

describe('weight helpers', () => {
  it('mulberry32 is the reference generator', () => {
    const random = mulberry32(42);
    expect([random(), random(), random()]).toEqual([0.6011037519201636, 0.44829055899754167, 0.8524657934904099]);
  });

  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds (ties to even) up to Infinity
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // a tie, rounds to even (zero)
    [0, 0x0000],
    [Number.NaN, 0x7e00],
  ])('float16Bits(%d) = 0x%s', (value, bits) => {
    expect(float16Bits(value)).toBe(bits);
  });
});
