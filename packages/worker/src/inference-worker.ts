/**
 * InferenceWorker: a BullMQ Worker feeding the core RequestBatcher.
 *
 * Jobs are request envelopes (see wire-format.ts in core); each job's
 * processor hands its items to the batcher and waits for them. The batcher
 * dispatches a batch at `maxBatchSize` items or when the oldest item has
 * waited `batchTimeoutMs`, with at most `numWorkers` batches in flight, and
 * each batch runs through the BatchPipeline (one cache read, one model call,
 * one settle+stats pipeline). A job completes once all its items' results are
 * delivered; it fails (and BullMQ retries it) only when delivery failed.
 */
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  ErrorCode,
  InferqError,
  JobLostError,
  RedisLruCache,
  RequestBatcher,
  StatsRecorder,
  WIRE_VERSION,
  appendSettle,
  createLogger,
  createRedis,
  encodeResultPayload,
  errorToWire,
  modelKeys,
  type Logger,
  type ModelKeys,
  type RequestEnvelope,
  type SettleItem,
} from '@inferq/core';
import { BatchPipeline, type BatchOutcome, type WorkItem } from './batch-pipeline.js';
import { resolveWorkerOptions, type InferenceWorkerOptions, type ResolvedWorkerOptions } from './worker-options.js';

export interface WorkerJobResult {
  items: number;
}

export class InferenceWorker<I = unknown, O = unknown> {
  readonly id: string;
  private readonly opts: ResolvedWorkerOptions;
  private readonly logger: Logger;
  private readonly keys: ModelKeys;
  private cmd: Redis | undefined;
  private bullConnection: Redis | undefined;
  private worker: Worker<RequestEnvelope, WorkerJobResult> | undefined;
  private batcher: RequestBatcher<WorkItem, BatchOutcome> | undefined;
  private stats: StatsRecorder | undefined;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | undefined;

  constructor(options: InferenceWorkerOptions<I, O>) {
    this.opts = resolveWorkerOptions(options as InferenceWorkerOptions<unknown, unknown>);
    this.id = this.opts.workerId;
    this.logger = createLogger('worker', this.opts.logger).child({ model: this.opts.model, worker: this.id });
    this.keys = modelKeys(this.opts.model, this.opts.prefix);
  }

