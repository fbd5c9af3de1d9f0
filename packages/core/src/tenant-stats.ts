/**
 * Per-tenant figures of a model, in one round trip: what each tenant asked
 * for and got (requests, cache hits, refusals, timeouts, latency percentiles
 * from its histogram), the places it holds in the queue ledger now, the
 * operator's weight and cap, and its share of the bound if it waited now.
 *
 * Cardinality is bounded where figures are exported: tenants are short
 * validated names chosen by applications, and readers (`inferq stats
 * --by-tenant`, `/metrics`) show at most `limit` tenants (most requests
 * first) and fold the rest into one row named `other`.
 */
import { LatencyHistogram } from './latency-histogram.js';
import { RedisUnavailableError } from './errors.js';
import { DEFAULT_PREFIX, modelKeys } from './protocol/keys.js';
import type { StatsRedis } from './stats-recorder.js';

export interface TenantStats {
  tenant: string;
  requests: number;
  cacheHits: number;
  refused: number;
  timeouts: number;
  errors: number;
  p50LatencyMs: number;
  p99LatencyMs: number;
  /** Places it holds in the queue ledger now. */
  queued: number;
  /** The operator's weight (default 1). */
  weight: number;
  /** The operator's cap on its places (0 = none). */
  cap: number;
  /** The operator's cap on its items in each worker's running batches (0 = none). */
  slotCap: number;
  /** Its share of the model's bound if it had requests waiting now (0 = no bound). */
  share: number;
}

/** The tenant row into which tenants past `limit` are folded. */
export const OTHER_TENANTS = 'other';

export async function readTenantStats(redis: StatsRedis, model: string, prefix: string = DEFAULT_PREFIX, limit = 50): Promise<TenantStats[]> {
  const keys = modelKeys(model, prefix);
  let replies: Array<[Error | null, unknown]> | null;
  try {
    replies = await redis
      .pipeline()
      .hgetall(keys.statsTenants)
      .hgetall(keys.statsTenantLatency)
      .hgetall(keys.roomCounts)
      .hgetall(keys.tenants)
      .hget(keys.limits, 'maxQueueLength')
      .exec();
  } catch (err) {
    throw new RedisUnavailableError(`Reading the tenant stats of model '${model}' failed: ${(err as Error).message}`, { cause: err, details: { model } });
  }
  const failed = replies?.find(([e]) => e);
  if (!replies || failed) throw new RedisUnavailableError(`Reading the tenant stats of model '${model}' failed: ${String(failed?.[0]?.message ?? 'no reply')}`, { details: { model } });
  const [counters, latency, counts, settings] = replies.slice(0, 4).map(([, v]) => (v ?? {}) as Record<string, string>) as [
    Record<string, string>,
    Record<string, string>,
    Record<string, string>,
    Record<string, string>,
  ];
  const bound = Math.max(0, Number(replies[4]?.[1] ?? 0) || 0);
  const split = (field: string): [string, string] | undefined => {
    const sep = field.lastIndexOf('|');
    return sep > 0 ? [field.slice(0, sep), field.slice(sep + 1)] : undefined;
  };
  const rows = new Map<string, { c: Record<string, number>; h: Record<string, number> }>();
  const row = (t: string) => {
    let r = rows.get(t);
    if (!r) rows.set(t, (r = { c: {}, h: {} }));
    return r;
  };
  for (const [field, v] of Object.entries(counters)) {
    const p = split(field);
    if (p) row(p[0]).c[p[1]] = Number(v) || 0;
  }
  for (const [field, v] of Object.entries(latency)) {
    const p = split(field);
    if (p) row(p[0]).h[p[1]] = Number(v) || 0;
  }
  for (const t of Object.keys(counts)) row(t);
  const weightOf = (t: string) => {
    const w = Number(settings[`${t}|weight`]);
    return Number.isFinite(w) && w > 0 ? w : 1;
  };
  for (const field of Object.keys(settings)) {
    const p = split(field);
    if (p) row(p[0]);
  }
  const holding = Object.entries(counts).filter(([, n]) => Number(n) > 0).map(([t]) => t);
  const all: TenantStats[] = [...rows].map(([tenant, r]) => {
    const h = LatencyHistogram.fromFields(r.h);
    const others = holding.filter((t) => t !== tenant).reduce((s, t) => s + weightOf(t), 0);
    return {
      tenant,
      requests: r.c.requests ?? 0,
      cacheHits: r.c.cache_hits ?? 0,
      refused: r.c.refused ?? 0,
      timeouts: r.c.timeouts ?? 0,
      errors: r.c.errors ?? 0,
      p50LatencyMs: h.percentile(50),
      p99LatencyMs: h.percentile(99),
      queued: Number(counts[tenant] ?? 0) || 0,
      weight: weightOf(tenant),
      cap: Number(settings[`${tenant}|maxQueued`] ?? 0) || 0,
      slotCap: Number(settings[`${tenant}|maxSlots`] ?? 0) || 0,
      share: bound > 0 ? Math.floor((bound * weightOf(tenant)) / (weightOf(tenant) + others)) : 0,
    };
  });
  all.sort((a, b) => b.requests - a.requests || a.tenant.localeCompare(b.tenant));
  if (all.length <= limit) return all;
  // Past the limit: one folded row (its percentiles are not derivable from the rows' figures).
  const kept = all.slice(0, limit - 1);
  const rest = all.slice(limit - 1);
  const sum = (k: 'requests' | 'cacheHits' | 'refused' | 'timeouts' | 'errors' | 'queued') => rest.reduce((s, r) => s + r[k], 0);
  kept.push({ tenant: OTHER_TENANTS, requests: sum('requests'), cacheHits: sum('cacheHits'), refused: sum('refused'), timeouts: sum('timeouts'), errors: sum('errors'), p50LatencyMs: 0, p99LatencyMs: 0, queued: sum('queued'), weight: 1, cap: 0, slotCap: 0, share: 0 });
  return kept;
}
