/**
 * Stable cache keys: SHA-256 (hex) of the canonical JSON of
 * `{ input, model, modelVersion, quantization }`. The same input gives the
 * same key in every process, unlike the original's per-process `hash()`.
 * The key doubles as the single-flight id of an in-flight request.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import type { Quantization } from './config.js';

export interface ModelIdentity {
  model: string;
  /** Bumped when the model's weights change, so old cache entries stop matching. Default '1'. */
  modelVersion?: string;
  quantization: Quantization;
}

/** The input's canonical JSON and its cache key, computed in one pass. */
export interface KeyedInput {
  json: string;
  key: string;
}

export function keyInput(identity: ModelIdentity, input: unknown): KeyedInput {
  const json = canonicalJson(input);
  return { json, key: keyFromCanonicalInput(identity, json) };
}

export function cacheKey(identity: ModelIdentity, input: unknown): string {
  return keyInput(identity, input).key;
}

/**
 * Sorted keys of the envelope are input < model < modelVersion < quantization,
 * so this string is exactly `canonicalJson({ input, model, modelVersion, quantization })`.
 */
export function keyFromCanonicalInput(identity: ModelIdentity, inputJson: string): string {
  const envelope =
    `{"input":${inputJson},"model":${JSON.stringify(identity.model)},` +
    `"modelVersion":${JSON.stringify(identity.modelVersion ?? '1')},"quantization":${JSON.stringify(identity.quantization)}}`;
  return createHash('sha256').update(envelope).digest('hex');
}
