/**
 * Client ids become Redis keys, flight fields and inbox lines: they are safe
 * whatever the host name is. A host name with a space, a colon or a pipe
 * once made every request of that client time out.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WIRE_ID_PATTERN, newInstanceId } from '@inferq/core/protocol';
import { InferenceClient } from '@inferq/client';
import { InferenceWorker } from '@inferq/worker';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

const HOST = 'build box:7|ünïcode\tname';
vi.mock('node:os', async (importOriginal) => ({ ...(await importOriginal<typeof import('node:os')>()), hostname: () => HOST }));

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(() => redis.cleanup());

describe('client ids', () => {
  it('are made of the wire alphabet whatever the host name', () => {
    for (const host of [HOST, '', ' ', 'a'.repeat(500), 'x|y z:w\n']) expect(newInstanceId(host)).toMatch(WIRE_ID_PATTERN);
  });

  it('a client on a host whose name has spaces, colons and pipes is answered, cached or not', async () => {
    const prefix = redis.newPrefix();
    const worker = new InferenceWorker<{ x: number }, { y: number }>({ redis: redis.url, model: 'host', prefix, config: { batchTimeoutMs: 5 }, run: async (xs) => xs.map((x) => ({ y: x.x + 1 })) });
    await worker.start();
    const client = new InferenceClient<{ x: number }, { y: number }>({ redis: redis.url, model: 'host', prefix });
    try {
      expect(client.id).toMatch(/^build_box_7/);
      const [a, b] = await Promise.all([client.infer({ x: 1 }, { timeoutMs: 5000 }), client.infer({ x: 2 }, { timeoutMs: 5000, useCache: false })]);
      expect([a.output.y, b.output.y]).toEqual([2, 3]);
    } finally {
      await client.close({ timeoutMs: 100 });
      await worker.stop();
    }
  });
});
