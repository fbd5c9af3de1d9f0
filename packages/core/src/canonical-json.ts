/**
 * Canonical JSON: object keys sorted, no whitespace, so equal values give
 * byte-equal text in every process (and any language that sorts keys the
 * same way). The text is the cache key's source, so two inputs that mean
 * different things must never give the same text: every value is either
 * written faithfully or refused with a typed error, never silently changed.
 *
 * Written as JSON.stringify would (with sorted keys):
 *   - plain objects (prototype Object.prototype or null) and arrays;
 *   - boxed primitives (`new Number(1)`, `new String('ab')`) as the primitive;
 *   - objects with a `toJSON` method (Date, URL, Buffer) as what it returns;
 *   - `undefined` object properties are omitted.
 * Written as a plain number array, by design (model inputs are tensors):
 *   - typed arrays (`Float32Array` [1, 2] is `[1,2]`, not `{"0":1,"1":2}`).
 * Refused (`InputNotSerializableError`):
 *   - functions, symbols, BigInt, NaN, Infinity, `undefined` in an array or
 *     as the value, cycles, Map/Set/WeakMap/WeakSet, DataView;
 *   - other class instances (RegExp, Error, Promise, a user class): their
 *     state is not their enumerable properties, so JSON would lose it;
 *   - nesting deeper than `maxDepth` (default 256), and a getter that throws.
 * `maxBytes` bounds the work: serialisation stops with `InputTooLargeError`
 * as soon as the text is known to exceed it, before building the rest.
 */
import { InputNotSerializableError, InputTooLargeError, InferqError } from './errors.js';

export interface CanonicalJsonLimits {
  /** Largest text accepted, in UTF-8 bytes. Default: unbounded. */
  maxBytes?: number;
  /** Deepest nesting accepted. Default 256. */
  maxDepth?: number;
}

export const DEFAULT_MAX_DEPTH = 256;

export function canonicalJson(value: unknown, limits: CanonicalJsonLimits = {}): string {
  const w = new Writer(limits.maxBytes ?? Infinity, limits.maxDepth ?? DEFAULT_MAX_DEPTH);
  let json: string;
  try {
    json = w.write(value);
  } catch (err) {
    if (err instanceof InferqError) throw err;
    // A throwing getter or proxy trap: the value cannot be read, let alone written.
    throw new InputNotSerializableError(`Input is not JSON-serialisable: reading it threw (${(err as Error)?.message ?? String(err)}).`, { cause: err });
  }
  // Characters are a lower bound of UTF-8 bytes; the exact count only when it matters.
  if (json.length * 3 > w.maxBytes) {
    const bytes = Buffer.byteLength(json);
    if (bytes > w.maxBytes) throw new InputTooLargeError(bytes, w.maxBytes);
  }
  return json;
}

/** The path is kept as segments and joined only for an error message: most calls never fail. */
type Path = Array<string | number>;

const PLAIN_PROTOTYPES = new Set<unknown>([Object.prototype, null]);

class Writer {
  private readonly path: Path = [];
  private readonly ancestors = new Set<object>();
  /** Characters written so far (a lower bound of the UTF-8 bytes). */
  private length = 0;

  constructor(
    readonly maxBytes: number,
    private readonly maxDepth: number,
  ) {}

  write(value: unknown): string {
    return this.value(value);
  }

  private fail(what: string): never {
    const at = '$' + this.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
    throw new InputNotSerializableError(`Input is not JSON-serialisable: ${what} at ${at}.`, { details: { path: at } });
  }

  /** Fails when `n` more characters cannot fit: the input is too large (characters <= UTF-8 bytes). */
  private need(n: number): void {
    if (this.length + n > this.maxBytes) throw new InputTooLargeError(this.length + n, this.maxBytes, { atLeast: true });
  }

  /** Counts `n` more characters. */
  private grow(n: number): void {
    this.need(n);
    this.length += n;
  }

  private text(s: string): string {
    // A string's JSON is at least as long as the string plus its quotes: check before building it.
    this.grow(s.length + 2);
    const json = JSON.stringify(s);
    this.length += json.length - s.length - 2;
    return json;
  }

  private value(value: unknown): string {
    switch (typeof value) {
      case 'string':
        return this.text(value);
      case 'boolean':
        this.grow(value ? 4 : 5);
        return value ? 'true' : 'false';
      case 'number': {
        if (!Number.isFinite(value)) this.fail(String(value));
        const s = JSON.stringify(value);
        this.grow(s.length);
        return s;
      }
      case 'undefined':
        return this.fail('undefined');
      case 'bigint':
        return this.fail('a BigInt');
      case 'function':
        return this.fail('a function');
      case 'symbol':
        return this.fail('a symbol');
      case 'object':
        break;
    }
    if (value === null) {
      this.grow(4);
      return 'null';
    }
    const obj = value as object;
    if (this.ancestors.has(obj)) this.fail('a circular reference');
    if (this.ancestors.size >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth} levels`);
    if (obj instanceof Number || obj instanceof String || obj instanceof Boolean) return this.value(obj.valueOf());
    if (typeof BigInt !== 'undefined' && obj instanceof Object && Object.prototype.toString.call(obj) === '[object BigInt]') this.fail('a BigInt');
    if (obj instanceof Map || obj instanceof Set || obj instanceof WeakMap || obj instanceof WeakSet) this.fail(`a ${obj.constructor.name}`);
    if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
      this.ancestors.add(obj);
      const out = this.value((obj as { toJSON: () => unknown }).toJSON());
      this.ancestors.delete(obj);
      return out;
    }
    if (ArrayBuffer.isView(obj)) {
      if (obj instanceof DataView) this.fail('a DataView');
      return this.array(obj as unknown as ArrayLike<unknown>);
    }
    if (Array.isArray(obj)) return this.array(obj);
    const proto: unknown = Object.getPrototypeOf(obj);
    if (!PLAIN_PROTOTYPES.has(proto)) {
      const name = (obj as { constructor?: { name?: string } }).constructor?.name || 'class';
      this.fail(`a ${name} instance (pass a plain object, or give the class a toJSON method)`);
    }
    this.ancestors.add(obj);
    const keys = Object.keys(obj).sort();
    let out = '{';
    this.grow(2);
    let first = true;
    for (const key of keys) {
      const v = (obj as Record<string, unknown>)[key];
      if (v === undefined) continue;
      this.path.push(key);
      const k = this.text(key);
      this.grow(first ? 1 : 2);
      out += (first ? '' : ',') + k + ':' + this.value(v);
      this.path.pop();
      first = false;
    }
    this.ancestors.delete(obj);
    return out + '}';
  }

  private array(arr: ArrayLike<unknown>): string {
    // Every element takes at least one character and a comma: refuse a hopeless array before walking it.
    this.need(Math.max(2, 2 * arr.length + 1));
    // Fast path: model inputs are mostly flat arrays of finite numbers, which
    // JSON.stringify writes exactly as we would.
    let numeric = true;
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        numeric = false;
        break;
      }
    }
    if (numeric) {
      const s = JSON.stringify(Array.isArray(arr) ? arr : Array.from(arr as ArrayLike<number>));
      this.grow(s.length);
      return s;
    }
    this.ancestors.add(arr as object);
    let out = '[';
    this.grow(2);
    for (let i = 0; i < arr.length; i++) {
      this.path.push(i);
      if (i > 0) this.grow(1);
      out += (i === 0 ? '' : ',') + this.value(arr[i]);
      this.path.pop();
    }
    this.ancestors.delete(arr as object);
    return out + ']';
  }
}
