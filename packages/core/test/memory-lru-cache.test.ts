import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { MemoryLruCache } from '../src/memory-lru-cache.js';
import { LruReferenceModel, applyOp, lruOpArb, type TestValue } from './lru-reference-model.js';

describe('MemoryLruCache', () => {
  it('behaves like the reference LRU for random operation sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.array(lruOpArb(), { maxLength: 40 }), async (maxSize, ops) => {
        const cache = new MemoryLruCache<TestValue>(maxSize);
        const model = new LruReferenceModel<TestValue>(maxSize);
        for (const op of ops) {
          expect(await applyOp(cache, op)).toEqual(await applyOp(model, op));
          expect(cache.size).toBe(model.size);
          expect(cache.keys()).toEqual(model.keys());
          expect(cache.size).toBeLessThanOrEqual(maxSize);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('with maxBytes, behaves like the reference LRU bounded by bytes too', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.constantFrom(1024, 2048),
        fc.array(lruOpArb(6, { bigValues: true }), { maxLength: 40 }),
        async (maxSize, maxBytes, ops) => {
          const cache = new MemoryLruCache<TestValue>(maxSize, maxBytes);
          const model = new LruReferenceModel<TestValue>(maxSize, maxBytes);
          for (const op of ops) {
            expect(await applyOp(cache, op)).toEqual(await applyOp(model, op));
            expect(cache.keys()).toEqual(model.keys());
            expect(cache.bytes).toBe(model.bytes);
            expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('with maxBytes, does not store a value larger than it', () => {
    const cache = new MemoryLruCache<string>(10, 1024);
    cache.put('a', 'x');
    cache.put('big', 'x'.repeat(2000));
    expect(cache.contains('big')).toBe(false);
    expect(cache.keys()).toEqual(['a']);
    expect(() => new MemoryLruCache(10, 1023)).toThrow(/cacheMaxBytes/);
  });

  it('evicts the least recently used entry, where get counts as a use and contains does not', () => {
    const cache = new MemoryLruCache<number>(2);
    cache.put('a', 1);
    cache.put('b', 2);
    expect(cache.get('a')).toBe(1); // a is now MRU
    expect(cache.contains('b')).toBe(true); // a probe does not save b
    cache.put('c', 3);
    expect(cache.keys()).toEqual(['a', 'c']);
    expect(cache.get('b')).toBeUndefined();
  });

  it('updating a key moves it to the most recently used end without evicting', () => {
    const cache = new MemoryLruCache<number>(2);
    cache.putMany([['a', 1], ['b', 2], ['a', 3]]);
    expect(cache.keys()).toEqual(['b', 'a']);
    expect(cache.getMany(['a', 'b', 'x'])).toEqual([3, 2, undefined]);
  });

  it('treats a stored undefined as a hit that refreshes recency', () => {
    const cache = new MemoryLruCache<number | undefined>(2);
    cache.put('u', undefined);
    cache.put('b', 2);
    cache.get('u');
    cache.put('c', 3);
    expect(cache.keys()).toEqual(['u', 'c']);
  });

  it.each([0, -1, 1.5, Number.NaN, 10_000_001])('rejects maxSize %s with a ConfigError naming cacheMaxSize', (maxSize) => {
    let error: unknown;
    try {
      new MemoryLruCache(maxSize);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((i) => i.field)).toEqual(['maxSize (cacheMaxSize)']);
    expect((error as ConfigError).message).toContain('cacheMaxSize');
  });
});
