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
  return write(value, '$', new Set());
}

function fail(path: string, what: string): never {
  throw new InputNotSerializableError(`Input is not JSON-serialisable: ${what} at ${path}.`, { details: { path } });
}

function write(value: unknown, path: string, ancestors: Set<object>): string {
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
  ancestors.add(obj);
  try {
    if (ArrayBuffer.isView(obj)) {
      if (obj instanceof DataView) fail(path, 'a DataView');
      const items = Array.from(obj as unknown as ArrayLike<number | bigint>, (v, i) => write(v, `${path}[${i}]`, ancestors));
      return `[${items.join(',')}]`;
    }
    if (Array.isArray(obj)) {
      const parts: string[] = new Array(obj.length);
      for (let i = 0; i < obj.length; i++) parts[i] = write(obj[i], `${path}[${i}]`, ancestors);
      return `[${parts.join(',')}]`;
    }
    const keys = Object.keys(obj).sort();
    const parts: string[] = [];
    for (const key of keys) {
      const v = (obj as Record<string, unknown>)[key];
      if (v === undefined) continue;
      parts.push(`${JSON.stringify(key)}:${write(v, `${path}.${key}`, ancestors)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    ancestors.delete(obj);
  }
}
