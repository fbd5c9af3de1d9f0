/**
 * Compact tensor inputs through a real Redis, client to model: a flat array
 * of finite numbers of an uncached request travels as `f64` (base64 of its
 * float64 values), a model gets the number[] it always got unless it opted
 * in (typedInputs) to a Float64Array; a compact input keys like the same
 * numbers sent as JSON text, so cached entries are shared across encodings;
 * a malformed or forged compact item fails alone. `compactInputs: false`
 * (a rolling upgrade with workers older than the field) sends JSON text.
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { ErrorCode, canonicalJson, keyFromCanonicalInput, modelKeys, type ModelIdentity } from '@inferq/core';
import { ENVELOPE_JOB_NAME, ENVELOPE_VERSION, encodeF64, flatNumbers, type RequestEnvelope, type RequestItem } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker, type ModelModule } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';
import { inboxOutcomes } from './fixtures/inbox-outcomes.js';

const h = useTestRedis();
const model = 'compact';
const identity: ModelIdentity = { model, modelVersion: '1', quantization: 'FP32' };

/** A model that answers what it was given: the input's kind and its numbers. */
function recorder(typedInputs: boolean): ModelModule & { seen: unknown[] } {
  const seen: unknown[] = [];
  return {
    seen,
    typedInputs,
    run: async (xs: unknown[]) => {
      seen.push(...xs);
      return xs.map((x) => ({ kind: x instanceof Float64Array ? 'Float64Array' : Array.isArray(x) ? 'array' : typeof x, values: x instanceof Float64Array ? Array.from(x) : x }));
    },
  };
}

async function start(module: ModelModule, prefix: string): Promise<void> {
  const worker = h.after(new InferenceWorker<unknown, unknown>({ redis: h.redis.url, model, prefix, config: { batchTimeoutMs: 2 }, module }), (w) => w.stop());
  await worker.start();
}

/** The items of every job the queue kept (completed or waiting), oldest first. */
async function sentItems(prefix: string): Promise<RequestItem[]> {
  const keys = modelKeys(model, prefix);
  const queue = new Queue(keys.queueName, { connection: h.redis.connect(), prefix: keys.queuePrefix });
  h.defer(() => queue.close());
  const jobs = await queue.getJobs(['completed', 'wait', 'active', 'prioritized']);
  return jobs.sort((a, b) => Number(a.id) - Number(b.id)).flatMap((j) => (j.data as RequestEnvelope).items);
}


