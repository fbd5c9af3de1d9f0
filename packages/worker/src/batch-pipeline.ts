/**
 * What a worker does with one batch of request items (the RequestBatcher's
 * processor), in order:
 *  1. drop items whose caller stopped waiting (deadline passed) unrun;
 *  2. read the cache for every cached item at once (another worker may have
 *     filled it since the client looked);
 *  3. call the model ONCE on the remaining distinct inputs;
 *  4. check it returned one output per input;
 *  5. in ONE pipeline: the settle script (cache writes, each result to its
 *     client's inbox and to the waiters of its single-flight key) and the
 *     batch's stats.
 * Model failures are results too: they are delivered to the callers, logged,
 * and the item counts as done. `run` returns as soon as the pipeline is sent;
 * each item's `delivered` promise rejects only if delivery itself failed
 * (Redis), so that its job is retried.
 */
import type { Redis } from 'ioredis';
import {
  DeadlineExceededError,
  ErrorCode,
  InferqError,
  InputInvalidError,
  ModelError,
  ModelOutputMismatchError,
  RedisUnavailableError,
  appendSettle,
  canonicalJson,
  encodeOutputPayload,
  encodeResultPayload,
  errorToWire,
  type Logger,
  type ModelKeys,
  type OptimizationConfig,
  type RedisLruCache,
  type RequestItem,
  type SettleItem,
  type StatsRecorder,
} from '@inferq/core';
import type { ModelModule } from './models/batch-model.js';

/** A request item as a worker holds it: with the client that waits and the job that carried it. */
export interface WorkItem extends RequestItem {
  client: string;
  jobId: string;
}

export interface BatchPipelineOptions {
  redis: Redis;
  keys: ModelKeys;
  model: ModelModule;
  modelName: string;
  /** Raw (JSON text) view of the model's cache. */
  cache: RedisLruCache<string>;
  stats: StatsRecorder;
  config: OptimizationConfig;
  workerId: string;
  inboxTtlMs: number;
  cacheTtlMs: number;
  logger: Logger;
}

