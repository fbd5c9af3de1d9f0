/**
 * Command-line flags of `pnpm bench`, with the defaults of quick and full mode.
 */
import { parseArgs } from 'node:util';

export const HELP = `Usage: pnpm bench [options]          (or: npx tsx --conditions=source packages/bench/src/bench.ts [options])

Compares, in one run on one Redis with the same load: plain BullMQ, BullMQ +
batching, inferq and a minimal Redis list queue (the floor), with a no-op and
the default ONNX model, plus inferq with a 50 % repeat workload and caching on;
then inferq alone at low load (1 in flight; 50 req/s open loop) and in
overload (1x and 5x what its workers serve, maxQueueLength set); with a bad
model (some inputs hang, some throw) against the same model clean; then how
inferq scales (no-op model): 1, 2 and 4 worker processes on one Redis, and
2 worker processes on a local Redis Cluster with queueShards 1 and 3; then
tenants (a tenant flooding at 5x capacity next to one at 5 %, and the second
alone) and priorities (a high trickle behind a deep low backlog).

  --quick                 1 s warm-up + 2.5 s measured per scenario, 1 repetition (whole run ~2 min:
                          starting a scenario's processes takes another 2-6 s on 2 cores); without
                          --only it skips the low-load '-timeout' variants and the scaling group
                          (--only scale runs it)
                          (default: full mode, ~20 s per scenario, 3 repetitions, median reported)
  --json <path>           also write every result as JSON
  --clients <n>           client processes per throughput scenario (default 2)
  --workers <n>           worker processes per throughput scenario, every system (default 2)
  --in-flight <n>         requests in flight in total, split over the clients (default 256)
                          (low load and overload use their own fixed processes and load: see README)
  --duration <s>          measured seconds per scenario (quick 2.5, full 20)
  --warmup <s>            unmeasured seconds before (quick 1, full 3)
  --reps <n>              repetitions of every scenario; the median by req/s is reported (quick 1, full 3)
  --only <list>           comma list of scenarios (noop-bullmq, noop-bullmq-batched, noop-inferq, noop-floor,
                          onnx-bullmq, onnx-bullmq-batched, onnx-inferq, onnx-floor, cache-inferq,
                          lowload-seq-inferq[-timeout], lowload-50rps-inferq[-timeout], overload-1x, overload-5x,
                          bad-model-clean, bad-model, scale-w1, scale-w2, scale-w4, scale-cluster-s1, scale-cluster-s3,
                          noisy-neighbour-alone, noisy-neighbour, noisy-neighbour-flood-alone, priority, priority-normal)
                          or groups (noop, onnx, cache, lowload, overload, bad-model, scale, noisy-neighbour, priority)
                          or systems (bullmq, bullmq-batched, inferq, floor; a system does not select
                          the scaling group: name it)
  --batch-timeout-ms <ms> inferq --batch-timeout-ms, BullMQ + batching's batcher (default 5)
  --max-batch-size <n>    inferq batch, BullMQ concurrency and batch, list-queue batch (default 64)
  --num-workers <n>       batches in flight per worker process (default 1; see bench.ts)
  --seed <n>              seed of the request inputs (default 20240601)
  --redis-url <url>       use this Redis (127.0.0.1 only) instead of starting redis-server (also REDIS_URL)
  --redis-cluster <host:port,...>
                          run the cluster scenarios (scale-cluster-*) on this Redis Cluster (127.0.0.1 only)
                          instead of starting one (also REDIS_CLUSTER_NODES); without it the bench starts
                          3 masters + 3 replicas (redis-server 7+ and redis-cli needed, else they are skipped)
  --no-cost-curve         skip measuring the default model's cost curve
  --no-cold-start         skip the cold-start section (inferq-worker to READY, a client to its first answer,
                          from dist/ with plain node, median of 5 starts; rebuilds dist/ first when stale)
  --cold-start-only       run the cold-start section alone (no cost curve, no scenarios; ~10 s)
  -h, --help`;

