/**
 * `inferq-worker`: serves one model from the command line.
 *
 *   inferq-worker --model sentiment --module ./model.mjs [options]
 *
 * Configuration: flags, over `INFERQ_*` env variables, over defaults;
 * `REDIS_URL` (default redis://127.0.0.1:6379). SIGTERM/SIGINT stop
 * gracefully: the batches in hand finish, no new jobs are taken.
 * Prints one line `READY <worker id>` on stdout once it takes jobs; with
 * `--metrics-port`, first `METRICS <url>` once its /metrics server listens
 * (also `/healthz` and `/readyz`; docs/http-endpoints.md). Nothing else goes
 * to stdout: logs, and whatever the model prints with `console.*`, go to
 * stderr as pino JSON (cli-console.ts); `--help` and `--version` print on stdout.
 *
 * Exit codes (docs/failure-modes.md): 0 stopped by a signal; 1 failed to
 * start or to stop (configuration, Redis, the model's init); 2 usage (no
 * --model / --module); 3 left because every model slot stayed stuck past
 * --stuck-exit-factor x --model-timeout-ms, its jobs handed back: start a
 * fresh process. A model that kills the process exits with its own code.
 */
import { format } from 'node:util';
import { ConfigError, InferqError, createLogger, packageVersion, redactError, redactUrlsIn, redisFromCli, type OptimizationConfigInput, type Quantization } from '@inferq/core';
import { InferenceWorker } from './inference-worker.js';
import type { InferenceWorkerOptions } from './worker-options.js';
import { BUILTIN_MODELS, loadModelModule } from './model-module-loader.js';
import { parseWorkerCli, renameConfigError, workerCliHelp } from './cli-options.js';
import type { WorkerMetrics } from './worker-metrics.js';
import { routeConsoleToLogger } from './cli-console.js';

const HELP = workerCliHelp(BUILTIN_MODELS);
/** Exit code of a worker that left because every model slot stayed stuck (its jobs handed back). */
const EXIT_STUCK = 3;

async function main(): Promise<void> {
  const parsed = parseWorkerCli(process.argv.slice(2), process.env);
  if (parsed.help) {
    console.log(HELP);
    return;
  }
  if (parsed.version) {
    console.log(packageVersion(import.meta.url, '@inferq/worker'));
    return;
  }
  const { values, sources } = parsed;
  const model = values.get('model') as string | undefined;
  const moduleSpec = values.get('module') as string | undefined;
  if (!model || !moduleSpec) {
    console.error(`inferq-worker: --model and --module are required.\n\n${HELP}`);
    process.exitCode = 2;
    return;
  }
  // The one log level for every component of this process.
  const logLevel = values.get('logLevel') as string | undefined;
  if (logLevel) process.env.INFERQ_LOG_LEVEL = logLevel;
  const config: Record<string, unknown> = {};
  const options: Record<string, unknown> = { redis: 'redis://127.0.0.1:6379', model };
  for (const [target, value] of values) {
    if (target === 'module' || target === 'logLevel' || target === 'model' || target === 'metricsPort' || target === 'metricsHost' || target === 'redisCluster' || target.startsWith('http.')) continue;
    if (target.startsWith('config.')) config[target.slice('config.'.length)] = value;
    else options[target] = value;
  }
  // --redis-cluster (or REDIS_CLUSTER_NODES) wins over --redis.
  options.redis = redisFromCli(values.get('redis') as string | undefined, values.get('redisCluster') as string | undefined, {});
  const logger = createLogger('worker-cli');
  // Before the model module loads: what it prints must not reach stdout (cli-console.ts).
  routeConsoleToLogger(logger);
  const quantization = config.quantization as Quantization | undefined;
  const module = await loadModelModule(moduleSpec, quantization ? { quantization } : {});
  const metricsPort = values.get('metricsPort') as number | undefined;
  if (metricsPort !== undefined && (metricsPort < 0 || metricsPort > 65535)) {
    throw new ConfigError('inferq-worker', [{ field: sources.get('metricsPort') ?? '--metrics-port', message: `must be a TCP port 0..65535, got ${metricsPort}` }]);
  }
  let metrics: WorkerMetrics | undefined;
  const onBatch: Pick<InferenceWorkerOptions, 'onBatch'> = metricsPort === undefined ? {} : { onBatch: (r) => metrics?.observe(r) };
  let worker: InferenceWorker;
  try {
    // Crash isolation proves a conviction in a fresh process loading the same module.
    options.probeModule = moduleSpec;
    // Every model slot stuck past the bound: the jobs were handed back; a fresh process gets the slots back.
    options.onStuckExit = (): void => process.exit(EXIT_STUCK);
    worker = new InferenceWorker({ ...options, ...onBatch, module, config: config as OptimizationConfigInput, logger } as InferenceWorkerOptions);
  } catch (err) {
    throw err instanceof ConfigError ? renameConfigError(err, sources) : err;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping gracefully');
    worker.stop().then(
      async () => {
        await metrics?.close();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (metricsPort !== undefined) {
    // Loaded only when asked for: prom-client stays out of a plain worker's start-up.
    const { WorkerMetrics } = await import('./worker-metrics.js');
    const host = (values.get('metricsHost') as string | undefined) ?? '127.0.0.1';
    const access = { authToken: values.get('http.authToken') as string | undefined, allowHosts: values.get('http.allowHosts') as string[] | undefined, insecureNoAuth: values.get('http.insecureNoAuth') as boolean | undefined };
    const served = worker;
    metrics = new WorkerMetrics({ model, workerId: worker.id, port: metricsPort, host, access, health: () => served.health(), logger });
    try {
      const { url } = await metrics.listen();
      process.stdout.write(`METRICS ${url}\n`);
    } catch (err) {
      if (err instanceof ConfigError) throw err; // --auth-token, --allow-host: it names them
      throw new ConfigError('inferq-worker', [{ field: sources.get('metricsPort') ?? '--metrics-port', message: `cannot serve metrics on ${host}:${metricsPort}: ${(err as Error).message}` }]);
    }
  }
  await worker.start();
  process.stdout.write(`READY ${worker.id}\n`);
}

main().catch((err: unknown) => {
  // Masked: a URL typo or a refused AUTH (whose error carries the password it sent) must not print the password.
  // Straight to stderr, not through console (the logger's by now, and silent at INFERQ_LOG_LEVEL=silent):
  // why the worker did not start is for a human to read, whatever the log level.
  if (err instanceof ConfigError || err instanceof InferqError) process.stderr.write(`${redactUrlsIn(`inferq-worker: ${err.message}`)}\n`);
  else process.stderr.write(`inferq-worker failed: ${format(redactError(err))}\n`);
  process.exit(1);
});
