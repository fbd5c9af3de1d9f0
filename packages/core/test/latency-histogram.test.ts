import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LATENCY_BUCKET_BOUNDS_MS,
  LATENCY_BUCKET_FIELDS,
  LatencyHistogram,
  bucketFor,
  bucketRange,
} from '../src/latency-histogram.js';

/** Nearest-rank percentile of sorted samples: the value a perfect histogram would report. */
function exactPercentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

describe('latency buckets', () => {
  it('has ascending bounds ending in +Inf and one readable field per bound', () => {
    for (let i = 1; i < LATENCY_BUCKET_BOUNDS_MS.length; i++) {
      expect(LATENCY_BUCKET_BOUNDS_MS[i]!).toBeGreaterThan(LATENCY_BUCKET_BOUNDS_MS[i - 1]!);
    }
    expect(LATENCY_BUCKET_BOUNDS_MS.at(-1)).toBe(Infinity);
    expect(LATENCY_BUCKET_FIELDS[0]).toBe('le_0.25');
    expect(LATENCY_BUCKET_FIELDS).toContain('le_7.5');
    expect(LATENCY_BUCKET_FIELDS.at(-2)).toBe('le_60000');
    expect(LATENCY_BUCKET_FIELDS.at(-1)).toBe('le_inf');
  });

  it('puts a value in the first bucket whose upper bound is at least the value', () => {
    expect(bucketFor(0)).toBe(0);
    expect(bucketFor(0.25)).toBe(0);
    expect(bucketFor(0.26)).toBe(1);
    expect(LATENCY_BUCKET_FIELDS[bucketFor(7.5)]).toBe('le_7.5');
    expect(LATENCY_BUCKET_FIELDS[bucketFor(7.6)]).toBe('le_10');
    expect(LATENCY_BUCKET_FIELDS[bucketFor(60_000)]).toBe('le_60000');
    expect(LATENCY_BUCKET_FIELDS[bucketFor(60_001)]).toBe('le_inf');
    expect(bucketFor(-3)).toBe(0);
    expect(bucketFor(Number.NaN)).toBe(0);
  });

  it('agrees with a linear scan for any value', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e6, noNaN: true }), (ms) => {
        const linear = LATENCY_BUCKET_BOUNDS_MS.findIndex((b) => ms <= b);
        expect(bucketFor(ms)).toBe(linear);
      }),
    );
  });
});

describe('LatencyHistogram', () => {
  it('is 0 everywhere when empty', () => {
    const h = new LatencyHistogram();
    expect(h.count).toBe(0);
    expect(h.percentile(50)).toBe(0);
    expect(h.toFields()).toEqual({});
  });

  it('interpolates inside the bucket', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 100; i++) h.record(15); // all in (10, 15]
    expect(h.percentile(50)).toBeCloseTo(12.5, 9);
    expect(h.percentile(100)).toBeCloseTo(15, 9);
    expect(h.percentile(0)).toBe(10);
  });

  it('reports 60000 ms for samples beyond the last finite bound', () => {
    const h = new LatencyHistogram().record(90_000);
    expect(h.percentile(99)).toBe(60_000);
    expect(bucketRange(LATENCY_BUCKET_BOUNDS_MS.length - 1)).toEqual([60_000, 60_000]);
  });

  it('estimates every percentile inside the bucket of the exact value', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 70_000, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 100 }),
        (samples, p) => {
          const h = new LatencyHistogram();
          for (const s of samples) h.record(s);
          const exact = exactPercentile([...samples].sort((a, b) => a - b), p);
          const [lower, upper] = bucketRange(bucketFor(exact));
          const estimate = h.percentile(p);
          expect(estimate).toBeGreaterThanOrEqual(lower);
          expect(estimate).toBeLessThanOrEqual(upper);
        },
      ),
    );
  });

  it('merging equals recording everything in one histogram', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 100_000, noNaN: true })),
        fc.array(fc.double({ min: 0, max: 100_000, noNaN: true })),
        (a, b) => {
          const ha = new LatencyHistogram();
          const hb = new LatencyHistogram();
          const all = new LatencyHistogram();
          for (const x of a) {
            ha.record(x);
            all.record(x);
          }
          for (const x of b) {
            hb.record(x);
            all.record(x);
          }
          ha.merge(hb);
          expect(ha.count).toBe(a.length + b.length);
          expect(ha.bucketCounts()).toEqual(all.bucketCounts());
          for (const p of [50, 95, 99]) expect(ha.percentile(p)).toBe(all.percentile(p));
        },
      ),
    );
  });

  it('round-trips through Redis hash fields, ignoring unknown fields', () => {
    const h = new LatencyHistogram().record(0.1).record(4, 3).record(120_000);
    const fields = h.toFields();
    expect(fields).toEqual({ 'le_0.25': 1, le_5: 3, le_inf: 1 });
    const strings = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)]));
    const back = LatencyHistogram.fromFields({ ...strings, requests: '99', le_bogus: '5' });
    expect(back.count).toBe(5);
    expect(back.bucketCounts()).toEqual(h.bucketCounts());
  });
});
