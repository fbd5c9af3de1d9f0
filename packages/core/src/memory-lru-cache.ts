/**
 * `MemoryLruCache`: the original `InferenceCache` as an in-process LRU with
 * O(1) `get` and `put`. A JavaScript `Map` iterates in insertion order, so
 * deleting and re-inserting a key moves it to the most recently used end and
 * the first key of the map is always the least recently used one: no linked
 * list and no O(n) list scan as in the original (`list.remove(key)`).
 *
 * Node runs one thread per event loop, so the original's lock is not needed.
 *
 * With `maxBytes`, it is also bounded by size, as `RedisLruCache` is: an entry
 * counts the UTF-8 bytes of `JSON.stringify(value)` plus those of its key
 * (a value JSON cannot write, e.g. `undefined`, counts its key only).
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
  maxBytes: OptimizationConfigSchema.shape.cacheMaxBytes.unwrap().optional(),
});

/** UTF-8 bytes of the value's JSON plus the key's; 0 for the value when JSON cannot write it. */
function entryBytes(key: string, value: unknown): number {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined;
  }
  return Buffer.byteLength(key) + (json === undefined ? 0 : Buffer.byteLength(json));
}

export class MemoryLruCache<V> {
  /** Most entries held; putting one more evicts the least recently used. */
  readonly maxSize: number;
  /** Most bytes held (see the class comment); `undefined` = bounded by count only. */
  readonly maxBytes: number | undefined;
  private readonly entries = new Map<string, V>();
  /** Bytes of each entry, only with `maxBytes`. */
  private readonly sizes = new Map<string, number>();
  private totalBytes = 0;

  /**
   * @param maxSize Most entries held (the `cacheMaxSize` setting). An integer, 1..10,000,000.
   * @param maxBytes Most bytes held (the `cacheMaxBytes` setting), 1024..2^40; absent = no byte bound
   *   (and no serialisation cost).
   * @throws ConfigError naming `cacheMaxSize` / `cacheMaxBytes` when out of range or not an integer.
   */
  constructor(maxSize: number, maxBytes?: number) {
    const o = parseConfig(
      'MemoryLruCache',
      MemoryLruCacheOptionsSchema,
      maxBytes === undefined ? { maxSize } : { maxSize, maxBytes },
      { maxSize: 'cacheMaxSize', maxBytes: 'cacheMaxBytes' },
    );
    this.maxSize = o.maxSize;
    this.maxBytes = o.maxBytes;
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

  /**
   * Stores `value` as the most recently used entry, evicting the least
   * recently used ones past `maxSize` entries (or `maxBytes` bytes). A value
   * larger than `maxBytes` by itself is not stored, and any older value of
   * `key` is removed.
   */
  put(key: string, value: V): void {
    if (this.maxBytes === undefined) {
      // Delete first so that an update also moves the key to the MRU end.
      if (!this.entries.delete(key) && this.entries.size >= this.maxSize) {
        const oldest = this.entries.keys().next();
        if (!oldest.done) this.entries.delete(oldest.value);
      }
      this.entries.set(key, value);
      return;
    }
    const bytes = entryBytes(key, value);
    this.delete(key);
    if (bytes > this.maxBytes) return;
    this.entries.set(key, value);
    this.sizes.set(key, bytes);
    this.totalBytes += bytes;
    while (this.entries.size > this.maxSize || this.totalBytes > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
  }

  /** Whether `key` is held. Does not change recency (a probe is not a use). */
  contains(key: string): boolean {
    return this.entries.has(key);
  }

  /** Removes `key`; true when it was held. */
  delete(key: string): boolean {
    const bytes = this.sizes.get(key);
    if (bytes !== undefined) {
      this.totalBytes -= bytes;
      this.sizes.delete(key);
    }
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.sizes.clear();
    this.totalBytes = 0;
  }

  /** Bytes held (0 without `maxBytes`, where sizes are not measured). */
  get bytes(): number {
    return this.totalBytes;
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
