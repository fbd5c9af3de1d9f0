import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '@inferq/testkit';

describe('test Redis helper', () => {
  let r: TestRedis;
  beforeAll(async () => {
    r = await startTestRedis({ ownServer: true });
  });
  afterAll(() => r.cleanup());

  it('gives a real server that survives a restart with AOF', async () => {
    const c = r.connect();
    await c.set(`${r.prefix}:k`, 'v');
    expect(await c.get(`${r.prefix}:k`)).toBe('v');
    await r.server!.stop();
    await r.server!.restart();
    const c2 = r.connect();
    expect(await c2.get(`${r.prefix}:k`)).toBe('v');
  });

  it('a killed server refuses connections until restarted', async () => {
    await r.server!.kill();
    expect(r.server!.running).toBe(false);
    await r.server!.restart();
    expect(await r.connect().ping()).toBe('PONG');
  });
});
