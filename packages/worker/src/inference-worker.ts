/**
 * InferenceWorker: a BullMQ Worker feeding the core RequestBatcher.
 *
 * Jobs are request envelopes (see protocol/envelope.ts in core); each job's
 * processor hands its items to the batcher and waits for them. The batcher
 * dispatches a batch at `maxBatchSize` items or when the oldest item has
 * waited `batchTimeoutMs`, with at most `numWorkers` batches in flight, and
 * each batch runs through the BatchPipeline (one cache read, one model call,
 * one settle+stats pipeline). A job completes once all its items' results are
 * delivered; it fails (and BullMQ retries it) only when delivery failed.
 */
import { QueueUpkeep } from './queue-upkeep.js';
import { UrgentFetch } from './urgent-fetch.js';
import { SuspectLane } from './suspect-lane.js';
import { abandonJob } from './abandoned-job.js';
import { StuckModelWatch, type HeldJob } from './stuck-model.js';
import { Worker, type Job, type Telemetry } from 'bullmq';
import type { RedisClient } from '@inferq/core';
import {
  ErrorCode,
  InferqError,
  RequestBatcher,
  StatsRecorder,
  checkRedis,
  settledWithin,
  createLogger,
  createRedis,
  describeRedis,
  isCluster,
  modelKeys,
  throttledLog,
  type Logger,
  type ModelKeys,
} from '@inferq/core';
import {
  RedisClock,
  WaiterClients,
  agreeOnShards,
  shardKeys,
  execSettle,
  setMaxQueueLength,
  type RequestEnvelope,
  type SettleOptions,
} from '@inferq/core/protocol';
import { BatchPipeline, type BatchOutcome, type WorkItem } from './batch-pipeline.js';
import { CrashIsolation, maxStalledCountFor } from './crash-isolation.js';
import { ConvictedInputs } from './convicted-inputs.js';
import { notYetAnswered, reportRefused, takeInJob } from './job-intake.js';
import { ModelGate } from './model-gate.js';
import { WorkerHeartbeat } from './worker-heartbeat.js';
import { ModelRunner } from './model-runner.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { hangsOf } from './hang-record.js';
import { probeInput } from './crash-probe.js';
import { resolveWorkerOptions, type InferenceWorkerOptions, type ResolvedWorkerOptions } from './worker-options.js';
import { assessHealth, type HealthOptions, type WorkerHealth } from './worker-health.js';

/** Longest wait of each shutdown step past `stopTimeoutMs` (forced close, stats flush, each connection). */
const STEP_BOUND_MS = 1000;


export interface WorkerJobResult {
  items: number;
}

