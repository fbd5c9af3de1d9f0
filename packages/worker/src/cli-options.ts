/**
 * The options of `inferq-worker`, in one table: each has a flag and (most)
 * an env variable, parsed by the same rules either way, and every error
 * names the option as the user wrote it (`--cache-ttl-ms`, or
 * `INFERQ_CACHE_TTL_MS` when it came from the environment). Flags win over
 * env. Values are converted here (integers, booleans, enums); ranges are the
 * worker's own option schema, whose errors are renamed to the same names.
 */
import { parseArgs } from 'node:util';
import { ConfigError, redactUrlsIn, type ConfigIssue } from '@inferq/core';

/** `list`: a repeatable flag, or its env variable comma-separated. */
type Kind = 'int' | 'bool' | 'string' | 'enum' | 'list';

interface CliOption {
  flag: string;
  env?: string;
  kind: Kind;
  values?: readonly string[];
  /** Where the value goes: a worker option, or `config.<field>`. */
  target: string;
  help: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const WORKER_CLI_OPTIONS: readonly CliOption[] = [
  { flag: 'model', env: 'INFERQ_MODEL', kind: 'string', target: 'model', help: 'model / queue name (required)' },
  { flag: 'module', env: 'INFERQ_MODULE', kind: 'string', target: 'module', help: 'model module: default-exports (inputs) => outputs or { run, init?, close? } (required)' },
  { flag: 'redis', env: 'REDIS_URL', kind: 'string', target: 'redis', help: 'Redis URL (default redis://127.0.0.1:6379)' },
  { flag: 'redis-cluster', env: 'REDIS_CLUSTER_NODES', kind: 'string', target: 'redisCluster', help: 'Redis Cluster seed nodes host:port,host:port (wins over --redis)' },
  { flag: 'queue-shards', env: 'INFERQ_QUEUE_SHARDS', kind: 'int', target: 'queueShards', help: 'queue shards of the model, the same in every client and worker (default 1)' },
  { flag: 'prefix', env: 'INFERQ_PREFIX', kind: 'string', target: 'prefix', help: 'key prefix (default inferq)' },
  { flag: 'model-version', env: 'INFERQ_MODEL_VERSION', kind: 'string', target: 'modelVersion', help: "model version served (default '1')" },
  { flag: 'max-batch-size', env: 'INFERQ_MAX_BATCH_SIZE', kind: 'int', target: 'config.maxBatchSize', help: 'largest batch (default 32)' },
  { flag: 'batch-timeout-ms', env: 'INFERQ_BATCH_TIMEOUT_MS', kind: 'int', target: 'config.batchTimeoutMs', help: 'longest wait of the oldest item (default 100)' },
  { flag: 'num-workers', env: 'INFERQ_NUM_WORKERS', kind: 'int', target: 'config.numWorkers', help: 'batches in flight per process (default 4)' },
  { flag: 'quantization', env: 'INFERQ_QUANTIZATION', kind: 'enum', values: ['FP32', 'FP16', 'INT8'], target: 'config.quantization', help: 'FP32 | FP16 | INT8 (default FP32)' },
  { flag: 'enable-caching', env: 'INFERQ_ENABLE_CACHING', kind: 'bool', target: 'config.enableCaching', help: 'true | false (default true)' },
  { flag: 'cache-max-size', env: 'INFERQ_CACHE_MAX_SIZE', kind: 'int', target: 'config.cacheMaxSize', help: 'most cache entries (default 1000)' },
  { flag: 'max-queue-length', env: 'INFERQ_MAX_QUEUE_LENGTH', kind: 'int', target: 'config.maxQueueLength', help: "the model's queue bound, recorded in Redis for every client; shared fairly by tenants (default: leave the recorded one)" },
  { flag: 'cache-max-bytes', env: 'INFERQ_CACHE_MAX_BYTES', kind: 'int', target: 'config.cacheMaxBytes', help: 'most cache bytes (default 268435456)' },
  { flag: 'inbox-ttl-ms', env: 'INFERQ_INBOX_TTL_MS', kind: 'int', target: 'inboxTtlMs', help: "TTL of a client's inbox, refreshed on each result (default 300000)" },
  { flag: 'cache-ttl-ms', env: 'INFERQ_CACHE_TTL_MS', kind: 'int', target: 'cacheTtlMs', help: 'TTL of cache entries, 0 = none' },
  { flag: 'batch-policy', env: 'INFERQ_BATCH_POLICY', kind: 'enum', values: ['eager', 'timeout'], target: 'batchPolicy', help: 'eager | timeout (default eager)' },
  { flag: 'model-timeout-ms', env: 'INFERQ_MODEL_TIMEOUT_MS', kind: 'int', target: 'modelTimeoutMs', help: 'longest model call, 0 = none (default 60000)' },
  { flag: 'max-output-bytes', env: 'INFERQ_MAX_OUTPUT_BYTES', kind: 'int', target: 'maxOutputBytes', help: 'largest model output, bytes of JSON (default 8388608)' },
  { flag: 'isolate-poison', env: 'INFERQ_ISOLATE_POISON', kind: 'bool', target: 'isolatePoison', help: 'split a throwing batch to fail only its bad inputs (default true)' },
  { flag: 'max-crashes', env: 'INFERQ_MAX_CRASHES', kind: 'int', target: 'maxCrashes', help: 'answer an input INFERQ_MODEL_CRASHED once a worker died this often with it alone in the model, 0 = off (default 2)' },
  { flag: 'stuck-exit-factor', env: 'INFERQ_STUCK_EXIT_FACTOR', kind: 'int', target: 'stuckExitFactor', help: 'hand jobs back and exit 3 once every model slot was stuck this many x model-timeout-ms, 0 = never (default 3)' },
  { flag: 'breaker-failures', env: 'INFERQ_BREAKER_FAILURES', kind: 'int', target: 'breakerFailures', help: 'stop calling a model that failed this many calls in a row (INFERQ_MODEL_UNAVAILABLE), 0 = off (default 7)' },
  { flag: 'breaker-backoff-ms', env: 'INFERQ_BREAKER_BACKOFF_MS', kind: 'int', target: 'breakerBackoffMs', help: 'first wait before an open breaker probes the model, doubling to 30 s (default 1000)' },
  { flag: 'priority-aging-ms', env: 'INFERQ_PRIORITY_AGING_MS', kind: 'int', target: 'priorityAgingMs', help: 'a request queued this long moves up one priority class (default 2000)' },
  { flag: 'job-concurrency', env: 'INFERQ_JOB_CONCURRENCY', kind: 'int', target: 'jobConcurrency', help: 'jobs held at once (default max-batch-size * num-workers)' },
  { flag: 'max-held-items', env: 'INFERQ_MAX_HELD_ITEMS', kind: 'int', target: 'maxHeldItems', help: 'request items held at once (default 4 * max-batch-size * num-workers)' },
  { flag: 'lock-duration-ms', env: 'INFERQ_LOCK_DURATION_MS', kind: 'int', target: 'lockDurationMs', help: "BullMQ job lock; a killed worker's jobs retry after it (default 30000)" },
  { flag: 'stalled-interval-ms', env: 'INFERQ_STALLED_INTERVAL_MS', kind: 'int', target: 'stalledIntervalMs', help: 'how often stalled jobs are looked for (default 30000)' },
  { flag: 'stop-timeout-ms', env: 'INFERQ_STOP_TIMEOUT_MS', kind: 'int', target: 'stopTimeoutMs', help: 'longest wait for batches in hand on SIGTERM (default 30000)' },
  { flag: 'connect-timeout-ms', env: 'INFERQ_CONNECT_TIMEOUT_MS', kind: 'int', target: 'connectTimeoutMs', help: 'longest wait for a usable Redis at start (default 10000)' },
  { flag: 'worker-id', env: 'INFERQ_WORKER_ID', kind: 'string', target: 'workerId', help: 'id shown in results and logs' },
  { flag: 'metrics-port', env: 'INFERQ_METRICS_PORT', kind: 'int', target: 'metricsPort', help: 'serve Prometheus metrics of this process at /metrics on this port, 0 = any free one (default off)' },
  { flag: 'metrics-host', env: 'INFERQ_METRICS_HOST', kind: 'string', target: 'metricsHost', help: 'address of the metrics server (default 127.0.0.1; beyond loopback needs --auth-token)' },
  { flag: 'auth-token', env: 'INFERQ_HTTP_TOKEN', kind: 'string', target: 'http.authToken', help: 'metrics server: require Authorization: Bearer <token> (not for /healthz, /readyz)' },
  { flag: 'allow-host', env: 'INFERQ_HTTP_ALLOW_HOSTS', kind: 'list', target: 'http.allowHosts', help: 'metrics server: a Host name accepted besides its address, repeatable (env: comma-separated)' },
  { flag: 'insecure-no-auth', env: 'INFERQ_HTTP_INSECURE_NO_AUTH', kind: 'bool', target: 'http.insecureNoAuth', help: 'metrics server: serve beyond loopback without --auth-token' },
  { flag: 'log-level', env: 'INFERQ_LOG_LEVEL', kind: 'enum', values: LOG_LEVELS, target: 'logLevel', help: `${LOG_LEVELS.join(' | ')} (default info)` },
];

export function workerCliHelp(builtins: readonly string[]): string {
  const rows = WORKER_CLI_OPTIONS.map((o) => `  --${o.flag.padEnd(22)} ${o.help}${o.env ? ` (${o.env})` : ''}`);
  return `Usage: inferq-worker --model <name> --module <file.mjs | ${builtins.join(' | ')}> [options]\n\nOptions (each also settable by its env variable; flags win):\n${rows.join('\n')}\n  -h, --help\n  -v, --version`;
}

export type ParsedWorkerCli =
  | { help: true; version: false }
  | { help: false; version: true }
  | {
      help: false;
      version: false;
      /** Values by target (`config.maxBatchSize`, `lockDurationMs`, ...); `list` options give string arrays. */
      values: Map<string, string | number | boolean | string[]>;
      /** The option as the user wrote it, by target: `--max-batch-size` or `INFERQ_MAX_BATCH_SIZE`. */
      sources: Map<string, string>;
    };

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

function convert(o: CliOption, raw: string): { value: string | number | boolean | string[] } | { problem: string } {
  const v = raw.trim();
  switch (o.kind) {
    case 'list': {
      const items = v.split(',').map((x) => x.trim());
      return items.some((x) => x === '') ? { problem: `must be names separated by commas, got '${raw}'` } : { value: items };
    }
    case 'int':
      return /^-?\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? { value: Number(v) } : { problem: `must be an integer, got '${raw}'` };
    case 'bool':
      if (TRUE.includes(v.toLowerCase())) return { value: true };
      if (FALSE.includes(v.toLowerCase())) return { value: false };
      return { problem: `must be true or false (or 1/0, yes/no, on/off), got '${raw}'` };
    case 'enum': {
      const match = o.values?.find((x) => x.toLowerCase() === v.toLowerCase());
      return match ? { value: match } : { problem: `must be one of ${o.values?.join(', ')}, got '${raw}'` };
    }
    default:
      return v === '' ? { problem: 'must not be empty' } : { value: v };
  }
}

/** Parses flags and env by the one table; throws one ConfigError naming every bad option as written. */
export function parseWorkerCli(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedWorkerCli {
  const options = Object.fromEntries(WORKER_CLI_OPTIONS.map((o) => [o.flag, { type: 'string' as const, multiple: o.kind === 'list' }]));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } }, strict: true, allowNegative: false });
  } catch (err) {
    // Unknown flags, missing values, `--x -5` (write `--x=-5`): a user error, said as such.
    throw new ConfigError('inferq-worker', [{ field: 'arguments', message: redactUrlsIn((err as Error).message.replace(/\. To specify.*$/s, '')) + ' (a negative number is written --flag=-5)' }]);
  }
  if (parsed.values.help) return { help: true, version: false };
  if (parsed.values.version) return { help: false, version: true };
  const values = new Map<string, string | number | boolean | string[]>();
  const sources = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  for (const o of WORKER_CLI_OPTIONS) {
    const given = parsed.values[o.flag];
    const fromFlag = Array.isArray(given) ? given.join(',') : given;
    const fromEnv = o.env !== undefined ? env[o.env] : undefined;
    const raw = typeof fromFlag === 'string' ? fromFlag : fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
    if (raw === undefined) continue;
    const source = typeof fromFlag === 'string' ? `--${o.flag}` : (o.env as string);
    const c = convert(o, raw);
    // A value echoed in a message is masked: a URL given to the wrong option must not print its password.
    if ('problem' in c) issues.push({ field: source, message: redactUrlsIn(c.problem) });
    else {
      values.set(o.target, c.value);
      sources.set(o.target, source);
    }
  }
  if (issues.length > 0) throw new ConfigError('inferq-worker', issues);
  return { help: false, version: false, values, sources };
}

/**
 * Renames the fields of a ConfigError raised by the worker's option schema
 * (`lockDurationMs`, `maxBatchSize (INFERQ_MAX_BATCH_SIZE)`) to the options
 * as the user wrote them.
 */
export function renameConfigError(err: ConfigError, sources: ReadonlyMap<string, string>): ConfigError {
  const byField = new Map<string, string>();
  for (const [target, source] of sources) byField.set(target.replace(/^config\./, ''), source);
  return new ConfigError(
    'inferq-worker',
    err.issues.map((i) => {
      const field = /^(?:config\.)?([A-Za-z]+)/.exec(i.field)?.[1] ?? i.field;
      return { field: byField.get(field) ?? i.field, message: i.message };
    }),
  );
}
