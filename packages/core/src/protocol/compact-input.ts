/**
 * The compact form of a tensor-shaped input: a flat array of finite numbers
 * (a `number[]`, or a typed array such as Float32Array) travels as the
 * base64 of its float64 values, little-endian, in the item's `f64` field
 * instead of its canonical JSON text in `input`.
 *
 * Why: formatting 256 doubles as JSON costs the client ~20 µs and parsing
 * them back costs the worker ~16 µs per input, while copying them into a
 * Float64Array and base64 costs ~1-2 µs on either side (docs/architecture.md,
 * "Tensor inputs travel compact"). float64, not float32: JS numbers are
 * float64, and a narrower encoding would change the input the key names.
 *
 * Meaning is unchanged: the compact form stands for the input's canonical
 * JSON. Both ends normalise -0 to 0 (JSON writes -0 as `0`, so the key of
 * [-0] is the key of [0], and the model must see what the key names), and
 * `f64Json` writes exactly the text `canonicalJson` writes for the same
 * numbers, so a compact input and the same numbers sent as JSON have one
 * cache key, one flight and one cache entry.
 */

/** An input as a worker holds it: canonical JSON text, or the numbers of a compact input. */
export type ItemInput = string | Float64Array;

/** Whether this machine stores a Float64Array little-endian (every platform Node ships for, in practice). */
const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

/**
 * The numbers of `value` when it is a flat array (or typed array) of finite
 * numbers, -0 written as 0; undefined for anything else, which then goes the
 * canonical JSON way (and gets its errors: NaN, holes, nested arrays...).
 * Never throws: a value that cannot be read is left to canonicalJson to report.
 */
export function flatNumbers(value: unknown): Float64Array | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  let arr: ArrayLike<unknown>;
  if (Array.isArray(value)) arr = value;
  else if (ArrayBuffer.isView(value) && !(value instanceof DataView) && !(value instanceof BigInt64Array) && !(value instanceof BigUint64Array)) arr = value as unknown as ArrayLike<number>;
  else return undefined;
  // canonicalJson writes what a toJSON returns, not the array: leave such a value to it.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return undefined;
  try {
    const n = arr.length;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = arr[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) return undefined;
      out[i] = v === 0 ? 0 : v;
    }
    return out;
  } catch {
    return undefined; // a throwing proxy: canonicalJson reports it with its path
  }
}

/** The compact form (base64 of the float64 values, little-endian). */
export function encodeF64(numbers: Float64Array): string {
  const bytes = Buffer.from(numbers.buffer, numbers.byteOffset, numbers.byteLength);
  if (LITTLE_ENDIAN) return bytes.toString('base64');
  const le = Buffer.allocUnsafe(numbers.byteLength);
  for (let i = 0; i < numbers.length; i++) le.writeDoubleLE(numbers[i] as number, i * 8);
  return le.toString('base64');
}

/** Bytes that the base64 text `s` decodes to, when well formed (length a multiple of 4); else -1. */
function decodedLength(s: string): number {
  if (s.length % 4 !== 0) return -1;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

/**
 * Decodes a compact input; what is wrong (a string) when it is not one:
 * not base64, not a whole number of float64s, or a value that is not finite
 * (no client encodes NaN or Infinity: the job was written by hand).
 * -0 becomes 0, as JSON would have it.
 */
export function decodeF64(text: string): Float64Array | string {
  const bytes = decodedLength(text);
  if (bytes < 0 || bytes % 8 !== 0) return 'f64 is not base64 of float64 values';
  const out = new Float64Array(bytes / 8);
  const view = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  // Node's decoder skips characters that are not base64: fewer bytes written means the text was not.
  if (view.write(text, 0, bytes, 'base64') !== bytes) return 'f64 is not base64 of float64 values';
  if (!LITTLE_ENDIAN) for (let i = 0; i < out.length; i++) out[i] = view.readDoubleLE(i * 8);
  for (let i = 0; i < out.length; i++) {
    const v = out[i] as number;
    if (!Number.isFinite(v)) return `f64 holds ${v} at [${i}], not a finite number`;
    if (v === 0) out[i] = 0;
  }
  return out;
}

/**
 * The canonical JSON of the numbers: `[` + each number as JSON writes it +
 * `]`. Number#toString and JSON.stringify format finite numbers the same
 * way (ECMA-262 Number::toString), and -0 is already 0.
 */
export function f64Json(numbers: Float64Array): string {
  return '[' + numbers.join(',') + ']';
}

/** The input's canonical JSON text, whatever form it travelled in. */
export function itemInputJson(input: ItemInput): string {
  return typeof input === 'string' ? input : f64Json(input);
}

/**
 * Most UTF-8 bytes the canonical JSON of `n` finite numbers can take: 25 per
 * number (`-0.0000012345678901234567`: 17 digits after 5 zeros), a comma
 * between, the brackets. Lets
 * the client check `maxInputBytes` without writing the text when the bound fits.
 */
export function f64JsonMaxBytes(n: number): number {
  return 2 + 25 * n + Math.max(0, n - 1);
}
