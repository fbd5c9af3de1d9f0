import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineScheduler, type DeadlineEntry } from '../src/deadline-scheduler.js';

interface E extends DeadlineEntry {
  id: number;
  deadline: number;
  done: boolean;
}

describe('DeadlineScheduler', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires entries at their deadline, in deadline order, with one timer', () => {
    const fired: number[] = [];
    const s = new DeadlineScheduler<E>((e) => fired.push(e.id));
    const now = Date.now();
    s.add({ id: 1, deadline: now + 100, done: false }, 100);
    s.add({ id: 2, deadline: now + 50, done: false }, 50);
    s.add({ id: 3, deadline: now + 100, done: false }, 100);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(49);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([2]);
    vi.advanceTimersByTime(50);
    expect(fired).toEqual([2, 1, 3]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('skips settled entries and leaves no timer once everything is settled', () => {
    const fired: number[] = [];
    const s = new DeadlineScheduler<E>((e) => fired.push(e.id));
    const a: E = { id: 1, deadline: Date.now() + 10, done: false };
    s.add(a, 10);
    a.done = true;
    vi.advanceTimersByTime(10);
    expect(fired).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('clear() drops entries and the timer', () => {
    const s = new DeadlineScheduler<E>(() => {
      throw new Error('must not fire');
    });
    s.add({ id: 1, deadline: Date.now() + 10, done: false }, 10);
    s.clear();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
  });

  it('property: every unsettled entry fires exactly once, never before its deadline', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 500 }), timeout: fc.constantFrom(10, 50, 200), settleAfter: fc.option(fc.integer({ min: 0, max: 300 })) }), { maxLength: 40 }),
        (specs) => {
          vi.setSystemTime(1_000_000);
          const fired = new Map<number, number>();
          const s = new DeadlineScheduler<E>((e) => {
            expect(Date.now()).toBeGreaterThanOrEqual(e.deadline);
            fired.set(e.id, (fired.get(e.id) ?? 0) + 1);
          });
          const entries: Array<E & { settleAfter: number | null; timeout: number }> = [];
          const sorted = specs.map((x, id) => ({ ...x, id })).sort((a, b) => a.at - b.at);
          let t = 0;
          for (const sp of sorted) {
            vi.advanceTimersByTime(sp.at - t);
            t = sp.at;
            const e = { id: sp.id, deadline: Date.now() + sp.timeout, done: false, settleAfter: sp.settleAfter, timeout: sp.timeout };
            entries.push(e);
            s.add(e, sp.timeout);
            if (sp.settleAfter !== null) setTimeout(() => (e.done = true), sp.settleAfter);
          }
          vi.advanceTimersByTime(2000);
          for (const e of entries) {
            const n = fired.get(e.id) ?? 0;
            if (e.settleAfter === null || e.settleAfter > e.timeout) expect(n).toBe(1);
            else if (e.settleAfter < e.timeout) expect(n).toBe(0);
            else expect(n).toBeLessThanOrEqual(1);
          }
          s.clear();
          vi.clearAllTimers();
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('DeadlineScheduler memory and bounds', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a removed entry leaves at once: memory follows what still waits, not the longest timeout', () => {
    const s = new DeadlineScheduler<E>(() => undefined);
    const entries: E[] = Array.from({ length: 300 }, (_, i) => ({ id: i, deadline: Date.now() + 60_000, done: false }));
    for (const e of entries) s.add(e, 60_000);
    expect(s.size).toBe(300);
    for (const e of entries) {
      e.done = true;
      s.remove(e);
    }
    expect(s.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a deadline beyond setTimeout's range does not make the timer spin", () => {
    const fired: number[] = [];
    const s = new DeadlineScheduler<E>((e) => fired.push(e.id));
    s.add({ id: 1, deadline: Date.now() + 2 ** 33, done: false });
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual([]);
    expect(vi.getTimerCount()).toBe(1);
  });

  it('property: with random removals, fires exactly the entries not removed, in deadline order, never early', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.integer({ min: 1, max: 1000 }), remove: fc.boolean() }), { maxLength: 200 }), (specs) => {
        vi.setSystemTime(1_000_000);
        const fired: E[] = [];
        const s = new DeadlineScheduler<E>((e) => {
          expect(Date.now()).toBeGreaterThanOrEqual(e.deadline);
          fired.push(e);
        });
        const es = specs.map((sp, i) => ({ id: i, deadline: 1_000_000 + sp.at, done: false }));
        es.forEach((e) => s.add(e));
        es.forEach((e, i) => {
          if (specs[i]!.remove) {
            e.done = true;
            s.remove(e);
          }
        });
        vi.advanceTimersByTime(1001);
        const expected = es.filter((_, i) => !specs[i]!.remove);
        expect(fired.map((e) => e.id).sort((a, b) => a - b)).toEqual(expected.map((e) => e.id));
        expect(fired.map((e) => e.deadline)).toEqual([...fired.map((e) => e.deadline)].sort((a, b) => a - b));
        expect(s.size).toBe(0);
      }),
    );
  });
});
