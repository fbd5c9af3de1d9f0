/**
 * Stacking per-item inputs into one batch tensor, and splitting a batch
 * output back into per-item outputs.
 *
 * Inputs arrive from Redis (JSON, or compact inputs as Float64Array), so nothing about them is trusted: each
 * item is checked on its own, and a bad one is reported (and left out of the
 * tensor) without touching the others.
 */

/** A number array, flat or nested to any depth. */
export type NestedNumbers = ReadonlyArray<number | NestedNumbers>;

/**
 * One item of a tensor model: its numbers, either flat (`shape` product
 * long) or nested to the per-item shape, or a typed array.
 */
export type TensorItemInput = NestedNumbers | Float32Array | Float64Array;

/** Number of elements of a tensor of `shape` (1 for `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

export function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Writes one item's `shapeSize(shape)` numbers into `target` from `offset`.
 * Accepts a flat array or typed array of that length, or nested arrays that
 * match `shape` exactly. Every element must be a finite number (NaN and
 * Infinity cannot come from JSON, and would only poison the output).
 *
 * @returns undefined when written, else what is wrong (for an error message).
 *   `target` may hold partial writes after a failure; the caller reuses the slot.
 */
export function writeItem(item: unknown, shape: readonly number[], target: Float32Array, offset: number): string | undefined {
  const size = shapeSize(shape);
  const expected = `${size} numbers (per-item shape ${formatShape(shape)})`;

  if (item instanceof Float32Array || item instanceof Float64Array) {
    if (item.length !== size) return `expected ${expected}, got a ${item.constructor.name} of length ${item.length}`;
    // Every element is a number: check finiteness, then one native copy (rounded to float32 as
    // an element-by-element write would). Compact inputs arrive as Float64Array (typedInputs).
    for (let i = 0; i < item.length; i++) {
      if (!Number.isFinite(item[i])) return `element [${i}] is ${describeValue(item[i])}, expected a finite number`;
    }
    target.set(item, offset);
    return undefined;
  }
  if (!Array.isArray(item)) return `expected an array of ${expected}, got ${describeValue(item)}`;

  if (item.length === size && (shape.length === 1 || !item.every((v) => Array.isArray(v)))) {
    return writeFlat(item, target, offset);
  }
  if (shape.length > 1 && item.length === shape[0] && item.every((v) => Array.isArray(v))) {
    const written = writeNested(item, shape, 0, target, offset, '');
    return typeof written === 'string' ? written : undefined;
  }
  const nested = shape.length > 1 ? ` or arrays nested to shape ${formatShape(shape)}` : '';
  return `expected ${expected}${nested}, got an array of length ${item.length}`;
}

function writeFlat(values: ArrayLike<unknown>, target: Float32Array, offset: number, at = ''): string | undefined {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      return `element ${at}[${i}] is ${describeValue(v)}, expected a finite number`;
    }
    target[offset + i] = v;
  }
  return undefined;
}

/** Walks nested arrays against `shape`; returns the next write position, or what is wrong. */
function writeNested(
  value: unknown,
  shape: readonly number[],
  dim: number,
  target: Float32Array,
  pos: number,
  at: string,
): number | string {
  const want = shape[dim] ?? 0;
  if (!Array.isArray(value)) return `element ${at} is ${describeValue(value)}, expected an array of length ${want}`;
  if (value.length !== want) {
    return `${at === '' ? 'the item' : `element ${at}`} has length ${value.length}, expected ${want} (per-item shape ${formatShape(shape)})`;
  }
  if (dim === shape.length - 1) {
    const problem = writeFlat(value, target, pos, at);
    return problem ?? pos + want;
  }
  let next = pos;
  for (let i = 0; i < value.length; i++) {
    const r = writeNested(value[i], shape, dim + 1, target, next, `${at}[${i}]`);
    if (typeof r === 'string') return r;
    next = r;
  }
  return next;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'object') return `a ${v.constructor?.name ?? 'object'}`;
  return `a ${typeof v}`;
}

/**
 * Copies row `row` (of `rowSize` elements) out of a batch output as a plain
 * `number[]`, the JSON-friendly form an output travels in.
 *
 * @returns the row, or undefined when it holds NaN or Infinity (JSON would turn them into null).
 */
export function readRow(data: ArrayLike<number>, row: number, rowSize: number): number[] | undefined {
  const out = new Array<number>(rowSize);
  const start = row * rowSize;
  for (let i = 0; i < rowSize; i++) {
    const v = data[start + i] as number;
    if (!Number.isFinite(v)) return undefined;
    out[i] = v;
  }
  return out;
}
