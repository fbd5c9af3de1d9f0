/**
 * InferenceClient: the SDK an application embeds.
 *
 * Request path (docs/architecture.md draws it whole):
 *  1. validate (zod schema, JSON-serialisable, size) — bad input throws a
 *     typed error and nothing is written to Redis;
 *  2. key = SHA-256 of canonical JSON of {model, modelVersion, quantization, input};
 *  3. identical requests in this process share one flight (no Redis at all);
 *     a caller who joins keeps its own deadline;
 *  4. requests that arrive together go out together, through two coalescing
 *     stages (see coalescing-stage.ts): ONE script call reads the cache and
 *     opens or joins the flights of all of them (a hit never touches the
 *     queue), then ONE `addBulk` enqueues the flights it owns, packed into
 *     envelopes of up to `maxEnvelopeItems`;
 *  5. results come back through one inbox per client, read at least once;
 *     a request past its `timeoutMs` rejects with TimeoutError;
 *  6. a tick per second (flight-monitor.ts) keeps the heartbeat and checks
 *     requests that waited long, so none waits for a job or flight that no
 *     longer exists.
 */
import { Queue } from 'bullmq';
import type { RedisClient } from '@inferq/core';
import {
  ClosedError,
  DeadlineExceededError,
  ErrorCode,
  InputInvalidError,
  JobLostError,
  ProtocolError,
  QueueFullError,
  RedisUnavailableError,
  InferqError,
  StatsRecorder,
  TimeoutError,
  checkRedis,
  settledWithin,
  createLogger,
  createRedis,
  describeRedis,
  throttledLog,
  errorFromWire,
  canonicalJson,
  keyFromCanonicalInput,
  modelKeys,
  readStats,
  type InferOptions,
  type InferenceStats,
  type Logger,
  type ModelIdentity,
  type ModelKeys,
} from '@inferq/core';
import {
  ENVELOPE_JOB_NAME,
  ENVELOPE_VERSION,
  MAX_TIMEOUT_MS,
  RedisClock,
  agreeOnShards,
  claimFlights,
  clearShardCaches,
  shardKeys,
  shardOf,
  decodeInboxElement,
  failurePayload,
  newInstanceId,
  releaseFlights,
  releaseRoom,
  reserveRoom,
  CLIENT_TICK_MS,
  type ClaimOutcome,
  type InboxMessage,
  type RequestEnvelope,
  type RequestItem,
} from '@inferq/core/protocol';
import { resolveClientOptions, type InferenceClientOptions, type ResolvedClientOptions } from './client-options.js';
import { DeadlineScheduler } from './deadline-scheduler.js';
import { ResultInbox } from './result-inbox.js';
import { CoalescingStage } from './coalescing-stage.js';
import { isTransientRedisError, retryDelayMs, RETRY_WINDOW_MS } from './transient-retry.js';
import { FlightMonitor } from './flight-monitor.js';
import { LocalResultCache } from './local-result-cache.js';
import { hasLiveCallers, moveTo, resetFlight, type Caller, type Flight } from './flight.js';

export interface ClientInferenceResult<O = unknown> {
  output: O;
  /** Answered from the result cache without running the model. */
  cached: boolean;
  /** Shared the computation of an identical request already in flight. */
  coalesced: boolean;
  /** Time from `infer()` to the result, in ms. */
  latencyMs: number;
  /** Id of the worker that computed (or found) the output; absent for client-side cache hits. */
  worker?: string;
  /** Size of the model batch that computed the output. */
  batchSize?: number;
}

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

/** Longest a client trusts a "queue full" answer before asking Redis again. */
const FULL_TRUST_MS = 20;

/** Result lines in an inbox element (one per request answered). */
function countLines(element: string): number {
  let n = 1;
  for (let i = element.indexOf('\n'); i !== -1; i = element.indexOf('\n', i + 1)) n++;
  return n;
}

