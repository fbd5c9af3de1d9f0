/**
 * One client process of the demo: an application instance that embeds
 * `InferenceClient` and sends its share of the workload.
 *
 *   REDIS_URL=... node --conditions=source --import tsx client-process.ts '<ClientProcessConfig as JSON>'
 *   (or REDIS_CLUSTER_NODES=host:port,... for a Redis Cluster: it wins over REDIS_URL)
 *
 * Protocol (see protocol.ts): prints `ready` once connected, waits for the
 * parent's start signal (a BLPOP on a Redis list, so every client starts at
 * the same moment however long its own startup took), streams finished
 * requests as `rows` every ~200 ms, and prints `done` after closing the
 * client. Logs (pino) go to stderr, which the parent keeps for diagnosis.
 */
import { InferenceClient } from '@inferq/client';
import { redisFromCli } from '@inferq/core';
import { startCpuProfile } from './cpu-profile.js';
import { controlConnection } from './redis-setup.js';
import { runLoad, nowMs } from './load-generator.js';
import { toRow, type ClientMessage, type ClientProcessConfig, type RecordRow } from './protocol.js';
import { buildInputPool, clientSchedule } from './workload.js';

const REPORT_INTERVAL_MS = 200;

function send(m: ClientMessage): void {
  // stdout to a pipe is synchronous on POSIX, so nothing is lost by a later process.exit.
  process.stdout.write(`${JSON.stringify(m)}\n`);
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: client-process.ts <config JSON>');
  const cfg = JSON.parse(arg) as ClientProcessConfig;
  const me = cfg.clientIndex;
  if (!process.env.REDIS_URL && !process.env.REDIS_CLUSTER_NODES) throw new Error('neither REDIS_URL nor REDIS_CLUSTER_NODES is set (the demo passes one by env)');
  const redis = redisFromCli(undefined, undefined);

  // Build the inputs before connecting: the start signal should find us ready to send at full speed.
  const spec = { seed: cfg.seed, poolSize: cfg.poolSize, zipfS: cfg.zipfS, inputSize: cfg.inputSize };
  const pool = buildInputPool(spec);
  const schedule = clientSchedule(spec, me, cfg.requests);

  const client = new InferenceClient<number[], number[]>({
    redis,
    model: cfg.model,
    prefix: cfg.prefix,
    config: { enableCaching: cfg.useCache, cacheMaxSize: cfg.cacheMaxSize },
    defaultTimeoutMs: cfg.timeoutMs,
  });
  const control = controlConnection(redis, 'inferq-demo:control');
  control.on('error', () => undefined); // surfaced by the failing command below

  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    control.disconnect();
    // Ctrl-C or the parent ending us: give the client a moment to close cleanly, no more.
    void client.close({ timeoutMs: 300 }).finally(() => process.exit(code));
    setTimeout(() => process.exit(code), 1500).unref();
  };
  process.on('SIGINT', () => stop(130));
  process.on('SIGTERM', () => stop(143));
  // If the parent dies without ending us (SIGKILL), we are re-parented: leave instead of running on.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop(1);
  }, 1000).unref();

  await control.ping();
  send({ t: 'ready', client: me, pid: process.pid });
  const go = await control.blpop(cfg.goKey, Math.ceil(cfg.startTimeoutMs / 1000));
  if (!go) throw new Error(`no start signal within ${cfg.startTimeoutMs} ms`);

  let pending: RecordRow[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    send({ t: 'rows', client: me, rows: pending });
    pending = [];
  };
  const timer = setInterval(flush, REPORT_INTERVAL_MS);
  const profiler = await startCpuProfile(`client-${me + 1}`);
  const started = nowMs();
  await runLoad(
    async (i) => {
      const r = await client.infer(pool[i] as number[]);
      return { cached: r.cached, coalesced: r.coalesced, ...(r.worker === undefined ? {} : { worker: r.worker }), ...(r.batchSize === undefined ? {} : { batchSize: r.batchSize }) };
    },
    {
      client: me,
      schedule,
      inFlight: cfg.inFlight,
      openRatePerSec: cfg.openRatePerSec,
      seed: cfg.seed,
      onRecord: (r) => pending.push(toRow(r)),
    },
  );
  const loadMs = nowMs() - started;
  await profiler?.stop();
  clearInterval(timer);
  flush();
  await client.close({ timeoutMs: 5000 });
  control.disconnect();
  send({ t: 'done', client: me, loadMs });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    send({ t: 'fatal', client: Number(JSON.parse(process.argv[2] ?? '{}').clientIndex ?? -1), message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
