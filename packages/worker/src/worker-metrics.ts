/**
 * `WorkerMetrics`: Prometheus metrics of ONE worker process, served over
 * HTTP at `/metrics` (prom-client, its own registry). `inferq-worker
 * --metrics-port <port>` starts one; in code, pass `observe` as the worker's
 * `onBatch`:
 *
 *   const metrics = new WorkerMetrics({ redis, model, workerId: 'w1', port: 9464 });
 *   const worker = new InferenceWorker({ ..., workerId: 'w1', onBatch: (r) => metrics.observe(r) });
 *   await metrics.listen(); await worker.start();
 *
 * Counters count what this process observed since it started (a restart
 * starts them at 0, which Prometheus' `rate()` handles); the numbers shared by
 * every process of a model are in Redis (`inferq metrics`, `readStats`).
 * `inferq_queue_jobs` is the exception: BullMQ's job counts of the model's
 * queue, read from Redis at each scrape, the same in every process.
 * Every series carries the labels `model` and `worker` (the worker id).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import type { RedisClient } from '@inferq/core';
import type { RedisConnectionInput } from '@inferq/core';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DEFAULT_PREFIX, createLogger, createRedis, settledWithin, throttledLog, type Logger } from '@inferq/core';
import { shardKeys } from '@inferq/core/protocol';
import type { BatchReport } from './batch-pipeline.js';

export interface WorkerMetricsOptions {
  /** Redis of the model's queue (for `inferq_queue_jobs`): URL or ioredis options. */
  redis: RedisConnectionInput;
  /** The model's queue shards (job counts are summed over them). Default 1. */
  queueShards?: number;
  model: string;
  /** Key prefix. Default `inferq`. */
  prefix?: string;
  /** The worker's id: the `worker` label. */
  workerId: string;
  /** TCP port of the HTTP server; 0 = any free port (see `listen()`'s answer). */
  port: number;
  /** Address to listen on. Default `127.0.0.1` (give `0.0.0.0` for a Prometheus on another host). */
  host?: string;
  /** prom-client's process metrics (`process_cpu_seconds_total`, `nodejs_heap_size_used_bytes`, ...). Default true. */
  processMetrics?: boolean;
  logger?: Logger;
}

/** BullMQ states counted in `inferq_queue_jobs`. */
export const QUEUE_JOB_STATES = ['wait', 'active', 'delayed', 'prioritized', 'failed'] as const;

