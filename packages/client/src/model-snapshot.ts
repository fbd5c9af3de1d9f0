/**
 * What `inferq metrics` and `inferq dashboard` read about a model: the
 * shared stats hashes (every client and worker of the model adds to them),
 * the result cache's size and BullMQ's job counts, in one pipeline plus one
 * BullMQ call; and the Prometheus text exposition of it.
 *
 * These numbers are the model's, shared by every process (unlike a worker's
 * own `/metrics`, which counts what that one process saw).
 */
import { Queue } from 'bullmq';
import type { RedisClient } from '@inferq/core';
import {
  LATENCY_BUCKET_BOUNDS_MS,
  RedisUnavailableError,
  deriveStats,
  countKeys,
  modelKeys,
  readTenantStats,
  type InferenceStats,
  type ModelKeys,
  type TenantStats,
} from '@inferq/core';
import { readShardCount, shardKeys } from '@inferq/core/protocol';

/** BullMQ states read for the queue depth. */
export const QUEUE_STATES = ['wait', 'active', 'delayed', 'prioritized', 'failed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

export interface ModelSnapshot {
  model: string;
  /** When it was read (this machine's clock, ms). */
  at: number;
  stats: InferenceStats;
  /** Raw counters of the stats hash (`requests`, `latency_sum_ms`, ...), non-numbers as 0. */
  counters: Readonly<Record<string, number>>;
  /** Latency histogram counts per bucket (not cumulative), index for index with `LATENCY_BUCKET_BOUNDS_MS`. */
  latencyBuckets: readonly number[];
  /** Jobs in the queue by state; undefined when BullMQ could not be read (`queueError` says why). */
  queue: Record<QueueState, number> | undefined;
  queueError?: string;
  cacheEntries: number;
  cacheBytes: number;
  /** Per-tenant figures (at most 50 tenants, the rest folded into `other`); empty before any tenant was counted. */
  tenants: TenantStats[];
}

/** Worker seen on the queue: BullMQ's `getWorkers()` (CLIENT LIST). */
export interface SeenWorker {
  id: string;
  addr?: string;
  /** Seconds the worker's connection has been open. */
  ageSeconds?: number;
  /** Seconds since the connection's last command. */
  idleSeconds?: number;
}

const num = (v: unknown): number => {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
};

/** Longest a BullMQ read may take before the snapshot goes without it. */
const QUEUE_READ_BOUND_MS = 2000;

/** A model's queue shards as a reader sees them: keys and a BullMQ handle each. */
interface ReaderShard {
  keys: ModelKeys;
  queue: Queue;
}

export class ModelReader {
  /** Model-wide keys (stats). */
  readonly keys: ModelKeys;
  private shardsRead: Promise<ReaderShard[]> | undefined;

  /**
   * `redis` is shared (the reader never closes it); `close()` closes the
   * reader's BullMQ queue handles. The model's shard count is read from
   * Redis (what its clients and workers recorded) unless given.
   */
  constructor(
    private readonly redis: RedisClient,
    readonly model: string,
    private readonly prefix: string,
    private readonly queueShards?: number,
  ) {
    this.keys = modelKeys(model, prefix);
  }

  private shards(): Promise<ReaderShard[]> {
    this.shardsRead ??= (async () => {
      const n = this.queueShards ?? (await readShardCount(this.redis, this.model, this.prefix));
      return shardKeys(this.model, this.prefix, n).map((keys) => {
        const queue = new Queue(keys.queueName, { connection: this.redis, prefix: keys.queuePrefix });
        queue.on('error', () => undefined); // a failed read says why
        return { keys, queue };
      });
    })();
    this.shardsRead.catch(() => (this.shardsRead = undefined));
    return this.shardsRead;
  }

  /** The stats hashes (model-wide), each shard's cache size and BullMQ's job counts summed over the shards, in parallel. */
  async snapshot(): Promise<ModelSnapshot> {
    const { keys } = this;
    const shards = await this.shards().catch((err: unknown) => {
      throw new RedisUnavailableError(`Reading model '${this.model}' in Redis failed: ${(err as Error).message}`, { cause: err, details: { model: this.model } });
    });
    const [replies, caches, queue, tenants] = await Promise.all([
      this.redis.pipeline().hgetall(keys.stats).hgetall(keys.statsLatency).exec(),
      // One pipeline per shard: on a cluster each shard's keys live in their own slot.
      Promise.all(shards.map((s) => this.redis.pipeline().zcard(s.keys.cacheLru).get(s.keys.cacheBytes).exec())),
      bounded(Promise.all(shards.map((s) => s.queue.getJobCounts(...QUEUE_STATES))), QUEUE_READ_BOUND_MS).then(
        (all) => ({ counts: Object.fromEntries(QUEUE_STATES.map((st) => [st, all.reduce((n, c) => n + num(c[st]), 0)])) as Record<QueueState, number> }),
        (err: unknown) => ({ error: (err as Error).message }),
      ),
      readTenantStats(this.redis, this.model, this.prefix),
    ]).catch((err: unknown) => {
      throw new RedisUnavailableError(`Reading model '${this.model}' in Redis failed: ${(err as Error).message}`, { cause: err, details: { model: this.model } });
    });
    const failure = [...(replies ?? []), ...caches.flatMap((c) => c ?? [])].find(([err]) => err)?.[0];
    if (!replies || caches.some((c) => !c) || failure) {
      throw new RedisUnavailableError(`Reading model '${this.model}' in Redis failed: ${failure?.message ?? 'the pipeline returned no replies'}`, { cause: failure, details: { model: this.model } });
    }
    const counters = (replies[0]?.[1] ?? {}) as Record<string, string>;
    const latency = (replies[1]?.[1] ?? {}) as Record<string, string>;
    const buckets = LATENCY_BUCKET_BOUNDS_MS.map((b) => Math.max(0, num(latency[b === Infinity ? 'le_inf' : `le_${b}`])));
    const snap: ModelSnapshot = {
      model: this.model,
      at: Date.now(),
      stats: deriveStats(this.model, counters, latency),
      counters: Object.fromEntries(Object.entries(counters).map(([k, v]) => [k, num(v)])),
      latencyBuckets: buckets,
      queue: 'counts' in queue ? queue.counts : undefined,
      cacheEntries: caches.reduce((n, c) => n + num(c?.[0]?.[1]), 0),
      cacheBytes: caches.reduce((n, c) => n + num(c?.[1]?.[1]), 0),
      tenants,
    };
    if ('error' in queue) snap.queueError = queue.error;
    return snap;
  }

  /**
   * Workers connected to the model's queue, from BullMQ's `getWorkers()`
   * (Redis `CLIENT LIST`, which a least-privilege ACL user may not run:
   * then it rejects and the caller says so).
   */
  async workers(): Promise<SeenWorker[]> {
    const [first] = await this.shards();
    // Every worker consumes every shard: shard 0's queue sees them all.
    const clients = (await bounded((first as ReaderShard).queue.getWorkers(), QUEUE_READ_BOUND_MS)) as Array<Record<string, string>>;
    const byId = new Map<string, SeenWorker>();
    for (const c of clients) {
      const raw = c.rawname ?? '';
      if (!raw) continue; // e.g. BullMQ's "does not support client list" placeholder
      const at = raw.lastIndexOf(':w:');
      const id = at >= 0 ? raw.slice(at + 3) : raw;
      if (byId.has(id)) continue; // a worker holds more than one connection
      const w: SeenWorker = { id };
      if (c.addr) w.addr = c.addr;
      if (c.age !== undefined) w.ageSeconds = num(c.age);
      if (c.idle !== undefined) w.idleSeconds = num(c.idle);
      byId.set(id, w);
    }
    return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Live client processes: their heartbeat keys in shard 0 (`<root>:client:*`,
   * TTL 3 s; a client beats in every shard), counted by a bounded SCAN of
   * every master on a cluster.
   */
  async clientCount(): Promise<number> {
    const [first] = await this.shards();
    const match = `${(first as ReaderShard).keys.root.replace(/[*?[\]\\]/g, '\\$&')}:client:*`;
    return countKeys(this.redis, match);
  }

  async close(): Promise<void> {
    const shards = await this.shardsRead?.catch(() => []);
    await bounded(Promise.all((shards ?? []).map((s) => s.queue.close())), 1000).catch(() => undefined);
  }
}

function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

// --- Prometheus text exposition (format 0.0.4) ---

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The shared counters: stats hash field -> metric name, help (`cache_lookups` is derived: hits + misses). */
const SHARED_COUNTERS: ReadonlyArray<[field: string, name: string, help: string]> = [
  ['requests', 'inferq_requests_total', 'Inference requests made by callers (every client).'],
  ['cache_hits', 'inferq_cache_hits_total', 'Requests answered from the result cache by their client.'],
  ['cache_misses', 'inferq_cache_misses_total', 'Requests the cache could not answer.'],
  ['cache_lookups', 'inferq_cache_lookups_total', 'Requests looked up in the result cache (hits + misses): rate(hits) / rate(lookups) is the hit ratio.'],
  ['coalesced', 'inferq_single_flight_joins_total', 'Requests that joined an identical computation already in flight (single-flight).'],
  ['batches', 'inferq_batches_total', 'Model calls (batches computed), every worker.'],
  ['batch_items', 'inferq_items_total', 'Inputs the model computed, over all batches: rate(items) / rate(batches) is the mean batch size.'],
  ['worker_cache_hits', 'inferq_batch_cache_hits_total', 'Items a worker found in the cache at batch time (not computed again).'],
  ['errors', 'inferq_errors_total', 'Requests that failed (model error, bad output, lost job, ...).'],
  ['timeouts', 'inferq_timeouts_total', 'Requests whose caller stopped waiting after timeoutMs.'],
  ['deadline_drops', 'inferq_deadline_drops_total', 'Requests a worker dropped unrun because their deadline had passed.'],
  ['poison_splits', 'inferq_poison_splits_total', 'Extra model calls made to isolate inputs that made the model throw.'],
  ['model_timeouts', 'inferq_model_timeouts_total', "Model calls past a worker's modelTimeoutMs."],
  ['isolated_calls', 'inferq_isolated_calls_total', 'Inputs run alone in the model (one call each), re-running a job whose worker process died (crash isolation).'],
  ['crashed_items', 'inferq_crashed_items_total', 'Requests answered INFERQ_MODEL_CRASHED: their input killed worker processes maxCrashes times.'],
  ['refused', 'inferq_refused_total', "Requests refused at the door (INFERQ_QUEUE_FULL): the model's bound, or a tenant's cap."],
];

/** Per-tenant series (label `tenant`; at most 50 tenants, the rest as tenant="other"). */
const TENANT_COUNTERS: ReadonlyArray<[field: 'requests' | 'cacheHits' | 'refused' | 'timeouts', name: string, help: string]> = [
  ['requests', 'inferq_tenant_requests_total', 'Inference requests made by callers of a tenant.'],
  ['cacheHits', 'inferq_tenant_cache_hits_total', 'Requests of a tenant answered from the result cache.'],
  ['refused', 'inferq_tenant_refused_total', 'Requests of a tenant refused at the door (INFERQ_QUEUE_FULL).'],
  ['timeouts', 'inferq_tenant_timeouts_total', 'Requests of a tenant whose caller stopped waiting after timeoutMs.'],
];

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const fmt = (n: number) => (n === Infinity ? '+Inf' : n === -Infinity ? '-Inf' : Number.isNaN(n) ? 'NaN' : String(n));

/**
 * The snapshot in the Prometheus text format; every series is labelled
 * `model`. Counters and the latency histogram only, plus gauges of what is
 * (cache size, queue depth): ratios, averages and percentiles are for PromQL
 * to compute over a window (`rate()`, `histogram_quantile()`), since an
 * all-time ratio barely moves after a day and a percentile of no data is not
 * 0. This is the one endpoint that serves the queue's job counts; absent when
 * BullMQ could not be read. docs/metrics.md lists every series.
 */
export function formatPrometheus(s: ModelSnapshot): string {
  const model = `model="${escapeLabel(s.model)}"`;
  const out: string[] = [];
  const head = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  const line = (name: string, value: number, labels = '') => out.push(`${name}{${model}${labels}} ${fmt(value)}`);
  const counter = (field: string) => (field === 'cache_lookups' ? (s.counters.cache_hits ?? 0) + (s.counters.cache_misses ?? 0) : (s.counters[field] ?? 0));

  for (const [field, name, help] of SHARED_COUNTERS) {
    head(name, 'counter', help);
    line(name, counter(field));
  }
  head('inferq_model_seconds_total', 'counter', 'Time spent in the model, seconds, over all batches of every worker.');
  line('inferq_model_seconds_total', (s.counters.model_time_sum_ms ?? 0) / 1000);

  // Redis keeps one count per bucket; Prometheus wants them cumulative, with le in seconds.
  head('inferq_latency_seconds', 'histogram', 'End-to-end request latency seen by callers, seconds.');
  let cumulative = 0;
  LATENCY_BUCKET_BOUNDS_MS.forEach((bound, i) => {
    cumulative += s.latencyBuckets[i] ?? 0;
    line('inferq_latency_seconds_bucket', cumulative, `,le="${bound === Infinity ? '+Inf' : fmt(bound / 1000)}"`);
  });
  line('inferq_latency_seconds_sum', (s.counters.latency_sum_ms ?? 0) / 1000);
  line('inferq_latency_seconds_count', cumulative);

  head('inferq_cache_entries', 'gauge', 'Entries in the result cache.');
  line('inferq_cache_entries', s.cacheEntries);
  head('inferq_cache_bytes', 'gauge', 'Bytes of the result cache (output JSON plus key, per entry).');
  line('inferq_cache_bytes', s.cacheBytes);
  if (s.queue) {
    head('inferq_queue_jobs', 'gauge', "Jobs (request envelopes, up to maxEnvelopeItems requests each) in the model's BullMQ queue, by state.");
    for (const state of QUEUE_STATES) line('inferq_queue_jobs', s.queue[state], `,state="${state}"`);
  }
  if (s.tenants.length > 0) {
    for (const [field, name, help] of TENANT_COUNTERS) {
      head(name, 'counter', help);
      for (const t of s.tenants) line(name, t[field], `,tenant="${escapeLabel(t.tenant)}"`);
    }
    head('inferq_tenant_queued', 'gauge', "Places a tenant holds in the model's queue ledger (requests admitted, not yet answered).");
    for (const t of s.tenants) line('inferq_tenant_queued', t.queued, `,tenant="${escapeLabel(t.tenant)}"`);
    const bounded = s.tenants.filter((t) => t.share > 0);
    if (bounded.length > 0) {
      head('inferq_tenant_share', 'gauge', "A tenant's fair share of the model's queue bound if it had requests waiting now (weights over the tenants holding places).");
      for (const t of bounded) line('inferq_tenant_share', t.share, `,tenant="${escapeLabel(t.tenant)}"`);
    }
  }
  head('inferq_stats_corrupt_fields', 'gauge', 'Fields of the stats hashes that do not hold a number (counted as 0 above).');
  line('inferq_stats_corrupt_fields', s.stats.corruptFields.length);
  return out.join('\n') + '\n';
}
