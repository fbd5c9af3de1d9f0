/**
 * The demo's workload: which inputs are requested, in which order.
 *
 * Real inference traffic is skewed: a few inputs (popular queries, hot
 * items) come back again and again, and a long tail is seen once or twice.
 * That is what makes a result cache worth having, so the demo draws input
 * ranks from a Zipf distribution (P(rank k) ~ 1/k^s) over a fixed pool of
 * distinct input vectors.
 *
 * Everything is generated from a seeded PRNG, in every process alike, so
 * a run is reproducible: the parent sends each client process only numbers
 * (seed, pool size, exponent), never the vectors themselves.
 */
import { mulberry32 } from '@inferq/testkit/random';

export { mulberry32 };

/** Mixes two integers into a new seed, so per-client and per-vector streams do not overlap. */
export function deriveSeed(seed: number, stream: number): number {
  let h = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/**
 * Samples ranks 0..n-1 with P(k) proportional to 1/(k+1)^s. The CDF is
 * built once (O(n)) and each draw is a binary search (O(log n)), which
 * for a pool of a few thousand is far cheaper than anything else per request.
 */
export class ZipfSampler {
  private readonly cdf: Float64Array;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Zipf pool size must be a positive integer, got ${n}`);
    if (!(s >= 0)) throw new RangeError(`Zipf exponent must be >= 0, got ${s}`);
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) {
      sum += 1 / Math.pow(k + 1, s);
      this.cdf[k] = sum;
    }
    for (let k = 0; k < n; k++) this.cdf[k] = (this.cdf[k] as number) / sum;
  }

  /** Probability of rank `k` (0-based). */
  probability(k: number): number {
    return (this.cdf[k] ?? 1) - (k > 0 ? (this.cdf[k - 1] as number) : 0);
  }

  /** Share of all draws that land on the `top` most popular ranks. */
  topShare(top: number): number {
    return top <= 0 ? 0 : (this.cdf[Math.min(top, this.n) - 1] as number);
  }

  /** One rank for a uniform `u` in [0, 1). */
  sample(u: number): number {
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.cdf[mid] as number) > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

export interface WorkloadSpec {
  /** Run seed: the same seed gives the same inputs in the same order. */
  seed: number;
  /** Distinct input vectors. */
  poolSize: number;
  /** Zipf exponent (0 = uniform; ~1 = typical web/query traffic). */
  zipfS: number;
  /** Numbers per input vector (the model's input size). */
  inputSize: number;
}

/**
 * The pool of distinct input vectors. Vector `i` depends only on the seed
 * and `i`. Values are rounded to 3 decimals: the model does not care, and
 * it keeps each request's JSON (~1.5 KB for 256 numbers) small on the wire.
 */
export function buildInputPool(spec: WorkloadSpec): number[][] {
  const pool: number[][] = [];
  for (let i = 0; i < spec.poolSize; i++) {
    const rnd = mulberry32(deriveSeed(spec.seed, 1_000_000 + i));
    const v = new Array<number>(spec.inputSize);
    for (let j = 0; j < spec.inputSize; j++) v[j] = Math.round((rnd() * 2 - 1) * 1000) / 1000;
    pool.push(v);
  }
  return pool;
}

/**
 * The sequence of pool indexes one client requests, in order. Ranks are
 * mapped to pool indexes through a seeded permutation so that "popular"
 * does not mean "vector 0, 1, 2": every client shares the same popular
 * inputs (that is what makes a shared cache and single-flight pay off).
 */
export function clientSchedule(spec: WorkloadSpec, clientIndex: number, requests: number): Uint32Array {
  const zipf = new ZipfSampler(spec.poolSize, spec.zipfS);
  const perm = rankPermutation(spec);
  const rnd = mulberry32(deriveSeed(spec.seed, clientIndex));
  const out = new Uint32Array(requests);
  for (let i = 0; i < requests; i++) out[i] = perm[zipf.sample(rnd())] as number;
  return out;
}

/** Fisher-Yates shuffle of 0..poolSize-1 from the run seed. */
function rankPermutation(spec: WorkloadSpec): Uint32Array {
  const perm = new Uint32Array(spec.poolSize);
  for (let i = 0; i < perm.length; i++) perm[i] = i;
  const rnd = mulberry32(deriveSeed(spec.seed, 999_999));
  for (let i = perm.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = perm[i] as number;
    perm[i] = perm[j] as number;
    perm[j] = t;
  }
  return perm;
}

/** Splits `total` requests over `parts` clients as evenly as possible (the first ones get the remainder). */
export function splitRequests(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0));
}

/**
 * Exponential inter-arrival gaps (a Poisson process) for the open-loop
 * part of the load: independent callers that do not wait for each other.
 */
export function poissonGaps(seed: number, ratePerSec: number): () => number {
  const rnd = mulberry32(seed);
  return () => (-Math.log(1 - rnd()) / ratePerSec) * 1000;
}
