/**
 * The worker CLI's `--module`: files, `builtin:noop`, and `builtin:onnx-default`
 * from the separate package @inferq/onnx (imported only when asked for; the
 * packaging test checks the typed error when it is not installed).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode, InferqError } from '@inferq/core';
import { BUILTIN_MODELS, ONNX_PACKAGE, loadModelModule } from '../src/index.js';

const SQUARE = fileURLToPath(new URL('../../integration/test/fixtures/square-model.mjs', import.meta.url));

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(InferqError);
    return (err as InferqError).code;
  }
  return undefined;
}

describe('loadModelModule', () => {
  it('loads a model file and builtin:noop', async () => {
    const square = await loadModelModule(SQUARE);
    expect(await square.run([{ x: 3 }])).toEqual([{ y: 9 }]);
    const noop = await loadModelModule('builtin:noop');
    expect(await noop.run([1, 'a'])).toEqual([1, 'a']);
  });

  it(`loads builtin:onnx-default from ${ONNX_PACKAGE}, at the quantization asked for`, async () => {
    expect(BUILTIN_MODELS).toContain('builtin:onnx-default');
    const onnx = await import('@inferq/onnx');
    const model = await loadModelModule('builtin:onnx-default', { quantization: 'INT8' });
    expect(model.name).toBe(onnx.DEFAULT_MODEL_INFO.name);
    expect(model.quantization).toBe('INT8');
  });

  it('refuses unknown built-ins and modules that export no model, with INFERQ_MODEL_MODULE_INVALID', async () => {
    expect(await codeOf(loadModelModule('builtin:nope'))).toBe(ErrorCode.MODEL_MODULE_INVALID);
    expect(await codeOf(loadModelModule(fileURLToPath(new URL('../package.json', import.meta.url))))).toBe(ErrorCode.MODEL_MODULE_INVALID);
    expect(await codeOf(loadModelModule('/nonexistent/model.mjs'))).toBe(ErrorCode.MODEL_MODULE_INVALID);
  });
});
