/**
 * mulberry32: a tiny seeded PRNG (32-bit state, period 2^32). Used to build
 * model weights that are the same on every machine and every run, so a model
 * built in code needs no binary file and its outputs are reproducible.
 * Not for anything that needs unpredictability.
 */

/** Returns a generator of floats in [0, 1), fully determined by `seed` (taken as an unsigned 32-bit integer). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
