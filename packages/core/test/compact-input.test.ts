import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cacheKey, canonicalJson, keyFromCanonicalInput, type ModelIdentity } from '../src/index.js';
import { decodeEnvelope, decodeF64, encodeF64, f64Json, f64JsonMaxBytes, flatNumbers, itemInputJson, ENVELOPE_VERSION } from '../src/protocol/index.js';

const identity: ModelIdentity = { model: 'm', modelVersion: '3', quantization: 'FP32' };
/** Every finite double, -0 and the extremes included. */
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const roundTrip = (numbers: Float64Array) => decodeF64(encodeF64(numbers)) as Float64Array;

describe('compact inputs', () => {
  it('property: a compact input has the cache key of the same numbers sent as canonical JSON', () => {
    fc.assert(
      fc.property(fc.array(finite, { maxLength: 300 }), (arr) => {
        const decoded = roundTrip(flatNumbers(arr) as Float64Array);
        expect(keyFromCanonicalInput(identity, f64Json(decoded))).toBe(cacheKey(identity, arr));
        expect(itemInputJson(decoded)).toBe(canonicalJson(arr));
      }),
      { numRuns: 300 },
    );
  });

  it('property: typed arrays (Float32Array, Float64Array, Int32Array) key as their numbers do', () => {
    fc.assert(
      fc.property(fc.array(finite, { maxLength: 64 }), fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 64 }), (doubles, ints) => {
        for (const typed of [new Float64Array(doubles), new Float32Array(doubles.map((d) => Math.fround(d))).filter(Number.isFinite), new Int32Array(ints)]) {
          const decoded = roundTrip(flatNumbers(typed) as Float64Array);
          expect(keyFromCanonicalInput(identity, f64Json(decoded))).toBe(cacheKey(identity, typed));
          expect(keyFromCanonicalInput(identity, f64Json(decoded))).toBe(cacheKey(identity, Array.from(typed)));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('property: lossless: the model gets exactly the values JSON.parse of the canonical text gives (-0 as 0)', () => {
    fc.assert(
      fc.property(fc.array(finite, { maxLength: 300 }), (arr) => {
        const decoded = Array.from(roundTrip(flatNumbers(arr) as Float64Array));
        const viaJson = JSON.parse(canonicalJson(arr)) as number[];
        expect(decoded.length).toBe(viaJson.length);
        decoded.forEach((v, i) => expect(Object.is(v, viaJson[i])).toBe(true));
      }),
      { numRuns: 300 },
    );
  });

  it('property: the JSON size bound holds for every finite double', () => {
    fc.assert(
      fc.property(fc.array(finite, { minLength: 1, maxLength: 50 }), (arr) => {
        expect(Buffer.byteLength(canonicalJson(arr))).toBeLessThanOrEqual(f64JsonMaxBytes(arr.length));
      }),
      { numRuns: 500 },
    );
    expect(String(-1.2345678901234567e-6).length).toBe(25);
  });

  it('leaves everything but a flat array of finite numbers to canonical JSON', () => {
    for (const v of [[1, NaN], [1, [2]], [1, '2'], new Float32Array([Infinity]), new BigInt64Array(1), new DataView(new ArrayBuffer(8)), { 0: 1, length: 1 }, 'x', 1, null, [1, , 3]]) {
      expect(flatNumbers(v)).toBeUndefined();
    }
    const withToJson = Object.assign([1, 2], { toJSON: () => 'other' });
    expect(flatNumbers(withToJson)).toBeUndefined();
    const throwing = new Proxy([1, 2], {
      get(t, p) {
        if (p === '1') throw new Error('no');
        return Reflect.get(t, p) as unknown;
      },
    });
    expect(flatNumbers(throwing)).toBeUndefined();
  });

  it('refuses what no client encodes: not base64, not whole float64s, NaN or Infinity', () => {
    const nan = Buffer.alloc(16);
    nan.writeDoubleLE(1, 0);
    nan.writeDoubleLE(NaN, 8);
    const inf = Buffer.alloc(8);
    inf.writeDoubleLE(-Infinity, 0);
    for (const [text, reason] of [
      ['AAAA', /float64/],
      ['AAAAAAAAAAA', /base64/],
      ['AAAAAAAAAA!=', /base64/],
      ['AAAAAAAA AAA', /base64/],
      [nan.toString('base64'), /NaN at \[1\]/],
      [inf.toString('base64'), /-Infinity at \[0\]/],
    ] as const) {
      expect(decodeF64(text)).toMatch(reason);
    }
    expect(decodeF64('')).toEqual(new Float64Array(0));
    // A forged -0 is the 0 its key names.
    expect(Object.is((decodeF64(Buffer.alloc(8, 0).fill(0x80, 7).toString('base64')) as Float64Array)[0], 0)).toBe(true);
  });

  it('decodeEnvelope: a compact item is decoded; a malformed one fails alone, with its reason', () => {
    const f64 = encodeF64(new Float64Array([1.5, -2]));
    const env = {
      v: ENVELOPE_VERSION,
      client: 'c-1',
      modelVersion: '1',
      quantization: 'FP32',
      items: [
        { id: 'c-1.0', f64, deadline: 1 },
        { id: 'c-1.1', f64: 'AAAA', deadline: 1 },
        { id: 'c-1.2', f64, input: '[1.5,-2]', deadline: 1 },
        { id: 'c-1.3', f64: 42, deadline: 1 },
        { id: 'c-1.4', input: '[1.5,-2]', deadline: 1 },
      ],
    };
    const d = decodeEnvelope(env);
    if (!d.ok) throw new Error(d.reason);
    expect(d.items.map((i) => i.id)).toEqual(['c-1.0', 'c-1.4']);
    expect(d.items[0]?.input).toEqual(new Float64Array([1.5, -2]));
    expect(d.items[1]?.input).toBe('[1.5,-2]');
    expect(d.bad.map((b) => [b.id, b.reason])).toEqual([
      ['c-1.1', 'f64 is not base64 of float64 values'],
      ['c-1.2', 'both input and f64'],
      ['c-1.3', 'f64 is not base64 of float64 values'],
    ]);
  });
});
