/**
 * `StatsRecorder`: adds counts to a model's stats in Redis, where every
 * client and worker process adds to the same two hashes and an operator
 * reads them from any Redis dashboard (`readStats` turns them into numbers).
 *
 * Hash `inferq:{<model>}:stats` (fields absent until first counted; read as 0):
 *
 * | field               | counts                                                                    |
 * |---------------------|---------------------------------------------------------------------------|
 * | `requests`          | inference requests made by callers                                        |
 * | `cache_hits`        | requests answered from the cache                                          |
 * | `cache_misses`      | requests the cache could not answer                                       |
 * | `coalesced`         | requests that joined an identical computation already in flight           |
 * | `batches`           | model calls (batches the model computed)                                  |
 * | `batch_items`       | items the model computed, over all batches                                |
 * | `worker_cache_hits` | items a worker found in the cache at batch time (not computed again)      |
 * | `errors`            | requests that failed (model error, bad output, lost job)                  |
 * | `timeouts`          | requests whose caller stopped waiting after `timeoutMs`                   |
 * | `deadline_drops`    | requests a worker dropped unrun because their deadline had passed         |
 * | `latency_sum_ms`    | sum of end-to-end request latencies, in ms (float)                        |
 * | `latency_count`     | requests whose latency was recorded (`latency_sum_ms / latency_count` = mean) |
 * | `model_time_sum_ms` | sum of the time the model took per batch, in ms (float)                   |
 * | `isolated_calls`    | inputs run alone in the model (one call each), re-running a job whose worker died |
 * | `crashed_items`     | requests answered INFERQ_MODEL_CRASHED (their input killed workers)       |
 * | `refused`           | requests refused at the door (INFERQ_QUEUE_FULL: the bound, or a tenant's cap) |
 *
 * With a `tenant`, a client's recorder also adds its `requests`, `cache_hits`,
 * `refused`, `timeouts`, `errors` and latency buckets to the model's tenant
 * hashes, `inferq:{<model>}:stats:tenants` (fields `<tenant>|<counter>`) and
 * `inferq:{<model>}:stats:tenants:latency` (`<tenant>|le_*`), in the same
 * pipeline: per-tenant counts and percentiles (`readTenantStats`).
 *
 * Hash `inferq:{<model>}:stats:latency`: the latency histogram (fields
 * `le_0.25` ... `le_inf`, see `latency-histogram.ts`).
 *
 * Each write is ONE pipeline: HINCRBY per nonzero counter, HINCRBYFLOAT per
 * sum, HINCRBY per histogram bucket touched. `appendTo()` adds the same
 * commands to a caller's pipeline instead (a worker settles a batch and
 * records its stats in one round trip). With `flushIntervalMs` the
 * recorder buffers deltas in memory and writes one pipeline per interval, so
 * a client recording per-request latencies costs Redis one round trip per
 * interval, not one per request.
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './redis-connection.js';
import { z } from 'zod';
import { parseConfig } from './config.js';
import { RedisUnavailableError } from './errors.js';
import { LATENCY_BUCKET_FIELDS, bucketFor } from './latency-histogram.js';
import { createLogger, type Logger } from './logger.js';
import { KeyPrefixSchema } from './option-schemas.js';
import { DEFAULT_PREFIX, MODEL_NAME_PATTERN, modelKeys, type ModelKeys } from './protocol/keys.js';

/** A connection a recorder or reader can use (standalone or cluster: both keys share one hash tag). */
export type StatsRedis = RedisClient;

/** Integer counters of the stats hash a caller may add to. */
export const STATS_COUNTERS = [
  'requests',
  'cache_hits',
  'cache_misses',
  'coalesced',
  'batches',
  'batch_items',
  'worker_cache_hits',
  'errors',
  'timeouts',
  'deadline_drops',
  'poison_splits',
  'model_timeouts',
  'isolated_calls',
  'crashed_items',
  'refused',
] as const;
/** The counters also kept per tenant (a client's recorder with a `tenant`). */
const TENANT_COUNTERS: ReadonlySet<string> = new Set(['requests', 'cache_hits', 'refused', 'timeouts', 'errors']);
export type StatsCounter = (typeof STATS_COUNTERS)[number];

