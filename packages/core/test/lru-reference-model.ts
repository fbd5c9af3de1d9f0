/**
 * The reference the LRU caches are checked against in property tests: an
 * array from least to most recently used, obviously right and O(n), plus the
 * random operations both caches are driven with.
 */
import fc from 'fast-check';

/** An entry's size as the caches count it: UTF-8 bytes of the key plus of the value's JSON (none for undefined). */
export function entryBytes(key: string, value: unknown): number {
  const json = JSON.stringify(value) as string | undefined;
  return Buffer.byteLength(key) + (json === undefined ? 0 : Buffer.byteLength(json));
}

export class LruReferenceModel<V> {
  private entries: Array<[key: string, value: V, bytes: number]> = [];
  private total = 0;
  /** @param maxBytes Most bytes held (entryBytes summed); Infinity = bounded by count only. */
  constructor(
    readonly maxSize: number,
    readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  get(key: string): V | undefined {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i < 0) return undefined;
    const [entry] = this.entries.splice(i, 1);
    this.entries.push(entry!);
    return entry![1];
  }

  /** A value larger than maxBytes by itself is not stored, and the key's older value is gone. */
  put(key: string, value: V): void {
    const bytes = Number.isFinite(this.maxBytes) ? entryBytes(key, value) : 0;
    this.delete(key);
    if (bytes > this.maxBytes) return;
    this.entries.push([key, value, bytes]);
    this.total += bytes;
    while (this.entries.length > this.maxSize || this.total > this.maxBytes) {
      this.total -= this.entries.shift()![2];
    }
  }

  contains(key: string): boolean {
    return this.entries.some(([k]) => k === key);
  }

  delete(key: string): boolean {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i >= 0) this.total -= this.entries.splice(i, 1)[0]![2];
    return i >= 0;
  }

  /** A multi-key call means: each key in order, as single calls would. */
  getMany(keys: string[]): Array<V | undefined> {
    return keys.map((k) => this.get(k));
  }

  putMany(entries: Array<[string, V]>): void {
    for (const [k, v] of entries) this.put(k, v);
  }

  clear(): void {
    this.entries = [];
    this.total = 0;
  }

  /** Bytes held (0 when maxBytes is Infinity: sizes are not measured then). */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.length;
  }

  keys(): string[] {
    return this.entries.map(([k]) => k);
  }
}

/** JSON values that survive a JSON round trip unchanged (no -0, no NaN). */
export type TestValue = number | string | null | number[];

export type LruOp =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: TestValue }
  | { op: 'contains'; key: string }
  | { op: 'delete'; key: string }
  | { op: 'getMany'; keys: string[] }
  | { op: 'putMany'; entries: Array<[string, TestValue]> }
  | { op: 'clear' };

/** Anything with the LRU surface, sync or async (the model, MemoryLruCache, RedisLruCache). */
export interface LruLike<V> {
  get(key: string): V | undefined | Promise<V | undefined>;
  put(key: string, value: V): void | Promise<void>;
  contains(key: string): boolean | Promise<boolean>;
  delete(key: string): boolean | Promise<boolean>;
  getMany(keys: string[]): Array<V | undefined> | Promise<Array<V | undefined>>;
  putMany(entries: Array<[string, V]>): void | Promise<void>;
  clear(): void | Promise<void>;
}

/**
 * Operations on a small key space, so hits, updates and evictions are frequent.
 * With `bigValues`, a third of the values are strings of 100..1400 characters,
 * any Unicode (so 1 to 4 UTF-8 bytes each): against a byte bound of 1..2 KiB,
 * byte evictions, shrinking overwrites and values too large to store are frequent.
 */
export function lruOpArb(keyCount = 6, options: { bigValues?: boolean } = {}): fc.Arbitrary<LruOp> {
  const key = fc.constantFrom(...Array.from({ length: keyCount }, (_, i) => String.fromCharCode(97 + i)));
  const small: fc.Arbitrary<TestValue> = fc.oneof(
    fc.integer(),
    fc.string({ maxLength: 6 }),
    fc.constant(null),
    fc.array(fc.integer({ min: -9, max: 9 }), { maxLength: 3 }),
  );
  const value: fc.Arbitrary<TestValue> = options.bigValues
    ? fc.oneof({ weight: 2, arbitrary: small }, { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 100, maxLength: 1400 }) })
    : small;
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('get' as const), key }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('put' as const), key, value }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('contains' as const), key }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('getMany' as const), keys: fc.array(key, { maxLength: 5 }) }) },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant('putMany' as const), entries: fc.array(fc.tuple(key, value), { maxLength: 5 }) }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
  );
}

/** Applies `op` and returns what the call returned (undefined for void calls). */
export async function applyOp(target: LruLike<TestValue>, op: LruOp): Promise<unknown> {
  switch (op.op) {
    case 'get':
      return target.get(op.key);
    case 'put':
      return target.put(op.key, op.value);
    case 'contains':
      return target.contains(op.key);
    case 'delete':
      return target.delete(op.key);
    case 'getMany':
      return target.getMany(op.keys);
    case 'putMany':
      return target.putMany(op.entries);
    case 'clear':
      return target.clear();
  }
}