  /** Loads the model (its `init`) and starts taking jobs. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new InferqError(ErrorCode.CLOSED, `InferenceWorker ${this.id} was already started.`);
    this.state = 'starting';
    const { opts, keys, logger } = this;
    try {
      await opts.module.init?.();
    } catch (err) {
      logger.error({ err }, 'model init failed');
      this.state = 'stopped';
      throw err;
    }
    const cmd = createRedis(opts.redis, { connectionName: `inferq:worker:${opts.model}` });
    cmd.on('error', (err) => logger.error({ err }, 'Redis connection error'));
    this.cmd = cmd;
    this.stats = new StatsRecorder({ redis: cmd, model: opts.model, prefix: opts.prefix, logger });
    const cache = new RedisLruCache<string>({
      redis: cmd,
      model: opts.model,
      prefix: opts.prefix,
      maxSize: opts.config.cacheMaxSize,
      logger,
      serialize: (s: string) => s,
      deserialize: (s: string) => s,
    });
    const pipeline = new BatchPipeline({
      redis: cmd,
      keys,
      model: opts.module,
      modelName: opts.model,
      cache,
      stats: this.stats,
      config: opts.config,
      workerId: this.id,
      inboxTtlMs: opts.inboxTtlMs,
      cacheTtlMs: opts.cacheTtlMs,
      logger,
    });
    this.batcher = new RequestBatcher<WorkItem, BatchOutcome>({
      name: `worker:${opts.model}`,
      process: (items) => pipeline.run(items),
      maxBatchSize: opts.config.maxBatchSize,
      batchTimeoutMs: opts.config.batchTimeoutMs,
      numWorkers: opts.config.numWorkers,
      logger,
    });
    this.batcher.start();
    this.bullConnection = createRedis(opts.redis, { blocking: true, connectionName: `inferq:worker-queue:${opts.model}` });
    this.bullConnection.on('error', (err) => logger.error({ err }, 'Redis connection error (queue)'));
    this.worker = new Worker<RequestEnvelope, WorkerJobResult>(keys.queueName, (job) => this.process(job), {
      // BullMQ duplicates this connection for its blocking fetch; we close it after the worker.
      connection: this.bullConnection,
      prefix: keys.queuePrefix,
      concurrency: opts.jobConcurrency,
      lockDuration: opts.lockDurationMs,
      stalledInterval: opts.stalledIntervalMs,
      name: this.id,
      autorun: false,
    });
    this.worker.on('error', (err) => logger.error({ err }, 'BullMQ worker error'));
    this.worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) void this.abandon(job, err);
    });
    void this.worker.run().catch((err: unknown) => logger.error({ err }, 'BullMQ worker loop stopped with an error'));
    await this.worker.waitUntilReady();
    this.state = 'running';
    logger.info({ config: opts.config, jobConcurrency: opts.jobConcurrency }, 'worker started');
  }

  /** Finishes the batches in hand, takes no new jobs, releases the model. Bounded by `stopTimeoutMs`. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  private async doStop(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    const { logger } = this;
    const t0 = Date.now();
    const closeWorker = this.worker?.close() ?? Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      closeWorker.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.opts.stopTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      logger.warn({ stopTimeoutMs: this.opts.stopTimeoutMs }, 'jobs still active at stop timeout; closing anyway (BullMQ will retry them as stalled)');
      await this.worker?.close(true).catch((err: unknown) => logger.error({ err }, 'forced close failed'));
    }
    await this.batcher?.stop({ timeoutMs: 1000 });
    await this.stats?.close().catch((err: unknown) => logger.error({ err }, 'flushing stats failed'));
    await this.opts.module.close?.().catch((err: unknown) => logger.error({ err }, 'model close failed'));
    await this.cmd?.quit().catch(() => this.cmd?.disconnect());
    await this.bullConnection?.quit().catch(() => this.bullConnection?.disconnect());
    this.state = 'stopped';
    logger.info({ ms: Date.now() - t0 }, 'worker stopped');
  }

  private async process(job: Job<RequestEnvelope, WorkerJobResult>): Promise<WorkerJobResult> {
    const env = job.data;
    if (env?.v !== WIRE_VERSION || !Array.isArray(env.items) || typeof env.client !== 'string') {
      const err = new InferqError(ErrorCode.INPUT_INVALID, `Job ${job.id} is not an inferq request envelope v${WIRE_VERSION}.`, { details: { jobId: job.id } });
      this.logger.error({ err, jobId: job.id }, 'dropping a malformed job');
      throw err;
    }
    const batcher = this.batcher;
    if (!batcher) throw new InferqError(ErrorCode.NOT_STARTED, 'InferenceWorker is not started.');
    const jobId = String(job.id);
    const items: WorkItem[] = env.items.map((it) => ({ ...it, client: env.client, jobId }));
    // No per-item timer: each item carries its deadline, checked when its batch runs.
    const outcomes = await Promise.allSettled(
      batcher.submitMany(items, { timeoutMs: Infinity }).map((computed) => computed.then((outcome) => outcome.delivered)),
    );
    const undelivered = items.filter((_, i) => outcomes[i]?.status === 'rejected');
    if (undelivered.length > 0) {
      const first = outcomes.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      // Retry only what did not reach its caller.
      await job.updateData({ ...env, items: env.items.filter((_, i) => outcomes[i]?.status === 'rejected') }).catch(() => undefined);
      throw first.reason instanceof Error ? first.reason : new Error(String(first.reason));
    }
    return { items: items.length };
  }

  /** A job that failed for good: tell its callers (and their single-flight waiters) instead of letting them wait. */
  private async abandon(job: Job<RequestEnvelope, WorkerJobResult>, cause: Error): Promise<void> {
    const env = job.data;
    const cmd = this.cmd;
    if (!cmd || !env || !Array.isArray(env.items)) return;
    const err = new JobLostError(`Job ${job.id} failed after ${job.attemptsMade} attempts: ${cause.message}`, { jobId: job.id });
    this.logger.error({ err, jobId: job.id, items: env.items.length }, 'job failed for good; telling its callers');
    const payload = encodeResultPayload({ ok: 0, error: errorToWire(err), worker: this.id });
    const settles: SettleItem[] = env.items.map((it) => {
      const s: SettleItem = { requestId: it.id, client: env.client, flight: it.flight === true, payload };
      if (it.key !== undefined) s.cacheKey = it.key;
      return s;
    });
    const pipeline = cmd.pipeline();
    appendSettle(pipeline, this.keys, settles, { maxSize: this.opts.config.cacheMaxSize, cacheTtlMs: 0, inboxTtlMs: this.opts.inboxTtlMs });
    await pipeline.exec().catch((e: unknown) => this.logger.error({ err: e, jobId: job.id }, 'could not tell the callers of a failed job'));
  }
}