/** Fields derived from `latencies`, and the model time sum. */
export const LATENCY_SUM_FIELD = 'latency_sum_ms';
export const LATENCY_COUNT_FIELD = 'latency_count';
export const MODEL_TIME_SUM_FIELD = 'model_time_sum_ms';

/**
 * What to add: any counters (non-negative integers, field names as in the
 * hash), model time, and request latencies. Absent or zero fields cost nothing.
 */
export type StatsDelta = { readonly [K in StatsCounter]?: number } & {
  /** Model time to add to `model_time_sum_ms`, in ms (non-negative). */
  readonly model_time_sum_ms?: number;
  /**
   * End-to-end latencies of finished requests, in ms, one per request: each
   * adds to `latency_sum_ms`, `latency_count` and one histogram bucket.
   * Negative values (a clock stepping back) count as 0.
   */
  readonly latencies?: readonly number[];
};

export interface StatsRecorderOptions {
  /** Connection to write with (shared; the recorder never closes it). */
  redis: StatsRedis;
  /** Model name; its keys are `<prefix>:{<model>}:stats` and `...:stats:latency`. */
  model: string;
  /** Key prefix. Default `inferq`. */
  prefix?: string;
  /** pino logger; default one from `createLogger('stats')`. */
  logger?: Logger;
  /**
   * Buffer deltas and write them once per interval, in ms. 0..60000, default 0:
   * every `record()` writes (and awaits) its own pipeline.
   */
  flushIntervalMs?: number;
  /** The tenant whose per-tenant counts these also are (a client's `tenant`); absent: model-wide only. */
  tenant?: string;
}

const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null;

const StatsRecorderOptionsSchema = z
  .object({
    redis: z.custom<StatsRedis>((v) => isObject(v) && typeof (v as RedisClient).pipeline === 'function', {
      message: 'must be an ioredis Redis or Cluster',
    }),
    model: z.string().regex(MODEL_NAME_PATTERN, 'must match ' + String(MODEL_NAME_PATTERN)),
    prefix: KeyPrefixSchema.default(DEFAULT_PREFIX),
    logger: z.custom<Logger>((v) => isObject(v) && typeof (v as Logger).child === 'function', { message: 'must be a pino logger' }).optional(),
    flushIntervalMs: z.number().int().min(0).max(60_000).default(0),
    tenant: z.string().min(1).max(64).optional(),
  })
  .strict();

/** Deltas not yet written, keyed by hash field. Adding is commutative, so buffering only sums. */
class PendingDelta {
  readonly ints = new Map<string, number>();
  readonly floats = new Map<string, number>();
  readonly buckets = new Map<string, number>();

  get empty(): boolean {
    return this.ints.size === 0 && this.floats.size === 0 && this.buckets.size === 0;
  }