export interface BenchOptions {
  quick: boolean;
  json: string | undefined;
  clients: number;
  workers: number;
  inFlight: number;
  durationMs: number;
  warmupMs: number;
  reps: number;
  only: string[] | undefined;
  batchTimeoutMs: number;
  maxBatchSize: number;
  numWorkers: number;
  seed: number;
  redisUrl: string | undefined;
  /** Seed nodes (host:port) of an existing Redis Cluster for the cluster scenarios; undefined = start one. */
  redisCluster: string[] | undefined;
  costCurve: boolean;
  /** Time fresh worker and client processes from dist/ (cold-start.ts). */
  coldStart: boolean;
  /** Only that: no cost curve, no scenarios. */
  coldStartOnly: boolean;
  /** Longest wait for the processes of a scenario to be ready. */
  startupTimeoutMs: number;
  /** Longest wait for the clients' results after the window ends. */
  resultGraceMs: number;
  /** SIGTERM grace of a process at the end of a scenario before SIGKILL. */
  stopGraceMs: number;
}

function int(name: string, v: string | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

function seconds(name: string, v: string | undefined, fallbackS: number): number {
  if (v === undefined) return fallbackS * 1000;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number of seconds, got '${v}'`);
  return Math.round(n * 1000);
}

/** `host:port,host:port` (a `redis://` prefix allowed) -> ['host:port', ...]; undefined when empty. */
function clusterNodes(v: string | undefined): string[] | undefined {
  const nodes = (v ?? '').split(',').map((s) => s.trim().replace(/^redis:\/\//, '').replace(/\/$/, '')).filter(Boolean);
  if (nodes.length === 0) return undefined;
  for (const n of nodes) {
    if (!/^[^:\s]+:\d{1,5}$/.test(n)) throw new Error(`--redis-cluster: expected host:port, got '${n}'`);
  }
  return nodes;
}

/** Parses argv; returns undefined after printing the help. */
export function parseBenchArgs(argv: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      json: { type: 'string' },
      clients: { type: 'string' },
      workers: { type: 'string' },
      'in-flight': { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      reps: { type: 'string' },
      only: { type: 'string' },
      'batch-timeout-ms': { type: 'string' },
      'max-batch-size': { type: 'string' },
      'num-workers': { type: 'string' },
      seed: { type: 'string' },
      'redis-url': { type: 'string' },
      'redis-cluster': { type: 'string' },
      'no-cost-curve': { type: 'boolean' },
      'no-cold-start': { type: 'boolean' },
      'cold-start-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const quick = values.quick === true;
  const coldStartOnly = values['cold-start-only'] === true;
  if (coldStartOnly && values['no-cold-start']) throw new Error('--cold-start-only and --no-cold-start exclude each other');
  if (coldStartOnly && values.only) throw new Error('--cold-start-only runs no scenarios: drop --only');
  const clients = int('clients', values.clients, 2, 1);
  const inFlight = int('in-flight', values['in-flight'], 256, 1);
  if (inFlight < clients) throw new Error(`--in-flight (${inFlight}) must be at least --clients (${clients})`);
  return {
    quick,
    json: values.json,
    clients,
    workers: int('workers', values.workers, 2, 1),
    inFlight,
    durationMs: seconds('duration', values.duration, quick ? 2.5 : 20),
    warmupMs: seconds('warmup', values.warmup, quick ? 1 : 3),
    reps: int('reps', values.reps, quick ? 1 : 3, 1),
    only: values.only?.split(',').map((s) => s.trim()).filter(Boolean),
    batchTimeoutMs: int('batch-timeout-ms', values['batch-timeout-ms'], 5, 0),
    // 64, not the library's default 32: the default ONNX model is ~11x cheaper per item at batch 64
    // than at batch 1 (~9x at 32), and a team serving it would pick the batch its model likes.
    maxBatchSize: int('max-batch-size', values['max-batch-size'], 64, 1),
    numWorkers: int('num-workers', values['num-workers'], 1, 1),
    seed: int('seed', values.seed, 20240601, 0),
    redisUrl: values['redis-url'] ?? process.env.REDIS_URL,
    redisCluster: clusterNodes(values['redis-cluster'] ?? process.env.REDIS_CLUSTER_NODES),
    costCurve: values['no-cost-curve'] !== true,
    coldStart: values['no-cold-start'] !== true,
    coldStartOnly,
    startupTimeoutMs: quick ? 30_000 : 60_000,
    resultGraceMs: 10_000,
    stopGraceMs: 500,
  };
}
