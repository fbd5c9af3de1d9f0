/**
 * The mapping of (class, fair rank) onto BullMQ's one priority number, as
 * properties: the class always dominates the rank, every value is one BullMQ
 * accepts, and aging goes where it should.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_RANK, PRIORITIES, agedPriority, classOf, fairRank, jobPriority } from '../src/protocol/priority.js';

/** BullMQ's largest priority (Job.validateOptions). */
const BULLMQ_MAX_PRIORITY = 2 ** 21;
const cls = fc.constantFrom(...PRIORITIES);
const rank = fc.oneof(fc.nat({ max: 1000 }), fc.nat(), fc.double({ noNaN: false }));

describe('job priorities', () => {
  it('are BullMQ priorities (1..2^21, never 0: BullMQ serves its wait list before any prioritized job) of the right class', () => {
    fc.assert(
      fc.property(cls, rank, (c, r) => {
        const p = jobPriority(c, r);
        expect(Number.isInteger(p)).toBe(true);
        expect(p).toBeGreaterThanOrEqual(1);
        expect(p).toBeLessThanOrEqual(BULLMQ_MAX_PRIORITY);
        expect(classOf(p)).toBe(c);
      }),
    );
  });

  it('order by class first, then by rank', () => {
    fc.assert(
      fc.property(cls, cls, fc.nat({ max: MAX_RANK }), fc.nat({ max: MAX_RANK }), (c1, c2, r1, r2) => {
        const a = jobPriority(c1, r1);
        const b = jobPriority(c2, r2);
        const i1 = PRIORITIES.indexOf(c1);
        const i2 = PRIORITIES.indexOf(c2);
        if (i1 !== i2) expect(a < b).toBe(i1 < i2);
        else expect(Math.sign(a - b)).toBe(Math.sign(r1 - r2));
      }),
    );
  });

  it('age to the front of the class above, and high does not age', () => {
    fc.assert(
      fc.property(cls, fc.nat({ max: MAX_RANK }), (c, r) => {
        const to = agedPriority(jobPriority(c, r));
        if (c === 'high') expect(to).toBeUndefined();
        else expect(to).toBe(jobPriority(c === 'low' ? 'normal' : 'high', 0));
      }),
    );
  });

  it('fair ranks grow with the count and shrink with the weight', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10_000 }), fc.double({ min: 0.01, max: 100, noNaN: true }), (n, w) => {
        expect(fairRank(n + 1, w)).toBeGreaterThanOrEqual(fairRank(n, w));
        expect(fairRank(n, w * 2)).toBeLessThanOrEqual(fairRank(n, w));
        expect(fairRank(n, 1)).toBe(n);
      }),
    );
    // A weight that is not a positive number counts as 1.
    expect(fairRank(5, 0)).toBe(5);
    expect(fairRank(5, Number.NaN)).toBe(5);
  });
});