  add(delta: StatsDelta): void {
    for (const field of STATS_COUNTERS) {
      const n = delta[field];
      if (n === undefined || n === 0) continue;
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Stats counter '${field}' must be a non-negative integer, got ${n}.`);
      bump(this.ints, field, n);
    }
    const modelMs = delta.model_time_sum_ms;
    if (modelMs !== undefined && modelMs !== 0) {
      if (!Number.isFinite(modelMs) || modelMs < 0) throw new RangeError(`'model_time_sum_ms' must be a non-negative number of ms, got ${modelMs}.`);
      bump(this.floats, MODEL_TIME_SUM_FIELD, modelMs);
    }
    const latencies = delta.latencies;
    if (latencies === undefined || latencies.length === 0) return;
    let sum = 0;
    for (const ms of latencies) {
      if (!Number.isFinite(ms)) throw new RangeError(`Latencies must be finite numbers of ms, got ${ms}.`);
      sum += Math.max(0, ms);
      bump(this.buckets, LATENCY_BUCKET_FIELDS[bucketFor(ms)]!, 1);
    }
    bump(this.ints, LATENCY_COUNT_FIELD, latencies.length);
    if (sum !== 0) bump(this.floats, LATENCY_SUM_FIELD, sum);
  }

  /** Adds another pending delta into this one (to put back what a failed write did not apply). */
  merge(other: PendingDelta): void {
    for (const [f, n] of other.ints) bump(this.ints, f, n);
    for (const [f, n] of other.floats) bump(this.floats, f, n);
    for (const [f, n] of other.buckets) bump(this.buckets, f, n);
  }
}

function bump(map: Map<string, number>, field: string, by: number): void {
  map.set(field, (map.get(field) ?? 0) + by);
}

/** The command a pending value becomes, so a failed one can be put back. */
interface Op {
  map: 'ints' | 'floats' | 'buckets';
  field: string;
  by: number;
  /** A per-tenant copy of a count: not put back on failure (the model-wide one is). */
  mirror?: true;
}

/** A failing stats write is logged at most this often. */
const STATS_ERROR_LOG_INTERVAL_MS = 10_000;

export class StatsRecorder {
  readonly keys: ModelKeys;
  private readonly redis: StatsRedis;
  private readonly model: string;
  private readonly log: Logger;
  private readonly flushIntervalMs: number;
  private readonly tenant: string | undefined;
  private buffer = new PendingDelta();
  private timer: NodeJS.Timeout | undefined;
  /** Flushes run one after another, so `close()` waits for one already running. */
  private flushChain: Promise<void> = Promise.resolve();
  private closed = false;
  private lastErrorLog = 0;
  private suppressedErrors = 0;

  constructor(options: StatsRecorderOptions) {
    const o = parseConfig('StatsRecorder', StatsRecorderOptionsSchema, options);
    this.redis = o.redis;
    this.model = o.model;
    this.keys = modelKeys(o.model, o.prefix);
    this.flushIntervalMs = o.flushIntervalMs;
    this.tenant = o.tenant;
    this.log = createLogger('stats', o.logger).child({ model: o.model });
  }

  /**
   * Adds `delta`. Unbuffered: writes one pipeline and rejects (after logging)
   * if Redis fails. Buffered: adds to the buffer and resolves at once; it
   * never rejects, so callers may fire and forget. After `close()` a delta is
   * written directly and a failure only logged. Throws `RangeError` at once
   * for a negative, fractional or non-finite count (a caller's bug).
   */
  record(delta: StatsDelta): Promise<void> {
    const pending = new PendingDelta();
    pending.add(delta);
    if (pending.empty) return Promise.resolve();
    if (this.flushIntervalMs === 0) return this.writeOrThrow(pending);
    if (this.closed) {
      // Late counts (a request finishing during shutdown) are still written, not dropped.
      return this.writeOrThrow(pending).catch(() => undefined);
    }
    this.buffer.merge(pending);
    this.armTimer();
    return Promise.resolve();
  }

  /**
   * Appends the commands for `delta` to `pipeline`, bypassing the buffer; the
   * caller executes it and handles its errors. Throws `RangeError` at once for
   * a bad count, before anything is appended.
   */
  appendTo(pipeline: ChainableCommander, delta: StatsDelta): void {
    const pending = new PendingDelta();
    pending.add(delta);
    this.appendOps(pipeline, pending);
  }

  /**
   * Writes everything buffered in one pipeline. Rejects (after logging) if
   * Redis fails; what was not applied stays buffered for the next flush.
   */
  flush(): Promise<void> {
    const run = this.flushChain.then(() => this.writeBuffer());
    this.flushChain = run.catch(() => undefined);
    return run;
  }

  /**
   * Hands what is buffered to the connection now, in this call: the commands
   * are on the socket before it returns (when the connection is ready), not
   * after a turn of the event loop. For a process about to end (`exit` event,
   * a signal), where no later turn comes. Resolves once Redis replied; never
   * rejects (a failure is logged, the counts put back in the buffer).
   */
  flushNow(): Promise<void> {
    this.clearTimer();
    if (this.buffer.empty) return Promise.resolve();
    const delta = this.buffer;
    this.buffer = new PendingDelta();
    // writeOrThrow runs synchronously up to pipeline.exec(), which writes the pipeline to the socket.
    return this.writeOrThrow(delta, this.buffer)
      .catch(() => undefined)
      .finally(() => this.armTimer());
  }

  /** Stops the timer and writes what is buffered; rejects if that write fails (counts stay buffered). */
  async close(): Promise<void> {
    this.closed = true;
    this.clearTimer();
    await this.flush();
  }

  private async writeBuffer(): Promise<void> {
    this.clearTimer();
    if (this.buffer.empty) return;
    const delta = this.buffer;
    this.buffer = new PendingDelta();
    try {
      await this.writeOrThrow(delta, this.buffer);
    } finally {
      this.armTimer();
    }
  }

  private armTimer(): void {
    if (this.timer || this.closed || this.flushIntervalMs === 0 || this.buffer.empty) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // flush() has logged the failure and kept the counts; a background timer must not throw.
      this.flush().catch(() => undefined);
    }, this.flushIntervalMs);
    // Buffered counts must not keep a process alive; close() writes them.
    this.timer.unref();
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * One pipeline for `delta`. On failure the increments that did not apply
   * are merged into `putBack` (when given), and a logged
   * `RedisUnavailableError` is thrown.
   */
  private async writeOrThrow(delta: PendingDelta, putBack?: PendingDelta): Promise<void> {
    const pipeline = this.redis.pipeline();
    const ops = this.appendOps(pipeline, delta);
    let failed: Op[];
    let cause: unknown;
    try {
      const replies = (await pipeline.exec()) ?? [];
      failed = ops.filter((_, i) => replies[i]?.[0] != null || replies[i] === undefined);
      cause = replies.find((r) => r[0] != null)?.[0];
    } catch (err) {
      failed = ops;
      cause = err;
    }
    if (failed.length === 0) return;
    if (putBack) for (const op of failed) if (!op.mirror) bump(putBack[op.map], op.field, op.by);
    const message = cause instanceof Error ? cause.message : String(cause);
    const err = new RedisUnavailableError(`Writing stats of model '${this.model}' to Redis failed: ${message}`, {
      cause,
      details: { model: this.model, failedCommands: failed.length, commands: ops.length, keptForRetry: putBack !== undefined },
    });
    // Stats are best effort, and a bad field (say, a non-number an operator wrote) fails every
    // flush until someone fixes it: log once per interval, not once per flush.
    const now = Date.now();
    if (now - this.lastErrorLog >= STATS_ERROR_LOG_INTERVAL_MS) {
      this.log.error({ err, failedCommands: failed.length, suppressedSinceLast: this.suppressedErrors }, 'stats write failed');
      this.lastErrorLog = now;
      this.suppressedErrors = 0;
    } else this.suppressedErrors++;
    throw err;
  }

  /** Queues one command per nonzero field of `delta` on `pipeline`; returns them in order. */
  private appendOps(pipeline: ChainableCommander, delta: PendingDelta): Op[] {
    const ops: Op[] = [];
    for (const [field, by] of delta.ints) {
      ops.push({ map: 'ints', field, by });
      pipeline.hincrby(this.keys.stats, field, by);
    }
    for (const [field, by] of delta.floats) {
      ops.push({ map: 'floats', field, by });
      pipeline.hincrbyfloat(this.keys.stats, field, by);
    }
    for (const [field, by] of delta.buckets) {
      ops.push({ map: 'buckets', field, by });
      pipeline.hincrby(this.keys.statsLatency, field, by);
    }
    const tenant = this.tenant;
    if (tenant !== undefined) {
      for (const [field, by] of delta.ints) {
        if (!TENANT_COUNTERS.has(field)) continue;
        ops.push({ map: 'ints', field, by, mirror: true });
        pipeline.hincrby(this.keys.statsTenants, `${tenant}|${field}`, by);
      }
      for (const [field, by] of delta.buckets) {
        ops.push({ map: 'buckets', field, by, mirror: true });
        pipeline.hincrby(this.keys.statsTenantLatency, `${tenant}|${field}`, by);
      }
    }
    return ops;
  }
}
