/**
 * float32 -> IEEE 754 half-precision bits, for writing float16 tensors
 * (Node 20 has no Float16Array). Rounds to nearest, ties to even, like a
 * hardware conversion, so FP16 weights built here match what other tools write.
 */

/** The float16 bit pattern of the float32 with bit pattern `x` (overflow gives ±Infinity, NaN stays NaN). */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa, implicit 1 included, into 10 bits.
    if (e < -10) return sign;
    const m = mantissa | 0x800000;
    const shift = 14 - e;
    const half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (rest > halfway || (rest === halfway && (half & 1) === 1) ? half + 1 : half);
  }
  // A carry out of the mantissa rounds up into the exponent, which is the right result (up to Infinity).
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  return sign | (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half);
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The 16-bit pattern of `value` rounded to float16. */
export function float16Bits(value: number): number {
  scratch[0] = value;
  return halfFromFloatBits(scratchBits[0] as number);
}

/** Converts a whole array to float16 bit patterns (reads the float32 bits in place, no per-element copy). */
export function toFloat16Array(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfFromFloatBits(bits[i] as number);
  return out;
}