/** What a batch gives each of its items: settles once the item's result reached Redis (rejects if it did not). */
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
    const now = Date.now();
    const settle = (item: WorkItem, payload: string, cacheValue?: string) => {
      const s: SettleItem = { requestId: item.id, client: item.client, flight: item.flight === true, payload };
      if (item.key !== undefined) s.cacheKey = item.key;
      if (cacheValue !== undefined) s.cacheValue = cacheValue;
      settles.push(s);
    };
    const fail = (item: WorkItem, err: InferqError) => settle(item, encodeResultPayload({ ok: 0, error: errorToWire(err), worker: o.workerId }));

    // 1. deadlines
    let deadlineDrops = 0;
    const live: WorkItem[] = [];
    for (const item of items) {
      if (item.deadline <= now) {
        deadlineDrops++;
        fail(item, new DeadlineExceededError(`Request ${item.id} waited past its deadline before a worker took it; dropped unrun.`, { requestId: item.id }));
      } else live.push(item);
    }

    // 2. late cache hits, 3. group identical inputs
    const useCache = o.config.enableCaching;
    const keyed = useCache ? live.filter((i) => i.key !== undefined) : [];
    let workerCacheHits = 0;
    const hitKeys = new Set<string>();
    if (keyed.length > 0) {
      const distinct = [...new Set(keyed.map((i) => i.key as string))];
      const values = await o.cache.getMany(distinct).catch((err: unknown) => {
        o.logger.error({ err, model: o.modelName, items: distinct.length }, 'batch cache read failed; computing instead');
        return distinct.map(() => undefined);
      });
      distinct.forEach((k, idx) => {
        if (values[idx] !== undefined) hitKeys.add(k);
      });
      const valueOf = new Map(distinct.map((k, idx) => [k, values[idx]]));
      for (const item of keyed) {
        const v = valueOf.get(item.key as string);
        if (v !== undefined) {
          workerCacheHits++;
          settle(item, encodeOutputPayload(v, o.workerId, 0, true));
        }
      }
    }
    let errors = 0;
    const groups: Group[] = [];
    const byKey = new Map<string, Group>();
    for (const item of live) {
      const k = useCache ? item.key : undefined;
      if (k !== undefined && hitKeys.has(k)) continue;
      const existing = k !== undefined ? byKey.get(k) : undefined;
      if (existing) existing.items.push(item);
      else {
        let input: unknown;
        try {
          input = JSON.parse(item.input) as unknown;
        } catch (cause) {
          const err = new InputInvalidError(`Request ${item.id} carries an input that is not JSON text.`, { cause });
          o.logger.error({ err, requestId: item.id, jobId: item.jobId }, 'malformed request item');
          fail(item, err);
          errors++;
          continue;
        }
        const g: Group = { input, items: [item] };
        groups.push(g);
        if (k !== undefined) byKey.set(k, g);
      }
    }

    // 4. one model call
    let modelMs = 0;
    if (groups.length > 0) {
      const batchSize = groups.length;
      const context = () => ({ model: o.modelName, worker: o.workerId, batchSize, jobIds: [...new Set(groups.flatMap((g) => g.items.map((i) => i.jobId)))] });
      let outputs: unknown;
      const t0 = performance.now();
      try {
        outputs = await o.model.run(groups.map((g) => g.input));
      } catch (err) {
        outputs = err instanceof Error ? err : new Error(String(err));
      }
      modelMs = performance.now() - t0;
      if (outputs instanceof Error) {
        const err = outputs instanceof InferqError ? outputs : new ModelError(outputs.message, { cause: outputs });
        o.logger.error({ err, ...context() }, 'model threw; failing every item of the batch');
        for (const g of groups) for (const item of g.items) fail(item, err);
        errors += groups.reduce((n, g) => n + g.items.length, 0);
      } else if (!Array.isArray(outputs) || outputs.length !== batchSize) {
        const err = new ModelOutputMismatchError(batchSize, outputs, { model: o.modelName });
        o.logger.error({ err, ...context() }, 'model returned the wrong number of outputs; failing the batch');
        for (const g of groups) for (const item of g.items) fail(item, err);
        errors += groups.reduce((n, g) => n + g.items.length, 0);
      } else {
        groups.forEach((g, idx) => {
          const out: unknown = outputs[idx];
          let json: string | undefined;
          let err: InferqError | undefined;
          if (out instanceof Error) {
            err = out instanceof InferqError ? out : new ModelError(out.message, { cause: out });
          } else {
            try {
              json = canonicalJson(out);
            } catch (cause) {
              err = new InferqError(ErrorCode.OUTPUT_NOT_SERIALIZABLE, `The model's output for this input is not JSON-serialisable: ${(cause as Error).message}`, { cause });
            }
          }
          if (err || json === undefined) {
            const e = err ?? new ModelError('no output');
            o.logger.error({ err: e, ...context(), requestIds: g.items.map((i) => i.id) }, 'model failed for one item');
            for (const item of g.items) fail(item, e);
            errors += g.items.length;
            return;
          }
          const payload = encodeOutputPayload(json, o.workerId, batchSize, false);
          g.items.forEach((item, n) => settle(item, payload, n === 0 && useCache && item.key !== undefined ? json : undefined));
        });
      }
    }

    // 5. one pipeline: settle + stats
    const pipeline = o.redis.pipeline();
    appendSettle(pipeline, o.keys, settles, { maxSize: o.config.cacheMaxSize, cacheTtlMs: o.cacheTtlMs, inboxTtlMs: o.inboxTtlMs });
    o.stats.appendTo(pipeline, {
      batches: groups.length > 0 ? 1 : 0,
      batch_items: groups.length,
      worker_cache_hits: workerCacheHits,
      errors,
      deadline_drops: deadlineDrops,
      model_time_sum_ms: modelMs,
    });
    // Not awaited here: the batch's model slot is free as soon as the model
    // returned, so the next batch computes while this one's results travel
    // (no round-trip bubble between model calls). Callers await `delivered`.
    const delivered = pipeline.exec().then(
      (results) => {
        const failed = results?.find(([err]) => err);
        if (!results || failed) throw failed?.[0] ?? new Error('pipeline was not executed');
      },
    ).catch((cause: unknown) => {
      const err = new RedisUnavailableError(`Delivering ${settles.length} results failed: ${(cause as Error).message}`, { cause });
      o.logger.error({ err, model: o.modelName, worker: o.workerId, items: items.length }, 'delivering batch results failed; the jobs will be retried');
      throw err;
    });
    // Handled by whoever awaits it; this only keeps an unawaited failure from being "unhandled".
    delivered.catch(() => undefined);
    const outcome: BatchOutcome = { delivered };
    return items.map(() => outcome);
  }
}
