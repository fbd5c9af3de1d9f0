/**
 * Fixed, log-spaced latency buckets, the same in memory and in Redis, so a
 * histogram is one small hash that any number of processes add to with
 * HINCRBY and that merges by adding counts. Percentiles are estimated by
 * linear interpolation inside a bucket: the estimate always lies in the
 * bucket that holds the exact value, which is what a dashboard needs (exact
 * percentiles would need every sample).
 *
 * Redis fields (hash `inferq:{<model>}:stats:latency`), one per bucket:
 *
 *   `le_0.25`, `le_0.5`, `le_1`, `le_2`, `le_3`, `le_5`, `le_7.5`, `le_10`,
 *   `le_15`, `le_20`, `le_30`, `le_50`, `le_75`, `le_100`, `le_150`, `le_200`,
 *   `le_300`, `le_500`, `le_750`, `le_1000`, `le_1500`, `le_2000`, `le_3000`,
 *   `le_5000`, `le_10000`, `le_30000`, `le_60000`, `le_inf`
 *
 * Field `le_X` counts requests whose latency was at most X ms and more than
 * the previous bound (`le_inf`: more than 60000 ms). Unlike Prometheus'
 * cumulative `le` buckets these are NOT cumulative: each sample adds 1 to
 * exactly one field (one HINCRBY), and the total count is the sum of all
 * fields. A field that was never touched is absent (read it as 0).
 */

/** Upper bounds in ms, ascending; the last bucket (`le_inf`) is unbounded. */
export const LATENCY_BUCKET_BOUNDS_MS: readonly number[] = Object.freeze([
  0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000,
  10_000, 30_000, 60_000, Infinity,
]);

/** Redis hash field of each bucket, index for index with `LATENCY_BUCKET_BOUNDS_MS`. */
export const LATENCY_BUCKET_FIELDS: readonly string[] = Object.freeze(
  LATENCY_BUCKET_BOUNDS_MS.map((b) => (b === Infinity ? 'le_inf' : `le_${b}`)),
);

const BUCKETS = LATENCY_BUCKET_BOUNDS_MS.length;
const FIELD_INDEX = new Map(LATENCY_BUCKET_FIELDS.map((f, i) => [f, i]));
/** The bound reported for samples in the unbounded bucket. */
const LAST_FINITE_BOUND = LATENCY_BUCKET_BOUNDS_MS[BUCKETS - 2] as number;

/**
 * Index of the bucket that holds `ms`: the first whose upper bound is >= `ms`.
 * Negative and NaN latencies count as 0 (a clock step backwards is not a reason to lose a sample).
 */
export function bucketFor(ms: number): number {
  const v = ms > 0 ? ms : 0;
  let lo = 0;
  let hi = BUCKETS - 1; // the last bound is Infinity, so the answer is at most hi
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (v <= (LATENCY_BUCKET_BOUNDS_MS[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Lower and upper bound (ms) of bucket `index`; the last bucket reports 60000 for both. */
export function bucketRange(index: number): [lower: number, upper: number] {
  const lower = index === 0 ? 0 : (LATENCY_BUCKET_BOUNDS_MS[index - 1] as number);
  const upper = LATENCY_BUCKET_BOUNDS_MS[index] as number;
  return [lower, upper === Infinity ? LAST_FINITE_BOUND : upper];
}

export class LatencyHistogram {
  private readonly counts: number[] = new Array<number>(BUCKETS).fill(0);
  private total = 0;

  /** Adds `n` samples of `ms` (default one). */
  record(ms: number, n = 1): this {
    this.counts[bucketFor(ms)]! += n;
    this.total += n;
    return this;
  }

  /** Adds every count of `other` into this one. */
  merge(other: LatencyHistogram): this {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    return this;
  }

  /** Number of samples. */
  get count(): number {
    return this.total;
  }

  /** Count of each bucket, index for index with `LATENCY_BUCKET_BOUNDS_MS`. */
  bucketCounts(): readonly number[] {
    return [...this.counts];
  }

  /**
   * Estimated `p`-th percentile in ms, `p` in 0..100 (50 = median): the
   * bucket holding the sample of rank `p/100 * count` is found, and the value
   * interpolated linearly between its bounds. 0 when empty. Samples above
   * 60000 ms report 60000.
   */
  percentile(p: number): number {
    if (this.total === 0) return 0;
    const rank = (Math.min(100, Math.max(0, p)) / 100) * this.total;
    let below = 0;
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.counts[i]!;
      if (c > 0 && below + c >= rank) {
        const [lower, upper] = bucketRange(i);
        return lower + ((upper - lower) * Math.max(0, rank - below)) / c;
      }
      below += c;
    }
    return LAST_FINITE_BOUND; // unreachable: the counts add up to total
  }

  /** Nonzero buckets as Redis hash fields (`le_*` -> count), ready for HINCRBY. */
  toFields(): Record<string, number> {
    const fields: Record<string, number> = {};
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.counts[i]!;
      if (c !== 0) fields[LATENCY_BUCKET_FIELDS[i]!] = c;
    }
    return fields;
  }

  /** Reads a histogram hash (HGETALL reply). Unknown fields and non-numeric values are ignored. */
  static fromFields(fields: Readonly<Record<string, string | number>>): LatencyHistogram {
    const h = new LatencyHistogram();
    for (const [field, raw] of Object.entries(fields)) {
      const i = FIELD_INDEX.get(field);
      const n = Number(raw);
      if (i === undefined || !Number.isFinite(n) || n <= 0) continue;
      h.counts[i]! += n;
      h.total += n;
    }
    return h;
  }
}
