/**
 * What a model receives for an item's input. JSON text is parsed (it may be
 * any JSON value). A compact input (a flat array of finite numbers, see
 * @inferq/core's compact-input.ts) arrived decoded: a model that opted in
 * with `typedInputs` gets the Float64Array itself, and copies it straight
 * into its tensor; any other model gets the `number[]` JSON.parse would have
 * given it (-0 is already 0), so a model never sees a difference it did not
 * ask for.
 */
import type { ItemInput } from '@inferq/core/protocol';

/** The model's value for `input`; throws (SyntaxError) only for text that is not JSON. */
export function modelInput(input: ItemInput, typedInputs: boolean): unknown {
  if (typeof input === 'string') return JSON.parse(input) as unknown;
  return typedInputs ? input : Array.from(input);
}
