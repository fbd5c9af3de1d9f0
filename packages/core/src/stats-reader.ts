/**
 * Reads a model's stats hashes (written by `StatsRecorder`, fields documented
 * there) in one round trip and derives the numbers a caller wants: rates,
 * averages and latency percentiles from the histogram. These are free
 * functions without a logger: failures reject with `RedisUnavailableError`
 * for the caller (client, CLI) to log.
 */
import { LatencyHistogram } from './latency-histogram.js';
import { RedisUnavailableError } from './errors.js';
import { DEFAULT_PREFIX, modelKeys } from './protocol/keys.js';
import { LATENCY_COUNT_FIELD, LATENCY_SUM_FIELD, MODEL_TIME_SUM_FIELD, type StatsRedis } from './stats-recorder.js';

export interface InferenceStats {
  model: string;
  /** `requests`. */
  totalRequests: number;
  /** `batches`: model calls. */
  totalBatches: number;
  cacheHits: number;
  cacheMisses: number;
  /** `cache_hits / (cache_hits + cache_misses)`, 0..1; 0 before any lookup. */
  cacheHitRate: number;
  /** Requests that joined an identical computation in flight. */
  coalesced: number;
  /** Mean end-to-end latency, ms: `latency_sum_ms / latency_count`; 0 when none. */
  avgLatencyMs: number;
  /** Items per model call: `batch_items / batches`; 0 when none. */
  avgBatchSize: number;
  /** Latency percentiles in ms, estimated from the histogram (within one bucket). */
  p50LatencyMs: number;
  p95LatencyMs: number;
  p99LatencyMs: number;
  errors: number;
  timeouts: number;
  /** `batch_items`: items the model computed. */
  batchItems: number;
  /** Items workers found in the cache at batch time. */
  workerCacheHits: number;
  /** Requests dropped unrun because their deadline had passed. */
  deadlineDrops: number;
  /** Extra model calls made to isolate inputs that made the model throw. */
  poisonSplits: number;
  /** Model calls past the worker's `modelTimeoutMs`. */
  modelTimeouts: number;
  /** `isolated_calls`: inputs run alone in the model (one call each, unless the cache or a deadline answered first), re-running a job whose worker process died. */
  isolatedCalls: number;
  /** `crashed_items`: requests answered INFERQ_MODEL_CRASHED. */
  crashedItems: number;
  /** `refused`: requests refused at the door (INFERQ_QUEUE_FULL). */
  refused: number;
  /** Mean model time per call, ms: `model_time_sum_ms / batches`; 0 when none. */
  avgModelTimeMs: number;
  /**
   * Fields of the stats hashes that do not hold a number (written by hand or
   * by another program): they count as 0 above, and are named here so that a
   * reader knows the figures are incomplete.
   */
  corruptFields: string[];
}

/** One round trip: a pipeline of HGETALL on the stats hash and the histogram hash. */
export async function readStats(redis: StatsRedis, model: string, prefix: string = DEFAULT_PREFIX): Promise<InferenceStats> {
  const keys = modelKeys(model, prefix);
  let replies: [Error | null, unknown][] | null;
  try {
    replies = await redis.pipeline().hgetall(keys.stats).hgetall(keys.statsLatency).exec();
  } catch (err) {
    throw failed('Reading', model, err);
  }
  const counters = replies?.[0];
  const latency = replies?.[1];
  if (!counters || !latency) throw failed('Reading', model, new Error('the pipeline returned no replies'));
  const failure = counters[0] ?? latency[0];
  if (failure) throw failed('Reading', model, failure);
  return deriveStats(model, counters[1] as Record<string, string>, latency[1] as Record<string, string>);
}

/** Deletes both stats hashes of `model` (one DEL: the keys share a hash tag, so this works on a cluster too). */
export async function resetStats(redis: StatsRedis, model: string, prefix: string = DEFAULT_PREFIX): Promise<void> {
  const keys = modelKeys(model, prefix);
  try {
    await redis.del(keys.stats, keys.statsLatency, keys.statsTenants, keys.statsTenantLatency);
  } catch (err) {
    throw failed('Deleting', model, err);
  }
}

/** The derived numbers from raw HGETALL replies; exported for dashboards that read the hashes themselves. */
export function deriveStats(model: string, counters: Readonly<Record<string, string>>, latency: Readonly<Record<string, string>>): InferenceStats {
  const corruptFields = [
    ...Object.entries(counters).filter(([, v]) => !Number.isFinite(Number(v)) || v.trim() === '').map(([f]) => f),
    ...Object.entries(latency).filter(([, v]) => !Number.isFinite(Number(v)) || v.trim() === '').map(([f]) => `latency:${f}`),
  ];
  const n = (field: string): number => {
    const v = Number(counters[field] ?? 0);
    return Number.isFinite(v) ? v : 0;
  };
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);
  const histogram = LatencyHistogram.fromFields(latency);
  const cacheHits = n('cache_hits');
  const cacheMisses = n('cache_misses');
  const batches = n('batches');
  const batchItems = n('batch_items');
  return {
    model,
    totalRequests: n('requests'),
    totalBatches: batches,
    cacheHits,
    cacheMisses,
    cacheHitRate: ratio(cacheHits, cacheHits + cacheMisses),
    coalesced: n('coalesced'),
    avgLatencyMs: ratio(n(LATENCY_SUM_FIELD), n(LATENCY_COUNT_FIELD)),
    avgBatchSize: ratio(batchItems, batches),
    p50LatencyMs: histogram.percentile(50),
    p95LatencyMs: histogram.percentile(95),
    p99LatencyMs: histogram.percentile(99),
    errors: n('errors'),
    timeouts: n('timeouts'),
    batchItems,
    workerCacheHits: n('worker_cache_hits'),
    deadlineDrops: n('deadline_drops'),
    poisonSplits: n('poison_splits'),
    modelTimeouts: n('model_timeouts'),
    isolatedCalls: n('isolated_calls'),
    crashedItems: n('crashed_items'),
    refused: n('refused'),
    avgModelTimeMs: ratio(n(MODEL_TIME_SUM_FIELD), batches),
    corruptFields,
  };
}

function failed(what: 'Reading' | 'Deleting', model: string, cause: unknown): RedisUnavailableError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new RedisUnavailableError(`${what} stats of model '${model}' in Redis failed: ${message}`, { cause, details: { model } });
}