/** Longest a scrape waits for the queue's job counts before answering without them. */
const QUEUE_READ_BOUND_MS = 2000;

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly o: WorkerMetricsOptions;
  private readonly log: Logger;
  private readonly requests: Counter;
  private readonly items: Counter;
  private readonly cacheHits: Counter;
  private readonly joins: Counter;
  private readonly errors: Counter<'code'>;
  private readonly retried: Counter;
  private readonly poisonSplits: Counter;
  private readonly modelTimeouts: Counter;
  private readonly deliveryFailures: Counter;
  private readonly batchSize: Histogram;
  private readonly modelSeconds: Histogram;
  private server: Server | undefined;
  private redis: RedisClient | undefined;
  private queues: Queue[] | undefined;

  constructor(options: WorkerMetricsOptions) {
    this.o = options;
    this.log = createLogger('metrics', options.logger).child({ model: options.model, worker: options.workerId });
    const registers = [this.registry];
    this.registry.setDefaultLabels({ model: options.model, worker: options.workerId });
    const counter = (name: string, help: string) => new Counter({ name, help, registers });
    this.requests = counter('inferq_worker_requests_total', 'Request items this worker took from the queue (every outcome: answered, from the cache, failed, retried).');
    this.items = counter('inferq_worker_items_total', 'Inputs the model computed: the sum of batch sizes (identical inputs of one batch count once).');
    this.cacheHits = counter('inferq_worker_cache_hits_total', 'Request items this worker answered from the result cache at batch time (filled since the client looked).');
    this.joins = counter('inferq_worker_single_flight_joins_total', 'Identical requests of other callers (single-flight joins) answered with the results of this worker.');
    this.errors = new Counter({ name: 'inferq_worker_errors_total', help: 'Request items this worker answered with an error, by error code.', labelNames: ['code'] as const, registers });
    this.retried = counter('inferq_worker_retried_total', 'Request items whose model call passed modelTimeoutMs: not answered, their jobs are retried.');
    this.poisonSplits = counter('inferq_worker_poison_splits_total', 'Extra model calls made to isolate inputs that made the model throw.');
    this.modelTimeouts = counter('inferq_worker_model_timeouts_total', 'Model calls past modelTimeoutMs.');
    this.deliveryFailures = counter('inferq_worker_delivery_failures_total', 'Batches whose results could not be written to Redis (their jobs are retried).');
    this.batchSize = new Histogram({
      name: 'inferq_worker_batch_size',
      help: 'Inputs per model call (its _count is the number of model calls).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
      registers,
    });
    this.modelSeconds = new Histogram({
      name: 'inferq_worker_model_duration_seconds',
      help: 'Time of one batch in the model, seconds (with poison isolation, all its calls).',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    const logQueueError = throttledLog(this.log, 'warn');
    const readJobCounts = () => this.jobCounts();
    new Gauge({
      name: 'inferq_queue_jobs',
      help: "Jobs (request envelopes, up to maxEnvelopeItems requests each) in the model's BullMQ queue, by state; read from Redis at each scrape, shared by every process.",
      labelNames: ['state'] as const,
      registers,
      collect: async function (this: Gauge<'state'>) {
        this.reset();
        const counts = await readJobCounts().catch((err: unknown) => {
          logQueueError({ err }, 'reading the queue job counts failed; scraped without them');
          return undefined;
        });
        if (counts) for (const state of QUEUE_JOB_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Adds one batch report (`InferenceWorkerOptions.onBatch`). */
  observe(r: BatchReport): void {
    this.requests.inc(r.items);
    if (r.computed > 0) {
      this.items.inc(r.computed);
      this.batchSize.observe(r.computed);
      this.modelSeconds.observe(r.modelMs / 1000);
    }
    if (r.cacheHits > 0) this.cacheHits.inc(r.cacheHits);
    if (r.flightWaiters > 0) this.joins.inc(r.flightWaiters);
    for (const [code, n] of Object.entries(r.errors)) if (n > 0) this.errors.inc({ code }, n);
    if (r.retried > 0) this.retried.inc(r.retried);
    if (r.extraCalls > 0) this.poisonSplits.inc(r.extraCalls);
    if (r.modelTimeouts > 0) this.modelTimeouts.inc(r.modelTimeouts);
    if (!r.delivered) this.deliveryFailures.inc();
  }

  /** The exposition text (what `/metrics` answers). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Starts the HTTP server; resolves with its address once it listens (rejects if the port is taken). */
  async listen(): Promise<{ port: number; url: string }> {
    if (this.server) throw new Error('WorkerMetrics is already listening.');
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path !== '/metrics') {
        res.writeHead(path === '/' ? 200 : 404, { 'content-type': 'text/plain; charset=utf-8' }).end(path === '/' ? 'inferq worker metrics: GET /metrics\n' : 'not found\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: unknown) => {
          this.log.error({ err }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`collecting metrics failed: ${(err as Error).message}\n`);
        },
      );
    });
    const host = this.o.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const port = (server.address() as AddressInfo).port;
    const shown = host.includes(':') ? `[${host}]` : host;
    return { port, url: `http://${shown}:${port}/metrics` };
  }

  /** Stops the server and closes the queue connection (bounded). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await settledWithin(new Promise<void>((r) => server.close(() => r())), 1000);
    }
    const queues = this.queues;
    const redis = this.redis;
    this.queues = undefined;
    this.redis = undefined;
    if (queues) await settledWithin(Promise.all(queues.map((q) => q.close())), 1000);
    if (redis && !(await settledWithin(redis.quit(), 1000))) redis.disconnect();
  }

  private async jobCounts(): Promise<Record<string, number>> {
    if (!this.queues) {
      const redis = createRedis(this.o.redis, { connectionName: `inferq:worker-metrics:${this.o.model}` });
      redis.on('error', () => undefined); // a failed read reports it
      this.redis = redis;
      this.queues = shardKeys(this.o.model, this.o.prefix ?? DEFAULT_PREFIX, this.o.queueShards ?? 1).map((keys) => {
        const queue = new Queue(keys.queueName, { connection: redis, prefix: keys.queuePrefix });
        queue.on('error', () => undefined);
        return queue;
      });
    }
    const queues = this.queues;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${QUEUE_READ_BOUND_MS} ms`)), QUEUE_READ_BOUND_MS);
    });
    try {
      const counts = await Promise.race([Promise.all(queues.map((q) => q.getJobCounts(...QUEUE_JOB_STATES))), bound]);
      const sum: Record<string, number> = {};
      for (const c of counts) for (const [state, n] of Object.entries(c)) sum[state] = (sum[state] ?? 0) + n;
      return sum;
    } finally {
      clearTimeout(timer);
    }
  }
}