export class InferenceWorker<I = unknown, O = unknown> {
  readonly id: string;
  private readonly opts: ResolvedWorkerOptions;
  private readonly logger: Logger;
  /** Model-wide keys (stats, the shard count). */
  private readonly keys: ModelKeys;
  /** Each queue shard's keys; the worker consumes every shard. */
  private readonly shards: readonly ModelKeys[];
  private cmd: RedisClient | undefined;
  private bullConnection: RedisClient | undefined;
  /** One BullMQ worker per shard, sharing one connection. */
  private workers: Array<Worker<RequestEnvelope, WorkerJobResult>> = [];
  /** Clients seen waiting on flights: their inboxes are declared to the settle script up front. */
  private readonly waiters = new WaiterClients();
  private batcher: RequestBatcher<WorkItem, BatchOutcome> | undefined;
  private stats: StatsRecorder | undefined;
  private readonly clock = new RedisClock();
  /** Request items in jobs taken and not yet answered, and those jobs: see `maxHeldItems`. */
  private heldItems = 0;
  /** Jobs held, per shard. */
  private heldJobs: number[] = [];
  /** Model calls past modelTimeoutMs: pausing, resuming, leaving (stuck-model.ts). */
  private readonly stuck: StuckModelWatch;
  /** When the command connection was lost; undefined while it is up (for `health()`). */
  private redisDownSince: number | undefined;
  /** Crash isolation (off with maxCrashes 0), and the jobs it is running: while any, no new job is taken. */
  private isolation: CrashIsolation | undefined;
  /** Inputs the fleet convicted of crashing the worker process (with crash isolation on). */
  private convicted: ConvictedInputs | undefined;
  private isolating = 0;
  /** Inputs that hung before, run alone here one at a time after the ordinary work in hand. */
  private suspects: SuspectLane | undefined;
  /** The model's circuit breaker state (for `health()`), and when it lets a probe through. */
  private breakerState: BreakerState = 'closed';
  private breaker: CircuitBreaker | undefined;
  /** Jobs in hand with their lock tokens: what a worker that leaves hands back. */
  private readonly active = new Map<string, HeldJob>();
  private clockTimer: NodeJS.Timeout | undefined;
  private upkeep: QueueUpkeep | undefined;
  /** Takes a job of a better class past the held-items limit (urgent-fetch.ts). */
  private urgent: UrgentFetch<RequestEnvelope, WorkerJobResult> | undefined;
  /** This worker's entry in the model's registry of live workers (what set-shards checks). */
  private heartbeat: WorkerHeartbeat | undefined;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | undefined;

