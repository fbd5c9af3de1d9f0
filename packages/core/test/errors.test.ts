import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCode, InferqError, ModelError, TimeoutError, errorFromWire, isErrorCode } from '../src/index.js';
import { errorToWire } from '../src/errors.js';

describe('error registry', () => {
  it('every code is documented in the README', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const code of Object.values(ErrorCode)) expect(readme, code).toContain(`\`${code}\``);
  });

  it('codes are unique and stable-looking', () => {
    const codes = Object.values(ErrorCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^INFERQ_[A-Z_]+$/);
  });

  it('round-trips through the wire with its code and message', () => {
    const back = errorFromWire(errorToWire(new TimeoutError(50)));
    expect(back).toBeInstanceOf(InferqError);
    expect(back.code).toBe(ErrorCode.TIMEOUT);
    expect(back.message).toContain('50 ms');
    const model = errorFromWire(errorToWire(new Error('boom')));
    expect(model).toBeInstanceOf(ModelError);
    expect(model.message).toBe('boom');
    expect(errorFromWire({ code: 'NOT_A_CODE' as ErrorCode, message: 'x' }).code).toBe(ErrorCode.MODEL_FAILED);
    expect(isErrorCode('INFERQ_TIMEOUT')).toBe(true);
  });

  it('keeps the cause and serialises to JSON for logs', () => {
    const cause = new Error('root');
    const e = new ModelError('wrapped', { cause, details: { batch: 3 } });
    expect(e.cause).toBe(cause);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ name: 'ModelError', code: ErrorCode.MODEL_FAILED, message: 'wrapped', details: { batch: 3 } });
  });
});
