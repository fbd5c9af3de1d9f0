/**
 * `pnpm demo` flags. Defaults are chosen so the whole run (startup
 * included) finishes well under a minute on a 2-core machine while still
 * showing what each part of inferq does: enough distinct inputs that the
 * model really works, enough repetition that the cache matters, enough
 * concurrency that batches fill.
 */
import { parseArgs } from 'node:util';

export interface DemoOptions {
  requests: number;
  clients: number;
  workers: number;
  batchSize: number;
  batchTimeoutMs: number;
  /** Closed-loop requests in flight per client. */
  inFlight: number;
  /** Open-loop (Poisson) arrivals per second, over all clients; 0 = none. */
  openRate: number;
  zipfS: number;
  poolSize: number;
  cacheSize: number;
  useCache: boolean;
  seed: number;
  /** Per-request timeout, ms. */
  requestTimeoutMs: number;
  /** Bound of the whole run, s: past it the demo stops everything and says what hung. */
  runTimeoutS: number;
  report: string | undefined;
  embedded: boolean;
  /** Seed nodes (host:port) of a Redis Cluster for the distributed mode; undefined = REDIS_URL / local / embedded. */
  redisCluster: string[] | undefined;
  help: boolean;
}

export const DEMO_DEFAULTS = Object.freeze({
  requests: 20_000,
  clients: 3,
  workers: 2,
  batchSize: 32,
  batchTimeoutMs: 5,
  inFlight: 32,
  openRate: 100,
  zipfS: 1.1,
  poolSize: 2000,
  cacheSize: 1000,
  seed: 42,
  requestTimeoutMs: 15_000,
  runTimeoutS: 120,
});

export const HELP = `Usage: pnpm demo [options]

Runs inferq end to end on this machine: Redis, ${DEMO_DEFAULTS.workers} inferq-worker processes serving the
default ONNX model, and ${DEMO_DEFAULTS.clients} client processes sending a Zipf-skewed workload. Shows a progress
bar, prints a summary and writes an HTML report with charts.

Redis: --redis-cluster when given; else REDIS_URL when set (keys under a unique
prefix, deleted at the end); else a local redis-server when installed; else the
embedded in-process mode (no Redis).

Options:
  --requests <n>          total requests over all clients      (default ${DEMO_DEFAULTS.requests})
  --clients <n>           client processes                     (default ${DEMO_DEFAULTS.clients})
  --workers <n>           worker processes                     (default ${DEMO_DEFAULTS.workers})
  --batch-size <n>        max model batch size                 (default ${DEMO_DEFAULTS.batchSize})
  --batch-timeout-ms <n>  longest wait for a batch to fill     (default ${DEMO_DEFAULTS.batchTimeoutMs})
  --in-flight <n>         closed-loop requests in flight per client (default ${DEMO_DEFAULTS.inFlight})
  --open-rate <n>         open-loop Poisson arrivals per second, all clients together; 0 = none (default ${DEMO_DEFAULTS.openRate})
  --zipf <s>              Zipf exponent of input popularity; 0 = uniform (default ${DEMO_DEFAULTS.zipfS})
  --pool <n>              distinct input vectors               (default ${DEMO_DEFAULTS.poolSize})
  --cache-size <n>        result cache entries                 (default ${DEMO_DEFAULTS.cacheSize})
  --no-cache              disable the result cache (and single-flight)
  --seed <n>              workload seed                        (default ${DEMO_DEFAULTS.seed})
  --timeout-ms <n>        per-request timeout                  (default ${DEMO_DEFAULTS.requestTimeoutMs})
  --run-timeout-s <n>     give up (and say where) after this long (default ${DEMO_DEFAULTS.runTimeoutS})
  --report <path>         HTML report path                     (default reports/demo-<timestamp>.html)
  --embedded              force the in-process mode (InferenceOptimizer, no Redis, no child processes)
  --redis-cluster <host:port,...>
                          run the distributed mode on this Redis Cluster (seed nodes): the workers and
                          clients connect to it; keys under a unique prefix, deleted at the end
  -h, --help              show this help`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function parseDemoArgs(argv: readonly string[]): DemoOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        requests: { type: 'string' },
        clients: { type: 'string' },
        workers: { type: 'string' },
        'batch-size': { type: 'string' },
        'batch-timeout-ms': { type: 'string' },
        'in-flight': { type: 'string' },
        'open-rate': { type: 'string' },
        zipf: { type: 'string' },
        pool: { type: 'string' },
        'cache-size': { type: 'string' },
        'no-cache': { type: 'boolean' },
        seed: { type: 'string' },
        'timeout-ms': { type: 'string' },
        'run-timeout-s': { type: 'string' },
        report: { type: 'string' },
        embedded: { type: 'boolean' },
        'redis-cluster': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const int = (name: string, def: number, min: number, max: number): number => number(name, def, min, max, true);
  const number = (name: string, def: number, min: number, max: number, integer = false): number => {
    const raw = values[name];
    if (raw === undefined) return def;
    const v = Number(raw);
    if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} in ${min}..${max}, got '${String(raw)}'`);
    }
    return v;
  };
  return {
    requests: int('requests', DEMO_DEFAULTS.requests, 1, 10_000_000),
    clients: int('clients', DEMO_DEFAULTS.clients, 1, 64),
    workers: int('workers', DEMO_DEFAULTS.workers, 1, 64),
    batchSize: int('batch-size', DEMO_DEFAULTS.batchSize, 1, 4096),
    batchTimeoutMs: number('batch-timeout-ms', DEMO_DEFAULTS.batchTimeoutMs, 0, 60_000),
    inFlight: int('in-flight', DEMO_DEFAULTS.inFlight, 0, 100_000),
    openRate: number('open-rate', DEMO_DEFAULTS.openRate, 0, 1_000_000),
    zipfS: number('zipf', DEMO_DEFAULTS.zipfS, 0, 10),
    poolSize: int('pool', DEMO_DEFAULTS.poolSize, 1, 1_000_000),
    cacheSize: int('cache-size', DEMO_DEFAULTS.cacheSize, 1, 10_000_000),
    useCache: values['no-cache'] !== true,
    seed: int('seed', DEMO_DEFAULTS.seed, 0, 0xffffffff),
    requestTimeoutMs: int('timeout-ms', DEMO_DEFAULTS.requestTimeoutMs, 1, 3_600_000),
    runTimeoutS: number('run-timeout-s', DEMO_DEFAULTS.runTimeoutS, 1, 86_400),
    report: typeof values.report === 'string' ? values.report : undefined,
    embedded: values.embedded === true,
    redisCluster: clusterNodes(values['redis-cluster']),
    help: values.help === true,
  };
}

/** `host:port,host:port` (a `redis://` prefix allowed) -> ['host:port', ...]. */
function clusterNodes(raw: string | boolean | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const nodes = String(raw).split(',').map((n) => n.trim().replace(/^redis:\/\//, '').replace(/\/$/, '')).filter(Boolean);
  if (nodes.length === 0) throw new UsageError('--redis-cluster needs at least one host:port');
  for (const n of nodes) {
    if (!/^[^:\s/]+:\d{1,5}$/.test(n)) throw new UsageError(`--redis-cluster: expected host:port, got '${n}'`);
  }
  return nodes;
}

/** Rejects combinations that would send nothing. */
export function checkDemoOptions(o: DemoOptions): void {
  if (o.inFlight === 0 && o.openRate === 0) throw new UsageError('--in-flight 0 and --open-rate 0: nothing would send requests.');
  if (o.embedded && o.redisCluster) throw new UsageError('--embedded and --redis-cluster: the embedded mode uses no Redis.');
}
