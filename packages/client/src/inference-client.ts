/**
 * InferenceClient: the SDK an application embeds.
 *
 * Request path (docs/architecture.md draws it whole):
 *  1. validate (zod schema, JSON-serialisable, size) — bad input throws a
 *     typed error and nothing is written to Redis;
 *  2. key = SHA-256 of canonical JSON of {model, modelVersion, quantization, input};
 *  3. identical requests in this process share one flight (no Redis at all);
 *     a caller who joins keeps its own deadline;
 *  4. the send path (send-path.ts): claim -> admit -> enqueue, one round
 *     trip per stage for whatever arrived together;
 *  5. the delivery path (result-delivery.ts): one inbox per client, read at
 *     least once; a request past its `timeoutMs` rejects with TimeoutError;
 *  6. a tick per second (flight-monitor.ts) keeps the heartbeat and checks
 *     requests that waited long, so none waits for a job or flight that no
 *     longer exists.
 * A flight moves by one state machine (flight.ts); the flights of a client
 * and how their callers are answered live in flight-table.ts.
 */
import { Queue, type Telemetry } from 'bullmq';
import type { RedisClient } from '@inferq/core';
import {
  ClosedError,
  ErrorCode,
  InputInvalidError,
  InferqError,
  RedisUnavailableError,
  StatsRecorder,
  TimeoutError,
  checkRedis,
  settledWithin,
  createLogger,
  createRedis,
  describeRedis,
  throttledLog,
  modelKeys,
  readStats,
  type InferOptions,
  type InferenceStats,
  type Logger,
  type ModelIdentity,
  type ModelKeys,
} from '@inferq/core';
import { CLIENT_TICK_MS, MAX_TIMEOUT_MS, PRIORITIES, RedisClock, agreeOnShards, clearShardCaches, newInstanceId, shardKeys, shardOf } from '@inferq/core/protocol';
import { resolveClientOptions, type InferenceClientOptions, type ResolvedClientOptions } from './client-options.js';
import { DeadlineScheduler } from './deadline-scheduler.js';
import { ResultInbox } from './result-inbox.js';
import { FlightMonitor } from './flight-monitor.js';
import { LocalResultCache } from './local-result-cache.js';
import { hasLiveCallers, type Caller } from './flight.js';
import { FlightTable, type ClientInferenceResult } from './flight-table.js';
import { ResultDelivery } from './result-delivery.js';
import { SendPath } from './send-path.js';
import { wireInput, type WireInput } from './wire-input.js';
import { flushOnExit } from './exit-flush.js';
import { RequestTracer } from './request-tracing.js';

export type { ClientInferenceResult } from './flight-table.js';

/** Longest wait of each step of `close()` past the wait for requests in flight. */
const CLOSE_STEP_MS = 1000;


/** One queue shard as a client uses it. */
interface ClientShard {
  keys: ModelKeys;
  queue: Queue;
  /** The inbox's own connection: its blocking read holds it. */
  blocking: RedisClient;
  inbox: ResultInbox;
  monitor: FlightMonitor;
}

/** Result lines in an inbox element (one per request answered). */
function countLines(element: string): number {
  let n = 1;
  for (let i = element.indexOf('\n'); i !== -1; i = element.indexOf('\n', i + 1)) n++;
  return n;
}


