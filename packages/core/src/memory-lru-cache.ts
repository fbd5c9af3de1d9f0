/**
 * `MemoryLruCache`: the original `InferenceCache` as an in-process LRU with
 * O(1) `get` and `put`. A JavaScript `Map` iterates in insertion order, so
 * deleting and re-inserting a key moves it to the most recently used end and
 * the first key of the map is always the least recently used one: no linked
 * list and no O(n) list scan as in the original (`list.remove(key)`).
 *
 * Node runs one thread per event loop, so the original's lock is not needed.
 */
import { z } from 'zod';
import { OptimizationConfigSchema, parseConfig } from './config.js';

/**
 * The same bounds as `cacheMaxSize` in `OptimizationConfig` (1..10,000,000),
 * so one config value fits both caches. The upper bound also keeps well
 * below V8's hard limit of 2^24 entries per `Map`.
 */
const MemoryLruCacheOptionsSchema = z.object({
  maxSize: OptimizationConfigSchema.shape.cacheMaxSize.unwrap(),
});

export class MemoryLruCache<V> {
  /** Most entries held; putting one more evicts the least recently used. */
  readonly maxSize: number;
  private readonly entries = new Map<string, V>();

  /**
   * @param maxSize Most entries held (the `cacheMaxSize` setting). An integer, 1..10,000,000.
   * @throws ConfigError naming `cacheMaxSize` when `maxSize` is out of range or not an integer.
   */
  constructor(maxSize: number) {
    this.maxSize = parseConfig('MemoryLruCache', MemoryLruCacheOptionsSchema, { maxSize }, { maxSize: 'cacheMaxSize' }).maxSize;
  }

  /** The value of `key`, which becomes the most recently used; `undefined` on a miss. */
  get(key: string): V | undefined {
    // `has` first: a stored `undefined` value is still a hit that must move.
    if (!this.entries.has(key)) return undefined;
    const value = this.entries.get(key) as V;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  /** Stores `value` as the most recently used entry, evicting the least recently used one at capacity. */
  put(key: string, value: V): void {
    // Delete first so that an update also moves the key to the MRU end.
    if (!this.entries.delete(key) && this.entries.size >= this.maxSize) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
  }

  /** Whether `key` is held. Does not change recency (a probe is not a use). */
  contains(key: string): boolean {
    return this.entries.has(key);
  }

  /** Removes `key`; true when it was held. */
  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** `get` of each key in order (a key listed twice is touched twice). */
  getMany(keys: readonly string[]): (V | undefined)[] {
    return keys.map((key) => this.get(key));
  }

  /** `put` of each entry in order: a key listed twice keeps its last value. */
  putMany(entries: ReadonlyArray<readonly [string, V]>): void {
    for (const [key, value] of entries) this.put(key, value);
  }

  /** Keys from least to most recently used (for tests and debugging; O(n)). */
  keys(): string[] {
    return [...this.entries.keys()];
  }
}
