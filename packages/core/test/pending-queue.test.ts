/**
 * PendingQueue against a reference (one array sorted by priority, then
 * arrival) over random adds, removals and takes: the serving order, the
 * oldest item and the size must always agree (also when the oldest item is
 * offered first, a starved item's place).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PendingQueue } from '../src/pending-queue.js';

interface It {
  priority: number;
  seq: number;
}

type Cmd = { kind: 'add'; priority: number } | { kind: 'delete'; pick: number } | { kind: 'take'; max: number; skipOdd: boolean; oldestFirst: boolean };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('add' as const), priority: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('take' as const), max: fc.integer({ min: 1, max: 5 }), skipOdd: fc.boolean(), oldestFirst: fc.boolean() }) },
);

describe('PendingQueue', () => {
  it('serves by priority then arrival, and knows the oldest, under random use', () => {
    fc.assert(
      fc.property(fc.array(cmdArb, { maxLength: 80 }), (cmds) => {
        const q = new PendingQueue<It>();
        let ref: It[] = [];
        let seq = 0;
        const order = (xs: It[]) => [...xs].sort((a, b) => a.priority - b.priority || a.seq - b.seq);
        for (const c of cmds) {
          if (c.kind === 'add') {
            const it = { priority: c.priority, seq: seq++ };
            q.add(it);
            ref.push(it);
          } else if (c.kind === 'delete') {
            if (ref.length === 0) continue;
            const it = ref[c.pick % ref.length] as It;
            expect(q.delete(it)).toBe(true);
            expect(q.delete(it)).toBe(false);
            ref = ref.filter((x) => x !== it);
          } else {
            const accept = c.skipOdd ? (it: It) => it.seq % 2 === 0 : undefined;
            // oldestFirst: the oldest item (if accepted) ahead of the serving order.
            const head = c.oldestFirst && ref[0] ? [ref[0]] : [];
            const want = [...head, ...order(ref).filter((it) => !head.includes(it))]
              .filter((it) => !accept || accept(it))
              .slice(0, c.max);
            expect(q.take(c.max, accept, c.oldestFirst)).toEqual(want);
            ref = ref.filter((x) => !want.includes(x));
          }
          expect(q.size).toBe(ref.length);
          expect(q.oldest()).toBe(ref[0]);
          expect(q.firstPriority()).toBe(order(ref)[0]?.priority);
          expect([...q.values()]).toEqual(ref);
        }
      }),
      { numRuns: 300 },
    );
  });
});
