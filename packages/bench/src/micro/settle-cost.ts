/**
 * What the worker's settle script (core/src/lua/settle-var.lua) costs Redis
 * per item: `execSettle` of batches of `--batch` items, caching off, half the
 * items to each of two clients, from two jobs (each job's done bitmap read
 * and written) or from none, on a redis-server of its own. Per variant:
 * redis-server CPU (used_cpu_user + used_cpu_sys from INFO) per settle call
 * and per item; the variants alternate, rounds repeat, medians are printed.
 *
 * This is the number behind "the settle is the largest single Redis cost"
 * in docs/architecture.md: in the no-op bench, half of Redis's script time
 * was the settle before its done bitmaps moved from BITFIELD to GET/SET.
 *
 *   npx tsx --conditions=source packages/bench/src/micro/settle-cost.ts [--calls 2000] [--batch 64] [--rounds 5]
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { modelKeys } from '@inferq/core';
import { WaiterClients, execSettle, type SettleItem } from '@inferq/core/protocol';
import { RedisServerProcess } from '@inferq/testkit';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '2000' }, batch: { type: 'string', default: '64' }, rounds: { type: 'string', default: '5' } } });
const CALLS = Number(values.calls);
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);
/** A no-op model's answer, as the worker's success payload carries it. */
const PAYLOAD = '{"o":[0.1,0.2,0.3,0.4],"w":"w1","b":64}';
const OPTIONS = { maxSize: 10_000, maxBytes: 1e8, cacheTtlMs: 0, inboxTtlMs: 60_000, doneTtlMs: 60_000 };

async function redisCpuMs(conn: Redis): Promise<number> {
  const info = await conn.info('cpu');
  const get = (f: string) => Number(new RegExp(`${f}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return (get('used_cpu_user') + get('used_cpu_sys')) * 1000;
}

async function once(conn: Redis, withJobs: boolean): Promise<number> {
  await conn.flushall();
  const keys = modelKeys('settle-cost', 'micro');
  const waiters = new WaiterClients();
  const cpu0 = await redisCpuMs(conn);
  for (let k = 0; k < CALLS; k++) {
    const items: SettleItem[] = [];
    for (let i = 0; i < BATCH; i++) {
      const half = i < BATCH / 2 ? 0 : 1;
      items.push({ requestId: `c${half}.${k}.${i}`, client: `client-${half}`, payload: PAYLOAD, ...(withJobs && { job: { id: String(2 * k + half), index: i % Math.ceil(BATCH / 2) } }) });
    }
    await execSettle(conn, keys, items, OPTIONS, waiters);
    // The clients take their inboxes as they fill: keep them short, as in a live run.
    if (k % 50 === 49) await conn.del(keys.inbox('client-0'), keys.inbox('client-1'));
  }
  return ((await redisCpuMs(conn)) - cpu0) / CALLS;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const server = await RedisServerProcess.start();
const conn = new Redis(server.url);
try {
  const results: Record<string, number[]> = { 'two jobs (done bitmaps)': [], 'no jobs': [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of Object.keys(results)) {
      const us = (await once(conn, name !== 'no jobs')) * 1000;
      results[name]!.push(us);
      console.log(`round ${r + 1} ${name.padEnd(24)} ${us.toFixed(0).padStart(5)} us of Redis CPU per call, ${(us / BATCH).toFixed(2)} per item`);
    }
  }
  console.log(`\n${CALLS} settle calls of ${BATCH} items per round, ${ROUNDS} rounds, medians:`);
  for (const [name, xs] of Object.entries(results)) console.log(`  ${name.padEnd(24)} ${median(xs).toFixed(0).padStart(5)} us per call, ${(median(xs) / BATCH).toFixed(2)} us per item`);
} finally {
  conn.disconnect();
  await server.destroy();
}
