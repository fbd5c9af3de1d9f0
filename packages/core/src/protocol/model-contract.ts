/**
 * The model contract, in one place. Every component that calls a user model
 * with a batch (the in-process batcher, `InferenceOptimizer.inferBatch`, the
 * worker's batch pipeline) applies the same rules, so a model behaves the
 * same wherever it runs:
 *
 * - a throw (or a rejected promise) fails the whole batch;
 * - a result that is not an array of one output per input fails the whole
 *   batch (`ModelOutputMismatchError`, naming both lengths);
 * - an `Error` in one output slot fails that item alone.
 *
 * Errors reach callers typed: an `InferqError` passes through as is (a model
 * may throw `DeadlineExceededError`, say), anything else becomes `ModelError`
 * with the original as `cause`. `callModel` reports, it never throws or logs:
 * each caller knows how to settle and what to log.
 */
import { InferqError, ModelError, ModelOutputMismatchError } from '../errors.js';

/** One output slot after the contract: the model's output, or the typed error of that item alone. */
export type ModelSlot<O> = { ok: true; output: O } | { ok: false; error: InferqError };

/** What one model call gave a batch: a slot per input, or one error for the whole batch. */
export type ModelCallOutcome<O> = { ok: true; slots: ModelSlot<O>[] } | { ok: false; error: InferqError };

/**
 * Calls `run` once on `inputs` and applies the contract: a throw (or rejected promise) fails the
 * batch (an InferqError is kept as is, anything else becomes ModelError with the message, cause set);
 * a result that is not an array of inputs.length items fails the batch with ModelOutputMismatchError
 * (details may include `details` passed in); an Error in one slot fails that slot alone (InferqError kept, else ModelError with its message and cause).
 * Never throws.
 *
 * `run` may type its slots as `O | Error` (as `BatchProcessor` does); `O` is then the output type alone.
 * `details` go into every error built here (plus `index` for a slot error).
 */
export async function callModel<I, O>(
  run: (inputs: I[]) => ReadonlyArray<O | Error> | Promise<ReadonlyArray<O | Error>>,
  inputs: I[],
  details: Record<string, unknown> = {},
): Promise<ModelCallOutcome<O>> {
  // Read before the call: a model that mutates its input array must not change what it owes.
  const expected = inputs.length;
  let result: unknown;
  try {
    // Inside the try, so a synchronous throw fails the batch like a rejection does.
    result = await run(inputs);
  } catch (thrown) {
    return { ok: false, error: asInferqError(thrown, details) };
  }
  if (!Array.isArray(result) || result.length !== expected) {
    return { ok: false, error: new ModelOutputMismatchError(expected, result, details) };
  }
  const slots = (result as unknown[]).map((out, index): ModelSlot<O> =>
    out instanceof Error ? { ok: false, error: asInferqError(out, { ...details, index }) } : { ok: true, output: out as O },
  );
  return { ok: true, slots };
}

/** Typed errors pass through; anything else becomes `ModelError` with the original as `cause`. */
function asInferqError(thrown: unknown, details: Record<string, unknown>): InferqError {
  if (thrown instanceof InferqError) return thrown;
  return new ModelError(messageOf(thrown), { cause: thrown, details });
}

/** The message of whatever was thrown; guarded because `String()` on a hostile object can throw, and callModel must not. */
function messageOf(thrown: unknown): string {
  try {
    return thrown instanceof Error ? thrown.message : String(thrown);
  } catch {
    return 'the model threw a value that cannot be turned into a message';
  }
}
