/**
 * `inferq-worker`: serves one model from the command line.
 *
 *   inferq-worker --model sentiment --module ./model.mjs [options]
 *
 * Configuration: flags, over `INFERQ_*` env variables, over defaults;
 * `REDIS_URL` (default redis://127.0.0.1:6379). SIGTERM/SIGINT stop
 * gracefully: the batches in hand finish, no new jobs are taken.
 * Prints one line `READY <worker id>` on stdout once it takes jobs.
 */
import { parseArgs } from 'node:util';
import { ConfigError, InferqError, createLogger, type OptimizationConfigInput, type Quantization } from '@inferq/core';
import { InferenceWorker } from './inference-worker.js';
import type { InferenceWorkerOptions } from './worker-options.js';
import { BUILTIN_MODELS, loadModelModule } from './model-module-loader.js';

const HELP = `Usage: inferq-worker --model <name> --module <file.mjs | ${BUILTIN_MODELS.join(' | ')}> [options]

Options (each also settable by env; flags win):
  --model <name>            model / queue name (INFERQ_MODEL)
  --module <spec>           model module: default-exports (inputs) => outputs or { run, init?, close? };
                            builtin:onnx-default needs the package @inferq/onnx
  --redis <url>             Redis URL (REDIS_URL, default redis://127.0.0.1:6379)
  --prefix <p>              key prefix (INFERQ_PREFIX, default inferq)
  --max-batch-size <n>      (INFERQ_MAX_BATCH_SIZE, default 32)
  --batch-timeout-ms <ms>   (INFERQ_BATCH_TIMEOUT_MS, default 100)
  --num-workers <n>         batches in flight per process (INFERQ_NUM_WORKERS, default 4)
  --quantization <q>        FP32 | FP16 | INT8 (INFERQ_QUANTIZATION, default FP32)
  --enable-caching <bool>   (INFERQ_ENABLE_CACHING, default true)
  --cache-max-size <n>      (INFERQ_CACHE_MAX_SIZE, default 1000)
  --cache-max-bytes <n>     (INFERQ_CACHE_MAX_BYTES, default 268435456)
  --cache-ttl-ms <ms>       TTL of cache entries, 0 = none (INFERQ_CACHE_TTL_MS)
  --job-concurrency <n>     jobs held at once (default max-batch-size * num-workers)
  --lock-duration-ms <ms>   BullMQ job lock; a killed worker's jobs retry after it (default 30000)
  --stalled-interval-ms <ms> how often stalled jobs are looked for (default 30000)
  --worker-id <id>          id shown in results and logs
  -h, --help`;

function num(v: string | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      module: { type: 'string' },
      redis: { type: 'string' },
      prefix: { type: 'string' },
      'max-batch-size': { type: 'string' },
      'batch-timeout-ms': { type: 'string' },
      'num-workers': { type: 'string' },
      quantization: { type: 'string' },
      'enable-caching': { type: 'string' },
      'cache-max-size': { type: 'string' },
      'cache-max-bytes': { type: 'string' },
      'cache-ttl-ms': { type: 'string' },
      'job-concurrency': { type: 'string' },
      'lock-duration-ms': { type: 'string' },
      'stalled-interval-ms': { type: 'string' },
      'worker-id': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const env = process.env;
  const model = values.model ?? env.INFERQ_MODEL;
  const moduleSpec = values.module ?? env.INFERQ_MODULE;
  if (!model || !moduleSpec) {
    console.error(`inferq-worker: --model and --module are required.\n\n${HELP}`);
    process.exitCode = 2;
    return;
  }
  const config: OptimizationConfigInput = {};
  const set = <K extends keyof OptimizationConfigInput>(k: K, v: OptimizationConfigInput[K] | undefined) => {
    if (v !== undefined) config[k] = v;
  };
  set('maxBatchSize', num(values['max-batch-size']));
  set('batchTimeoutMs', num(values['batch-timeout-ms']));
  set('numWorkers', num(values['num-workers']));
  set('cacheMaxSize', num(values['cache-max-size']));
  set('cacheMaxBytes', num(values['cache-max-bytes']));
  set('quantization', values.quantization?.toUpperCase() as Quantization | undefined);
  if (values['enable-caching'] !== undefined) set('enableCaching', /^(1|true|yes|on)$/i.test(values['enable-caching']));

  const logger = createLogger('worker-cli');
  const module = await loadModelModule(moduleSpec, config.quantization ? { quantization: config.quantization } : {});
  const options: InferenceWorkerOptions = {
    redis: values.redis ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    model,
    module,
    config,
    logger,
  };
  const prefix = values.prefix ?? env.INFERQ_PREFIX;
  if (prefix) options.prefix = prefix;
  const cacheTtl = num(values['cache-ttl-ms'] ?? env.INFERQ_CACHE_TTL_MS);
  if (cacheTtl !== undefined) options.cacheTtlMs = cacheTtl;
  const jobConcurrency = num(values['job-concurrency']);
  if (jobConcurrency !== undefined) options.jobConcurrency = jobConcurrency;
  const lock = num(values['lock-duration-ms']);
  if (lock !== undefined) options.lockDurationMs = lock;
  const stalled = num(values['stalled-interval-ms']);
  if (stalled !== undefined) options.stalledIntervalMs = stalled;
  if (values['worker-id']) options.workerId = values['worker-id'];
  const worker = new InferenceWorker(options);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping gracefully');
    worker.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await worker.start();
  process.stdout.write(`READY ${worker.id}\n`);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof InferqError) console.error(`inferq-worker: ${err.message}`);
  else console.error('inferq-worker failed:', err);
  process.exit(1);
});
