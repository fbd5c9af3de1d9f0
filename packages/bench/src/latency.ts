/**
 * Latency histogram with geometric buckets (1 % wide), sent from a client
 * process to the parent as a sparse list of [bucket, count] pairs.
 *
 * Why a histogram and not the raw samples: a no-op scenario completes
 * ~10^5..10^6 requests per client per run; a histogram of a few hundred
 * non-empty buckets fits on one JSON line whatever the run length, merges
 * across clients by adding counts, and keeps percentiles within 1 %.
 */

/** Lower edge of bucket 0, in ms (1 us): nothing measured here is faster. */
const MIN_MS = 0.001;
/** Relative width of a bucket. */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Bucket count: MIN_MS * 1.01^2400 ≈ 23 minutes, far above any timeout of the bench. */
const BUCKETS = 2400;

/** What a client sends back: exact count, sum, min and max, and the bucket counts. */
export interface LatencySummary {
  count: number;
  sumMs: number;
  minMs: number;
  maxMs: number;
  /** Sparse [bucket index, count] pairs, ascending by index. */
  buckets: Array<[number, number]>;
}

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH);
  return i >= BUCKETS ? BUCKETS - 1 : i;
}

/** Upper edge of bucket `i`, in ms: percentiles are reported at most 1 % high. */
function upperEdge(i: number): number {
  return MIN_MS * GROWTH ** i;
}

/** Records latencies in a dense array (a record is one log and one increment: cheap at 10^5/s). */
export class LatencyRecorder {
  private readonly counts = new Uint32Array(BUCKETS);
  private count = 0;
  private sum = 0;
  private min = Infinity;
  private max = 0;

  record(ms: number): void {
    const i = bucketOf(ms);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  summary(): LatencySummary {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.counts[i] ?? 0;
      if (c > 0) buckets.push([i, c]);
    }
    return { count: this.count, sumMs: this.sum, minMs: this.count ? this.min : 0, maxMs: this.max, buckets };
  }
}

export function emptySummary(): LatencySummary {
  return { count: 0, sumMs: 0, minMs: 0, maxMs: 0, buckets: [] };
}

/** Adds histograms of several clients (or repetitions) into one. */
export function mergeSummaries(summaries: readonly LatencySummary[]): LatencySummary {
  const counts = new Map<number, number>();
  let count = 0;
  let sum = 0;
  let min = Infinity;
  let max = 0;
  for (const s of summaries) {
    if (s.count === 0) continue;
    count += s.count;
    sum += s.sumMs;
    min = Math.min(min, s.minMs);
    max = Math.max(max, s.maxMs);
    for (const [i, c] of s.buckets) counts.set(i, (counts.get(i) ?? 0) + c);
  }
  const buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  return { count, sumMs: sum, minMs: count ? min : 0, maxMs: max, buckets };
}

/** The p-th percentile (0..100) in ms, NaN without samples; clamped to the exact min and max. */
export function percentile(s: LatencySummary, p: number): number {
  if (s.count === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * s.count));
  let seen = 0;
  for (const [i, c] of s.buckets) {
    seen += c;
    if (seen >= rank) return Math.min(s.maxMs, Math.max(s.minMs, upperEdge(i)));
  }
  return s.maxMs;
}

export function mean(s: LatencySummary): number {
  return s.count === 0 ? NaN : s.sumMs / s.count;
}