/** Failed jobs are kept for inspection, but few and not for long: they hold whole envelopes. */
const ENVELOPE_JOB_OPTS = { removeOnComplete: true, removeOnFail: { count: 100, age: 3600 }, attempts: 3, backoff: { type: 'exponential', delay: 200 } } as const;

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
  private readonly clock = new RedisClock();
  private readonly deadlines: DeadlineScheduler<Caller>;
  /** The optional in-process result cache (localCache), and what it was filled under. */
  private readonly local: LocalResultCache | undefined;
  /** The cache epoch and served model last seen in each shard. */
  private readonly localEpochs: Array<string | undefined> = [];
  /** Flights waiting for a result, by request id. */
  private readonly flights = new Map<string, Flight>();
  /** Cached-mode flights by cache key, for in-process single-flight. */
  private readonly flightsByKey = new Map<string, Flight>();
  /** Cached requests go through the claim stage (cache read, single-flight), misses then through the enqueue stage. */
  private readonly claimStage = new CoalescingStage<Flight>(
    (fs) => this.claim(fs),
    (err, fs) => this.failFlights(fs, err, 'claim stage failed'),
    // Two claims in flight: a cache hit waits for at most part of one other round trip.
    2,
  );
  /** Admission under maxQueueLength (only used when it is set). */
  private readonly admitStage = new CoalescingStage<Flight>(
    (fs) => this.admit(fs),
    (err, fs) => this.failFlights(fs, err, 'queue admission failed'),
    2,
  );
  private readonly enqueueStage = new CoalescingStage<Flight>(
    (fs) => this.enqueue(fs),
    (err, fs) => this.failFlights(fs, err, 'enqueue stage failed'),
  );
  private seq = 0;
  /**
   * Set when the model's queue refused requests (maxQueueLength): until
   * `until`, requests are refused without a round trip, except as many as
   * results arrived since (`room`: each answer frees a place, which those
   * requests ask Redis for).
   */
  private full: { until: number; max: number; retryAfterMs: number; queued: number; room: number } | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private reservedAny = false;
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
    this.logQueueFull = throttledLog(this.logger, 'warn');
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
    this.recorder = new StatsRecorder({ redis: this.cmd, model, prefix, logger: this.logger, flushIntervalMs: this.opts.statsFlushIntervalMs });
    this.deadlines = new DeadlineScheduler<Caller>((caller) => this.expire(caller));
    this.local = this.opts.localCache ? new LocalResultCache(this.opts.localCache) : undefined;
    this.shards = shardKeys(model, prefix, this.opts.queueShards).map((keys, shard) => {
      const queue = new Queue(keys.queueName, { connection: this.queueConnection, prefix: keys.queuePrefix });
      queue.on('error', (err) => logConnectionError({ err, shard }, 'queue error'));
      // A blocking read holds its connection (on a cluster, its node's): one per shard.
      const blocking = createRedis(this.opts.redis, { blocking: true, sendOnce: true, connectionName: `inferq:client-inbox:${model}` });
      blocking.on('error', (err) => logConnectionError({ err, connection: 'inbox', shard }, 'Redis connection error (inbox)'));
      const inbox = new ResultInbox({
        redis: blocking,
        keys,
        client: this.id,
        onElements: (els) => {
          // Each result frees a place in the model's queue: that many requests may ask Redis again.
          const full = this.full;
          if (full) for (const el of els) full.room += countLines(el);
          this.deliverElements(els);
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
          flights: () => this.flightsOf(shard),
          tracked: (f) => this.flights.get(f.id) === f,
          resend: (f, owner) => this.resend(f, owner),
          takeOver: (f) => this.takeOver(f),
          lose: (fs, reason) => void this.lose(fs, reason),
          forget: (f) => this.forget(f),
          observe: (state) => this.observeCacheState(state, shard),
        },
      });
      return { keys, queue, blocking, inbox, monitor };
    });
    // Places in the queue ledger are leased: renewed every tick while this client may hold any.
    if (this.opts.config.maxQueueLength > 0) {
      this.leaseTimer = setInterval(() => this.renewRoomLease(), CLIENT_TICK_MS);
      this.leaseTimer.unref();
    }
    this.usable = this.check();
    // check() logs its failure; whoever needs Redis awaits `usable` and gets it then.
    this.usable.catch(() => undefined);
    for (const shard of this.shards) {
      shard.monitor.start();
      shard.inbox.start();
    }
  }

  /** The tracked flights of one shard (its tick checks them). */
  private *flightsOf(shard: number): Generator<Flight> {
    for (const f of this.flights.values()) if (f.shard === shard) yield f;
  }

  /** Flights grouped by their shard, in the order they came. */
  private byShard(flights: readonly Flight[]): Map<ClientShard, Flight[]> {
    const groups = new Map<ClientShard, Flight[]>();
    for (const f of flights) {
      const shard = this.shard(f);
      let g = groups.get(shard);
      if (!g) groups.set(shard, (g = []));
      g.push(f);
    }
    return groups;
  }

  private shard(f: Flight): ClientShard {
    return this.shards[f.shard] as ClientShard;
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
      let prepared: { json: string; key: string | undefined };
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
        return resolve({ output: JSON.parse(hit) as O, cached: true, coalesced: false, latencyMs: Date.now() - start });
      }
      const deadline = start + timeoutMs;
      let flight = prepared.key !== undefined ? this.flightsByKey.get(prepared.key) : undefined;
      const joined = flight !== undefined;
      if (!flight) {
        const seq = this.seq++;
        flight = {
          id: `${this.id}.${seq.toString(36)}`,
          key: prepared.key,
          shard: shardOf(prepared.key, this.shards.length, seq),
          input: prepared.json,
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
        };
        this.flights.set(flight.id, flight);
        if (flight.key !== undefined) this.flightsByKey.set(flight.key, flight);
      }
      // A joiner keeps its own deadline: the flight lives as long as its latest caller waits.
      if (deadline > flight.deadline) flight.deadline = deadline;
      const caller: Caller = { flight, start, deadline, timeoutMs, done: false, resolve: resolve as (r: unknown) => void, reject };
      flight.callers.push(caller);
      if (joined) this.recordJoin(flight);
      this.deadlines.add(caller, timeoutMs);
      // Routed once its caller is attached: admission may refuse it at once.
      if (!joined) {
        if (flight.key !== undefined) this.claimStage.push(flight);
        else this.toQueue(flight);
      }
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
    const waiting = () => [...this.flights.values()].some(hasLiveCallers);
    while (waiting() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const flight of [...this.flights.values()]) {
      for (const c of flight.callers) this.settle(c, this.broken ?? new ClosedError('InferenceClient'));
      this.forget(flight);
    }
    this.deadlines.clear();
    // Its places in the queue ledger go back when the lease ends (jobs already sent are still answered).
    clearInterval(this.leaseTimer);
    // Every step is bounded: close() settles whatever Redis does (down, slow, refusing).
    await settledWithin(Promise.all(this.shards.map((s) => s.monitor.stop())), CLOSE_STEP_MS);
    await settledWithin(Promise.all(this.shards.map((s) => s.inbox.stop())), CLOSE_STEP_MS);
    if (!(await settledWithin(this.recorder.close(), CLOSE_STEP_MS))) this.logger.warn('flushing stats on close did not finish in time; dropped');
    await settledWithin(Promise.all(this.shards.map((s) => s.queue.close())), CLOSE_STEP_MS);
    for (const s of this.shards) s.blocking.disconnect();
    for (const conn of [this.queueConnection, this.cmd]) {
      if (!(await settledWithin(conn.quit(), CLOSE_STEP_MS))) conn.disconnect();
    }
  }

  /** Validates the input; its cache key only when the request uses the cache (hashing is per-request CPU). */
  private prepare(input: I, useCache: boolean): { json: string; key: string | undefined } {
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
    // The size limit is enforced while serialising: work and memory bounded by the limit, not the input.
    const json = canonicalJson(value, { maxBytes: this.opts.maxInputBytes });
    return { json, key: useCache ? keyFromCanonicalInput(this.identity, json) : undefined };
  }

  /** Stage 1: cache read + single-flight claim for every cached request that arrived together. */
  private async claim(flights: Flight[]): Promise<void> {
    const keyed: Flight[] = [];
    for (const f of flights) {
      if (f.state !== 'new') continue; // answered, failed or let go while it waited here
      if (hasLiveCallers(f)) {
        moveTo(f, 'claiming');
        keyed.push(f);
      } else this.letGo(f); // every caller timed out before it was sent
    }
    if (keyed.length === 0) return;
    try {
      await this.whenUsable();
    } catch (err) {
      this.failFlights(keyed, err, 'Redis not usable');
      return;
    }
    // One script call per shard (each in its own hash slot), all in flight at once.
    await Promise.all([...this.byShard(keyed)].map(([shard, fs]) => this.claimShard(shard, fs)));
    this.flushLatencies();
  }

  private async claimShard(shard: ClientShard, keyed: Flight[]): Promise<void> {
    let claims: ClaimOutcome[];
    try {
      claims = await claimFlights(
        this.cmd,
        shard.keys,
        this.id,
        keyed.map((f) => ({ id: f.id, key: f.key as string, deadline: this.clock.toRedis(f.deadline) })),
      );
    } catch (err) {
      if (/WRONGTYPE/.test((err as Error)?.message ?? '')) {
        // The cache or flight keys hold another type (written by something else): serve the
        // requests without the cache rather than fail them all, and say so loudly.
        const e = new ProtocolError(`The cache keys of model '${this.opts.model}' hold the wrong Redis type; computing without the cache. Run 'inferq clear-cache'.`, { cause: err });
        this.logger.error({ err: e, requests: keyed.length }, 'cache unusable');
        for (const f of keyed) this.uncache(f);
        return;
      }
      // The claim is idempotent per request id: sending it again after a lost reply is safe.
      for (const f of keyed) if (f.state === 'claiming') moveTo(f, 'new');
      const rest = this.retryLater(keyed, err, this.claimStage, 'cache read / single-flight claim');
      if (rest.length) this.failFlights(rest, err, 'cache read / single-flight claim failed');
      return;
    }
    const now = Date.now();
    // Each reply is applied to the flight as it was sent (claiming): nothing else moves a claiming flight.
    claims.forEach((claim, i) => {
      const f = keyed[i] as Flight;
      if (f.state !== 'claiming') {
        // Answered meanwhile (an earlier send's result, or close()): a flight this claim opened is
        // ours in Redis and nobody will send it, so it is released there.
        if (claim.kind === 'owner') void this.releaseOwned([f], 'answered while its claim was in Redis', this.releasedError(f));
        return;
      }
      f.since = now;
      f.sentDeadline = f.deadline;
      if (claim.kind === 'hit') {
        let output: unknown;
        try {
          output = JSON.parse(claim.valueJson) as unknown;
        } catch (cause) {
          // One bad entry fails its own request only; the rest of the tick goes on.
          const err = new ProtocolError(`The cache entry for request ${f.id} is not JSON; delete it or clear the cache.`, { cause, details: { requestId: f.id, key: f.key } });
          this.failFlights([f], err, 'corrupt cache entry');
          return;
        }
        this.count(f, true);
        if (f.key !== undefined) this.local?.put(f.key, claim.valueJson);
        this.resolveFlight(f, { output, cached: true, clientHit: true });
        return;
      }
      if (claim.kind === 'owner') {
        moveTo(f, 'owner');
        f.owns = true;
      } else {
        // An identical request of another process is in flight: its settle answers us too.
        moveTo(f, 'waiter');
        f.coalesced = true;
        f.joined = { flightId: claim.flightId, owner: claim.owner };
      }
      // Counted once it is known whether it shares another process's computation.
      if (!f.counted) this.count(f, false);
      // Its callers may all have given up while the claim was in Redis: an owned flight is released there.
      if (!hasLiveCallers(f)) this.letGo(f);
      else if (claim.kind === 'owner') this.toQueue(f);
    });
  }

  /**
   * Stage 2 (only under maxQueueLength): admission to the model's queue
   * ledger. What does not fit is refused at once (nothing is written for it),
   * the rest goes on to the enqueue stage. A stage of its own, two calls in
   * flight: a refusal waits for its own round trip, not behind an add in flight.
   */
  private async admit(flights: Flight[]): Promise<void> {
    const live = this.takeToSend(flights);
    if (live.length === 0) return;
    const max = this.opts.config.maxQueueLength;
    let r: { length: number; admitted: boolean[] };
    try {
      // One model-wide ledger: the bound is the model's whatever the number of shards.
      r = await reserveRoom(this.cmd, this.keys, this.id, live.map((f) => f.id), max);
    } catch (err) {
      // A reservation whose reply was lost holds its place until the resend (same request id:
      // admitted again, not counted twice) or this client's lease ends.
      for (const f of live) f.room = true;
      this.unsend(live);
      const rest = this.retryLater(live, err, this.admitStage, 'queue admission');
      if (rest.length === 0) return;
      await this.giveUp(rest, err, 'queue admission failed');
      return;
    }
    const refused: Flight[] = [];
    this.reservedAny = true;
    const gone: Flight[] = [];
    live.forEach((f, i) => {
      if (f.state !== 'enqueuing') {
        // Answered or failed meanwhile (close(), a late result): a place it was given goes back.
        if (r.admitted[i]) gone.push(f);
      } else if (r.admitted[i]) {
        f.room = true;
        this.enqueueStage.push(f);
      } else refused.push(f);
    });
    if (gone.length > 0) void this.releaseRoom(gone, 'answered while its admission was in Redis');
    if (refused.length > 0) {
      const excess = r.length + refused.length + live.length - refused.length - max;
      // A hint from this client's own recent pace of answers; a second when it has none.
      const rate = this.answeredPerSecond();
      const retryAfterMs = Math.min(30_000, Math.max(50, rate > 0 ? Math.ceil((1000 * excess) / rate) : 1000));
      this.full = { until: Date.now() + Math.min(FULL_TRUST_MS, retryAfterMs), max, retryAfterMs, queued: r.length, room: 0 };
      this.unsend(refused);
      this.refuse(refused, new QueueFullError(max, retryAfterMs, { model: this.opts.model, queued: r.length }));
    }
  }

  /** Requests refused for a full queue: nothing of them is (or stays) in Redis. */
  private refuse(refused: Flight[], err: QueueFullError): void {
    // Refusals are the expected answer to a flood: a line every few seconds, not one per tick.
    this.logQueueFull({ maxQueueLength: err.details?.maxQueueLength, queued: err.details?.queued, refused: refused.length, retryAfterMs: err.retryAfterMs }, 'queue full; requests refused');
    void this.giveUp(refused, err, 'queue full', { quiet: true });
  }

  /**
   * To the enqueue stage, through admission when maxQueueLength is set. The
   * model's queue just found full refuses at once: under a flood a refusal
   * costs no round trip and no wait behind other admissions.
   */
  private toQueue(f: Flight): void {
    if (this.opts.config.maxQueueLength <= 0) {
      this.enqueueStage.push(f);
      return;
    }
    const full = this.full;
    if (full) {
      const left = full.until - Date.now();
      if (left > 0 && full.room > 0) {
        full.room--;
      } else if (left > 0) {
        this.refuse([f], new QueueFullError(full.max, Math.max(1, full.retryAfterMs - (FULL_TRUST_MS - left)), { model: this.opts.model, queued: full.queued, cached: true }));
        return;
      } else this.full = undefined;
    }
    this.admitStage.push(f);
  }

  /**
   * The flights of a send stage that are still to send (state new or owner),
   * moved to `enqueuing`; those nobody wants any more are let go instead.
   */
  private takeToSend(flights: readonly Flight[]): Flight[] {
    const out: Flight[] = [];
    for (const f of flights) {
      if (f.state !== 'new' && f.state !== 'owner') continue; // answered, failed or let go meanwhile
      if (!hasLiveCallers(f)) {
        this.letGo(f);
        continue;
      }
      moveTo(f, 'enqueuing');
      out.push(f);
    }
    return out;
  }

  /** Back from `enqueuing` to what they were before the send (a refusal, a retry after a backoff). */
  private unsend(flights: readonly Flight[]): void {
    for (const f of flights) if (f.state === 'enqueuing') moveTo(f, f.owns ? 'owner' : 'new');
  }

  /** Stage 3: one add for every request to compute that arrived together, packed into envelopes. */
  private async enqueue(flights: Flight[]): Promise<void> {
    // Admitted flights arrive here `enqueuing` already; the rest (no maxQueueLength) are taken now.
    const toSend: Flight[] = [];
    const fresh: Flight[] = [];
    for (const f of flights) {
      if (f.state === 'enqueuing') {
        if (hasLiveCallers(f)) toSend.push(f);
        else {
          // Every caller gave up between admission and now: never sent.
          moveTo(f, f.owns ? 'owner' : 'new');
          this.letGo(f);
        }
      } else fresh.push(f);
    }
    toSend.push(...this.takeToSend(fresh));
    for (const f of toSend) if (!f.counted) this.count(f, false);
    if (toSend.length === 0) return;
    try {
      await this.whenUsable();
    } catch (err) {
      this.unsend(toSend);
      await this.giveUp(toSend, err, 'Redis not usable');
      return;
    }
    await Promise.all([...this.byShard(toSend)].map(([shard, fs]) => this.enqueueShard(shard, fs)));
  }

  private async enqueueShard(shard: ClientShard, toSend: Flight[]): Promise<void> {
    const envelopes: RequestEnvelope[] = [];
    const members: Flight[][] = [];
    for (const group of this.envelopeGroups(toSend)) {
      const items: RequestItem[] = group.map((f) => {
        f.sentDeadline = f.deadline;
        const item: RequestItem = { id: f.id, input: f.input, deadline: this.clock.toRedis(f.deadline) };
        // Only an owned flight is the worker's to settle: a flight we lost (taken over) is not.
        if (f.key !== undefined) item.key = f.key;
        if (f.room) item.q = 1;
        return item;
      });
      members.push(group);
      envelopes.push({
        v: ENVELOPE_VERSION,
        client: this.id,
        modelVersion: this.opts.modelVersion,
        quantization: this.opts.config.quantization,
        items,
      });
    }
    try {
      // One envelope (the usual tick) is one script call; addBulk would build an ioredis
      // pipeline for it, copying BullMQ's ~40 commands onto it (~4 % of a client's CPU).
      const jobs =
        envelopes.length === 1
          ? [await shard.queue.add(ENVELOPE_JOB_NAME, envelopes[0] as RequestEnvelope, ENVELOPE_JOB_OPTS)]
          : await shard.queue.addBulk(envelopes.map((data) => ({ name: ENVELOPE_JOB_NAME, data, opts: ENVELOPE_JOB_OPTS })));
      const now = Date.now();
      jobs.forEach((job, i) => {
        for (const f of members[i] ?? []) {
          if (f.state !== 'enqueuing') continue; // answered meanwhile: its job is answered to nobody
          f.jobId = String(job.id);
          f.since = now;
          moveTo(f, 'enqueued');
          // Its callers may have given up while the add was in Redis: an unowned one is forgotten
          // (the worker's settle gives its place back); an owned one stays for its waiters.
          if (!hasLiveCallers(f)) this.letGo(f);
        }
      });
    } catch (err) {
      // Sent again, a job whose reply was lost may run twice: its requests are answered once
      // (by id), its flights settled once (by owner), the same output cached twice, and its
      // places in the queue ledger given back once (by id).
      this.unsend(toSend);
      const rest = this.retryLater(toSend, err, this.enqueueStage, 'enqueue');
      if (rest.length === 0) return;
      await this.giveUp(rest, err, `enqueue failed: ${(err as Error).message}`);
    }
  }

  /** Answers a flight taken over from a dead owner: ours to send now, or to release when nobody here waits. */
  private takeOver(f: Flight): void {
    if (f.state !== 'waiter') {
      // Forgotten meanwhile (its callers gave up): we own it in Redis all the same, so release it.
      void this.releaseOwned([f], 'the request was taken over after its callers gave up', this.releasedError(f));
      return;
    }
    moveTo(f, 'owner');
    f.owns = true;
    f.joined = undefined;
    f.suspect = false;
    if (hasLiveCallers(f)) this.toQueue(f);
    else this.letGo(f);
  }

  /**
   * A flight nobody here waits for any more, in the state it is in now:
   * nothing sent, it is forgotten; owned and unsent, its Redis flight is
   * released (waiters elsewhere claim again) and its queue place given back;
   * sent and owned, it stays tracked until its job ends (others may wait on
   * it); with a Redis call in flight, the reply handler calls this again.
   */
  private letGo(f: Flight): void {
    switch (f.state) {
      case 'claiming':
      case 'enqueuing':
      case 'settled':
        return;
      case 'enqueued':
        // Owned (others may wait on it) or holding a queue place (given back when its job is
        // answered, or here if the job vanishes unanswered): the monitor follows it to its end.
        if (f.owns || f.room) return;
        this.forget(f);
        return;
      case 'owner':
        this.forget(f);
        void this.releaseOwned([f], 'every caller gave up before it was sent', this.releasedError(f));
        if (f.room) void this.releaseRoom([f], 'every caller gave up before it was sent');
        return;
      case 'new':
      case 'waiter':
        this.forget(f);
        if (f.room) void this.releaseRoom([f], 'every caller gave up before it was sent');
        return;
    }
  }

  /** What the waiters of a released flight hear: the deadline code, which makes a waiter that still waits claim again. */
  private releasedError(f: Flight): InferqError {
    return new DeadlineExceededError(`The request that owned this flight (${f.id}) was given up by its caller before it was computed; claim again.`, { requestId: f.id });
  }

  /**
   * Flights that will not be sent (refused, failed): their callers get
   * `err`, their owned Redis flights close (waiters get the same), their
   * queue places go back.
   */
  private async giveUp(flights: Flight[], err: unknown, what: string, o: { quiet?: boolean } = {}): Promise<void> {
    const owned = flights.filter((f) => f.owns);
    const counted = flights.filter((f) => f.room);
    if (o.quiet) {
      for (const f of flights) {
        for (const c of f.callers) this.settle(c, err as Error);
        this.forget(f);
      }
    } else this.failFlights(flights, err, what);
    const error = err instanceof InferqError ? err : new JobLostError(what);
    await Promise.all([owned.length ? this.releaseOwned(owned, what, error) : undefined, counted.length ? this.releaseRoom(counted, what) : undefined]);
  }

  /** Results delivered per second over the last full second or so (for retryAfterMs hints). */
  private answeredPerSecond(): number {
    return Math.max(this.answered.rate, this.answered.count);
  }

  /** Splits flights into envelopes of at most maxEnvelopeItems items and maxEnvelopeBytes of inputs (at least one each). */
  private *envelopeGroups(flights: Flight[]): Generator<Flight[]> {
    let group: Flight[] = [];
    let bytes = 0;
    for (const f of flights) {
      const size = f.input.length;
      if (group.length > 0 && (group.length >= this.opts.maxEnvelopeItems || bytes + size > this.opts.maxEnvelopeBytes)) {
        yield group;
        group = [];
        bytes = 0;
      }
      group.push(f);
      bytes += size;
    }
    if (group.length > 0) yield group;
  }

  /** Flights we own but that will not be computed: their waiters elsewhere are told, the flights close. */
  private async releaseOwned(owned: Flight[], reason: string, error: InferqError = new JobLostError(reason)): Promise<void> {
    const payload = failurePayload(error, this.id);
    for (const f of owned) f.owns = false;
    await Promise.all(
      [...this.byShard(owned)].map(([shard, fs]) =>
        releaseFlights(this.cmd, shard.keys, this.id, fs.map((f) => ({ id: f.id, key: f.key as string })), payload).catch((err: unknown) =>
          this.logger.error({ err, flights: fs.length, shard: shard.keys.root }, 'releasing owned flights failed; their waiters take them over when this client stops'),
        ),
      ),
    );
  }

  /** Sends a flight again (its job or flight vanished, or a worker dropped it for another caller's deadline). */
  private resend(f: Flight, stillOwner: boolean): void {
    if (!this.tracked(f) || f.state === 'claiming' || f.state === 'enqueuing') return;
    if (stillOwner && f.owns) {
      // Still ours in Redis: enqueue it again (admission again too: the same id holds one place at most).
      moveTo(f, 'owner');
      f.jobId = undefined;
      f.suspect = false;
      f.since = Date.now();
      this.toQueue(f);
      return;
    }
    resetFlight(f, Date.now());
    if (f.key !== undefined) this.claimStage.push(f);
    else this.toQueue(f);
  }

  /** Flights whose job failed for good or is lost: callers get JOB_LOST, owned flights close, places go back. */
  private async lose(flights: Flight[], reason: string): Promise<void> {
    const live = flights.filter((f) => this.tracked(f));
    if (live.length === 0) return;
    await this.giveUp(live, new JobLostError(`Request lost: ${reason}.`), 'requests lost');
  }

  /** Renews this client's lease on its places in the queue ledger (and reclaims dead clients' places). */
  private renewRoomLease(): void {
    if (this.closing || this.broken) return;
    // Once it reserved anything: a request whose callers gave up is no longer tracked here, yet its
    // place stays held until a worker answers its job, so the lease must live as long as this client.
    if (!this.reservedAny) return;
    reserveRoom(this.cmd, this.keys, this.id, [], this.opts.config.maxQueueLength).catch((err: unknown) =>
      this.logger.warn({ err }, 'renewing the lease on queue places failed; retrying next tick'),
    );
  }

  /** Latencies of results being delivered, recorded once per inbox read. */
  private latencies: number[] = [];
  /** Results delivered: this window's count and the last window's rate (for retryAfterMs hints). */
  private readonly answered = { since: Date.now(), count: 0, rate: 0 };
  private logQueueFull: ReturnType<typeof throttledLog> = () => undefined;

  /** Result elements read from the inbox in one round trip. */
  private deliverElements(elements: readonly string[]): void {
    for (const element of elements) {
      const messages = decodeInboxElement(element, (line) =>
        this.logger.error({ line: line.slice(0, 200) }, 'dropping an inbox line without a readable request id'),
      );
      // One bad message fails its own request; the rest of the read is delivered.
      for (const m of messages) {
        try {
          this.deliver(m);
        } catch (err) {
          this.logger.error({ err, requestId: m.id }, 'delivering a result failed');
        }
      }
    }
    this.flushLatencies();
  }

  private flushLatencies(): void {
    if (this.latencies.length === 0) return;
    const w = this.answered;
    const now = Date.now();
    if (now - w.since >= 1000) {
      w.rate = (w.count * 1000) / (now - w.since);
      w.since = now;
      w.count = 0;
    }
    w.count += this.latencies.length;
    this.recorder.record({ latencies: this.latencies });
    this.latencies = [];
  }

  /** A result arrived from a worker (or a flight's settle). */
  private deliver(message: InboxMessage): void {
    const flight = this.flights.get(message.id);
    if (!flight) {
      this.logger.debug({ requestId: message.id }, 'result for a request no longer waiting (answered, timed out or closed)');
      return;
    }
    if ('corrupt' in message) {
      const err = new ProtocolError(`The result for request ${flight.id} could not be decoded: ${message.corrupt}.`, { details: { requestId: flight.id } });
      this.failFlights([flight], err, 'corrupt result line');
      return;
    }
    const p = message.payload;
    if (p.ok === 1) {
      if (this.local && flight.key !== undefined) this.local.put(flight.key, JSON.stringify(p.output));
      this.resolveFlight(flight, { output: p.output, cached: p.cached === 1, worker: p.worker, batchSize: p.batchSize });
      return;
    }
    const err = errorFromWire(p.error, { requestId: flight.id, worker: p.worker, model: this.opts.model });
    if (err.code === ErrorCode.DEADLINE_EXCEEDED && hasLiveCallers(flight)) {
      // Dropped for a deadline that is not our callers' (they joined later, or the flight they
      // joined belonged to a caller who gave up): they still wait, so the request goes again.
      this.logger.info({ requestId: flight.id }, 'a worker dropped this request for an earlier deadline; sending it again for callers still waiting');
      this.resend(flight, false);
      return;
    }
    this.logger.warn({ err, requestId: flight.id, worker: p.worker }, 'request failed in the worker');
    for (const c of flight.callers) this.settle(c, err);
    this.forget(flight);
  }

  private resolveFlight(
    flight: Flight,
    r: { output: unknown; cached: boolean; worker?: string; batchSize?: number; clientHit?: boolean },
  ): void {
    const now = Date.now();
    let given = false;
    flight.callers.forEach((c, i) => {
      if (c.done) return;
      const latencyMs = now - c.start;
      this.latencies.push(latencyMs);
      // Outputs are values: the first caller gets the decoded output, every other caller its own
      // copy, so one caller changing its result never changes another's.
      const output = given ? structuredClone(r.output) : r.output;
      given = true;
      // Same rule as the stats (count()): a client-side hit shares nothing; otherwise every caller but the
      // flight's first, and all of a flight that joined another process's, shared a computation.
      const result: ClientInferenceResult = { output, cached: r.cached, coalesced: !r.clientHit && (flight.coalesced || i > 0), latencyMs };
      if (r.worker !== undefined) result.worker = r.worker;
      if (r.batchSize !== undefined) result.batchSize = r.batchSize;
      this.settle(c, result);
    });
    this.forget(flight);
  }

  private settle(caller: Caller, outcome: ClientInferenceResult | Error): void {
    if (caller.done) return;
    caller.done = true;
    // Leaves the deadline heap now: an answered request holds nothing until its deadline.
    this.deadlines.remove(caller);
    if (outcome instanceof Error) caller.reject(outcome);
    else caller.resolve(outcome);
  }

  private expire(caller: Caller): void {
    if (caller.done) return;
    const flight = caller.flight;
    const err = new TimeoutError(caller.timeoutMs, { requestId: flight.id, model: this.opts.model });
    this.logger.warn({ err, requestId: flight.id, timeoutMs: caller.timeoutMs }, 'request timed out');
    this.settle(caller, err);
    this.recorder.record({ timeouts: 1 });
    // What the flight holds in Redis is let go according to its state (see letGo).
    if (!hasLiveCallers(flight)) this.letGo(flight);
  }

  /**
   * Stats: every caller is one request, a hit or a miss. Callers of one flight
   * beyond the first (and all of a flight that joined another process's) shared a computation.
   */
  private count(flight: Flight, hit: boolean): void {
    const n = flight.callers.length;
    flight.counted = true;
    this.recorder.record({
      requests: n,
      cache_hits: hit ? n : 0,
      cache_misses: hit ? 0 : n,
      coalesced: hit ? 0 : flight.coalesced ? n : n - 1,
    });
  }

  /** A caller joined a flight of this process after its flight was counted. */
  private recordJoin(flight: Flight): void {
    if (flight.counted) this.recorder.record({ requests: 1, cache_misses: 1, coalesced: 1 });
  }

  /** Sends a flight without its cache key: no cache read or write, no single-flight. */
  private uncache(flight: Flight): void {
    if (flight.key !== undefined && this.flightsByKey.get(flight.key) === flight) this.flightsByKey.delete(flight.key);
    flight.key = undefined;
    moveTo(flight, 'new');
    this.toQueue(flight);
  }

  private tracked(flight: Flight): boolean {
    return this.flights.get(flight.id) === flight;
  }

  private forget(flight: Flight): void {
    moveTo(flight, 'settled');
    this.flights.delete(flight.id);
    if (flight.key !== undefined && this.flightsByKey.get(flight.key) === flight) this.flightsByKey.delete(flight.key);
  }

  /**
   * Gives back the places in the queue ledger of flights that will not be
   * sent (idempotent per request id). A failure is logged: the places then go
   * back when this client's lease ends (it stops, or dies).
   */
  private async releaseRoom(flights: Flight[], why: string): Promise<void> {
    for (const f of flights) f.room = false;
    await releaseRoom(this.cmd, this.keys.room, flights.map((f) => f.id)).catch((err: unknown) =>
      this.logger.warn({ err, requests: flights.length, why }, 'giving back queue places failed; they go back when this client stops'),
    );
  }

  /**
   * Sends again, after a backoff, the flights a transient Redis failure caught (a failover, a
   * restart: see transient-retry.ts) while their callers still wait, within RETRY_WINDOW_MS of
   * their first failure. Returns the flights it did not take, for the caller to fail.
   */
  private retryLater(flights: Flight[], err: unknown, stage: CoalescingStage<Flight>, what: string): Flight[] {
    if (this.closing || this.broken || !isTransientRedisError(err)) return flights;
    const now = Date.now();
    const again: Flight[] = [];
    const rest: Flight[] = [];
    let delay = 0;
    for (const f of flights) {
      const r = f.retry ?? { first: now, attempts: 0 };
      const wait = retryDelayMs(r.attempts + 1);
      if (hasLiveCallers(f) && now + wait < f.deadline && now + wait - r.first <= RETRY_WINDOW_MS) {
        r.attempts++;
        f.retry = r;
        delay = Math.max(delay, wait);
        again.push(f);
      } else rest.push(f);
    }
    if (again.length === 0) return rest;
    this.logger.warn({ err, requests: again.length, retryInMs: delay, attempt: Math.max(...again.map((f) => f.retry?.attempts ?? 0)) }, `${what}: transient Redis failure; sending again`);
    // Each stage skips what was answered or let go meanwhile (state machine: see flight.ts).
    setTimeout(() => {
      if (!this.closing) for (const f of again) stage.push(f);
    }, delay).unref();
    return rest;
  }

  private failFlights(flights: Flight[], err: unknown, what: string): void {
    // Callers only ever see InferqErrors: a raw Redis error becomes INFERQ_REDIS_UNAVAILABLE, cause kept.
    const error =
      err instanceof InferqError
        ? err
        : new RedisUnavailableError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err, details: { model: this.opts.model } });
    this.logger.error({ err: error, requests: flights.length }, what);
    for (const f of flights) {
      for (const c of f.callers) this.settle(c, error);
      this.forget(f);
    }
  }

  private fail<E extends Error>(err: E, msg: string): E {
    this.logger.warn({ err }, msg);
    return err;
  }
}
