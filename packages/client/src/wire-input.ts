/**
 * How a request's input leaves the client: validated, size-checked, keyed
 * (when it uses the cache) and encoded, in one place.
 *
 * A flat array of finite numbers of a request WITHOUT a cache key travels in
 * compact form (base64 of its float64 values, @inferq/core's
 * compact-input.ts): no number is formatted here or parsed in the worker,
 * and `maxInputBytes` is checked against a bound of its JSON, writing the
 * text only when the bound does not settle it.
 *
 * A request that uses the cache keeps sending canonical JSON text: its key
 * is SHA-256 over that text (so keys keep their meaning for cached entries
 * and for clients of every version), so the client writes the text anyway,
 * and a worker must write it back from the numbers to check the key, which
 * costs what parsing the text does. Measured (client + worker CPU per
 * 256-float input): compact 0.92-1.04x for a cached input, nothing gained;
 * 0.2-0.3x for an uncached one (docs/architecture.md, "Tensor inputs travel
 * compact"). Text also keeps cached requests served by workers that predate
 * `f64`.
 *
 * Anything else (objects, nested arrays, NaN...) goes through canonicalJson,
 * which also gives every error.
 */
import { canonicalJson, keyFromCanonicalInput, type ModelIdentity } from '@inferq/core';
import { encodeF64, f64JsonMaxBytes, flatNumbers, type RequestItem } from '@inferq/core/protocol';

/** A prepared input: `text` is canonical JSON, or the compact form when `compact`. */
export interface WireInput {
  text: string;
  compact: boolean;
  key: string | undefined;
}

export interface WireInputOptions {
  identity: ModelIdentity;
  maxInputBytes: number;
  compactInputs: boolean;
}

/** Validates and encodes `value`; throws the typed errors of canonicalJson (InputNotSerializable, InputTooLarge). */
export function wireInput(value: unknown, useCache: boolean, o: WireInputOptions): WireInput {
  const numbers = !useCache && o.compactInputs ? flatNumbers(value) : undefined;
  if (numbers !== undefined) {
    // Exact size only when the bound does not settle it (the text of most tensors is never
    // written); then canonicalJson checks it, with its early refusal of a hopeless array.
    if (f64JsonMaxBytes(numbers.length) > o.maxInputBytes) canonicalJson(value, { maxBytes: o.maxInputBytes });
    return { text: encodeF64(numbers), compact: true, key: undefined };
  }
  // The size limit is enforced while serialising: work and memory bounded by the limit, not the input.
  const text = canonicalJson(value, { maxBytes: o.maxInputBytes });
  return { text, compact: false, key: useCache ? keyFromCanonicalInput(o.identity, text) : undefined };
}

/** The envelope item of a request: its input in the field its form travels in. */
export function requestItem(id: string, input: { readonly input: string; readonly compact: boolean }, deadline: number): RequestItem {
  return input.compact ? { id, f64: input.input, deadline } : { id, input: input.input, deadline };
}
