import { describe, expect, it } from 'vitest';
import { ModelGate } from '../src/model-gate.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

/** A call that records when it is in the model and returns when released. */
function call(gate: ModelGate, name: string, trace: string[], inModel: Set<string>, kind: 'shared' | 'alone' | 'last') {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  const fn = async () => {
    trace.push(`${name}+`);
    inModel.add(name);
    await done;
    inModel.delete(name);
    trace.push(`${name}-`);
  };
  const p = kind === 'shared' ? gate.shared(fn) : gate.alone(fn, { last: kind === 'last' });
  return { p, release };
}

describe('ModelGate', () => {
  it('ordinary batches share the model; an isolated call waits for them, has it alone, then they go on', async () => {
    const gate = new ModelGate();
    const trace: string[] = [];
    const inModel = new Set<string>();
    const s1 = call(gate, 's1', trace, inModel, 'shared');
    const s2 = call(gate, 's2', trace, inModel, 'shared');
    await tick();
    expect([...inModel]).toEqual(['s1', 's2']);
    const a = call(gate, 'a', trace, inModel, 'alone');
    const s3 = call(gate, 's3', trace, inModel, 'shared'); // arrives after the isolated call: waits for it
    await tick();
    expect(inModel.has('a') || inModel.has('s3')).toBe(false);
    s1.release();
    s2.release();
    await tick();
    expect([...inModel]).toEqual(['a']);
    a.release();
    await tick();
    expect([...inModel]).toEqual(['s3']);
    s3.release();
    await Promise.all([s1.p, s2.p, a.p, s3.p]);
    expect(gate.waiters).toBe(0);
  });

  it('a call marked last goes only when nothing else waits', async () => {
    const gate = new ModelGate();
    const trace: string[] = [];
    const inModel = new Set<string>();
    const s1 = call(gate, 's1', trace, inModel, 'shared');
    const last = call(gate, 'last', trace, inModel, 'last');
    const a = call(gate, 'a', trace, inModel, 'alone');
    const s2 = call(gate, 's2', trace, inModel, 'shared');
    await tick();
    s1.release();
    await tick();
    expect([...inModel]).toEqual(['a']);
    a.release();
    await tick();
    expect([...inModel]).toEqual(['s2']);
    s2.release();
    await tick();
    expect([...inModel]).toEqual(['last']);
    last.release();
    await Promise.all([s1.p, last.p, a.p, s2.p]);
    expect(trace).toEqual(['s1+', 's1-', 'a+', 'a-', 's2+', 's2-', 'last+', 'last-']);
  });

  it('a call that throws frees the model', async () => {
    const gate = new ModelGate();
    await expect(gate.alone(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(gate.shared(async () => 1)).resolves.toBe(1);
  });
});
