/**
 * No caller can hurt another: absurd timeouts are refused before anything
 * is written (and a flight's lifetime has a ceiling in the scripts
 * themselves), and inputs that JSON would confuse never share an answer.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, cacheKey, modelKeys, type InferqError } from '@inferq/core';
import { claimFlights } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { useTestRedis } from '@inferq/testkit/harness';

const h = useTestRedis();

async function system(prefix: string, model: string) {
  const worker = new InferenceWorker<unknown, unknown>({ redis: h.redis.url, model, prefix, config: { batchTimeoutMs: 5 }, run: async (xs) => xs.map((x) => ({ echo: x })) });
  h.defer(() => worker.stop());
  await worker.start();
  const client = () => {
    const c = new InferenceClient<unknown, { echo: unknown }>({ redis: h.redis.url, model, prefix });
    h.defer(() => c.close({ timeoutMs: 100 }));
    return c;
  };
  return client;
}

describe('hostile callers', () => {
  it('absurd timeouts are refused with a typed error and write nothing; others are not blocked', async () => {
    const prefix = h.redis.newPrefix();
    const client = await system(prefix, 'timeouts');
    const a = client();
    const outcomes = await Promise.all(
      [1e12, 1e308, Infinity, -1, 0, NaN, '5' as unknown as number].map((t, i) => a.infer({ x: i }, { timeoutMs: t }).catch((e: unknown) => e as InferqError)),
    );
    for (const o of outcomes) expect((o as InferqError).code).toBe(ErrorCode.INPUT_INVALID);
    const conn = h.redis.connect();
    expect(await conn.keys(`${prefix}:*flight*`)).toEqual([]);
    const b = client();
    expect((await b.infer({ x: 0 }, { timeoutMs: 5000 })).output).toEqual({ echo: { x: 0 } });
  });

  it('a flight lives at most an hour, whatever deadline a caller sends to the script', async () => {
    const prefix = h.redis.newPrefix();
    const conn = h.redis.connect();
    const keys = modelKeys('ceiling', prefix);
    const key = cacheKey({ model: 'ceiling', modelVersion: '1', quantization: 'FP32' }, { x: 1 });
    await claimFlights(conn, keys, 'c-1-0', [{ id: 'c-1-0.0', key, deadline: 1e15 }]);
    const ttl = await conn.pttl(keys.flight(key));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3_601_000);
    // A bad deadline anywhere in the call writes nothing at all.
    const other = cacheKey({ model: 'ceiling', modelVersion: '1', quantization: 'FP32' }, { x: 2 });
    await expect(claimFlights(conn, keys, 'c-1-0', [{ id: 'c-1-0.1', key: other, deadline: 1 }, { id: 'c-1-0.2', key: other, deadline: NaN }])).rejects.toThrow();
    expect(await conn.exists(keys.flight(other))).toBe(0);
  });

  it('inputs JSON would confuse (boxed primitives) never share an answer', async () => {
    const prefix = h.redis.newPrefix();
    const client = await system(prefix, 'boxed');
    const c = client();
    const [one, two, ab] = await Promise.all([c.infer(new Number(1)), c.infer(new Number(2)), c.infer(new String('ab'))]);
    expect(one.output).toEqual({ echo: 1 });
    expect(two.output).toEqual({ echo: 2 });
    expect(ab.output).toEqual({ echo: 'ab' });
    const e = (await c.infer(/regex/).catch((x: unknown) => x)) as InferqError;
    expect(e.code).toBe(ErrorCode.INPUT_NOT_SERIALIZABLE);
  });
});

describe('configuration', () => {
  it("a client reads only its own settings from the environment: a worker's bad setting does not stop it", async () => {
    const prefix = h.redis.newPrefix();
    const client = await system(prefix, 'envclient'); // the worker starts with a good environment
    const saved = process.env.INFERQ_MAX_BATCH_SIZE;
    process.env.INFERQ_MAX_BATCH_SIZE = 'lots';
    try {
      expect((await client().infer({ x: 1 })).output).toEqual({ echo: { x: 1 } });
    } finally {
      if (saved === undefined) delete process.env.INFERQ_MAX_BATCH_SIZE;
      else process.env.INFERQ_MAX_BATCH_SIZE = saved;
    }
  });
});

describe('options', () => {
  it('one prefix rule: a bad prefix is refused before any connection opens', () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    for (const prefix of ['my/app', 'a b', '{x}', '']) {
      let err: unknown;
      try {
        new InferenceClient({ redis: h.redis.url, model: 'm', prefix });
      } catch (e) {
        err = e;
      }
      expect((err as InferqError).code, prefix).toBe(ErrorCode.CONFIG_INVALID);
      expect(() => new InferenceWorker({ redis: h.redis.url, model: 'm', prefix, run: async (xs) => xs })).toThrow(/prefix/);
    }
    expect(process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length).toBe(before);
  });
});