  constructor(options: InferenceWorkerOptions<I, O>) {
    this.opts = resolveWorkerOptions(options as InferenceWorkerOptions<unknown, unknown>);
    this.id = this.opts.workerId;
    this.logger = createLogger('worker', this.opts.logger).child({ model: this.opts.model, worker: this.id });
    this.keys = modelKeys(this.opts.model, this.opts.prefix);
    this.shards = shardKeys(this.opts.model, this.opts.prefix, this.opts.queueShards);
    this.heldJobs = this.shards.map(() => 0);
    const { opts, logger } = this;
    this.stuck = new StuckModelWatch({
      slots: opts.config.numWorkers,
      modelTimeoutMs: opts.modelTimeoutMs,
      stuckExitFactor: opts.stuckExitFactor,
      logger,
      running: () => this.state === 'running',
      pause: () => {
        for (const w of this.workers) void w.pause(true).catch((err: unknown) => logger.error({ err }, 'pausing the worker failed'));
      },
      resume: () => {
        for (const w of this.workers) w.resume();
      },
      jobs: () => this.active.values(),
      releaseRecords: async () => this.isolation?.releaseRecords(),
      stop: () => this.stop(),
      onStuckExit: opts.onStuckExit,
    });
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
    const logConnectionError = throttledLog(logger, 'error');
    cmd.on('error', (err) => logConnectionError({ err }, 'Redis connection error'));
    try {
      // Reachable, authenticated, permitted — or one typed error naming why, and nothing left running.
      await checkRedis(cmd, {
        what: `InferenceWorker ${this.id}`,
        role: 'worker',
        target: describeRedis(opts.redis),
        timeoutMs: opts.connectTimeoutMs,
        probeKey: `${keys.root}:probe:${this.id}`,
        logger,
      });
      // Listed before agreeing on the count: set-shards either sees this worker or ran before it read the count.
      this.heartbeat = new WorkerHeartbeat(cmd, keys.workers, this.id, logger);
      await this.heartbeat.start();
      await agreeOnShards(cmd, opts.model, opts.prefix, opts.queueShards, 'worker');
    } catch (err) {
      logger.error({ err }, 'Redis is not usable; the worker does not start');
      await this.heartbeat?.stop();
      cmd.disconnect();
      this.state = 'stopped';
      await settledWithin(opts.module.close?.() ?? Promise.resolve(), STEP_BOUND_MS * 5);
      throw err;
    }
    this.cmd = cmd;
    // The model's queue bound is the operator's: recorded where every client reads it.
    if (opts.config.maxQueueLength > 0) {
      await setMaxQueueLength(cmd, keys, opts.config.maxQueueLength).catch((err: unknown) => logger.warn({ err }, 'recording maxQueueLength failed'));
    }
    cmd.on('close', () => (this.redisDownSince ??= Date.now()));
    cmd.on('ready', () => (this.redisDownSince = undefined));
    // What this worker serves, for clients' in-process caches (a change drops them).
    const served = `${opts.modelVersion}/${opts.config.quantization}`;
    await Promise.all(this.shards.map((shard) => cmd.set(shard.served, served))).catch((err: unknown) => logger.warn({ err }, 'publishing the served model version failed'));
    this.stats = new StatsRecorder({ redis: cmd, model: opts.model, prefix: opts.prefix, logger });
    // Deadlines are on Redis time: sync before the first job, then keep following it.
    await this.clock.sync(cmd);
    this.clockTimer = setInterval(() => {
      this.clock.sync(cmd).catch((err: unknown) => logger.warn({ err }, 'reading Redis time failed'));
    }, 10_000);
    this.clockTimer.unref();
    // Dead clients' queue places, tenants' slot caps, aging of queued jobs (queue-upkeep.ts).
    this.upkeep = new QueueUpkeep({ cmd, keys, workers: () => this.workers, priorityAgingMs: opts.priorityAgingMs, logger });
    // One settle configuration for ordinary batches and isolated calls alike.
    const settle = this.settleOptions();
    this.breaker = new CircuitBreaker({
      failures: opts.breakerFailures,
      backoffMs: opts.breakerBackoffMs,
      maxBackoffMs: 30_000,
      onChange: (state, info) => {
        this.breakerState = state;
        if (state === 'open') logger.error({ ...info, breakerFailures: opts.breakerFailures }, "the model failed every one of its last calls: circuit breaker open, answering INFERQ_MODEL_UNAVAILABLE until a probe after the back-off succeeds");
        else if (state === 'closed') logger.warn(info, 'the model answered a probe: circuit breaker closed');
      },
    });
    const runner = new ModelRunner({
      run: opts.module.run as (inputs: unknown[]) => Promise<unknown[]>,
      modelName: opts.model,
      timeoutMs: opts.modelTimeoutMs,
      isolatePoison: opts.isolatePoison,
      logger,
      slots: opts.config.numWorkers,
      onStuck: (n) => this.stuck.update(n),
      breaker: this.breaker,
    });
    const pipeline = new BatchPipeline({
      redis: cmd,
      shards: this.shards,
      perShardPipelines: isCluster(cmd),
      waiters: this.waiters,
      runner,
      modelName: opts.model,
      clock: this.clock,
      stats: this.stats,
      config: opts.config,
      workerId: this.id,
      settle,
      maxOutputBytes: opts.maxOutputBytes,
      typedInputs: opts.module.typedInputs === true,
      logger,
      onBatch: opts.onBatch,
    });
    // Crash isolation: ordinary batches share the model; an isolated call has it alone.
    const gate = opts.maxCrashes > 0 ? new ModelGate() : undefined;
    this.suspects = new SuspectLane({
      busy: () => this.batcher !== undefined && (this.batcher.stats.pending > 0 || this.batcher.stats.inFlight > 0),
      runAlone: (item) => (gate ? gate.shared(() => pipeline.run([item])) : pipeline.run([item])),
    });
    if (gate) {
      this.convicted = new ConvictedInputs(cmd, keys.convicted, { model: opts.model, modelVersion: opts.modelVersion, quantization: opts.config.quantization }, logger);
      await this.convicted.start();
      this.isolation = new CrashIsolation({
        convicted: this.convicted,
        redis: cmd,
        shards: this.shards,
        waiters: this.waiters,
        maxCrashes: opts.maxCrashes,
        pipeline,
        gate,
        stats: this.stats,
        settle,
        workerId: this.id,
        logger,
        onBatch: opts.onBatch,
        fresh: () => runner.started === 0,
        probe: opts.probeModule
          ? (inputJson: string) => probeInput({ module: opts.probeModule as string, quantization: opts.config.quantization, timeoutMs: opts.modelTimeoutMs, logger }, inputJson)
          : undefined,
      });
    }
    this.batcher = new RequestBatcher<WorkItem, BatchOutcome>({
      name: `worker:${opts.model}`,
      process: gate ? (items) => gate.shared(() => pipeline.run(items)) : (items) => pipeline.run(items),
      maxBatchSize: opts.config.maxBatchSize,
      batchTimeoutMs: opts.config.batchTimeoutMs,
      numWorkers: opts.config.numWorkers,
      batchPolicy: opts.batchPolicy,
      // A tenant's cap on model slots (`inferq tenants set <t> --max-slots n`), per worker.
      groupLimit: this.upkeep.slotCap,
      // What aging does for jobs queued in Redis (queue-upkeep.ts), for items held here.
      agingMs: opts.priorityAgingMs,
      onBatch: () => this.urgent?.check(),
      logger,
    });
    this.batcher.start();
    const batcher = this.batcher;
    this.urgent = new UrgentFetch({
      cmd,
      workers: () => this.workers,
      full: (s) =>
        this.state === 'running' &&
        this.isolating === 0 &&
        !this.stuck.blocked &&
        (this.heldItems >= opts.maxHeldItems || (this.heldJobs[s] ?? 0) - (this.urgent?.inHand(s) ?? 0) >= this.shardConcurrency()),
      rankMargin: opts.config.maxBatchSize,
      nextPending: () => batcher.nextPriority(),
      logger,
    });
    this.bullConnection = createRedis(opts.redis, { blocking: true, connectionName: `inferq:worker-queue:${opts.model}` });
    this.bullConnection.on('error', (err) => logConnectionError({ err }, 'Redis connection error (queue)'));
    const logWorkerError = throttledLog(logger, 'error');
    const connection = this.bullConnection;
    this.workers = this.shards.map((shard, s) => {
      const worker = new Worker<RequestEnvelope, WorkerJobResult>(shard.queueName, (job, token) => this.process(job, s, token), {
        // BullMQ duplicates this connection for its blocking fetch; we close it after the workers.
        connection,
        prefix: shard.queuePrefix,
        concurrency: this.shardConcurrency(),
        lockDuration: opts.lockDurationMs,
        stalledInterval: opts.stalledIntervalMs,
        // Stalls a job may take before it fails whole: enough for crash isolation to convict its input.
        maxStalledCount: maxStalledCountFor(opts.maxCrashes),
        name: this.id,
        autorun: false,
        // BullMQ's own spans (job process), when the application passes e.g. `new BullMQOtel()`.
        ...(opts.telemetry && { telemetry: opts.telemetry as Telemetry }),
      });
      worker.on('error', (err) => logWorkerError({ err, shard: s }, 'BullMQ worker error'));
      // `finishedOn` is set exactly when BullMQ moved the job to failed for good: attempts used up,
      // or an UnrecoverableError such as "job stalled more than allowable limit".
      worker.on('failed', (job, err) => {
        if (job?.finishedOn && this.cmd) {
          void abandonJob(job, err, { cmd: this.cmd, keys: this.shards[s] as ModelKeys, shard: s, settle: this.settleOptions(), waiters: this.waiters, workerId: this.id, logger });
        }
      });
      void worker.run().catch((err: unknown) => logger.error({ err, shard: s }, 'BullMQ worker loop stopped with an error'));
      return worker;
    });
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
    this.upkeep.start();
    this.urgent.start();
    this.state = 'running';
    logger.info({ config: opts.config, jobConcurrency: opts.jobConcurrency, maxHeldItems: opts.maxHeldItems, queueShards: opts.queueShards }, 'worker started');
  }

