/**
 * Baseline 2, "the floor": the least a Redis-backed batching queue must do.
 *
 * - client: requests issued in the same tick go out as ONE `LPUSH` of JSON
 *   `{id, client, input}` to one shared list (the same per-tick coalescing
 *   inferq's client does with `addBulk`); results come back on the client's
 *   own list, read by a blocking `BLMPOP ... COUNT` loop;
 * - worker: `BRPOP` (one item, blocking) then `RPOP key maxBatchSize-1` (the
 *   rest of a batch, non-blocking), one model call on the batch, then one
 *   pipeline: `LPUSH` of each result to its client's list plus two `HINCRBY`
 *   (the batch counters the bench reads for the average batch size).
 *
 * No durability, retries, deadlines or stats: what inferq adds on top of this
 * is what its cost per request is for. `numWorkers` loops per worker process,
 * each on its own connection, like inferq's `--num-workers`.
 */
import { Redis } from 'ioredis';
import type { ClientConfig, ScenarioSettings, WorkerConfig } from '../settings.js';
import { loadBenchModel } from './bench-model.js';
import { CHILD_SCRIPT, SYSTEM_LABELS } from './registry.js';
import type { SystemDefinition, Transport } from './system.js';

const keysOf = (s: ScenarioSettings) => ({
  requests: `${s.namespace}:floor:req`,
  results: (client: string) => `${s.namespace}:floor:res:${client}`,
  stats: `${s.namespace}:floor:stats`,
});

/** Results read per BLMPOP: more than any client keeps in flight, so one read drains the list. */
const RESULT_READ_COUNT = 4096;
/** Blocking read timeout in s: the loop wakes this often when idle. */
const BLOCK_S = 1;

interface Pending {
  start: number;
  resolve(): void;
  reject(err: Error): void;
}

async function connectClient(cfg: ClientConfig): Promise<Transport> {
  const keys = keysOf(cfg);
  const clientId = `c${cfg.clientIndex}-${process.pid}`;
  const resultKey = keys.results(clientId);
  const cmd = new Redis(cfg.redisUrl, { connectionName: 'bench:floor-client' });
  const blocking = new Redis(cfg.redisUrl, { connectionName: 'bench:floor-results' });
  await Promise.all([cmd.ping(), blocking.ping()]);
  const pending = new Map<number, Pending>();
  let outbox: string[] = [];
  let flushScheduled = false;
  let seq = 0;

  const flush = () => {
    flushScheduled = false;
    const batch = outbox;
    outbox = [];
    cmd.lpush(keys.requests, ...batch).catch((err: Error) => {
      for (const raw of batch) {
        const id = (JSON.parse(raw) as { id: number }).id;
        pending.get(id)?.reject(err);
        pending.delete(id);
      }
    });
  };

  const receive = async () => {
    for (;;) {
      const reply = (await blocking.call('BLMPOP', BLOCK_S, 1, resultKey, 'RIGHT', 'COUNT', RESULT_READ_COUNT)) as [string, string[]] | null;
      if (!reply) continue;
      for (const raw of reply[1]) {
        const msg = JSON.parse(raw) as { id: number; output?: unknown; error?: string };
        const p = pending.get(msg.id);
        if (!p) continue;
        pending.delete(msg.id);
        if (msg.error !== undefined) p.reject(new Error(msg.error));
        else p.resolve();
      }
    }
  };
  void receive().catch((err: unknown) => {
    console.error('list-queue client: result reader stopped:', err);
    process.exit(1);
  });

  // One sweep per second instead of a timer per request: cheap at 10^5 requests/s.
  setInterval(() => {
    const limit = performance.now() - cfg.requestTimeoutMs;
    for (const [id, p] of pending) {
      if (p.start < limit) {
        pending.delete(id);
        p.reject(new Error(`list-queue request timed out after ${cfg.requestTimeoutMs} ms`));
      }
    }
  }, 1000).unref();

  return {
    send(input) {
      return new Promise<{ cached: boolean }>((resolve, reject) => {
        const id = seq++;
        pending.set(id, { start: performance.now(), resolve: () => resolve({ cached: false }), reject });
        outbox.push(JSON.stringify({ id, client: clientId, input }));
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}

async function runWorker(cfg: WorkerConfig): Promise<void> {
  const keys = keysOf(cfg);
  const model = await loadBenchModel(cfg.model);
  const loop = async (conn: Redis): Promise<void> => {
    for (;;) {
      const first = await conn.brpop(keys.requests, BLOCK_S);
      if (!first) continue;
      const raws = [first[1]];
      if (cfg.maxBatchSize > 1) {
        const rest = await conn.rpop(keys.requests, cfg.maxBatchSize - 1);
        if (rest) raws.push(...rest);
      }
      const requests = raws.map((r) => JSON.parse(r) as { id: number; client: string; input: unknown });
      let outputs: ReadonlyArray<unknown>;
      try {
        outputs = await model.run(requests.map((r) => r.input));
      } catch (err) {
        outputs = requests.map(() => err);
      }
      const pipe = conn.pipeline();
      requests.forEach((r, i) => {
        const out = outputs[i];
        const msg = out instanceof Error ? { id: r.id, error: out.message } : { id: r.id, output: out };
        pipe.lpush(keys.results(r.client), JSON.stringify(msg));
      });
      pipe.hincrby(keys.stats, 'batches', 1).hincrby(keys.stats, 'items', requests.length);
      await pipe.exec();
    }
  };
  const conns = Array.from({ length: cfg.numWorkers }, () => new Redis(cfg.redisUrl, { connectionName: 'bench:floor-worker' }));
  await Promise.all(conns.map((c) => c.ping()));
  for (const c of conns) {
    void loop(c).catch((err: unknown) => {
      console.error('list-queue worker loop stopped:', err);
      process.exit(1);
    });
  }
  process.stdout.write(`READY floor-worker-${cfg.workerIndex}\n`);
}

export const listQueue: SystemDefinition = {
  id: 'floor',
  label: SYSTEM_LABELS.floor,
  workerCommand: (s, index) => ({ script: CHILD_SCRIPT, args: [JSON.stringify({ ...s, role: 'worker', workerIndex: index } satisfies WorkerConfig)] }),
  async readCounters(redis, s) {
    const [batches, items] = await redis.hmget(keysOf(s).stats, 'batches', 'items');
    return { batches: Number(batches ?? 0), items: Number(items ?? 0) };
  },
  connectClient,
  runWorker,
};
