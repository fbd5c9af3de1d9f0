/**
 * Fuzz over the public surface: random values (boxed primitives, Maps,
 * typed arrays, null prototypes, proxies whose traps throw, throwing
 * getters, deep nesting, inputs past maxInputBytes), random timeouts (valid
 * and absurd) and cache options, from several clients sharing inputs, all in
 * flight at once. Every call ends within its bound with the right answer or
 * an InferqError, and well-formed calls made alongside (the control) are all
 * answered correctly: no call changes another's outcome.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalJson, type InferqError } from '@inferq/core';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

const MAX_INPUT_BYTES = 64 * 1024;
const GRACE_MS = 2000;

let redis: TestRedis;
let worker: InferenceWorker;
let clients: InferenceClient<unknown, { echo: unknown }>[] = [];
const prefix = `fuzz${Date.now()}`;

beforeAll(async () => {
  redis = await startTestRedis();
  worker = new InferenceWorker({ redis: redis.url, model: 'fuzz', prefix, config: { batchTimeoutMs: 2, maxBatchSize: 64 }, run: async (xs) => xs.map((x) => ({ echo: x })) });
  await worker.start();
  clients = [0, 1, 2].map(() => new InferenceClient<unknown, { echo: unknown }>({ redis: redis.url, model: 'fuzz', prefix, maxInputBytes: MAX_INPUT_BYTES }));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close({ timeoutMs: 100 })));
  await worker?.stop();
  await redis?.cleanup();
});

const hostileValue = fc.oneof(
  fc.anything({
    maxDepth: 3,
    withBoxedValues: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withBigInt: true,
    withDate: true,
    withTypedArray: true,
    withSparseArray: true,
    withObjectString: true,
  }),
  fc.constant(null).map(() => new Proxy({}, { ownKeys: () => { throw new Error('trap'); } })),
  fc.constant(null).map(() => ({ get boom() { throw new Error('getter'); } })),
  fc.integer({ min: 200, max: 5000 }).map((depth) => {
    let v: unknown = 0;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  }),
  fc.integer({ min: MAX_INPUT_BYTES, max: 4 * MAX_INPUT_BYTES }).map((n) => 'x'.repeat(n)),
  fc.constantFrom(new Number(1), new Number(2), new String('ab'), Object('ab'), [new Boolean(false)]),
);
const timeout = fc.constantFrom<unknown>(3000, 5000, -1, 0, Number.NaN, Infinity, 1e12, 1e308, '5', undefined);
const call = fc.record({ client: fc.integer({ min: 0, max: 2 }), value: hostileValue, timeoutMs: timeout, useCache: fc.boolean() });

interface Outcome {
  ok: boolean;
  value?: { output: { echo: unknown } };
  error?: InferqError;
  ms: number;
}

function run(c: InferenceClient<unknown, { echo: unknown }>, value: unknown, opts: Record<string, unknown>): Promise<Outcome> {
  const t0 = Date.now();
  let p: Promise<{ output: { echo: unknown } }>;
  try {
    p = c.infer(value, opts as never);
  } catch (err) {
    return Promise.resolve({ ok: false, error: err as InferqError, ms: 0 }); // infer must never throw synchronously
  }
  return p.then(
    (v) => ({ ok: true, value: v, ms: Date.now() - t0 }),
    (e: unknown) => ({ ok: false, error: e as InferqError, ms: Date.now() - t0 }),
  );
}

describe('public surface fuzz', () => {
  it('every call ends in time with the right answer or an InferqError; the control calls are untouched', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 1000 }), async (calls, seed) => {
        const control = [0, 1, 2].map((i) => ({ client: i, value: { control: seed, i }, timeoutMs: 5000, useCache: i !== 1 }));
        const all = [...calls, ...control];
        const outcomes = await Promise.all(all.map((k) => run(clients[k.client]!, k.value, { timeoutMs: k.timeoutMs, useCache: k.useCache })));
        all.forEach((k, i) => {
          const o = outcomes[i]!;
          const validTimeout = typeof k.timeoutMs === 'number' && k.timeoutMs > 0 && k.timeoutMs <= 3_600_000;
          const bound = (validTimeout ? (k.timeoutMs as number) : typeof k.timeoutMs === 'undefined' ? 30_000 : 0) + GRACE_MS;
          expect(o.ms, `call ${i} took ${o.ms} ms`).toBeLessThanOrEqual(bound);
          let expected: unknown;
          let serialisable = true;
          try {
            expected = JSON.parse(canonicalJson(k.value, { maxBytes: MAX_INPUT_BYTES }));
          } catch {
            serialisable = false;
          }
          const acceptable = serialisable && (validTimeout || k.timeoutMs === undefined);
          if (acceptable) {
            expect(o.ok, `call ${i} should succeed: ${o.error?.message}`).toBe(true);
            expect(o.value?.output.echo).toEqual(expected);
          } else {
            expect(o.ok, `call ${i} should fail`).toBe(false);
            expect(String(o.error?.code), o.error?.message).toMatch(/^INFERQ_/);
          }
        });
      }),
      { numRuns: 40 },
    );
  }, 240_000);
});