  /** Finishes the batches in hand, takes no new jobs, releases the model. Bounded by `stopTimeoutMs`. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /**
   * Live (a restart would not help) and ready (takes jobs now), with the
   * reasons when not; no I/O. The contract is in worker-health.ts; a
   * worker's `--metrics-port` serves it at `/healthz` and `/readyz`.
   */
  health(options: HealthOptions = {}): WorkerHealth {
    return assessHealth(
      {
        state: this.state,
        stuckCalls: this.stuck.stuckCalls,
        slots: this.opts.config.numWorkers,
        stuckSince: this.stuck.since,
        redisStatus: this.cmd?.status,
        redisDownSince: this.redisDownSince,
        stuckLimitMs: this.stuck.limitMs,
        breaker: this.breakerState,
        breakerRetryAt: this.breaker?.retryAt ?? 0,
        now: Date.now(),
      },
      options,
    );
  }

  /**
   * Every step is bounded, whatever Redis does: BullMQ's own close can hang
   * for good (right after a Redis restart its blocking connection waits for
   * an 'end' event that never comes, and `close(true)` returns that same
   * promise), so past its bound the connections are dropped instead.
   */
  private async doStop(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    const { logger } = this;
    const t0 = Date.now();
    clearInterval(this.clockTimer);
    this.upkeep?.stop();
    this.urgent?.stop();
    this.stuck.stop();
    this.convicted?.stop();
    // Jobs taken past the limit are outside BullMQ's loop, so its close does not wait for them.
    const closed = await settledWithin(Promise.all([...this.workers.map((w) => w.close()), this.urgent?.drain()]), this.opts.stopTimeoutMs);
    if (!closed) {
      logger.warn({ stopTimeoutMs: this.opts.stopTimeoutMs }, 'jobs still active at stop timeout; closing anyway (BullMQ will retry them as stalled)');
      const forced = await settledWithin(Promise.all(this.workers.map((w) => w.close(true))), STEP_BOUND_MS);
      if (!forced) {
        logger.warn('BullMQ did not close in time; dropping its connections');
        await this.dropBullMqConnections();
      }
    }
    await this.batcher?.stop({ timeoutMs: 1000 });
    if (!(await settledWithin(this.stats?.close() ?? Promise.resolve(), STEP_BOUND_MS))) logger.warn('flushing stats did not finish in time; dropped');
    if (!(await settledWithin(this.opts.module.close?.() ?? Promise.resolve(), STEP_BOUND_MS * 5))) logger.warn('the model did not close in time');
    await this.heartbeat?.stop(); // bounded by itself
    for (const conn of [this.cmd, this.bullConnection]) {
      if (conn && !(await settledWithin(conn.quit(), STEP_BOUND_MS))) conn.disconnect();
    }
    this.state = 'stopped';
    logger.info({ ms: Date.now() - t0 }, 'worker stopped');
  }

