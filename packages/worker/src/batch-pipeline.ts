/**
 * What a worker does with one batch of request items (the RequestBatcher's
 * processor), in order:
 *  1. one read for every cached item (`openBatch`): a late cache hit (another
 *     worker may have filled it since the client looked), or the latest
 *     deadline of everyone waiting on the item's flight; and Redis time;
 *  2. drop items whose every caller stopped waiting, unrun — deadlines are
 *     compared on Redis time, never on this machine's clock;
 *  3. call the model ONCE on the remaining distinct inputs, under the model
 *     contract (`ModelRunner`: a throw is narrowed down to the inputs that
 *     cause it; a call past `modelTimeoutMs` makes its items retryable);
 *  4. in ONE pipeline: the settle script (cache writes, each outcome to its
 *     client's inbox and to the waiters of its flight, each item at most once
 *     per job) and the batch's stats.
 * Model failures are outcomes too: delivered to the callers, logged, and the
 * item counts as done. `run` returns as soon as the pipeline is sent; the
 * batch's `delivered` promise rejects only if delivery itself failed (Redis),
 * so that its jobs are retried.
 */
import type { Redis } from 'ioredis';
import {
  DeadlineExceededError,
  ErrorCode,
  InferqError,
  ProtocolError,
  RedisUnavailableError,
  canonicalJson,
  type Logger,
  type OptimizationConfig,
  type StatsRecorder,
} from '@inferq/core';
import {
  appendQueueRelease,
  appendSettle,
  failurePayload,
  openBatch,
  successPayload,
  type EnvelopeItem,
  type ModelKeys,
  type OpenedItem,
  type RedisClock,
  type SettleItem,
} from '@inferq/core/protocol';
import type { ModelRunner } from './model-runner.js';

/** A request item as a worker holds it: with the client that waits and the job that carried it. */
export interface WorkItem extends EnvelopeItem {
  client: string;
  jobId: string;
}

export interface BatchPipelineOptions {
  redis: Redis;
  keys: ModelKeys;
  /** Calls the model (timeout, poison isolation). */
  runner: ModelRunner;
  modelName: string;
  clock: RedisClock;
  stats: StatsRecorder;
  config: OptimizationConfig;
  workerId: string;
  inboxTtlMs: number;
  cacheTtlMs: number;
  doneTtlMs: number;
  /** Largest output sent or cached, in bytes of its JSON. */
  maxOutputBytes: number;
  logger: Logger;
  /** Told about each batch once its results reached Redis (or failed to); for metrics. Its throw is logged, never propagated. */
  onBatch?: ((report: BatchReport) => void) | undefined;
}

/**
 * What one batch did, as its worker saw it (`InferenceWorkerOptions.onBatch`):
 * every item is counted once, in `ok`, `cacheHits`, `errors` or `retried`.
 */
export interface BatchReport {
  /** Request items the batch was handed. */
  items: number;
  /** Distinct inputs the model computed: the model call's batch size (0: no model call). */
  computed: number;
  /** Time of the model call(s), ms (0 when none). */
  modelMs: number;
  /** Items answered with a model output. */
  ok: number;
  /** Items answered from the cache at batch time (another worker filled it since the client looked). */
  cacheHits: number;
  /** Items answered with an error, by error code (`INFERQ_MODEL_FAILED`, `INFERQ_DEADLINE_EXCEEDED`, ...). */
  errors: Record<string, number>;
  /** Items whose model call timed out: not answered here, their jobs are retried. */
  retried: number;
  /** Extra model calls made to isolate inputs that made the model throw. */
  extraCalls: number;
  /** Model calls past `modelTimeoutMs`. */
  modelTimeouts: number;
  /** Waiters of the batch's flights (identical requests of other callers, single-flight joins) answered with it. */
  flightWaiters: number;
  /** Whether the results reached Redis (false: delivery failed and the jobs are retried). */
  delivered: boolean;
}

/** What a batch gives each of its items: settles once the item's outcome reached Redis (rejects if it did not). */
export interface BatchOutcome {
  delivered: Promise<void>;
}

interface Group {
  input: unknown;
  items: WorkItem[];
}

export class BatchPipeline {
  constructor(private readonly o: BatchPipelineOptions) {}

