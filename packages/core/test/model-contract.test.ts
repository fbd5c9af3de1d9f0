import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeadlineExceededError, ErrorCode, InferqError, ModelError, ModelOutputMismatchError } from '../src/errors.js';
import { callModel, type ModelCallOutcome, type ModelSlot } from '../src/protocol/model-contract.js';

/** The batch-wide error of an outcome that must have failed. */
function batchError<O>(outcome: ModelCallOutcome<O>): InferqError {
  if (outcome.ok) throw new Error(`expected a failed batch, got ${JSON.stringify(outcome.slots)}`);
  return outcome.error;
}

/** The slots of an outcome that must have succeeded. */
function slotsOf<O>(outcome: ModelCallOutcome<O>): ModelSlot<O>[] {
  if (!outcome.ok) throw new Error(`expected slots, got ${outcome.error.message}`);
  return outcome.slots;
}

describe('callModel: failures of the whole batch', () => {
  it('a throw becomes ModelError with the message, the original as cause, and the details', async () => {
    const boom = new Error('boom');
    const err = batchError(
      await callModel<number, number>(
        async () => {
          throw boom;
        },
        [1, 2],
        { model: 'm' },
      ),
    );
    expect(err).toBeInstanceOf(ModelError);
    expect(err.code).toBe(ErrorCode.MODEL_FAILED);
    expect(err.message).toBe('boom');
    expect(err.cause).toBe(boom);
    expect(err.details).toMatchObject({ model: 'm' });
  });

  it('a rejected promise fails the batch; a thrown non-Error keeps its text', async () => {
    const err = batchError(await callModel<number, number>(() => Promise.reject('plain string'), [1]));
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toBe('plain string');
    expect(err.cause).toBe('plain string');
  });

  it('a synchronous throw fails the batch instead of escaping', async () => {
    const run = (): number[] => {
      throw new TypeError('sync');
    };
    const outcome = callModel<number, number>(run, [1]);
    expect(outcome).toBeInstanceOf(Promise);
    const err = batchError(await outcome);
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toBe('sync');
  });

  it('a thrown InferqError is kept as is', async () => {
    const typed = new DeadlineExceededError('too late');
    const err = batchError(
      await callModel<number, number>(() => {
        throw typed;
      }, [1]),
    );
    expect(err).toBe(typed);
  });

  it('a value whose text cannot be built still fails the batch, without throwing', async () => {
    const hostile = {
      toString(): string {
        throw new Error('no text');
      },
    };
    const err = batchError(await callModel<number, number>(() => Promise.reject(hostile), [1]));
    expect(err).toBeInstanceOf(ModelError);
    expect(err.cause).toBe(hostile);
  });

  it('a wrong number of outputs fails the batch, naming both lengths, with the details', async () => {
    const err = batchError(await callModel<number, number>(() => [1, 2], [1, 2, 3], { batcher: 'b' }));
    expect(err).toBeInstanceOf(ModelOutputMismatchError);
    expect(err.message).toContain('3 inputs');
    expect(err.message).toContain('2 outputs');
    expect(err.details).toMatchObject({ expected: 3, got: 2, batcher: 'b' });
  });

  it('a result that is not an array fails the batch', async () => {
    for (const result of [{ length: 2 }, null, undefined, 'ab', 2]) {
      const err = batchError(await callModel<number, number>(() => result as unknown as number[], [1, 2]));
      expect(err).toBeInstanceOf(ModelOutputMismatchError);
      expect(err.message).toContain('not an array');
    }
  });

  it('owes one output per input as given, even if the model shrinks its input array', async () => {
    const err = batchError(
      await callModel<number, number>((xs) => {
        xs.pop();
        return xs;
      }, [1, 2]),
    );
    expect(err).toBeInstanceOf(ModelOutputMismatchError);
  });
});

describe('callModel: slots', () => {
  it('ok slots carry the outputs in input order', async () => {
    const outcome = await callModel((xs: number[]) => xs.map((x) => x * 10), [1, 2, 3]);
    expect(slotsOf(outcome)).toEqual([
      { ok: true, output: 10 },
      { ok: true, output: 20 },
      { ok: true, output: 30 },
    ]);
  });

  it('an empty batch gives no slots', async () => {
    expect(slotsOf(await callModel((xs: number[]) => xs, []))).toEqual([]);
  });

  it('an Error in one slot fails that slot alone, as ModelError with its message, cause and index', async () => {
    const bad = new Error('cannot classify');
    const slots = slotsOf(await callModel<number, number>((xs) => xs.map((x) => (x === 2 ? bad : x)), [1, 2, 3], { model: 'm' }));
    expect(slots[0]).toEqual({ ok: true, output: 1 });
    expect(slots[2]).toEqual({ ok: true, output: 3 });
    const slot = slots[1]!;
    if (slot.ok) throw new Error('slot 1 should have failed');
    expect(slot.error).toBeInstanceOf(ModelError);
    expect(slot.error.message).toBe('cannot classify');
    expect(slot.error.cause).toBe(bad);
    expect(slot.error.details).toMatchObject({ model: 'm', index: 1 });
  });

  it('an InferqError in a slot is kept as is', async () => {
    const typed = new DeadlineExceededError('late item');
    const slots = slotsOf(await callModel<number, number>(() => [1, typed], [1, 2]));
    expect(slots[1]).toEqual({ ok: false, error: typed });
    expect((slots[1] as { error: InferqError }).error).toBe(typed);
  });

  it('falsy outputs (0, null, undefined, empty string) are outputs, not failures', async () => {
    const outputs = [0, null, undefined, ''];
    const slots = slotsOf(await callModel(() => outputs, [1, 2, 3, 4]));
    expect(slots).toEqual(outputs.map((output) => ({ ok: true, output })));
  });

  it('property: for any inputs and any mix of values and Errors, the slots match exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ input: fc.anything(), fails: fc.boolean(), output: fc.anything(), async: fc.boolean() }), { maxLength: 50 }),
        fc.boolean(),
        async (plan, asyncRun) => {
          const errors = plan.map((p, i) => (p.fails ? new Error(`item ${i}`) : undefined));
          const run = (inputs: unknown[]): Array<unknown | Error> | Promise<Array<unknown | Error>> => {
            expect(inputs).toEqual(plan.map((p) => p.input));
            const outs = plan.map((p, i) => errors[i] ?? p.output);
            return asyncRun ? Promise.resolve(outs) : outs;
          };
          const slots = slotsOf(await callModel(run, plan.map((p) => p.input)));
          expect(slots).toHaveLength(plan.length);
          slots.forEach((slot, i) => {
            const wanted = errors[i];
            if (wanted) {
              expect(slot.ok).toBe(false);
              const { error } = slot as { ok: false; error: InferqError };
              expect(error).toBeInstanceOf(ModelError);
              expect(error.message).toBe(wanted.message);
              expect(error.cause).toBe(wanted);
              expect(error.details).toMatchObject({ index: i });
            } else {
              expect(slot).toEqual({ ok: true, output: plan[i]!.output });
              expect((slot as { output: unknown }).output).toBe(plan[i]!.output);
            }
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});