  /** Disconnects BullMQ's duplicated blocking connection (and ours), so nothing keeps the process alive. */
  private async dropBullMqConnections(): Promise<void> {
    // BullMQ keeps its blocking client private; reach it defensively, the way its own close() does.
    for (const worker of this.workers) {
      const backend = (worker as unknown as { backend?: { blockingConnection?: { client?: Promise<RedisClient> } } }).backend;
      const blocking = backend?.blockingConnection?.client;
      if (blocking) {
        const client = await Promise.race([blocking, new Promise<undefined>((r) => setTimeout(() => r(undefined), 200))]);
        client?.disconnect();
      }
    }
    this.bullConnection?.disconnect();
  }

  /**
   * Counts items in hand and tells BullMQ how many jobs it may hold: past
   * `maxHeldItems`, only those already held (it fetches no more until one
   * ends); below it, `jobConcurrency`. BullMQ re-reads its concurrency before
   * each fetch, and a job ending wakes its loop.
   */
  private hold(items: number, jobs: number, shard: number): void {
    this.heldItems += items;
    this.heldJobs[shard] = (this.heldJobs[shard] ?? 0) + jobs;
    // While isolating after a crash, too: a worker that may die again holds no more innocent jobs than it has.
    const full = this.heldItems >= this.opts.maxHeldItems || this.isolating > 0;
    this.workers.forEach((worker, s) => {
      // BullMQ's loop counts only its own jobs, not those urgent-fetch.ts took.
      const limit = full ? Math.max(1, (this.heldJobs[s] ?? 0) - (this.urgent?.inHand(s) ?? 0)) : this.shardConcurrency();
      if (worker.concurrency !== limit) worker.concurrency = limit;
    });
  }

