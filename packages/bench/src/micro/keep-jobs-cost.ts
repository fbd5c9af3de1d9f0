/**
 * What keeping the last N completed envelopes (client option `keepJobs`)
 * costs against removing each on completion (`removeOnComplete: true`, the
 * old behaviour): BullMQ jobs with inferq's job options and envelope-sized
 * data, added in bulk and completed by a BullMQ worker, on a redis-server of
 * its own. Per round and variant: jobs/s and redis-server CPU (used_cpu_user
 * + used_cpu_sys from INFO) per 1000 jobs; the variants alternate, rounds
 * repeat, medians are printed.
 *
 *   npx tsx --conditions=source packages/bench/src/micro/keep-jobs-cost.ts [--jobs 20000] [--rounds 5] [--items 64]
 */
import { parseArgs } from 'node:util';
import { Queue, Worker, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisServerProcess } from '@inferq/testkit';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '5' }, items: { type: 'string', default: '64' } } });
const JOBS = Number(values.jobs);
const ROUNDS = Number(values.rounds);
const ITEMS = Number(values.items);

const VARIANTS: Record<string, NonNullable<JobsOptions['removeOnComplete']>> = {
  'removeOnComplete: true': true,
  'keep last 100 (count 100, age 3600)': { count: 100, age: 3600 },
  'keep last 100 (count 100, no age)': { count: 100 },
  'keep last 10 (count 10, age 3600)': { count: 10, age: 3600 },
};

/** An envelope of ITEMS requests, each input 16 floats as JSON text (as the client sends them). */
function envelope(n: number) {
  return {
    v: 2,
    client: 'bench-1-1',
    modelVersion: '1',
    quantization: 'FP32',
    items: Array.from({ length: ITEMS }, (_, i) => ({ id: `bench-1-1.${n * ITEMS + i}`, input: JSON.stringify(Array.from({ length: 16 }, (_, k) => (i * 16 + k) / 7)), deadline: Date.now() + 30_000 })),
  };
}

async function redisCpu(conn: Redis): Promise<number> {
  const info = await conn.info('cpu');
  const get = (f: string) => Number(new RegExp(`${f}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return get('used_cpu_user') + get('used_cpu_sys');
}

async function once(url: string, name: string, removeOnComplete: NonNullable<JobsOptions['removeOnComplete']>): Promise<{ jobsPerS: number; cpuMsPer1000: number }> {
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  await conn.flushall();
  const opts: JobsOptions = { removeOnComplete, removeOnFail: { count: 100, age: 3600 }, attempts: 3, backoff: { type: 'exponential', delay: 200 } };
  const queue = new Queue('{m}', { connection: conn, prefix: 'inferq' });
  let done = 0;
  let resolveAll: () => void = () => undefined;
  const all = new Promise<void>((r) => (resolveAll = r));
  const workerConn = new Redis(url, { maxRetriesPerRequest: null });
  const worker = new Worker('{m}', async () => ({ items: ITEMS }), { connection: workerConn, prefix: 'inferq', concurrency: 64, autorun: false });
  worker.on('completed', () => {
    if (++done === JOBS) resolveAll();
  });
  const data = Array.from({ length: 200 }, (_, i) => envelope(i));
  const cpu0 = await redisCpu(conn);
  const t0 = performance.now();
  void worker.run();
  for (let sent = 0; sent < JOBS; sent += 200) {
    await queue.addBulk(data.slice(0, Math.min(200, JOBS - sent)).map((d) => ({ name: 'infer', data: d, opts })));
  }
  await all;
  const ms = performance.now() - t0;
  const cpu = (await redisCpu(conn)) - cpu0;
  await worker.close();
  await queue.close();
  workerConn.disconnect();
  conn.disconnect();
  void name;
  return { jobsPerS: (JOBS / ms) * 1000, cpuMsPer1000: (cpu * 1000 * 1000) / JOBS };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const server = await RedisServerProcess.start();
try {
  const results: Record<string, Array<{ jobsPerS: number; cpuMsPer1000: number }>> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, v] of Object.entries(VARIANTS)) {
      const x = await once(server.url, name, v);
      (results[name] ??= []).push(x);
      console.log(`round ${r + 1} ${name.padEnd(36)} ${x.jobsPerS.toFixed(0).padStart(6)} jobs/s  redis CPU ${x.cpuMsPer1000.toFixed(1)} ms / 1000 jobs`);
    }
  }
  console.log(`\n${JOBS} jobs of ${ITEMS} items per round, ${ROUNDS} rounds, medians:`);
  for (const [name, xs] of Object.entries(results)) {
    console.log(`  ${name.padEnd(36)} ${median(xs.map((x) => x.jobsPerS)).toFixed(0).padStart(6)} jobs/s  redis CPU ${median(xs.map((x) => x.cpuMsPer1000)).toFixed(1)} ms / 1000 jobs`);
  }
} finally {
  await server.destroy();
}
