/**
 * Numbers computed from the per-request records: exact percentiles (every
 * request's latency is at hand, so no histogram estimate is needed), and
 * the binned data behind the report's charts. Pure functions, no I/O.
 */
import type { Outcome, RequestRecord } from './protocol.js';

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function sortedLatencies(records: readonly RequestRecord[], keep: (r: RequestRecord) => boolean = isOk): Float64Array {
  const a = Float64Array.from(records.filter(keep), (r) => r.latencyMs);
  return a.sort();
}

export function isOk(r: RequestRecord): boolean {
  return r.outcome === 'hit' || r.outcome === 'computed' || r.outcome === 'coalesced';
}

export interface LatencyStats {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function latencyStats(sorted: Float64Array): LatencyStats {
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? (sorted[sorted.length - 1] as number) : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/** First start to last completion, in ms. */
export function loadWindow(records: readonly RequestRecord[]): { startMs: number; endMs: number } {
  let startMs = Infinity;
  let endMs = -Infinity;
  for (const r of records) {
    startMs = Math.min(startMs, r.startMs);
    endMs = Math.max(endMs, r.startMs + r.latencyMs);
  }
  return records.length ? { startMs, endMs } : { startMs: 0, endMs: 0 };
}

export function countOutcomes(records: readonly RequestRecord[]): Record<Outcome, number> {
  const c: Record<Outcome, number> = { hit: 0, computed: 0, coalesced: 0, error: 0, timeout: 0 };
  for (const r of records) c[r.outcome]++;
  return c;
}

/** Latency histogram on a log scale: latencies span four decades (a cache hit vs a request queued behind many batches). */
export interface LatencyHistogram {
  /** Bin edges in ms, `bins + 1` of them. */
  edges: number[];
  /** Count per bin, per outcome of interest. */
  counts: Record<'hit' | 'computed' | 'coalesced', number[]>;
}

export function latencyHistogram(records: readonly RequestRecord[], binsPerDecade = 10): LatencyHistogram {
  const ok = records.filter(isOk);
  const lat = ok.map((r) => Math.max(r.latencyMs, 0.01));
  // A loop, not Math.min(...lat): spreading a million arguments overflows the stack.
  let min = 1;
  let max = 1.01;
  for (const v of lat) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const lo = Math.floor(Math.log10(min) * binsPerDecade) / binsPerDecade;
  const hi = Math.ceil(Math.log10(max) * binsPerDecade) / binsPerDecade;
  const bins = Math.max(1, Math.round((hi - lo) * binsPerDecade));
  const edges = Array.from({ length: bins + 1 }, (_, i) => Math.pow(10, lo + i / binsPerDecade));
  const counts = { hit: new Array<number>(bins).fill(0), computed: new Array<number>(bins).fill(0), coalesced: new Array<number>(bins).fill(0) };
  ok.forEach((r, i) => {
    const b = Math.min(bins - 1, Math.max(0, Math.floor((Math.log10(lat[i] as number) - lo) * binsPerDecade)));
    const series = counts[r.outcome as 'hit' | 'computed' | 'coalesced'];
    series[b] = (series[b] as number) + 1;
  });
  return { edges, counts };
}

/** Model items by the size of the batch that computed them, per worker. */
export interface BatchItems {
  worker: string;
  batchSize: number;
  items: number;
}

/**
 * From the records: every request a worker computed (not a cache hit, not
 * a request that joined another's computation) is one model item, and
 * carries the size of its batch.
 */
export function batchItemsFromRecords(records: readonly RequestRecord[]): BatchItems[] {
  const m = new Map<string, BatchItems>();
  for (const r of records) {
    if (r.outcome !== 'computed' || r.batchSize === undefined) continue;
    const worker = r.worker ?? '?';
    const k = `${worker}\u0000${r.batchSize}`;
    const e = m.get(k);
    if (e) e.items++;
    else m.set(k, { worker, batchSize: r.batchSize, items: 1 });
  }
  return [...m.values()];
}

export interface WorkerShare {
  worker: string;
  /** Requests this worker computed (model items). */
  items: number;
  /**
   * Model calls, estimated as the sum of 1/batchSize over its items (a batch
   * of b items contributes b items of 1/b each). Exact when each computed
   * item reached exactly one caller as "computed", which single-flight
   * makes the rule; inferq does not count batches per worker itself.
   */
  batchesEst: number;
  /** Requests it answered from the cache at batch time (another worker filled it meanwhile). */
  foundInCache: number;
  /** Results it delivered, all kinds. */
  delivered: number;
}

export function workerShares(records: readonly RequestRecord[]): WorkerShare[] {
  const m = new Map<string, WorkerShare>();
  for (const r of records) {
    if (r.worker === undefined || !isOk(r)) continue;
    let w = m.get(r.worker);
    if (!w) m.set(r.worker, (w = { worker: r.worker, items: 0, batchesEst: 0, foundInCache: 0, delivered: 0 }));
    w.delivered++;
    if (r.outcome === 'hit') w.foundInCache++;
    if (r.outcome === 'computed' && r.batchSize) {
      w.items++;
      w.batchesEst += 1 / r.batchSize;
    }
  }
  return [...m.values()].sort((a, b) => a.worker.localeCompare(b.worker));
}

/** Completions per time bin, per outcome, plus latency percentiles of the requests that finished in the bin. */
export interface TimeSeries {
  binMs: number;
  /** Bin start, seconds since the load started. */
  t: number[];
  completed: Record<Outcome, number[]>;
  p50: (number | null)[];
  p95: (number | null)[];
}

export function timeSeries(records: readonly RequestRecord[], binMs: number): TimeSeries {
  const { startMs, endMs } = loadWindow(records);
  const bins = Math.max(1, Math.ceil((endMs - startMs) / binMs));
  const zeros = () => new Array<number>(bins).fill(0);
  const completed: Record<Outcome, number[]> = { hit: zeros(), computed: zeros(), coalesced: zeros(), error: zeros(), timeout: zeros() };
  const lat: number[][] = Array.from({ length: bins }, () => []);
  for (const r of records) {
    const b = Math.min(bins - 1, Math.floor((r.startMs + r.latencyMs - startMs) / binMs));
    const series = completed[r.outcome];
    series[b] = (series[b] as number) + 1;
    if (isOk(r)) (lat[b] as number[]).push(r.latencyMs);
  }
  const pct = (p: number) =>
    lat.map((l) => {
      if (l.length === 0) return null;
      l.sort((a, b) => a - b);
      return percentile(l, p);
    });
  return { binMs, t: Array.from({ length: bins }, (_, i) => (i * binMs) / 1000), completed, p50: pct(50), p95: pct(95) };
}
