/**
 * One model, two applications: a flooder and a polite tenant, each its own
 * process, against a worker process whose operator set the model's bound.
 * Before tenants (the bound was each client's own setting), a polite caller
 * next to a flooder was refused 80 % of the time, and 100 % when the flooder
 * set its own limit to 1e6. Now the bound is the operator's and shared
 * fairly: the polite tenant, under its share, is never refused, whatever the
 * flooder configures; the flooder still gets the rest of the capacity.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelKeys, readTenantStats } from '@inferq/core';
import { CLIENT_CLI, findPromtool, promtoolCheckMetrics, startTestRedis, startWorkerProcess, spawnNode, type SpawnedProcess, type TestRedis } from '@inferq/testkit';

let redis: TestRedis;
const started: SpawnedProcess[] = [];
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await Promise.all(started.map((p) => p.kill()));
  await redis.cleanup();
});

const FIXTURES = new URL('./fixtures/', import.meta.url);

function load(prefix: string, model: string, env: Record<string, string>): SpawnedProcess {
  const p = spawnNode(new URL('tenant-load.ts', FIXTURES).pathname, [], { REDIS_URL: redis.url, MODEL: model, PREFIX: prefix, ...env });
  started.push(p);
  return p;
}

async function summary(p: SpawnedProcess): Promise<{ tenant: string; sent: number; ok: number; refused: number; timeouts: number; other: number; p50: number; p99: number }> {
  await p.waitForLine(/^DONE$/, 60_000);
  const line = p.lines.find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no summary from the load process: ${p.stderr().slice(-2000)}`);
  return JSON.parse(line);
}

describe('tenants', () => {
  it('a polite tenant next to a flooder is not refused, however the flooder configures its client; the flooder gets the rest', async () => {
    const prefix = redis.newPrefix();
    const model = 'shared';
    // The operator's bound: 40 requests queued. The model: 20 ms per call of up to 8 (~400 req/s).
    const worker = await startWorkerProcess({
      redisUrl: redis.url,
      model,
      prefix,
      module: new URL('square-model.mjs', FIXTURES).pathname,
      args: ['--max-queue-length', '40', '--max-batch-size', '8', '--num-workers', '1', '--batch-timeout-ms', '2'],
    });
    started.push(worker);
    // The flooder tries to raise the bound for itself (1e6) and keeps 300 requests knocking.
    const flood = load(prefix, model, { TENANT: 'flood', MODE: 'flood', WINDOW: '300', DURATION_MS: '6000', MAX_QUEUE_LENGTH: '1000000', SLEEP_MS: '20' });
    await flood.waitForLine(/^STARTED$/, 30_000);
    await new Promise((r) => setTimeout(r, 500)); // the queue is full before the polite tenant starts
    // The polite tenant: 20 req/s, about 5 % of capacity.
    const polite = load(prefix, model, { TENANT: 'polite', MODE: 'rate', RATE: '20', DURATION_MS: '5000', SLEEP_MS: '20' });
    const [f, p] = await Promise.all([summary(flood), summary(polite)]);
    // eslint-disable-next-line no-console
    console.log(`tenants: flood ${JSON.stringify(f)}; polite ${JSON.stringify(p)}`);
    expect(p.sent).toBeGreaterThanOrEqual(80);
    expect(p.refused / p.sent, 'polite tenant refused').toBeLessThanOrEqual(0.01);
    expect(p.timeouts + p.other).toBe(0);
    // The flooder was refused (the bound holds for it) yet answered most of the capacity.
    expect(f.refused).toBeGreaterThan(0);
    expect(f.ok).toBeGreaterThan(1000);
    // Per-tenant stats show both, from the shared hashes.
    const conn = redis.connect();
    const rows = await readTenantStats(conn, model, prefix);
    const polStats = rows.find((r) => r.tenant === 'polite');
    expect(polStats?.requests).toBe(p.sent);
    expect(polStats?.refused).toBe(p.refused);
    expect(rows.find((r) => r.tenant === 'flood')?.refused).toBe(f.refused);
    // The shared exporter labels them by tenant (and passes promtool's lint when it is installed).
    const cli = spawnNode(CLIENT_CLI, ['metrics', '--model', model, '--port', '0', '--redis', redis.url, '--prefix', prefix]);
    started.push(cli);
    const url = (await cli.waitForLine(/^METRICS /, 30_000)).slice('METRICS '.length);
    const text = await (await fetch(url)).text();
    expect(text).toContain(`inferq_tenant_requests_total{model="${model}",tenant="polite"} ${p.sent}`);
    expect(text).toContain(`inferq_tenant_refused_total{model="${model}",tenant="flood"} ${f.refused}`);
    expect(text).toMatch(/inferq_refused_total\{model="shared"\} \d+/);
    const promtool = findPromtool();
    if (promtool) expect(promtoolCheckMetrics(promtool, text).ok, 'promtool check metrics').toBe(true);
    // Everything answered: the ledger is empty again, and no tenant holds a place.
    for (let i = 0; i < 50 && (await conn.zcard(modelKeys(model, prefix).room)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await conn.zcard(modelKeys(model, prefix).room)).toBe(0);
    expect(await conn.hgetall(modelKeys(model, prefix).roomCounts)).toEqual({});
  }, 90_000);
});
