import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, cacheKey, canonicalJson, type ModelIdentity } from '@inferq/core';
import { decodeF64, f64Json } from '@inferq/core/protocol';
import { requestItem, wireInput, type WireInputOptions } from '../src/wire-input.js';

const identity: ModelIdentity = { model: 'm', modelVersion: '1', quantization: 'FP32' };
const o: WireInputOptions = { identity, maxInputBytes: 1_048_576, compactInputs: true };
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });

describe('wireInput', () => {
  it('sends a flat numeric input of an uncached request compact, a cached one as canonical JSON with its key', () => {
    fc.assert(
      fc.property(fc.array(finite, { maxLength: 100 }), (arr) => {
        const uncached = wireInput(arr, false, o);
        expect(uncached).toMatchObject({ compact: true, key: undefined });
        expect(f64Json(decodeF64(uncached.text) as Float64Array)).toBe(canonicalJson(arr));
        expect(wireInput(arr, true, o)).toEqual({ text: canonicalJson(arr), compact: false, key: cacheKey(identity, arr) });
        expect(wireInput(arr, false, { ...o, compactInputs: false })).toEqual({ text: canonicalJson(arr), compact: false, key: undefined });
      }),
      { numRuns: 200 },
    );
  });

  it('takes typed arrays compact; everything else as canonical JSON, with its errors', () => {
    expect(wireInput(new Float32Array([0.1]), false, o).compact).toBe(true);
    expect(wireInput(new Uint8Array([1, 2]), false, o).compact).toBe(true);
    expect(wireInput({ a: [1] }, false, o)).toEqual({ text: '{"a":[1]}', compact: false, key: undefined });
    expect(wireInput([[1], [2]], false, o).compact).toBe(false);
    expect(() => wireInput([1, NaN], false, o)).toThrow(expect.objectContaining({ code: ErrorCode.INPUT_NOT_SERIALIZABLE }));
    expect(() => wireInput(new Float64Array([Infinity]), false, o)).toThrow(expect.objectContaining({ code: ErrorCode.INPUT_NOT_SERIALIZABLE }));
  });

  it('checks maxInputBytes as bytes of canonical JSON, exactly, in both forms', () => {
    // [1,1,1]: 7 bytes of JSON; the 25-bytes-a-number bound does not settle it, so the text is measured.
    expect(wireInput([1, 1, 1], false, { ...o, maxInputBytes: 7 }).compact).toBe(true);
    expect(() => wireInput([1, 1, 1, 1], false, { ...o, maxInputBytes: 7 })).toThrow(expect.objectContaining({ code: ErrorCode.INPUT_TOO_LARGE }));
    expect(() => wireInput(new Float64Array(1_000_000), false, { ...o, maxInputBytes: 1000 })).toThrow(expect.objectContaining({ code: ErrorCode.INPUT_TOO_LARGE }));
  });

  it('puts the input in the field of its form', () => {
    expect(requestItem('c.1', { input: 'AAAAAAAA8D8=', compact: true }, 5)).toEqual({ id: 'c.1', f64: 'AAAAAAAA8D8=', deadline: 5 });
    expect(requestItem('c.2', { input: '[1]', compact: false }, 5)).toEqual({ id: 'c.2', input: '[1]', deadline: 5 });
  });
});
