/**
 * Results are bound to inputs by the worker: a job built by hand (anything
 * holding an application's Redis credentials can add one) whose item carries
 * one input and the cache key of another must not change anyone's answer.
 * The worker recomputes each key from the input it received and refuses a
 * mismatch (INFERQ_PROTOCOL_ERROR, to the forger only), caching, closing and
 * convicting nothing under the forged key.
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { ErrorCode, canonicalJson, keyFromCanonicalInput, modelKeys, type ModelIdentity } from '@inferq/core';
import { ENVELOPE_JOB_NAME, ENVELOPE_VERSION, claimFlights, type RequestEnvelope } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';
import { inboxOutcomes } from './fixtures/inbox-outcomes.js';

const h = useTestRedis();

const model = 'forged';
const identity: ModelIdentity = { model, modelVersion: '1', quantization: 'FP32' };


describe('a hand-built job with a forged cache key', () => {
  it('is refused for that item; nothing is cached under the victim key and the victim gets its own answer', async () => {
    const prefix = h.redis.newPrefix();
    const keys = modelKeys(model, prefix);
    const worker = new InferenceWorker<unknown, unknown>({ redis: h.redis.url, model, prefix, config: { batchTimeoutMs: 5 }, run: async (xs) => xs.map((x) => ({ echo: x })) });
    h.defer(() => worker.stop());
    await worker.start();
    const conn = h.redis.connect();

    const victimInput = { text: 'what is 2+2' };
    const victimKey = keyFromCanonicalInput(identity, canonicalJson(victimInput));
    const evil = canonicalJson('EVIL');
    // The attacker also owns the victim key's flight, as its own claim would make it.
    const attacker = 'attacker-1-0';
    await claimFlights(conn, keys, attacker, [{ id: `${attacker}.0`, key: victimKey, deadline: Date.now() + 60_000 }]);
    const queue = new Queue(keys.queueName, { connection: h.redis.connect(), prefix: keys.queuePrefix });
    h.defer(() => queue.close());
    const forged: RequestEnvelope = {
      v: ENVELOPE_VERSION,
      client: attacker,
      modelVersion: '1',
      quantization: 'FP32',
      items: [
        { id: `${attacker}.0`, input: evil, deadline: Date.now() + 60_000, key: victimKey },
        // An honest item of the same job is still computed.
        { id: `${attacker}.1`, input: canonicalJson(7), deadline: Date.now() + 60_000, key: keyFromCanonicalInput(identity, canonicalJson(7)) },
      ],
    };
    await queue.add(ENVELOPE_JOB_NAME, forged);

    const got = await inboxOutcomes(conn, keys.inbox(attacker), [`${attacker}.0`, `${attacker}.1`]);
    expect(got.get(`${attacker}.0`)?.code).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(got.get(`${attacker}.1`)).toEqual({ code: 'ok', output: { echo: 7 } });
    // Nothing under the victim key: no cache entry, and the flight is not closed by the refusal.
    expect(await conn.hget(keys.cacheVal, victimKey)).toBeNull();

    // The victim asks after the forger's flight ends: it must get its own input's answer.
    await conn.del(keys.flight(victimKey));
    const victim = new InferenceClient<unknown, { echo: unknown }>({ redis: h.redis.url, model, prefix });
    h.defer(() => victim.close({ timeoutMs: 100 }));
    expect((await victim.infer(victimInput, { timeoutMs: 10_000 })).output).toEqual({ echo: victimInput });
    expect((await victim.infer(victimInput, { timeoutMs: 10_000 })).output).toEqual({ echo: victimInput });
  });

  it('a non-canonical input text is hashed as given: it gets its own key, never a canonical one', async () => {
    const prefix = h.redis.newPrefix();
    const keys = modelKeys(model, prefix);
    const worker = new InferenceWorker<unknown, unknown>({ redis: h.redis.url, model, prefix, config: { batchTimeoutMs: 5 }, run: async (xs) => xs.map((x) => ({ echo: x })) });
    h.defer(() => worker.stop());
    await worker.start();
    const conn = h.redis.connect();
    const queue = new Queue(keys.queueName, { connection: h.redis.connect(), prefix: keys.queuePrefix });
    h.defer(() => queue.close());
    const canonical = canonicalJson({ a: 1, b: 2 });
    const spaced = '{ "b": 2, "a": 1 }';
    const client = 'attacker-2-0';
    // Claiming the canonical key with the spaced text: refused.
    await queue.add(ENVELOPE_JOB_NAME, {
      v: ENVELOPE_VERSION,
      client,
      modelVersion: '1',
      quantization: 'FP32',
      items: [
        { id: `${client}.0`, input: spaced, deadline: Date.now() + 60_000, key: keyFromCanonicalInput(identity, canonical) },
        { id: `${client}.1`, input: spaced, deadline: Date.now() + 60_000, key: keyFromCanonicalInput(identity, spaced) },
      ],
    } satisfies RequestEnvelope);
    const got = await inboxOutcomes(conn, keys.inbox(client), [`${client}.0`, `${client}.1`]);
    expect([got.get(`${client}.0`)?.code, got.get(`${client}.1`)?.code]).toEqual([ErrorCode.PROTOCOL_ERROR, 'ok']);
    expect(await conn.hget(keys.cacheVal, keyFromCanonicalInput(identity, canonical))).toBeNull();
    // The spaced text's own key holds its answer: a slot no honest client ever reads.
    expect(await conn.hget(keys.cacheVal, keyFromCanonicalInput(identity, spaced))).not.toBeNull();
  });
});