export class InferenceClient<I = unknown, O = unknown> {
  readonly id: string;
  private readonly opts: ResolvedClientOptions;
  private readonly logger: Logger;
  /** Model-wide keys (stats, the shard count). */
  private readonly keys: ModelKeys;
  /** Each queue shard: its keys, queue, result inbox (own blocking connection) and tick. */
  private readonly shards: readonly ClientShard[];
  private readonly identity: ModelIdentity;
  private readonly cmd: RedisClient;
  private readonly queueConnection: RedisClient;
  private readonly recorder: StatsRecorder;
  private readonly stopExitFlush: (() => void) | undefined;
  private readonly clock = new RedisClock();
  private readonly deadlines: DeadlineScheduler<Caller>;
  /** The optional in-process result cache (localCache), and what it was filled under. */
  private readonly local: LocalResultCache | undefined;
  /** The cache epoch and served model last seen in each shard. */
  private readonly localEpochs: Array<string | undefined> = [];
  /** The flights of this client, and how their callers are answered. */
  private readonly table: FlightTable;
  private readonly sendPath: SendPath;
  private readonly delivery: ResultDelivery;
  /** Its `inferq.request` spans (docs/tracing.md): nothing recorded or sent until the application installs an SDK. */
  private readonly tracer: RequestTracer;
  private seq = 0;
  private leaseTimer: NodeJS.Timeout | undefined;
  /** The start-up check: settles once Redis is known usable (or why not). */
  private usable: Promise<void>;
  /** Set when credentials or permissions are wrong: every request rejects with it. */
  private broken: InferqError | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: InferenceClientOptions<I>) {
    this.opts = resolveClientOptions(options as InferenceClientOptions<unknown>);
    const { model, prefix } = this.opts;
    this.id = newInstanceId();
    this.logger = createLogger('client', this.opts.logger).child({ model, client: this.id });
    this.keys = modelKeys(model, prefix);
    this.identity = { model, modelVersion: this.opts.modelVersion, quantization: this.opts.config.quantization };
    this.cmd = createRedis(this.opts.redis, { connectionName: `inferq:client:${model}` });
    // BullMQ defines ~60 scripts on its connection, and ioredis copies every
    // defined script onto each pipeline it creates: on a connection of its own
    // they do not slow down our pipelines (stats, claims).
    this.queueConnection = createRedis(this.opts.redis, { connectionName: `inferq:client-queue:${model}` });
    // A connection that keeps failing logs a line every few seconds, not one per retry.
    const logConnectionError = throttledLog(this.logger, 'error');
    for (const [name, conn] of [['command', this.cmd], ['queue', this.queueConnection]] as const) {
      conn.on('error', (err) => logConnectionError({ err, connection: name }, `Redis connection error (${name})`));
    }
    this.recorder = new StatsRecorder({ redis: this.cmd, model, prefix, logger: this.logger, flushIntervalMs: this.opts.statsFlushIntervalMs, tenant: this.opts.tenant });
    // Buffered stats reach Redis even when the process ends without close() (exit-flush.ts).
    this.stopExitFlush = this.opts.flushStatsOnExit ? flushOnExit(this.recorder) : undefined;
    this.deadlines = new DeadlineScheduler<Caller>((caller) => this.expire(caller));
    this.local = this.opts.localCache ? new LocalResultCache(this.opts.localCache) : undefined;
    this.table = new FlightTable({ recorder: this.recorder, deadlines: this.deadlines, logger: this.logger, model });
    this.tracer = new RequestTracer(model, this.opts.tenant);
    const queues = shardKeys(model, prefix, this.opts.queueShards).map((keys, shard) => {
      // telemetry: BullMQ's own spans (job add), when the application passes e.g. `new BullMQOtel()`.
      const queue = new Queue(keys.queueName, { connection: this.queueConnection, prefix: keys.queuePrefix, ...(this.opts.telemetry && { telemetry: this.opts.telemetry as Telemetry }) });
      queue.on('error', (err) => logConnectionError({ err, shard }, 'queue error'));
      return { keys, queue };
    });
    this.sendPath = new SendPath({
      client: this.id,
      opts: this.opts,
      keys: this.keys,
      shards: queues,
      cmd: this.cmd,
      clock: this.clock,
      table: this.table,
      local: this.local,
      logger: this.logger,
      whenUsable: () => this.whenUsable(),
      stopped: () => this.closing || this.broken !== undefined,
    });
    this.delivery = new ResultDelivery({ table: this.table, local: this.local, logger: this.logger, model, resend: (f) => this.sendPath.resend(f, false) });
    this.shards = queues.map(({ keys, queue }, shard) => {
      // A blocking read holds its connection (on a cluster, its node's): one per shard.
      const blocking = createRedis(this.opts.redis, { blocking: true, sendOnce: true, connectionName: `inferq:client-inbox:${model}` });
      blocking.on('error', (err) => logConnectionError({ err, connection: 'inbox', shard }, 'Redis connection error (inbox)'));
      const inbox = new ResultInbox({
        redis: blocking,
        keys,
        client: this.id,
        onElements: (els) => {
          // Each result frees a place in the model's queue: that many requests may ask Redis again.
          let answers = 0;
          for (const el of els) answers += countLines(el);
          this.sendPath.freed(answers);
          this.delivery.deliverElements(els);
        },
        logger: this.logger,
        pendingTtlMs: 300_000,
      });
      const monitor = new FlightMonitor({
        redis: this.cmd,
        keys,
        client: this.id,
        clock: this.clock,
        logger: this.logger,
        hooks: {
          flights: () => this.table.ofShard(shard),
          tracked: (f) => this.table.tracked(f),
          resend: (f, owner) => this.sendPath.resend(f, owner),
          takeOver: (f) => this.sendPath.takeOver(f),
          lose: (fs, reason) => void this.sendPath.lose(fs, reason),
          forget: (f) => this.table.forget(f),
          observe: (state) => this.observeCacheState(state, shard),
        },
      });
      return { keys, queue, blocking, inbox, monitor };
    });
    // Every tick: the operator's queue limits read again (a change needs no restart), and the lease
    // on this client's places in the queue ledger renewed once it holds any.
    this.leaseTimer = setInterval(() => this.sendPath.admissionTick(), CLIENT_TICK_MS);
    this.leaseTimer.unref();
    this.usable = this.check();
    // check() logs its failure; whoever needs Redis awaits `usable` and gets it then.
    this.usable.catch(() => undefined);
    for (const shard of this.shards) {
      shard.monitor.start();
      shard.inbox.start();
    }
  }

  /**
   * The start-up check (see redis-check.ts in core): reachable, authenticated,
   * permitted. Credentials and permissions do not fix themselves: such a
   * client is broken for good, closes its connections, and rejects every
   * request at once. An unreachable Redis may come back: the next request
   * checks again.
   */
  private async check(): Promise<void> {
    try {
      await checkRedis(this.cmd, {
        what: `InferenceClient ${this.id}`,
        role: 'client',
        target: describeRedis(this.opts.redis),
        timeoutMs: this.opts.connectTimeoutMs,
        probeKey: `${this.keys.root}:probe:${this.id}`,
        logger: this.logger,
      });
      await agreeOnShards(this.cmd, this.opts.model, this.opts.prefix, this.opts.queueShards);
      await this.sendPath.refreshLimits();
    } catch (err) {
      const e = err as InferqError;
      this.logger.error({ err: e }, 'Redis is not usable');
      if (e.code !== ErrorCode.REDIS_UNAVAILABLE) {
        this.broken = e;
        void this.close({ timeoutMs: 0 });
      }
      throw e;
    }
  }

  /** Waits for a usable Redis (bounded by connectTimeoutMs), then for Redis time. */
  private async whenUsable(): Promise<void> {
    const current = this.usable;
    try {
      await current;
    } catch (err) {
      if (!this.broken && !this.closing && this.usable === current) {
        this.usable = this.check();
        this.usable.catch(() => undefined);
      }
      throw err;
    }
    await (this.shards[0] as ClientShard).monitor.ready;
  }

  /** Runs the model on one input (batched with whatever else is in flight). */
  infer(input: I, options: InferOptions = {}): Promise<ClientInferenceResult<O>> {
    return new Promise<ClientInferenceResult<O>>((resolve, reject) => {
      if (this.broken) return reject(this.broken);
      if (this.closing) return reject(this.fail(new ClosedError('InferenceClient'), 'infer after close'));
      const useCache = options.useCache ?? this.opts.config.enableCaching;
      const timeoutMs = options.timeoutMs ?? this.opts.defaultTimeoutMs;
      if (typeof timeoutMs !== 'number' || !(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) {
        const err = new InputInvalidError(`timeoutMs must be a number of ms in (0, ${MAX_TIMEOUT_MS}], got ${String(timeoutMs)}.`, { details: { timeoutMs: String(timeoutMs) } });
        return reject(this.fail(err, 'bad timeoutMs'));
      }
      let prepared: WireInput;
      try {
        prepared = this.prepare(input, useCache);
      } catch (err) {
        return reject(this.fail(err as Error, 'input rejected; nothing was enqueued'));
      }
      const start = Date.now();
      const hit = prepared.key !== undefined ? this.local?.get(prepared.key, start) : undefined;
      if (hit !== undefined) {
        // Answered in process: no Redis, no queue. Counted as a cache hit like any other.
        this.recorder.record({ requests: 1, cache_hits: 1, latencies: [Date.now() - start] });
        this.tracer.localHit();
        return resolve({ output: JSON.parse(hit) as O, cached: true, coalesced: false, latencyMs: Date.now() - start });
      }
      const priority = options.priority ?? this.opts.priority;
      if (!PRIORITIES.includes(priority)) {
        const err = new InputInvalidError(`priority must be one of ${PRIORITIES.join(', ')}, got ${String(priority)}.`, { details: { priority: String(priority) } });
        return reject(this.fail(err, 'bad priority'));
      }
      const deadline = start + timeoutMs;
      let flight = prepared.key !== undefined ? this.table.ofKey(prepared.key) : undefined;
      const joined = flight !== undefined;
      if (!flight) {
        const seq = this.seq++;
        const id = `${this.id}.${seq.toString(36)}`;
        flight = {
          id,
          key: prepared.key,
          shard: shardOf(prepared.key, this.shards.length, seq),
          input: prepared.text,
          compact: prepared.compact,
          callers: [],
          state: 'new',
          owns: false,
          room: false,
          deadline,
          sentDeadline: deadline,
          since: start,
          jobId: undefined,
          joined: undefined,
          suspect: false,
          coalesced: false,
          counted: false,
          priority,
          rank: 0,
          trace: this.tracer.start(id),
        };
        this.table.add(flight);
      }
      // A joiner keeps its own deadline: the flight lives as long as its latest caller waits.
      if (deadline > flight.deadline) flight.deadline = deadline;
      // A joiner of a flight not yet sent lifts its class (a sent one keeps its place in the queue).
      if (PRIORITIES.indexOf(priority) < PRIORITIES.indexOf(flight.priority) && !flight.jobId) flight.priority = priority;
      const caller: Caller = { flight, start, deadline, timeoutMs, done: false, resolve: resolve as (r: unknown) => void, reject };
      flight.callers.push(caller);
      if (joined) this.table.recordJoin(flight);
      this.deadlines.add(caller, timeoutMs);
      // Routed once its caller is attached: admission may refuse it at once.
      if (!joined) this.sendPath.send(flight);
    });
  }

  /** One result per input, in order; rejects with the first error (see `inferBatchSettled` for per-item outcomes). */
  inferBatch(inputs: readonly I[], options: InferOptions = {}): Promise<ClientInferenceResult<O>[]> {
    return Promise.all(inputs.map((x) => this.infer(x, options)));
  }

  /** One settled outcome per input, in order. */
  inferBatchSettled(inputs: readonly I[], options: InferOptions = {}): Promise<PromiseSettledResult<ClientInferenceResult<O>>[]> {
    return Promise.allSettled(inputs.map((x) => this.infer(x, options)));
  }

  /** The model's statistics, shared by every client and worker. */
  async stats(): Promise<InferenceStats> {
    // Best effort: counts this client could not write stay buffered; the read still answers.
    await settledWithin(this.recorder.flush(), this.opts.connectTimeoutMs);
    return this.bounded(readStats(this.cmd, this.opts.model, this.opts.prefix), 'reading stats');
  }

  /** Removes this model's cached results (nothing else). */
  async clearCache(): Promise<void> {
    this.local?.clear();
    // Every shard's cache; every client's in-process cache follows within a tick (the epochs).
    await this.bounded(clearShardCaches(this.cmd, this.shards.map((s) => s.keys)), 'clearing the cache');
  }

  /** Drops the in-process cache when a shard's cache epoch or the model the workers serve changed. */
  private observeCacheState(state: { cacheEpoch: string; served: string }, shard: number): void {
    if (!this.local) return;
    const mine = `${this.opts.modelVersion}/${this.opts.config.quantization}`;
    const epoch = `${state.cacheEpoch}|${state.served}`;
    const before = this.localEpochs[shard];
    if (before !== undefined && before !== epoch) {
      if (this.local.size > 0) this.logger.info({ cacheEpoch: state.cacheEpoch, served: state.served, shard }, 'the model cache was cleared or the served model changed; dropping the in-process cache');
      this.local.clear();
    }
    this.localEpochs[shard] = epoch;
    // Results of a version the workers no longer serve must not be served from here either.
    if (state.served !== '' && state.served !== mine) this.local.clear();
  }

  /**
   * A command of a public method, bounded by `connectTimeoutMs` (ioredis
   * would otherwise queue it through every reconnect attempt while Redis is
   * down) and typed: a raw Redis error becomes INFERQ_REDIS_UNAVAILABLE.
   */
  private async bounded<T>(p: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
        }),
      ]);
    } catch (err) {
      const e = err instanceof InferqError ? err : new RedisUnavailableError(`${what} (model '${this.opts.model}') failed: ${(err as Error).message}`, { cause: err });
      this.logger.error({ err: e }, `${what} failed`);
      throw e;
    } finally {
      clearTimeout(timer);
      p.catch(() => undefined);
    }
  }

  /**
   * Stops accepting requests, waits up to `timeoutMs` (default 5000) for the
   * ones in flight, rejects the rest with ClosedError, and closes connections.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closed ??= this.doClose(options.timeoutMs ?? 5000);
    return this.closed;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    this.closing = true;
    const until = Date.now() + timeoutMs;
    const waiting = () => [...this.table.values()].some(hasLiveCallers);
    while (waiting() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    this.table.reject([...this.table.values()], this.broken ?? new ClosedError('InferenceClient'));
    this.deadlines.clear();
    // Its places in the queue ledger go back when the lease ends (jobs already sent are still answered).
    clearInterval(this.leaseTimer);
    // Every step is bounded: close() settles whatever Redis does (down, slow, refusing).
    await settledWithin(Promise.all(this.shards.map((s) => s.monitor.stop())), CLOSE_STEP_MS);
    await settledWithin(Promise.all(this.shards.map((s) => s.inbox.stop())), CLOSE_STEP_MS);
    if (!(await settledWithin(this.recorder.close(), CLOSE_STEP_MS))) this.logger.warn('flushing stats on close did not finish in time; dropped');
    this.stopExitFlush?.();
    await settledWithin(Promise.all(this.shards.map((s) => s.queue.close())), CLOSE_STEP_MS);
    for (const s of this.shards) s.blocking.disconnect();
    for (const conn of [this.queueConnection, this.cmd]) {
      if (!(await settledWithin(conn.quit(), CLOSE_STEP_MS))) conn.disconnect();
    }
  }

  /** Validates the input; its cache key only when the request uses the cache (hashing is per-request CPU). */
  private prepare(input: I, useCache: boolean): WireInput {
    let value: unknown = input;
    const schema = this.opts.inputSchema;
    if (schema) {
      const parsed = schema.safeParse(input);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
        throw new InputInvalidError(`Input failed the input schema: ${issues}`, { details: { issues: parsed.error.issues } });
      }
      value = parsed.data;
    }
    return wireInput(value, useCache, { identity: this.identity, maxInputBytes: this.opts.maxInputBytes, compactInputs: this.opts.compactInputs });
  }

  private expire(caller: Caller): void {
    if (caller.done) return;
    const flight = caller.flight;
    const err = new TimeoutError(caller.timeoutMs, { requestId: flight.id, model: this.opts.model });
    // The caller gets the error; counted in stats (timeouts), logged at debug only.
    this.logger.debug({ err, requestId: flight.id, timeoutMs: caller.timeoutMs }, 'request timed out');
    this.table.settle(caller, err);
    this.recorder.record({ timeouts: 1 });
    // What the flight holds in Redis is let go according to its state (see SendPath.letGo).
    if (!hasLiveCallers(flight)) this.sendPath.letGo(flight);
  }

  /** An error returned to the caller at once (bad input, closed): the caller sees it, so debug only. */
  private fail<E extends Error>(err: E, msg: string): E {
    this.logger.debug({ err }, msg);
    return err;
  }
}
