/**
 * `isInferqError(err, code?)`: what it narrows a caught `unknown` to (checked
 * by tsc through `expectTypeOf`, which `npx tsc -p tsconfig.json` runs over
 * this file) and what it accepts at run time.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ConfigError, ErrorCode, InferqError, QueueFullError, TimeoutError, errorFromWire, isInferqError } from '../src/index.js';
import { errorToWire } from '../src/errors.js';

/** What a `catch` clause hands over: an `unknown`. */
function caught(make: () => never): unknown {
  try {
    make();
  } catch (err) {
    return err;
  }
  throw new Error('did not throw');
}

describe('isInferqError', () => {
  it('narrows an unknown to InferqError, and with a code to that code', () => {
    const err = caught(() => {
      throw new TimeoutError(50);
    });
    expectTypeOf(err).toEqualTypeOf<unknown>();
    if (isInferqError(err)) {
      expectTypeOf(err).toExtend<InferqError>();
      expectTypeOf(err.code).toEqualTypeOf<ErrorCode>();
      expectTypeOf(err.details).toEqualTypeOf<Record<string, unknown>>();
    }
    if (isInferqError(err, ErrorCode.TIMEOUT)) {
      expectTypeOf(err.code).toEqualTypeOf<'INFERQ_TIMEOUT'>();
      // @ts-expect-error narrowed to one code: another is not comparable
      expect(err.code === ErrorCode.QUEUE_FULL).toBe(false);
    }
    // Without a guard a caught error has no `code` to read.
    // @ts-expect-error 'err' is of type 'unknown'
    expect(err.code).toBe(ErrorCode.TIMEOUT);
  });

  it('narrows only as far as it knows: to InferqError with the code, not to a subclass', () => {
    const err: unknown = new QueueFullError(10, 200);
    if (isInferqError(err, ErrorCode.QUEUE_FULL)) {
      expectTypeOf(err).not.toExtend<QueueFullError>();
      // The subclass's own field comes with instanceof.
      expect(err instanceof QueueFullError && err.retryAfterMs).toBe(200);
    }
  });

  it('is true for inferq errors (with their code), false for anything else', () => {
    const timeout = new TimeoutError(50);
    expect(isInferqError(timeout)).toBe(true);
    expect(isInferqError(timeout, ErrorCode.TIMEOUT)).toBe(true);
    expect(isInferqError(timeout, ErrorCode.QUEUE_FULL)).toBe(false);
    expect(isInferqError(new ConfigError('x', [{ field: 'a', message: 'b' }]), ErrorCode.CONFIG_INVALID)).toBe(true);
    // Rebuilt from a worker's answer: a plain InferqError with the code.
    const wire = errorFromWire(errorToWire(new InferqError(ErrorCode.MODEL_TIMEOUT, 'slow')));
    expect(isInferqError(wire, ErrorCode.MODEL_TIMEOUT)).toBe(true);

    for (const other of [new Error('plain'), Object.assign(new Error('node'), { code: 'ECONNREFUSED', details: {} }), { code: ErrorCode.TIMEOUT, details: {}, message: 'not an Error' }, 'INFERQ_TIMEOUT', null, undefined, 42]) {
      expect(isInferqError(other), String(other)).toBe(false);
    }
    // A known code without a details object is not enough either.
    expect(isInferqError(Object.assign(new Error('half'), { code: ErrorCode.TIMEOUT }))).toBe(false);
  });

  it('recognises an error of another copy of @inferq/core, where instanceof fails', () => {
    // What a second copy's InferqError looks like from here: another class with the same shape.
    class OtherCopyInferqError extends Error {
      readonly code = ErrorCode.TIMEOUT;
      readonly details = { timeoutMs: 5 };
    }
    const foreign: unknown = new OtherCopyInferqError('Request timed out after 5 ms.');
    expect(foreign instanceof InferqError).toBe(false);
    expect(isInferqError(foreign)).toBe(true);
    expect(isInferqError(foreign, ErrorCode.TIMEOUT)).toBe(true);
    expect(isInferqError(foreign, ErrorCode.MODEL_FAILED)).toBe(false);
  });
});