  async run(items: readonly WorkItem[]): Promise<BatchOutcome[]> {
    const { o } = this;
    const settles: SettleItem[] = [];
    const settle = (item: WorkItem, payload: string, cacheValue?: string) => {
      const s: SettleItem = { requestId: item.id, client: item.client, job: { id: item.jobId, index: item.index }, payload };
      if (item.key !== undefined) s.cacheKey = item.key;
      if (cacheValue !== undefined) s.cacheValue = cacheValue;
      settles.push(s);
    };
    const errorCodes: Record<string, number> = {};
    const fail = (item: WorkItem, err: InferqError) => {
      errorCodes[err.code] = (errorCodes[err.code] ?? 0) + 1;
      settle(item, failurePayload(err, o.workerId));
    };

    // 1. late cache hits and flight deadlines, on Redis time
    const opened = await this.open(items);
    const now = opened.now;
    let workerCacheHits = 0;
    let deadlineDrops = 0;
    let errors = 0;
    const live: WorkItem[] = [];
    items.forEach((item, i) => {
      const seen = opened.items[i];
      if (seen?.hit) {
        workerCacheHits++;
        settle(item, successPayload(seen.valueJson, o.workerId, 0, true));
        return;
      }
      // 2. deadlines: the item lives while anyone waiting on its flight does
      const deadline = Math.max(item.deadline, seen?.deadline ?? 0);
      if (deadline <= now) {
        deadlineDrops++;
        fail(item, new DeadlineExceededError(`Request ${item.id} waited past its deadline before a worker took it; dropped unrun.`, { requestId: item.id }));
        return;
      }
      live.push(item);
    });

    // identical inputs of one batch are computed once
    const groups: Group[] = [];
    const byKey = new Map<string, Group>();
    for (const item of live) {
      const existing = item.key !== undefined ? byKey.get(item.key) : undefined;
      if (existing) {
        existing.items.push(item);
        continue;
      }
      let input: unknown;
      try {
        input = JSON.parse(item.input) as unknown;
      } catch (cause) {
        const err = new ProtocolError(`Request ${item.id} carries an input that is not JSON text.`, { cause });
        o.logger.error({ err, requestId: item.id, jobId: item.jobId }, 'malformed request item');
        fail(item, err);
        errors++;
        continue;
      }
      const g: Group = { input, items: [item] };
      groups.push(g);
      if (item.key !== undefined) byKey.set(item.key, g);
    }

    // 3. one model call (more only to isolate an input that makes it throw)
    let modelMs = 0;
    let extraCalls = 0;
    let timeouts = 0;
    /** Items whose model call timed out: not settled; their jobs fail and are retried. */
    const retry: WorkItem[] = [];
    let retryError: InferqError | undefined;
    if (groups.length > 0) {
      const batchSize = groups.length;
      const context = () => ({ model: o.modelName, worker: o.workerId, batchSize, jobIds: [...new Set(groups.flatMap((g) => g.items.map((i) => i.jobId)))] });
      const ran = await o.runner.run(groups.map((g) => g.input));
      modelMs = ran.ms;
      extraCalls = ran.extraCalls;
      timeouts = ran.timeouts;
      if (extraCalls > 0) o.logger.warn({ ...context(), extraCalls }, 'the model threw on this batch; split it to fail only the inputs that make it throw');
      groups.forEach((g, idx) => {
        const r = ran.results[idx];
        let json: string | undefined;
        let err: InferqError | undefined;
        if (r?.ok) {
          try {
            json = canonicalJson(r.output, { maxBytes: o.maxOutputBytes });
          } catch (cause) {
            err =
              (cause as InferqError).code === ErrorCode.INPUT_TOO_LARGE
                ? new InferqError(ErrorCode.OUTPUT_TOO_LARGE, `The model's output for this input is larger than maxOutputBytes (${o.maxOutputBytes} bytes as JSON).`, { cause })
                : new InferqError(ErrorCode.OUTPUT_NOT_SERIALIZABLE, `The model's output for this input is not JSON-serialisable: ${(cause as Error).message}`, { cause });
          }
        } else if (r && r.retryable) {
          retry.push(...g.items);
          retryError = r.error;
          return;
        } else err = r?.error;
        if (json === undefined) {
          const e = err ?? new InferqError(ErrorCode.MODEL_FAILED, 'The model gave no output for this input.');
          o.logger.error({ err: e, ...context(), requestIds: g.items.map((i) => i.id) }, 'model failed for this input');
          for (const item of g.items) fail(item, e);
          errors += g.items.length;
          return;
        }
        const payload = successPayload(json, o.workerId, batchSize, false);
        const cacheable = o.config.enableCaching;
        g.items.forEach((item, n) => settle(item, payload, n === 0 && cacheable && item.key !== undefined ? json : undefined));
      });
    }

    // 4. one pipeline: settle + stats
    const pipeline = o.redis.pipeline();
    appendSettle(pipeline, o.keys, settles, { maxSize: o.config.cacheMaxSize, maxBytes: o.config.cacheMaxBytes, cacheTtlMs: o.cacheTtlMs, inboxTtlMs: o.inboxTtlMs, doneTtlMs: o.doneTtlMs });
    o.stats.appendTo(pipeline, {
      batches: groups.length > 0 ? 1 : 0,
      batch_items: groups.length,
      worker_cache_hits: workerCacheHits,
      errors,
      deadline_drops: deadlineDrops,
      poison_splits: extraCalls,
      model_timeouts: timeouts,
      model_time_sum_ms: modelMs,
    });
    // Room in the model's queue count (maxQueueLength) for the counted requests answered now.
    const retrying = new Set(retry);
    const answeredCounted = items.filter((i) => i.q === 1 && !retrying.has(i)).length;
    if (answeredCounted > 0) appendQueueRelease(pipeline, o.keys, answeredCounted);
    // Not awaited here: the batch's model slot is free as soon as the model
    // returned, so the next batch computes while this one's results travel
    // (no round-trip bubble between model calls). Callers await `delivered`.
    const executed = pipeline.exec();
    const delivered = executed
      .then((results) => {
        // The settle replies come first; a failed stats command must not count as a failed delivery.
        const settleReplies = results?.slice(0, Math.ceil(settles.length / 256) || 0) ?? [];
        const failed = settleReplies.find(([err]) => err);
        if (!results || failed) throw failed?.[0] ?? new Error('pipeline was not executed');
        const statsFailed = results.slice(settleReplies.length).find(([err]) => err);
        if (statsFailed) o.logger.warn({ err: statsFailed[0], model: o.modelName }, 'recording batch stats or the queue count failed (results were delivered)');
      })
      .catch((cause: unknown) => {
        const err = new RedisUnavailableError(`Delivering ${settles.length} results failed: ${(cause as Error).message}`, { cause });
        o.logger.error({ err, model: o.modelName, worker: o.workerId, items: items.length }, 'delivering batch results failed; the jobs will be retried');
        throw err;
      });
    // Handled by whoever awaits it; this only keeps an unawaited failure from being "unhandled".
    delivered.catch(() => undefined);
    if (o.onBatch) {
      const failedItems = Object.values(errorCodes).reduce((a, b) => a + b, 0);
      reportBatch(o, executed, delivered, Math.ceil(settles.length / 256), {
        items: items.length,
        computed: groups.length,
        modelMs,
        ok: items.length - workerCacheHits - failedItems - retry.length,
        cacheHits: workerCacheHits,
        errors: errorCodes,
        retried: retry.length,
        extraCalls,
        modelTimeouts: timeouts,
      });
    }
    const outcome: BatchOutcome = { delivered };
    if (retry.length === 0) return items.map(() => outcome);
    // Timed out: these items' jobs fail now and are retried, elsewhere when this worker is stuck.
    const retried = Promise.reject(retryError as InferqError);
    retried.catch(() => undefined);
    const retrySet = new Set(retry);
    return items.map((item) => (retrySet.has(item) ? { delivered: retried } : outcome));
  }

