/**
 * The reference the LRU caches are checked against in property tests: an
 * array from least to most recently used, obviously right and O(n), plus the
 * random operations both caches are driven with.
 */
import fc from 'fast-check';

export class LruReferenceModel<V> {
  private entries: Array<[string, V]> = [];
  constructor(readonly maxSize: number) {}

  get(key: string): V | undefined {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i < 0) return undefined;
    const [entry] = this.entries.splice(i, 1);
    this.entries.push(entry!);
    return entry![1];
  }

  put(key: string, value: V): void {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i >= 0) this.entries.splice(i, 1);
    else if (this.entries.length >= this.maxSize) this.entries.shift();
    this.entries.push([key, value]);
  }

  contains(key: string): boolean {
    return this.entries.some(([k]) => k === key);
  }

  delete(key: string): boolean {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i >= 0) this.entries.splice(i, 1);
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

/** Operations on a small key space, so hits, updates and evictions are frequent. */
export function lruOpArb(keyCount = 6): fc.Arbitrary<LruOp> {
  const key = fc.constantFrom(...Array.from({ length: keyCount }, (_, i) => String.fromCharCode(97 + i)));
  const value: fc.Arbitrary<TestValue> = fc.oneof(
    fc.integer(),
    fc.string({ maxLength: 6 }),
    fc.constant(null),
    fc.array(fc.integer({ min: -9, max: 9 }), { maxLength: 3 }),
  );
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