  /**
   * Jobs each shard's BullMQ worker may hold: `jobConcurrency` each, not a
   * share of it, so a hot shard (a popular input routes to one shard) can
   * fill the worker's batches alone; `maxHeldItems` bounds what the worker
   * holds over all shards.
   */
  private shardConcurrency(): number {
    return this.opts.jobConcurrency;
  }

  private settleOptions(): SettleOptions {
    const { opts } = this;
    // A job is re-run after its lock expired and a stalled check saw it (and maybe once more):
    // its done bitmap must outlive that, and no longer (one key per job).
    const doneTtlMs = Math.max(60_000, 4 * (opts.lockDurationMs + opts.stalledIntervalMs));
    // Each shard holds its part of the cache: cacheMaxSize and cacheMaxBytes are split evenly.
    const n = this.shards.length;
    // The queue ledger is model-wide: the settle script writes it unless it lives in another slot.
    const room = { keys: this.keys, inScript: n === 1 || !(this.cmd && isCluster(this.cmd)) };
    return { maxSize: Math.ceil(opts.config.cacheMaxSize / n), maxBytes: Math.ceil(opts.config.cacheMaxBytes / n), cacheTtlMs: opts.cacheTtlMs, inboxTtlMs: opts.inboxTtlMs, doneTtlMs, room };
  }

  /** One job: its items answered, unless the worker leaves first and hands it back (stuck-model.ts). */
  private async process(job: Job<RequestEnvelope, WorkerJobResult>, shard: number, token: string | undefined): Promise<WorkerJobResult> {
    const jobId = String(job.id);
    let handBack!: (err: Error) => void;
    const handedBack = new Promise<never>((_, reject) => (handBack = reject));
    handedBack.catch(() => undefined);
    this.active.set(jobId, { job, token, handBack });
    try {
      return await Promise.race([this.processJob(job, shard), handedBack]);
    } finally {
      this.active.delete(jobId);
    }
  }

  private async processJob(job: Job<RequestEnvelope, WorkerJobResult>, shard: number): Promise<WorkerJobResult> {
    const batcher = this.batcher;
    const cmd = this.cmd;
    const keys = this.shards[shard] as ModelKeys;
    if (!batcher || !cmd) throw new InferqError(ErrorCode.NOT_STARTED, 'InferenceWorker is not started.');
    const jobId = String(job.id);
    const { config } = this.opts;
    const intake = takeInJob(job, shard, { model: this.opts.model, modelVersion: this.opts.modelVersion, quantization: config.quantization, workerId: this.id, logger: this.logger });
    const { answerNow } = intake;
    let { items } = intake;
    if (answerNow.length > 0) {
      await execSettle(cmd, keys, answerNow, this.settleOptions(), this.waiters);
    }
    if (answerNow.length > 0 && this.opts.onBatch) reportRefused(this.opts.onBatch, answerNow, this.logger);
    /** Items that hung in an earlier try (hang-record.ts): run alone, after the rest. */
    let suspects: WorkItem[] = [];
    if (items.length > 0 && (job.attemptsStarted > 1 || job.attemptsMade > 0 || job.stalledCounter > 0)) {
      // A re-run: skip what an earlier run already answered (it is not computed or counted twice).
      const [done, record] = await Promise.all([cmd.getBuffer(keys.jobDone(jobId)), cmd.hgetall(keys.jobCrashes(jobId))]);
      items = notYetAnswered(done, items);
      if (job.stalledCounter === 0) {
        // (A stalled job's items all run alone anyway: crash isolation.)
        suspects = items.filter((it) => hangsOf(record, it) > 0);
        if (suspects.length > 0) {
          this.logger.warn({ jobId, requestIds: suspects.map((i) => i.id) }, 'these inputs hung the model in an earlier try; running them alone, after the work in hand');
          const s = new Set(suspects);
          items = items.filter((it) => !s.has(it));
        }
      }
    }
    if (suspects.length > 0) {
      // Alone and after the rest; the ordinary items (if any) go through the batcher meanwhile.
      this.hold(suspects.length, 0, shard);
      const alone = Promise.allSettled(suspects.map((item) => (this.suspects as SuspectLane).run(item)));
      let rest: WorkerJobResult;
      let results: PromiseSettledResult<void>[];
      try {
        rest = await this.runItems(batcher, job, items, shard);
      } finally {
        results = await alone;
        this.hold(-suspects.length, 0, shard);
      }
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
      return { items: rest.items + suspects.length };
    }
    return this.runItems(batcher, job, items, shard);
  }

