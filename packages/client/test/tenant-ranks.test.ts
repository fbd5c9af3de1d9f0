/**
 * TenantRanks against its rule over random sequences of requests: a rank is
 * the fair rank of the tenant's count, never below the last one while the
 * tenant stays busy (so a tenant's requests keep their order), and a tenant
 * that went idle starts again from its fair rank (a polite tenant is not
 * remembered as the flood it once was).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fairRank } from '@inferq/core/protocol';
import { TenantRanks } from '../src/queue-admission.js';

describe('TenantRanks', () => {
  it('never goes down while the tenant is busy; restarts at its fair rank when idle', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ n: fc.integer({ min: 1, max: 500 }), idle: fc.boolean() }), { maxLength: 100 }), fc.constantFrom(0.5, 1, 2, 3), (reqs, weight) => {
        const ranks = new TenantRanks();
        let prev = 0;
        for (const { n, idle } of reqs) {
          const r = ranks.rank(n, weight, idle);
          expect(r).toBeGreaterThanOrEqual(fairRank(n, weight));
          if (idle) expect(r).toBe(fairRank(n, weight));
          else expect(r).toBe(Math.max(prev, fairRank(n, weight)));
          prev = r;
        }
      }),
    );
  });

  it('keeps a draining flood in order: a falling count does not rank newer requests ahead', () => {
    const ranks = new TenantRanks();
    const first = [64, 63, 40, 10, 2].map((n) => ranks.rank(n, 1, false));
    expect(first).toEqual([64, 64, 64, 64, 64]);
    // Idle again, then one request: rank 1, ahead of any flood.
    expect(ranks.rank(1, 1, true)).toBe(1);
  });
});
