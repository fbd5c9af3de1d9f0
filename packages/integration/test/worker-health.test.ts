/**
 * A worker's health (docs/http-endpoints.md), with real workers and Redis:
 * - `inferq-worker --metrics-port` serves `/healthz` (live) and `/readyz`
 *   (takes jobs), 200 or 503 with a JSON body saying why; every model slot
 *   stuck past modelTimeoutMs makes it neither, until the model returns;
 * - the same server checks the Host header and, with `--auth-token`, the
 *   token on `/metrics`, but not on the probes (a kubelet sends none);
 * - `InferenceWorker.health()`: not ready as soon as its Redis connection is
 *   gone, not live once it has been gone past `redisGoneMs`; live and ready
 *   again when it is back; not ready while stopping, not live once stopped.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceWorker } from '@inferq/worker';
import { InferenceClient } from '@inferq/client';
import { TcpProxy, freePort, startTestRedis, startWorkerProcess, type SpawnedProcess, type TestRedis } from '@inferq/testkit';

const SQUARE = 'packages/integration/test/fixtures/square-model.mjs';
type In = { x: number; sleep?: number };
type Out = { y: number };

let redis: TestRedis;
const processes: SpawnedProcess[] = [];
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const p of processes) await p.stop(5000);
  await redis.cleanup();
});

interface Probe {
  status: number;
  body: { live?: boolean; ready?: boolean; reasons?: string[]; worker?: string };
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

async function probe(port: number, path: '/healthz' | '/readyz'): Promise<Probe> {
  const r = await get(port, path);
  return { status: r.status, body: JSON.parse(r.text) as Probe['body'] };
}

async function until<T>(read: () => Promise<T> | T, ok: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await read();
  while (!ok(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    v = await read();
  }
  return v;
}

describe('inferq-worker --metrics-port: /healthz and /readyz', () => {
  it('200 while it works; 503 with the reason while every model slot is stuck, 200 again once the model returns', async () => {
    const model = 'health';
    const port = await freePort();
    const worker = await startWorkerProcess({
      redisUrl: redis.url,
      model,
      module: SQUARE,
      prefix: redis.prefix,
      // --stuck-exit-factor 0: this test watches the stuck state pass; stuck-fleet.test.ts watches a worker leave.
      args: ['--metrics-port', String(port), '--num-workers', '1', '--model-timeout-ms', '300', '--batch-timeout-ms', '5', '--stuck-exit-factor', '0'],
    });
    processes.push(worker);
    const live = await probe(port, '/healthz');
    expect(live).toEqual({ status: 200, body: expect.objectContaining({ live: true, ready: true, reasons: [], worker: worker.workerId }) });
    expect((await probe(port, '/readyz')).status).toBe(200);

    // One model call that outlives modelTimeoutMs (300 ms) by far holds the only slot.
    const c = new InferenceClient<In, Out>({ redis: redis.url, model, prefix: redis.prefix });
    closers.push(() => c.close());
    const slow = c.infer({ x: 3, sleep: 3000 }, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    const stuck = await until(() => probe(port, '/healthz'), (p) => p.status === 503, 5000);
    expect(stuck.status).toBe(503);
    expect(stuck.body.live).toBe(false);
    expect(stuck.body.reasons?.join(' ')).toMatch(/every model slot is stuck past modelTimeoutMs \(1 of 1\)/);
    const notReady = await probe(port, '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body.ready).toBe(false);

    // The call returns after 3 s (its late result is dropped and the job retried; the retry is stuck again).
    const back = await until(() => probe(port, '/healthz'), (p) => p.status === 200, 10_000);
    expect(back.body).toEqual(expect.objectContaining({ live: true, ready: true, reasons: [] }));
    await c.close();
    void slow;
  }, 40_000);

  it('checks Host on every path; with --auth-token, /metrics needs the token and the probes do not', async () => {
    const port = await freePort();
    const token = 'worker-probe-token';
    const worker = await startWorkerProcess({
      redisUrl: redis.url,
      model: 'health-auth',
      module: 'builtin:noop',
      prefix: redis.prefix,
      args: ['--metrics-port', String(port), '--allow-host', 'w1.metrics.svc'],
      env: { INFERQ_HTTP_TOKEN: token },
    });
    processes.push(worker);
    expect((await get(port, '/metrics')).status).toBe(401);
    expect((await get(port, '/metrics', { authorization: 'Bearer nope' })).status).toBe(401);
    expect((await get(port, '/metrics', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await get(port, '/healthz')).status).toBe(200);
    expect((await get(port, '/readyz')).status).toBe(200);
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      expect((await get(port, path, { host: `evil.example:${port}`, authorization: `Bearer ${token}` })).status, path).toBe(421);
    }
    expect((await get(port, '/healthz', { host: `w1.metrics.svc:${port}` })).status).toBe(200);
  });
});

describe('InferenceWorker.health()', () => {
  it('not ready once Redis is gone, not live past redisGoneMs, both again when it is back; stopping and stopped', async () => {
    const target = new URL(redis.url);
    const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
    closers.push(() => proxy.close());
    const worker = new InferenceWorker<In, Out>({
      redis: proxy.url,
      model: 'health-redis',
      prefix: redis.prefix,
      run: async (xs) => xs.map((i) => ({ y: i.x * i.x })),
    });
    closers.push(() => worker.stop());
    expect(worker.health()).toEqual({ live: true, ready: false, reasons: ['not started (new)'] });
    await worker.start();
    expect(worker.health()).toEqual({ live: true, ready: true, reasons: [] });

    // The path to Redis dies: connections reset, new ones swallowed.
    proxy.blackhole();
    proxy.dropAll();
    const gone = await until(() => worker.health({ redisGoneMs: 60_000 }), (h) => !h.ready, 5000);
    expect(gone.ready).toBe(false);
    expect(gone.live).toBe(true); // not yet past the bound
    expect(gone.reasons.join(' ')).toMatch(/Redis connection/);
    const dead = await until(() => worker.health({ redisGoneMs: 500 }), (h) => !h.live, 5000);
    expect(dead).toEqual(expect.objectContaining({ live: false, ready: false }));

    proxy.restore();
    proxy.dropAll(); // a reconnect that hung on the swallowed handshake starts over
    const back = await until(() => worker.health({ redisGoneMs: 500 }), (h) => h.live && h.ready, 20_000);
    expect(back).toEqual({ live: true, ready: true, reasons: [] });

    const stopping = worker.stop();
    expect(worker.health()).toEqual(expect.objectContaining({ live: true, ready: false }));
    await stopping;
    expect(worker.health()).toEqual({ live: false, ready: false, reasons: ['stopped'] });
  }, 60_000);
});