  /** The ordinary path of a job's items: convictions, crash isolation after a stall, or the batcher. */
  private async runItems(batcher: RequestBatcher<WorkItem, BatchOutcome>, job: Job<RequestEnvelope, WorkerJobResult>, items: WorkItem[], shard: number): Promise<WorkerJobResult> {
    const jobId = String(job.id);
    if (items.length === 0) return { items: 0 };
    // Inputs the fleet convicted earlier of crashing the worker process: answered, never run.
    if (this.isolation && this.convicted) {
      const convicted: Array<{ item: WorkItem; crashes: number }> = [];
      for (const item of items) {
        const crashes = this.convicted.crashesOf(item);
        if (crashes !== undefined) convicted.push({ item, crashes });
      }
      if (convicted.length > 0) {
        await this.isolation.refuseConvicted(shard, jobId, convicted);
        const refused = new Set(convicted.map((c) => c.item));
        items = items.filter((item) => !refused.has(item));
        if (items.length === 0) return { items: 0 };
      }
    }
    // A worker died holding this job (or lost its lock): its items run alone, see crash-isolation.ts.
    if (this.isolation && job.stalledCounter > 0) return this.isolate(this.isolation, job, items, shard);
    this.hold(items.length, 1, shard);
    let outcomes: PromiseSettledResult<void>[];
    try {
      // No per-item timer: each item carries its deadline, checked when its batch runs.
      outcomes = await Promise.allSettled(
        // The job's BullMQ priority orders its items in the batcher too (class, then fair rank; a job's
        // items stay together in arrival order: spread over batches by an offset per item, a job ends
        // later and holds its BullMQ slot longer; measured with ONNX, batches of 44-49 of 64 instead of 64).
        batcher
          .submitMany(items, { timeoutMs: Infinity, priority: job.priority, group: (items[0] as WorkItem).tenant })
          .map((computed) => computed.then((outcome) => outcome.delivered)),
      );
    } finally {
      this.hold(-items.length, -1, shard);
    }
    const failed = outcomes.find((r) => r.status === 'rejected');
    // A retry re-runs only what did not reach its caller: the done bitmap knows what did.
    if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    return { items: items.length };
  }

  private async isolate(isolation: CrashIsolation, job: Job<RequestEnvelope, WorkerJobResult>, items: WorkItem[], shard: number): Promise<WorkerJobResult> {
    this.isolating++;
    this.hold(items.length, 1, shard);
    try {
      await isolation.run(String(job.id), job.stalledCounter, items, shard);
    } finally {
      this.isolating--;
      this.hold(-items.length, -1, shard);
    }
    return { items: items.length };
  }
}
