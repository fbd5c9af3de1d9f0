/**
 * `WorkerMetrics`: Prometheus metrics of ONE worker process, served over
 * HTTP at `/metrics` (prom-client, its own registry), with the worker's
 * `/healthz` and `/readyz` beside them when given its `health`.
 * `inferq-worker --metrics-port <port>` starts one; in code, pass `observe`
 * as the worker's `onBatch`:
 *
 *   const metrics = new WorkerMetrics({ model, workerId: 'w1', port: 9464, health: () => worker.health() });
 *   const worker = new InferenceWorker({ ..., workerId: 'w1', onBatch: (r) => metrics.observe(r) });
 *   await metrics.listen(); await worker.start();
 *
 * Counters count what this process observed since it started (a restart
 * starts them at 0, which Prometheus' `rate()` handles); the numbers shared by
 * every process of a model are in Redis (`inferq metrics`, `readStats`),
 * among them the queue's job counts (`inferq_queue_jobs`), which a worker
 * does not serve: N workers serving one queue's depth made `sum()` count it
 * N times. Every series carries the labels `model` and `worker` (the worker
 * id). Requests pass `HttpAccess` (Host header, bearer token), except that
 * the health endpoints need no token, so that a kubelet's probe works
 * without a secret in the pod spec (docs/http-endpoints.md).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HttpAccess, createLogger, settledWithin, throttledLog, type HttpAccessOptions, type Logger } from '@inferq/core';
import type { BatchReport } from './batch-pipeline.js';
import type { WorkerHealth } from './worker-health.js';

export interface WorkerMetricsOptions {
  model: string;
  /** The worker's id: the `worker` label. */
  workerId: string;
  /** TCP port of the HTTP server; 0 = any free port (see `listen()`'s answer). */
  port: number;
  /** Address to listen on. Default `127.0.0.1` (give `0.0.0.0` for a Prometheus on another host, with `access.authToken`). */
  host?: string;
  /** Host check and bearer token (docs/http-endpoints.md). Default: loopback names only, no token. */
  access?: HttpAccessOptions;
  /** The worker's health (`() => worker.health()`): served at `/healthz` and `/readyz`. Default none (404). */
  health?: () => WorkerHealth;
  /** prom-client's process metrics (`process_cpu_seconds_total`, `nodejs_heap_size_used_bytes`, ...). Default true. */
  processMetrics?: boolean;
  logger?: Logger;
}

/**
 * prom-client default metrics dropped: gauges named `_total`, which
 * `promtool check metrics` rejects (a `_total` name promises a counter);
 * `sum(nodejs_active_handles)` etc. give the same numbers.
 */
const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly o: WorkerMetricsOptions;
  private readonly log: Logger;
  /** A failing probe is asked every few seconds: one line per interval is enough. */
  private readonly logProbe: (obj: Record<string, unknown>, msg: string) => void;
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

  constructor(options: WorkerMetricsOptions) {
    this.o = options;
    this.log = createLogger('metrics', options.logger).child({ model: options.model, worker: options.workerId });
    this.logProbe = throttledLog(this.log, 'warn', 30_000);
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
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of DROPPED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    }
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
    const host = this.o.host ?? '127.0.0.1';
    // Before listening: a refused configuration (beyond loopback, no token) throws ConfigError here.
    const access = new HttpAccess(host, this.o.access ?? {}, 'inferq-worker metrics', this.log);
    const health = this.o.health;
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const probe = health !== undefined && (path === '/healthz' || path === '/readyz');
      if (!access.admit(req, res, { token: !probe })) return;
      if (probe) return this.answerProbe(res, path === '/healthz' ? 'live' : 'ready', health);
      if (path !== '/metrics') {
        const index = `inferq worker metrics: GET /metrics${health ? ', /healthz, /readyz' : ''}\n`;
        res.writeHead(path === '/' ? 200 : 404, { 'content-type': 'text/plain; charset=utf-8' }).end(path === '/' ? index : 'not found\n');
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

  /** 200 or 503 by `live` or `ready`, the whole health as JSON either way (a probe's failure log shows why). */
  private answerProbe(res: ServerResponse, which: 'live' | 'ready', health: () => WorkerHealth): void {
    let h: WorkerHealth;
    try {
      h = health();
    } catch (err) {
      this.log.error({ err }, 'the health callback threw; answered not live and not ready');
      h = { live: false, ready: false, reasons: [`health check failed: ${(err as Error).message}`] };
    }
    if (!h[which]) this.logProbe({ which, reasons: h.reasons }, `health probe: not ${which}`);
    res.writeHead(h[which] ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ ...h, model: this.o.model, worker: this.o.workerId }));
  }

  /** Stops the server (bounded). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await settledWithin(new Promise<void>((r) => server.close(() => r())), 1000);
    }
  }
}
