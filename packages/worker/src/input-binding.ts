/**
 * Results are bound to inputs by the worker, not by the client. A job's
 * item names the cache key its result is cached, de-duplicated, answered to
 * a flight's waiters and convicted under; anything holding an application's
 * Redis credentials can build a job by hand, so a key the client sent is a
 * claim, not a fact. The worker recomputes each key from the input text and
 * the identity it serves, and an item whose key does not match is refused
 * (INFERQ_PROTOCOL_ERROR) and settled WITHOUT its key: nothing is cached,
 * no flight is closed, no waiter is answered and nothing is convicted under
 * a key the worker did not compute.
 *
 * The input text is hashed as given, not re-canonicalised. The key is
 * defined as SHA-256 over `{"input":<text>,"model":..,"modelVersion":..,
 * "quantization":..}` for the exact text, and the model runs on
 * `JSON.parse(<text>)`: the output cached under a key is always the output
 * of the one text that hashes to it. A non-canonical text (other spacing or
 * key order) therefore gets a key of its own that no honest client ever
 * reads (honest clients hash canonical text), so it can fill cache slots
 * nobody asks for, which any caller can do with distinct inputs anyway.
 * Re-canonicalising would cost a parse and a serialisation per item (the
 * worker parses once more for the model) for no binding it does not already
 * have. The encoding is injective for a fixed identity: the text sits
 * between a fixed prefix and a fixed suffix, so two texts give the same
 * string only when they are equal.
 *
 * A compact input (numbers, compact-input.ts) is hashed as its canonical
 * JSON, written back from the very numbers the model gets (`f64Json`): the
 * binding holds the same way, and its key is the key of the same numbers
 * sent as text.
 */
import { ProtocolError, keyFromCanonicalInput, type Logger, type ModelIdentity } from '@inferq/core';
import { itemInputJson } from '@inferq/core/protocol';
import type { WorkItem } from './batch-pipeline.js';

export interface KeyCheck {
  /** Items whose key is absent (uncached request) or is the one the worker computed. */
  bound: WorkItem[];
  /** Items whose key is not their input's: each with its refusal (logged). */
  forged: Array<{ item: WorkItem; err: ProtocolError }>;
}

/**
 * Splits items into those whose cache key matches their input and those
 * whose key was forged; logs each forged one with its client, job and
 * request. One SHA-256 per cached item (see docs/security.md for its cost).
 */
export function checkInputKeys(items: readonly WorkItem[], identity: ModelIdentity, logger: Logger): KeyCheck {
  const bound: WorkItem[] = [];
  const forged: KeyCheck['forged'] = [];
  for (const item of items) {
    if (item.key === undefined) {
      bound.push(item);
      continue;
    }
    const computed = keyFromCanonicalInput(identity, itemInputJson(item.input));
    if (computed === item.key) {
      bound.push(item);
      continue;
    }
    const err = new ProtocolError(`Request ${item.id} names cache key ${item.key}, which is not the key of the input it carries; refused, nothing cached under either key.`, {
      details: { requestId: item.id, client: item.client, jobId: item.jobId, sentKey: item.key, computedKey: computed },
    });
    logger.error({ err, client: item.client, jobId: item.jobId, requestId: item.id }, 'request item names the cache key of another input (forged job?); refused');
    forged.push({ item, err });
  }
  return { bound, forged };
}

/** The item without its key: settled to its own client only (no cache, flight, waiters or conviction). */
export function unkeyed(item: WorkItem): WorkItem {
  return { id: item.id, input: item.input, deadline: item.deadline, index: item.index, key: undefined, q: item.q, client: item.client, tenant: item.tenant, jobId: item.jobId, shard: item.shard, t: item.t, enqueuedAt: item.enqueuedAt };
}
