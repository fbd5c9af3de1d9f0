/**
 * Canonical JSON writes every value it accepts exactly as JSON.stringify
 * would with sorted keys (the reference model below), refuses what JSON
 * cannot carry faithfully with a typed error, and bounds its work by the
 * size limit rather than by the input.
 */
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode, canonicalJson, cacheKey, type InferqError } from '../src/index.js';

/**
 * The reference: what JSON.stringify means by a value, as a parsed tree
 * (key order aside: JS objects put integer-like keys first whatever the
 * insertion order, so a sorted-key string cannot be built from them).
 */
const meaning = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

/** The same tree with every object's keys inserted in reverse order (null prototype: "__proto__" stays a key). */
function reversedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversedKeys);
  if (v && typeof v === 'object') {
    const out = Object.create(null) as Record<string, unknown>;
    for (const k of Object.keys(v).reverse()) out[k] = reversedKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as InferqError).code ?? 'untyped';
  }
}

/** JSON values, with some leaves boxed and some Dates: all things JSON.stringify writes faithfully. */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.string(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.integer().map((n) => new Number(n)),
    fc.string().map((s) => new String(s)),
    fc.boolean().map((b) => new Boolean(b)),
    fc.date({ noInvalidDate: true }),
  ),
  node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.string(), tie('node'), { maxKeys: 4 })),
})).node;

const identity = { model: 'm', modelVersion: '1', quantization: 'FP32' as const };

describe('canonicalJson', () => {
  it('property: writes every accepted value with the meaning JSON.stringify gives it, keys sorted', () => {
    fc.assert(
      fc.property(value, (v) => {
        const text = canonicalJson(v);
        expect(isDeepStrictEqual(JSON.parse(text), meaning(v))).toBe(true);
        // Sorted: the same meaning built with keys in reverse order gives the same text.
        expect(canonicalJson(reversedKeys(JSON.parse(text)))).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it('property: inputs with different JSON.stringify forms never share a cache key', () => {
    fc.assert(
      fc.property(value, value, (a, b) => {
        if (!isDeepStrictEqual(meaning(a), meaning(b))) expect(cacheKey(identity, a)).not.toBe(cacheKey(identity, b));
        else expect(cacheKey(identity, a)).toBe(cacheKey(identity, b));
      }),
      { numRuns: 500 },
    );
  });

  it('writes boxed primitives as their value: new Number(1) and new Number(2) differ', () => {
    expect(canonicalJson(new Number(1))).toBe('1');
    expect(canonicalJson(new String('ab'))).toBe('"ab"');
    expect(canonicalJson({ a: new Boolean(false) })).toBe('{"a":false}');
    expect(cacheKey(identity, new Number(1))).not.toBe(cacheKey(identity, new Number(2)));
  });

  it('writes typed arrays as number arrays, by design', () => {
    expect(canonicalJson(new Float32Array([1, 2.5]))).toBe('[1,2.5]');
  });

  it('refuses class instances whose state JSON would lose, with a typed error', () => {
    class Point {
      #x = 1;
      get x() {
        return this.#x;
      }
    }
    for (const v of [new Point(), /a/, new Error('x'), Promise.resolve(1), Object(1n)]) {
      expect(codeOf(() => canonicalJson(v))).toBe(ErrorCode.INPUT_NOT_SERIALIZABLE);
    }
    class WithToJson {
      toJSON() {
        return { kind: 'p' };
      }
    }
    expect(canonicalJson(new WithToJson())).toBe('{"kind":"p"}');
  });

  it('refuses deep nesting and throwing getters with a typed error, not a RangeError', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(codeOf(() => canonicalJson(deep))).toBe(ErrorCode.INPUT_NOT_SERIALIZABLE);
    const hostile = {
      get a() {
        throw new Error('boom');
      },
    };
    expect(codeOf(() => canonicalJson(hostile))).toBe(ErrorCode.INPUT_NOT_SERIALIZABLE);
    const trap = new Proxy({}, { ownKeys: () => { throw new Error('trap'); } });
    expect(codeOf(() => canonicalJson(trap))).toBe(ErrorCode.INPUT_NOT_SERIALIZABLE);
  });

  it('stops at the size limit before walking the rest of the input', () => {
    let reads = 0;
    // An array that claims 2*10^7 elements and counts every element read.
    const huge = new Proxy([] as number[], {
      get: (t, k) => {
        if (k === 'length') return 20_000_000;
        if (typeof k === 'string' && /^\d+$/.test(k)) {
          reads++;
          return 1;
        }
        return Reflect.get(t, k);
      },
    });
    expect(codeOf(() => canonicalJson(huge, { maxBytes: 1_000_000 }))).toBe(ErrorCode.INPUT_TOO_LARGE);
    expect(reads).toBe(0);
    expect(codeOf(() => canonicalJson('x'.repeat(2_000_000), { maxBytes: 1_000_000 }))).toBe(ErrorCode.INPUT_TOO_LARGE);
    expect(codeOf(() => canonicalJson({ a: 'é'.repeat(600) }, { maxBytes: 1000 }))).toBe(ErrorCode.INPUT_TOO_LARGE); // 1,208 UTF-8 bytes
    expect(canonicalJson({ a: 'é'.repeat(400) }, { maxBytes: 1000 })).toHaveLength(408);
  });
});
