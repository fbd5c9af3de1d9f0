import { describe, expect, it } from 'vitest';
import { CoalescingStage } from '../src/coalescing-stage.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('CoalescingStage', () => {
  it('sends items pushed in one macrotask together', async () => {
    const sends: number[][] = [];
    const stage = new CoalescingStage<number>(async (xs) => void sends.push(xs), () => undefined);
    stage.push(1);
    stage.push(2);
    await Promise.resolve();
    stage.push(3);
    await tick();
    await tick();
    expect(sends).toEqual([[1, 2, 3]]);
    expect(stage.idle).toBe(true);
  });

  it('holds new items while maxInFlight sends are running, then sends them together', async () => {
    const gates = [deferred(), deferred(), deferred()];
    const sends: number[][] = [];
    const stage = new CoalescingStage<number>(
      (xs) => {
        sends.push(xs);
        return gates[sends.length - 1]!.promise;
      },
      () => undefined,
      1,
    );
    stage.push(1);
    await tick();
    stage.push(2);
    stage.push(3);
    await tick();
    stage.push(4);
    await tick();
    expect(sends).toEqual([[1]]);
    gates[0]!.resolve();
    await tick();
    await tick();
    expect(sends).toEqual([[1], [2, 3, 4]]);
    gates[1]!.resolve();
    await tick();
    expect(stage.idle).toBe(true);
  });

  it('allows maxInFlight concurrent sends and reports a failed send with its items', async () => {
    const failures: number[][] = [];
    let running = 0;
    let peak = 0;
    const stage = new CoalescingStage<number>(
      async (xs) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        if (xs.includes(13)) throw new Error('unlucky');
      },
      (_err, xs) => failures.push(xs),
      2,
    );
    for (let i = 0; i < 20; i++) {
      stage.push(i);
      await tick();
    }
    while (!stage.idle) await new Promise((r) => setTimeout(r, 5));
    expect(peak).toBe(2);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain(13);
  });
});