  /** Step 1: one script call for the items that own flights; Redis time from it, or from the clock. */
  private async open(items: readonly WorkItem[]): Promise<{ now: number; items: Array<OpenedItem | undefined> }> {
    const { o } = this;
    const keyed: Array<{ i: number; id: string; key: string }> = [];
    items.forEach((it, i) => {
      if (it.key !== undefined) keyed.push({ i, id: it.id, key: it.key });
    });
    const seen: Array<OpenedItem | undefined> = items.map(() => undefined);
    if (keyed.length === 0) return { now: o.clock.now(), items: seen };
    try {
      const sentAt = Date.now();
      const opened = await openBatch(o.redis, o.keys, keyed);
      o.clock.observe(opened.now, sentAt, Date.now());
      keyed.forEach((k, j) => {
        const r = opened.items[j];
        // A worker with caching off still honours flights (their deadlines) but never serves the cache.
        seen[k.i] = r?.hit && !o.config.enableCaching ? undefined : r;
      });
      return { now: opened.now, items: seen };
    } catch (err) {
      o.logger.error({ err, model: o.modelName, items: keyed.length }, 'batch cache read failed; computing instead');
      return { now: o.clock.now(), items: seen };
    }
  }
}

/**
 * Tells `o.onBatch` about a batch once its pipeline settled, with the flight
 * waiters the settle script answered (its replies: evicted, served, skipped,
 * too large). Off the batch's path: nothing here delays or fails a delivery.
 */
function reportBatch(
  o: BatchPipelineOptions,
  executed: Promise<[Error | null, unknown][] | null>,
  delivered: Promise<void>,
  settleCalls: number,
  report: Omit<BatchReport, 'flightWaiters' | 'delivered'>,
): void {
  void Promise.allSettled([executed, delivered]).then(([ex, del]) => {
    let flightWaiters = 0;
    if (ex.status === 'fulfilled') {
      for (const [err, reply] of ex.value?.slice(0, settleCalls) ?? []) {
        if (!err && Array.isArray(reply)) flightWaiters += Number(reply[1]) || 0;
      }
    }
    try {
      o.onBatch?.({ ...report, flightWaiters, delivered: del.status === 'fulfilled' });
    } catch (err) {
      o.logger.warn({ err, model: o.modelName }, 'the onBatch observer threw');
    }
  });
}