describe('compact tensor inputs', () => {
  it('travel as f64 when uncached; a model gets number[] unless it opted in to Float64Array; values are exact', async () => {
    const inputs: unknown[] = [[0.1, -0, 1e-300, -1.2345678901234567e-6, 2 ** 53 + 2], new Float32Array([0.1, 2.5]), new Float64Array([Math.PI]), [1, [2]], { a: [1] }];
    const asJson = inputs.map((x) => JSON.parse(canonicalJson(x)) as unknown);
    for (const typed of [false, true]) {
      const prefix = h.redis.newPrefix();
      const m = recorder(typed);
      await start(m, prefix);
      const client = h.after(new InferenceClient<unknown, { kind: string; values: unknown }>({ redis: h.redis.url, model, prefix, config: { enableCaching: false } }), (c) => c.close({ timeoutMs: 100 }));
      const outs = [];
      for (const x of inputs) outs.push((await client.infer(x, { timeoutMs: 10_000 })).output);
      // The answer carries the same values as JSON text would have (-0 as 0, Float32Array widened exactly).
      expect(outs.map((o) => o.values)).toEqual(asJson);
      expect(outs.map((o) => o.kind)).toEqual(typed ? ['Float64Array', 'Float64Array', 'Float64Array', 'array', 'object'] : ['array', 'array', 'array', 'array', 'object']);
      // Exact, bit for bit: what the model saw is what JSON.parse of the canonical text gives.
      const seen = m.seen.slice(0, 3).map((x) => Array.from(x as ArrayLike<number>));
      seen.forEach((values, i) => values.forEach((v, j) => expect(Object.is(v, (asJson[i] as number[])[j])).toBe(true)));
      const items = await sentItems(prefix);
      expect(items.map((it) => (it.f64 !== undefined ? 'f64' : 'input'))).toEqual(['f64', 'f64', 'f64', 'input', 'input']);
    }
  });

  it('keys like the same numbers sent as JSON: a compact job fills the cache a cached client reads, and vice versa', async () => {
    const prefix = h.redis.newPrefix();
    const keys = modelKeys(model, prefix);
    const m = recorder(true);
    await start(m, prefix);
    const numbers = [0.5, -0, 3, 1e21];
    const key = keyFromCanonicalInput(identity, canonicalJson(numbers));
    // A compact item carrying its key (no client sends one today; any client may): checked and cached.
    const queue = new Queue(keys.queueName, { connection: h.redis.connect(), prefix: keys.queuePrefix });
    h.defer(() => queue.close());
    const sender = 'sender-1-0';
    const f64 = encodeF64(flatNumbers(numbers) as Float64Array);
    await queue.add(ENVELOPE_JOB_NAME, { v: ENVELOPE_VERSION, client: sender, modelVersion: '1', quantization: 'FP32', items: [{ id: `${sender}.0`, f64, deadline: Date.now() + 60_000, key }] } satisfies RequestEnvelope);
    const conn = h.redis.connect();
    const got = await inboxOutcomes(conn, keys.inbox(sender), [`${sender}.0`]);
    expect(got.get(`${sender}.0`)?.code).toBe('ok');
    expect(await conn.hget(keys.cacheVal, key)).not.toBeNull();
    // A cached client (JSON text, the same key) is answered from that entry: the model is not called again.
    const calls = m.seen.length;
    const client = h.after(new InferenceClient<unknown, { values: unknown }>({ redis: h.redis.url, model, prefix }), (c) => c.close({ timeoutMs: 100 }));
    const r = await client.infer(new Float64Array(numbers), { timeoutMs: 10_000 });
    expect(r.cached).toBe(true);
    expect(r.output.values).toEqual([0.5, 0, 3, 1e21]);
    expect(m.seen.length).toBe(calls);
  });

  it('a malformed compact item, or one naming the key of other numbers, fails alone (INFERQ_PROTOCOL_ERROR)', async () => {
    const prefix = h.redis.newPrefix();
    const keys = modelKeys(model, prefix);
    await start(recorder(true), prefix);
    const queue = new Queue(keys.queueName, { connection: h.redis.connect(), prefix: keys.queuePrefix });
    h.defer(() => queue.close());
    const c = 'hand-1-0';
    const good = encodeF64(new Float64Array([1, 2]));
    const nan = Buffer.alloc(8);
    nan.writeDoubleLE(Number.NaN, 0);
    const deadline = Date.now() + 60_000;
    await queue.add(ENVELOPE_JOB_NAME, {
      v: ENVELOPE_VERSION,
      client: c,
      modelVersion: '1',
      quantization: 'FP32',
      items: [
        { id: `${c}.0`, f64: 'not base64!', deadline },
        { id: `${c}.1`, f64: nan.toString('base64'), deadline },
        { id: `${c}.2`, f64: good, deadline, key: keyFromCanonicalInput(identity, canonicalJson([1, 3])) },
        { id: `${c}.3`, f64: good, deadline },
      ],
    } satisfies RequestEnvelope);
    const conn = h.redis.connect();
    const got = await inboxOutcomes(conn, keys.inbox(c), [0, 1, 2, 3].map((i) => `${c}.${i}`));
    expect([0, 1, 2].map((i) => got.get(`${c}.${i}`)?.code)).toEqual([ErrorCode.PROTOCOL_ERROR, ErrorCode.PROTOCOL_ERROR, ErrorCode.PROTOCOL_ERROR]);
    expect(got.get(`${c}.3`)).toEqual({ code: 'ok', output: { kind: 'Float64Array', values: [1, 2] } });
    expect(await conn.hget(keys.cacheVal, keyFromCanonicalInput(identity, canonicalJson([1, 3])))).toBeNull();
  });

  it('compactInputs: false sends JSON text (for workers that predate f64); oversized tensors are refused either way', async () => {
    const prefix = h.redis.newPrefix();
    await start(recorder(true), prefix);
    const client = h.after(new InferenceClient<unknown, { kind: string }>({ redis: h.redis.url, model, prefix, config: { enableCaching: false }, compactInputs: false }), (c) => c.close({ timeoutMs: 100 }));
    expect((await client.infer([1, 2, 3], { timeoutMs: 10_000 })).output.kind).toBe('array');
    expect((await sentItems(prefix)).map((it) => typeof it.input)).toEqual(['string']);
    // maxInputBytes means bytes of canonical JSON for both forms: 10 x "0.1" is 41 bytes.
    for (const compactInputs of [true, false]) {
      const small = h.after(new InferenceClient({ redis: h.redis.url, model, prefix, config: { enableCaching: false }, maxInputBytes: 40, compactInputs }), (c) => c.close({ timeoutMs: 100 }));
      await expect(small.infer(new Array(10).fill(0.1))).rejects.toMatchObject({ code: ErrorCode.INPUT_TOO_LARGE });
      await expect(small.infer([NaN])).rejects.toMatchObject({ code: ErrorCode.INPUT_NOT_SERIALIZABLE });
      expect((await small.infer(new Array(9).fill(0.1), { timeoutMs: 10_000 })).output).toBeDefined();
    }
  });
});
