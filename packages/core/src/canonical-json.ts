/**
 * Canonical JSON: object keys sorted, no whitespace, so equal values give
 * byte-equal text in every process (and any language that sorts keys the
 * same way). Values JSON cannot carry faithfully are rejected with a typed
 * error instead of being silently changed: functions, symbols, BigInt, NaN,
 * Infinity, cycles, Map/Set, and `undefined` anywhere but as an object
 * property (which JSON omits, and so do we). Typed arrays become plain number
 * arrays, and objects with `toJSON` (Date) use it, as JSON.stringify does.
 */
import { InputNotSerializableError } from './errors.js';

export function canonicalJson(value: unknown): string {
  return write(value, [], new Set());
}

/** The path is kept as segments and joined only for an error message: most calls never fail. */
type Path = Array<string | number>;

function fail(path: Path, what: string): never {
  const at = '$' + path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
  throw new InputNotSerializableError(`Input is not JSON-serialisable: ${what} at ${at}.`, { details: { path: at } });
}

function write(value: unknown, path: Path, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) fail(path, String(value));
      return JSON.stringify(value);
    case 'undefined':
      return fail(path, 'undefined');
    case 'bigint':
      return fail(path, 'a BigInt');
    case 'function':
      return fail(path, 'a function');
    case 'symbol':
      return fail(path, 'a symbol');
    case 'object':
      break;
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (ancestors.has(obj)) fail(path, 'a circular reference');
  if (obj instanceof Map || obj instanceof Set || obj instanceof WeakMap || obj instanceof WeakSet) {
    fail(path, `a ${obj.constructor.name}`);
  }
  if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
    return write((obj as { toJSON: () => unknown }).toJSON(), path, ancestors);
  }
  if (ArrayBuffer.isView(obj)) {
    if (obj instanceof DataView) fail(path, 'a DataView');
    return writeArray(Array.from(obj as unknown as ArrayLike<number | bigint>), path, ancestors);
  }
  if (Array.isArray(obj)) return writeArray(obj, path, ancestors);
  ancestors.add(obj);
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const v = (obj as Record<string, unknown>)[key];
    if (v === undefined) continue;
    path.push(key);
    out += (first ? '' : ',') + JSON.stringify(key) + ':' + write(v, path, ancestors);
    path.pop();
    first = false;
  }
  ancestors.delete(obj);
  return out + '}';
}

function writeArray(arr: readonly unknown[], path: Path, ancestors: Set<object>): string {
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
  if (numeric) return JSON.stringify(arr);
  ancestors.add(arr);
  let out = '[';
  for (let i = 0; i < arr.length; i++) {
    path.push(i);
    out += (i === 0 ? '' : ',') + write(arr[i], path, ancestors);
    path.pop();
  }
  ancestors.delete(arr);
  return out + ']';
}
