import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, InputNotSerializableError, cacheKey, canonicalJson, type ModelIdentity } from '../src/index.js';
import { keyInput } from '../src/cache-key.js';

const id: ModelIdentity = { model: 'sentiment', modelVersion: '3', quantization: 'FP32' };

describe('canonical JSON', () => {
  it('sorts object keys at every depth and drops undefined properties', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null }, u: undefined })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
  });

  it('equals JSON.stringify for values JSON carries faithfully, up to key order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const c = canonicalJson(v);
        expect(JSON.parse(c)).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 200 },
    );
  });

  it('is independent of key insertion order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.integer()), (d) => {
        const reversed = Object.fromEntries(Object.entries(d).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(d));
      }),
    );
  });

  it('turns typed arrays into number arrays and uses toJSON', () => {
    expect(canonicalJson({ v: new Float32Array([0.5, 1]), d: new Date(0) })).toBe('{"d":"1970-01-01T00:00:00.000Z","v":[0.5,1]}');
  });

  it.each([
    ['a function', { f: () => 1 }],
    ['a BigInt', { n: 1n }],
    ['NaN', [1, NaN]],
    ['Infinity', { x: Infinity }],
    ['a symbol', { s: Symbol('x') }],
    ['undefined in an array', [undefined]],
    ['a Map', { m: new Map() }],
  ])('rejects %s with a typed error naming the path', (_what, value) => {
    expect(() => canonicalJson(value)).toThrow(InputNotSerializableError);
    try {
      canonicalJson(value);
    } catch (e) {
      expect((e as InputNotSerializableError).code).toBe(ErrorCode.INPUT_NOT_SERIALIZABLE);
      expect((e as Error).message).toMatch(/at \$/);
    }
  });

  it('rejects cycles but accepts shared (acyclic) references', () => {
    const shared = { a: 1 };
    expect(canonicalJson({ x: shared, y: shared })).toBe('{"x":{"a":1},"y":{"a":1}}');
    const cyc: Record<string, unknown> = {};
    cyc.me = cyc;
    expect(() => canonicalJson(cyc)).toThrow(/circular/);
  });
});

describe('cache keys', () => {
  it('are SHA-256 of the canonical JSON of {model, modelVersion, quantization, input}', () => {
    const input = { text: 'hi', lang: 'en' };
    const expected = createHash('sha256')
      .update(canonicalJson({ model: 'sentiment', modelVersion: '3', quantization: 'FP32', input }))
      .digest('hex');
    expect(cacheKey(id, input)).toBe(expected);
    expect(keyInput(id, input)).toEqual({ key: expected, json: '{"lang":"en","text":"hi"}' });
  });

  it('differ by model, version and quantization', () => {
    const keys = new Set([
      cacheKey(id, 1),
      cacheKey({ ...id, model: 'other' }, 1),
      cacheKey({ ...id, modelVersion: '4' }, 1),
      cacheKey({ ...id, quantization: 'INT8' }, 1),
    ]);
    expect(keys.size).toBe(4);
  });

  it('are identical in another process', () => {
    const inputs = [{ b: [1, 2, { y: 'é', x: null }], a: 'z' }, 'plain', 42.5, [true, false]];
    const here = inputs.map((i) => cacheKey(id, i));
    const script = `
      import { cacheKey } from ${JSON.stringify(fileURLToPath(new URL('../src/cache-key.ts', import.meta.url)))};
      const inputs = ${JSON.stringify(inputs)};
      // same values, other key order
      inputs[0] = { a: 'z', b: [1, 2, { x: null, y: 'é' }] };
      console.log(JSON.stringify(inputs.map((i) => cacheKey(${JSON.stringify(id)}, i))));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual(here);
  });
});
